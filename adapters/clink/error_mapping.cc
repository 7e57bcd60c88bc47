#include "adapters/clink/error_mapping.h"

#include <algorithm>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/errors/error_details.h"
#include "common/utf8.h"
#include "google/rpc/error_details.pb.h"

namespace clink_gateway::clink {
namespace {

constexpr size_t kMaxClinkMsgBytes = 200;

struct Verdict {
  absl::StatusCode code;
  std::string reason;
  bool from_clink;  // Clink refused with its own code (`clink_code`).
  Outcome outcome;
  std::string detail;  // Human explanation appended to the message.
  bool pass_clink_msg = true;
};

// The request may or may not have taken effect. A read is safe to retry; a
// write is UNKNOWN, whatever happened, so that no caller retries it blindly.
Verdict Unknown(const UpstreamOutcome& o, absl::StatusCode read_code,
                std::string reason, bool from_clink) {
  if (!o.mutating) {
    return {read_code, std::move(reason), from_clink, Outcome::kUnknown, ""};
  }
  return {absl::StatusCode::kUnknown, std::move(reason), from_clink,
          Outcome::kUnknown,
          o.idempotent_upstream
              ? "outcome unknown: the request may have reached Clink; Clink "
                "deduplicates it, so retrying with the same reference is safe"
              : "outcome unknown: the request may have reached Clink and taken "
                "effect; do not retry blindly, reconcile first (e.g. by "
                "merchant_reference_id)"};
}

Verdict FromTransport(const UpstreamOutcome& o) {
  const absl::StatusCode code = o.transport_status.code();
  if (o.failure == http::FailureKind::kEgressDenied) {
    if (o.delivery == http::Delivery::kNotSent) {
      return {absl::StatusCode::kPermissionDenied, "EGRESS_DENIED", false,
              Outcome::kNotSent,
              "nothing was sent to Clink: the gateway's egress policy refused "
              "the address; retrying will not help"};
    }
    // An earlier attempt may have reached Clink.
    return Unknown(o, absl::StatusCode::kPermissionDenied, "EGRESS_DENIED",
                   false);
  }
  if (o.delivery == http::Delivery::kNotSent) {
    if (code == absl::StatusCode::kDeadlineExceeded) {
      return {code, "DEADLINE_BEFORE_SEND", false, Outcome::kNotSent,
              "nothing was sent to Clink"};
    }
    return {absl::StatusCode::kUnavailable, "UPSTREAM_UNREACHABLE", false,
            Outcome::kNotSent, "nothing was sent to Clink; safe to retry"};
  }
  if (code == absl::StatusCode::kDeadlineExceeded) {
    return Unknown(o, code, "UPSTREAM_TIMEOUT", false);
  }
  return Unknown(o, absl::StatusCode::kUnavailable, "UPSTREAM_CONNECTION_LOST",
                 false);
}

// The ErrorInfo reason of Clink's envelope `code` (domain clinkbill.com): its
// class, UPPER_SNAKE_CASE; the code itself goes in metadata `clink_code`.
std::string ClinkReason(int64_t code) {
  switch (AuthFailureOfCode(code)) {
    case AuthFailure::kApiKey:
      return "API_KEY_REFUSED";
    case AuthFailure::kTimestamp:
      return "TIMESTAMP_REFUSED";
    case AuthFailure::kNone:
      break;
  }
  switch (code) {
    case 400:
    case 422:
      return "REQUEST_REJECTED";
    case 404:
    case 71160007:
      return "NOT_FOUND";
    case 409:
      return "CONFLICT";
    case 429:
      return "RATE_LIMITED";
    default:
      break;
  }
  if (code >= 500 && code <= 599) return "SERVER_ERROR";
  return "DECLINED";
}

// A Clink code (from the envelope), or the HTTP status when there is none.
Verdict FromCode(const UpstreamOutcome& o, int64_t code, bool from_envelope) {
  std::string reason =
      from_envelope ? ClinkReason(code) : absl::StrCat("HTTP_", code);
  auto rejected = [&](absl::StatusCode status, absl::string_view detail) {
    return Verdict{status, reason, from_envelope, Outcome::kRejected,
                   std::string(detail)};
  };
  switch (AuthFailureOfCode(code)) {
    case AuthFailure::kApiKey: {
      Verdict v = rejected(
          absl::StatusCode::kInternal,
          absl::StrCat("Clink refused the gateway's API key",
                       o.key_fingerprint.empty() ? "" : " ", o.key_fingerprint,
                       " (a gateway configuration problem, not the caller's)"));
      v.pass_clink_msg = false;
      return v;
    }
    case AuthFailure::kTimestamp: {
      Verdict v = rejected(absl::StatusCode::kInternal,
                           "Clink refused the gateway's request timestamp "
                           "(clock skew on the gateway)");
      v.pass_clink_msg = false;
      return v;
    }
    case AuthFailure::kNone:
      break;
  }
  switch (code) {
    case 400:
    case 422:
      return rejected(absl::StatusCode::kInvalidArgument,
                      "Clink rejected the request");
    case 404:
    case 71160007:
      return rejected(absl::StatusCode::kNotFound, "not found at Clink");
    case 409:
      return rejected(absl::StatusCode::kAborted, "conflict at Clink");
    case 429:
      return rejected(absl::StatusCode::kResourceExhausted,
                      "Clink rate limit; retry after the RetryInfo delay");
    default:
      break;
  }
  if (code >= 500 && code <= 599) {
    return Unknown(o, absl::StatusCode::kUnavailable, std::move(reason),
                   from_envelope);
  }
  if (from_envelope || (code >= 400 && code <= 499)) {
    return rejected(absl::StatusCode::kFailedPrecondition,
                    "Clink declined the request");
  }
  Verdict v = Unknown(o, absl::StatusCode::kInternal, std::move(reason), false);
  v.detail = absl::StrCat("unexpected HTTP status",
                          v.detail.empty() ? "" : "; ", v.detail);
  return v;
}

Verdict Classify(const UpstreamOutcome& o) {
  if (!o.transport_status.ok()) return FromTransport(o);
  const bool success_status = o.http_status >= 200 && o.http_status <= 299;
  const bool envelope_error =
      o.body_readable && o.has_envelope_code && o.envelope_code != 200;
  if (success_status && !o.body_readable) {
    Verdict v =
        Unknown(o, absl::StatusCode::kInternal, "UPSTREAM_BAD_RESPONSE", false);
    if (!o.mutating) v.outcome = Outcome::kCommitted;
    v.detail = absl::StrCat("Clink's response could not be read",
                            v.detail.empty() ? "" : "; ", v.detail);
    return v;
  }
  if (success_status && !envelope_error) {
    // Clink said yes; only the payload is wrong. The request took effect.
    return {absl::StatusCode::kInternal, "UPSTREAM_INCOMPLETE_RESPONSE", false,
            Outcome::kCommitted,
            "Clink accepted the request but its answer is incomplete (missing "
            "payload, unreadable amount or a value nested too deep); do not "
            "retry, look it up"};
  }
  if (!envelope_error && o.http_status == 408) {
    // Request Timeout, from Clink's web server or a proxy or load balancer in
    // front of it: the request was not received whole, so nothing was
    // processed. Safe to send again.
    return {absl::StatusCode::kUnavailable, "HTTP_408", false,
            Outcome::kNotSent,
            "Clink (or a proxy in front of it) timed out receiving the "
            "request, so it was not processed; safe to retry"};
  }
  if (!envelope_error) return FromCode(o, o.http_status, false);
  Verdict v = FromCode(o, o.envelope_code, /*from_envelope=*/true);
  // An HTTP status that says more than the envelope code wins (e.g. a 5xx).
  if (o.http_status == 401 || o.http_status == 403 || o.http_status == 404 ||
      o.http_status == 429 || o.http_status >= 500) {
    Verdict h = FromCode(o, o.http_status, /*from_envelope=*/false);
    h.reason = v.reason;
    h.from_clink = true;
    return h;
  }
  return v;
}

}  // namespace

absl::string_view AuthFailureName(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::kNone:
      return "none";
    case AuthFailure::kApiKey:
      return "key";
    case AuthFailure::kTimestamp:
      return "timestamp";
  }
  return "none";
}

