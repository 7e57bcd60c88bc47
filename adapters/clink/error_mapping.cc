#include "adapters/clink/error_mapping.h"

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "adapters/clink/error_details.h"
#include "google/rpc/error_details.pb.h"

namespace clink_gateway::clink {
namespace {

constexpr size_t kMaxClinkMsg = 200;

// How sure we are about what happened upstream, reported as ErrorInfo metadata
// "outcome".
enum class Outcome { kNotSent, kUnknown, kRejected, kCommitted };

absl::string_view OutcomeName(Outcome o) {
  switch (o) {
    case Outcome::kNotSent:
      return "not_sent";
    case Outcome::kUnknown:
      return "unknown";
    case Outcome::kRejected:
      return "rejected";
    case Outcome::kCommitted:
      return "committed";
  }
  return "unknown";
}

struct Verdict {
  absl::StatusCode code;
  std::string reason;
  bool from_clink;  // reason is Clink's own code.
  Outcome outcome;
  std::string detail;  // Human explanation appended to the message.
};

// An outcome we cannot know: GET is safe to retry; a POST is only if Clink
// deduplicates it.
Verdict Unknown(const UpstreamOutcome& o, absl::StatusCode get_code,
                absl::string_view what) {
  if (!o.mutating)
    return {get_code, std::string(what), false, Outcome::kUnknown, ""};
  if (o.idempotent_upstream) {
    return {absl::StatusCode::kUnavailable, std::string(what), false,
            Outcome::kUnknown,
            "the request may have reached Clink; Clink deduplicates it, so "
            "retrying with the "
            "same reference is safe"};
  }
  return {absl::StatusCode::kUnknown, std::string(what), false,
          Outcome::kUnknown,
          "outcome unknown: the request may have reached Clink and may have "
          "taken effect; do "
          "not retry blindly, reconcile first (e.g. by merchant_reference_id)"};
}

Verdict FromTransport(const UpstreamOutcome& o) {
  const absl::StatusCode code = o.transport_status.code();
  if (o.delivery == http::Delivery::kNotSent) {
    if (code == absl::StatusCode::kDeadlineExceeded) {
      return {code, "DEADLINE_BEFORE_SEND", false, Outcome::kNotSent,
              "nothing was sent to Clink"};
    }
    return {absl::StatusCode::kUnavailable, "UPSTREAM_UNREACHABLE", false,
            Outcome::kNotSent, "nothing was sent to Clink; safe to retry"};
  }
  if (code == absl::StatusCode::kDeadlineExceeded) {
    return Unknown(o, absl::StatusCode::kDeadlineExceeded, "UPSTREAM_TIMEOUT");
  }
  return Unknown(o, absl::StatusCode::kUnavailable, "UPSTREAM_CONNECTION_LOST");
}

// A Clink code (from the envelope, or the HTTP status when there is none).
Verdict FromClinkCode(const UpstreamOutcome& o, int64_t clink_code,
                      bool from_envelope) {
  const std::string reason = from_envelope ? absl::StrCat(clink_code)
                                           : absl::StrCat("HTTP_", clink_code);
  auto rejected = [&](absl::StatusCode code, absl::string_view detail) {
    return Verdict{code, reason, from_envelope, Outcome::kRejected,
                   std::string(detail)};
  };
  switch (clink_code) {
    case 400:
    case 422:
      return rejected(absl::StatusCode::kInvalidArgument,
                      "Clink rejected the request");
    case 401:
    case 403:
    case 80102221:
    case 80102222:
    case 80102223:
      return rejected(absl::StatusCode::kInternal,
                      "Clink refused the gateway's API key (a gateway "
                      "configuration problem, "
                      "not the caller's credentials)");
    case 80102203:
    case 80102212:
    case 80102213:
      return rejected(
          absl::StatusCode::kInternal,
          "Clink refused the gateway's request timestamp (clock skew)");
    case 404:
    case 71160007:
      return rejected(absl::StatusCode::kNotFound, "not found at Clink");
    case 409:
      return rejected(absl::StatusCode::kAborted, "conflict at Clink");
    case 429:
      return rejected(absl::StatusCode::kResourceExhausted,
                      "Clink rate limit; retry later");
    default:
      break;
  }
  if (clink_code >= 500 && clink_code <= 599) {
    Verdict v = Unknown(o, absl::StatusCode::kUnavailable, reason);
    v.from_clink = from_envelope;
    return v;
  }
  if (from_envelope || (clink_code >= 400 && clink_code <= 499)) {
    return rejected(absl::StatusCode::kFailedPrecondition,
                    "Clink declined the request");
  }
  Verdict v = Unknown(o, absl::StatusCode::kInternal, reason);
  v.detail = absl::StrCat("unexpected HTTP status; ", v.detail);
  return v;
}

}  // namespace

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

absl::Status MapUpstreamOutcome(const UpstreamOutcome& o) {
  Verdict v;
  if (!o.transport_status.ok()) {
    v = FromTransport(o);
  } else if (o.http_status >= 200 && o.http_status <= 299) {
    if (!o.body_is_json) {
      v = o.mutating
              ? Unknown(o, absl::StatusCode::kInternal, "UPSTREAM_BAD_RESPONSE")
              : Verdict{absl::StatusCode::kInternal, "UPSTREAM_BAD_RESPONSE",
                        false, Outcome::kCommitted,
                        "Clink's response could not be read"};
      if (o.mutating && v.code == absl::StatusCode::kUnknown) {
        v.detail = absl::StrCat(
            "Clink answered but its response could not be read; ", v.detail);
      }
    } else if (!o.has_envelope_code || o.envelope_code == 200) {
      return absl::OkStatus();
    } else {
      v = FromClinkCode(o, o.envelope_code, /*from_envelope=*/true);
    }
  } else if (o.has_envelope_code && o.envelope_code != 200 && o.body_is_json) {
    v = FromClinkCode(o, o.envelope_code, /*from_envelope=*/true);
    // An HTTP status that says more than a generic envelope code wins (e.g. 404
    // vs 500).
    if (o.http_status == 401 || o.http_status == 403 || o.http_status == 404 ||
        o.http_status == 429 || o.http_status >= 500) {
      Verdict h = FromClinkCode(o, o.http_status, /*from_envelope=*/false);
      h.reason = v.reason;
      h.from_clink = true;
      v = h;
    }
  } else {
    v = FromClinkCode(o, o.http_status, /*from_envelope=*/false);
  }

  std::string message = absl::StrCat("clink ", o.endpoint, ": ");
  if (o.transport_status.ok())
    absl::StrAppend(&message, "HTTP ", o.http_status, " ");
  if (v.from_clink) absl::StrAppend(&message, "code ", v.reason, " ");
  if (!o.envelope_msg.empty()) {
    absl::StrAppend(&message, "\"",
                    absl::string_view(o.envelope_msg).substr(0, kMaxClinkMsg),
                    "\" ");
  }
  if (!o.transport_status.ok())
    absl::StrAppend(&message, o.transport_status.message(), "; ");
  absl::StrAppend(&message, v.detail);

  absl::Status status(v.code, message);
  google::rpc::ErrorInfo info;
  info.set_reason(v.reason);
  info.set_domain(std::string(v.from_clink ? kClinkDomain : kGatewayDomain));
  (*info.mutable_metadata())["outcome"] = std::string(OutcomeName(v.outcome));
  (*info.mutable_metadata())["endpoint"] = o.endpoint;
  if (o.transport_status.ok()) {
    (*info.mutable_metadata())["http_status"] = absl::StrCat(o.http_status);
  }
  AttachErrorInfo(status, info);
  if (v.code == absl::StatusCode::kResourceExhausted) {
    AttachRetryInfo(status, ParseRetryAfter(o.retry_after, o.now));
  }
  return status;
}

}  // namespace clink_gateway::clink