AuthFailure AuthFailureOfCode(int64_t code) {
  switch (code) {
    case 401:
    case 403:
    case 80102221:
    case 80102222:
    case 80102223:
      return AuthFailure::kApiKey;
    case 80102203:
    case 80102212:
    case 80102213:
      return AuthFailure::kTimestamp;
    default:
      return AuthFailure::kNone;
  }
}

AuthFailure AuthFailureOf(int http_status, bool has_envelope_code,
                          int64_t envelope_code) {
  if (has_envelope_code) {
    const AuthFailure from_envelope = AuthFailureOfCode(envelope_code);
    if (from_envelope != AuthFailure::kNone) return from_envelope;
  }
  if (http_status == 401 || http_status == 403) return AuthFailure::kApiKey;
  return AuthFailure::kNone;
}

absl::Duration ParseRetryAfter(absl::string_view value, absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  int64_t seconds = 0;
  if (absl::SimpleAtoi(value, &seconds) && seconds >= 0) {
    return absl::Seconds(std::min<int64_t>(seconds, 3600));
  }
  absl::Time when;
  std::string err;
  if (absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", std::string(value),
                      absl::UTCTimeZone(), &when, &err)) {
    return std::clamp(when - now, absl::ZeroDuration(), absl::Hours(1));
  }
  return absl::Seconds(1);
}

UpstreamVerdict MapUpstreamOutcome(const UpstreamOutcome& o) {
  const bool success = o.transport_status.ok() && o.http_status >= 200 &&
                       o.http_status <= 299 && o.body_readable &&
                       (!o.has_envelope_code || o.envelope_code == 200) &&
                       !o.incomplete;
  if (success) return {absl::OkStatus(), Outcome::kCommitted};
  Verdict v = Classify(o);
  if (o.mutating && o.earlier_attempt_maybe_sent &&
      (v.outcome == Outcome::kNotSent || v.outcome == Outcome::kRejected)) {
    // This attempt did nothing, but an earlier one may have: the call's
    // outcome stays open, whatever this answer says (a 408, a 429, a bare
    // proxy 4xx after a retried 5xx).
    Verdict open = Unknown(o, v.code, v.reason, v.from_clink);
    open.detail =
        absl::StrCat("an earlier attempt may have reached Clink; ",
                     open.detail.empty() ? "outcome unknown" : open.detail);
    v = std::move(open);
  }

  std::string message = absl::StrCat("clink ", o.endpoint, ": ");
  if (o.transport_status.ok()) {
    absl::StrAppend(&message, "HTTP ", o.http_status, " ");
  }
  if (v.from_clink) absl::StrAppend(&message, "code ", o.envelope_code, " ");
  if (v.pass_clink_msg && !o.envelope_msg.empty()) {
    absl::StrAppend(&message, "\"",
                    Utf8Prefix(o.envelope_msg, kMaxClinkMsgBytes), "\" ");
  }
  if (!o.transport_status.ok()) {
    absl::StrAppend(&message, o.transport_status.message(), "; ");
  }
  absl::StrAppend(&message, v.detail);

  absl::Status status(v.code, message);
  std::map<std::string, std::string> metadata;
  metadata["endpoint"] = o.endpoint;
  if (o.transport_status.ok()) {
    metadata["http_status"] = absl::StrCat(o.http_status);
  }
  if (v.from_clink) metadata["clink_code"] = absl::StrCat(o.envelope_code);
  if (o.idempotent_upstream) metadata["idempotent_upstream"] = "true";
  if (v.reason == "EGRESS_DENIED" && !o.egress_reason.empty()) {
    metadata["egress_reason"] = o.egress_reason;
  }
  errors::AttachErrorInfo(
      status, v.from_clink ? errors::kClinkDomain : errors::kGatewayDomain,
      v.reason, v.outcome, std::move(metadata));
  if (v.code == absl::StatusCode::kResourceExhausted) {
    errors::AttachRetryInfo(status, ParseRetryAfter(o.retry_after, o.now));
  }
  return {std::move(status), v.outcome};
}

}  // namespace clink_gateway::clink
