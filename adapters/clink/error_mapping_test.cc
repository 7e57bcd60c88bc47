#include "adapters/clink/error_mapping.h"

#include <string>

#include "common/errors/error_details.h"
#include "common/utf8.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

using absl::StatusCode;
using http::Delivery;

// One row of the table in error_mapping.h.
struct Row {
  const char* name;
  bool mutating;
  bool idempotent;
  StatusCode transport;  // kOk: a response arrived.
  Delivery delivery;
  int http_status;
  bool json;
  bool has_code;
  int64_t clink_code;
  StatusCode want_code;
  const char* want_reason;  // "" for OK.
  const char* want_domain;
  const char* want_outcome;
  bool incomplete = false;  // A 200 whose payload is missing or unreadable.
};

constexpr bool GET = false, POST = true;
constexpr StatusCode kOk = StatusCode::kOk;

const Row kRows[] = {
    {"get_ok", GET, false, kOk, Delivery::kReceived, 200, true, true, 200, kOk,
     "", "", ""},
    {"post_ok", POST, false, kOk, Delivery::kReceived, 200, true, true, 200,
     kOk, "", "", ""},
    {"bare_resource_ok", GET, false, kOk, Delivery::kReceived, 200, true, false,
     0, kOk, "", "", ""},
    {"deadline_before_send", POST, false, StatusCode::kDeadlineExceeded,
     Delivery::kNotSent, 0, true, false, 0, StatusCode::kDeadlineExceeded,
     "DEADLINE_BEFORE_SEND", "gateway.clink", "not_sent"},
    {"connect_failure", POST, false, StatusCode::kUnavailable,
     Delivery::kNotSent, 0, true, false, 0, StatusCode::kUnavailable,
     "UPSTREAM_UNREACHABLE", "gateway.clink", "not_sent"},
    {"get_timeout_after_send", GET, false, StatusCode::kDeadlineExceeded,
     Delivery::kUnknown, 0, true, false, 0, StatusCode::kDeadlineExceeded,
     "UPSTREAM_TIMEOUT", "gateway.clink", "unknown"},
    {"post_timeout_after_send", POST, false, StatusCode::kDeadlineExceeded,
     Delivery::kUnknown, 0, true, false, 0, StatusCode::kUnknown,
     "UPSTREAM_TIMEOUT", "gateway.clink", "unknown"},
    {"get_reset", GET, false, StatusCode::kUnavailable, Delivery::kUnknown, 0,
     true, false, 0, StatusCode::kUnavailable, "UPSTREAM_CONNECTION_LOST",
     "gateway.clink", "unknown"},
    {"post_reset", POST, false, StatusCode::kUnavailable, Delivery::kUnknown, 0,
     true, false, 0, StatusCode::kUnknown, "UPSTREAM_CONNECTION_LOST",
     "gateway.clink", "unknown"},
    {"refund_reset_is_still_unknown", POST, true, StatusCode::kUnavailable,
     Delivery::kUnknown, 0, true, false, 0, StatusCode::kUnknown,
     "UPSTREAM_CONNECTION_LOST", "gateway.clink", "unknown"},
    {"http_401_key_refused", POST, false, kOk, Delivery::kReceived, 401, false,
     false, 0, StatusCode::kInternal, "HTTP_401", "gateway.clink", "rejected"},
    {"http_403", GET, false, kOk, Delivery::kReceived, 403, false, false, 0,
     StatusCode::kInternal, "HTTP_403", "gateway.clink", "rejected"},
    {"envelope_key_invalid", GET, false, kOk, Delivery::kReceived, 200, true,
     true, 80102221, StatusCode::kInternal, "API_KEY_REFUSED", "clinkbill.com",
     "rejected"},
    {"envelope_timestamp_expired", POST, false, kOk, Delivery::kReceived, 200,
     true, true, 80102203, StatusCode::kInternal, "TIMESTAMP_REFUSED",
     "clinkbill.com", "rejected"},
    {"http_404", GET, false, kOk, Delivery::kReceived, 404, false, false, 0,
     StatusCode::kNotFound, "HTTP_404", "gateway.clink", "rejected"},
    {"envelope_404", GET, false, kOk, Delivery::kReceived, 200, true, true, 404,
     StatusCode::kNotFound, "NOT_FOUND", "clinkbill.com", "rejected"},
    {"http_404_with_envelope", GET, false, kOk, Delivery::kReceived, 404, true,
     true, 404, StatusCode::kNotFound, "NOT_FOUND", "clinkbill.com",
     "rejected"},
    {"refund_not_found_code", GET, false, kOk, Delivery::kReceived, 200, true,
     true, 71160007, StatusCode::kNotFound, "NOT_FOUND", "clinkbill.com",
     "rejected"},
    {"http_429", POST, false, kOk, Delivery::kReceived, 429, false, false, 0,
     StatusCode::kResourceExhausted, "HTTP_429", "gateway.clink", "rejected"},
    {"envelope_429", GET, false, kOk, Delivery::kReceived, 200, true, true, 429,
     StatusCode::kResourceExhausted, "RATE_LIMITED", "clinkbill.com",
     "rejected"},
    {"get_http_500", GET, false, kOk, Delivery::kReceived, 500, false, false, 0,
     StatusCode::kUnavailable, "HTTP_500", "gateway.clink", "unknown"},
    {"post_http_503", POST, false, kOk, Delivery::kReceived, 503, false, false,
     0, StatusCode::kUnknown, "HTTP_503", "gateway.clink", "unknown"},
    {"refund_http_500", POST, true, kOk, Delivery::kReceived, 500, false, false,
     0, StatusCode::kUnknown, "HTTP_500", "gateway.clink", "unknown"},
    {"post_payload_missing", POST, false, kOk, Delivery::kReceived, 200, true,
     true, 200, StatusCode::kInternal, "UPSTREAM_INCOMPLETE_RESPONSE",
     "gateway.clink", "committed", true},
    {"get_amount_unreadable", GET, false, kOk, Delivery::kReceived, 200, true,
     true, 200, StatusCode::kInternal, "UPSTREAM_INCOMPLETE_RESPONSE",
     "gateway.clink", "committed", true},
    {"post_envelope_500", POST, false, kOk, Delivery::kReceived, 200, true,
     true, 500, StatusCode::kUnknown, "SERVER_ERROR", "clinkbill.com",
     "unknown"},
    {"envelope_400", POST, false, kOk, Delivery::kReceived, 200, true, true,
     400, StatusCode::kInvalidArgument, "REQUEST_REJECTED", "clinkbill.com",
     "rejected"},
    {"http_400", POST, false, kOk, Delivery::kReceived, 400, false, false, 0,
     StatusCode::kInvalidArgument, "HTTP_400", "gateway.clink", "rejected"},
    {"envelope_409", POST, false, kOk, Delivery::kReceived, 200, true, true,
     409, StatusCode::kAborted, "CONFLICT", "clinkbill.com", "rejected"},
    {"business_rejection", POST, false, kOk, Delivery::kReceived, 200, true,
     true, 90101401, StatusCode::kFailedPrecondition, "DECLINED",
     "clinkbill.com", "rejected"},
    // 408 Request Timeout (Clink's web server, or a proxy in front of it):
    // the request was not received whole, nothing was processed.
    {"post_http_408", POST, false, kOk, Delivery::kReceived, 408, false, false,
     0, StatusCode::kUnavailable, "HTTP_408", "gateway.clink", "not_sent"},
    {"get_http_408", GET, false, kOk, Delivery::kReceived, 408, false, false, 0,
     StatusCode::kUnavailable, "HTTP_408", "gateway.clink", "not_sent"},
    {"other_http_4xx", GET, false, kOk, Delivery::kReceived, 418, false, false,
     0, StatusCode::kFailedPrecondition, "HTTP_418", "gateway.clink",
     "rejected"},
    {"get_redirect", GET, false, kOk, Delivery::kReceived, 302, false, false, 0,
     StatusCode::kInternal, "HTTP_302", "gateway.clink", "unknown"},
    {"post_redirect", POST, false, kOk, Delivery::kReceived, 302, false, false,
     0, StatusCode::kUnknown, "HTTP_302", "gateway.clink", "unknown"},
    {"get_malformed_json", GET, false, kOk, Delivery::kReceived, 200, false,
     false, 0, StatusCode::kInternal, "UPSTREAM_BAD_RESPONSE", "gateway.clink",
     "committed"},
    {"post_malformed_json", POST, false, kOk, Delivery::kReceived, 200, false,
     false, 0, StatusCode::kUnknown, "UPSTREAM_BAD_RESPONSE", "gateway.clink",
     "unknown"},
};

class ErrorMappingTest : public testing::TestWithParam<Row> {};

TEST_P(ErrorMappingTest, MapsRow) {
  const Row& row = GetParam();
  UpstreamOutcome o;
  o.endpoint = row.mutating ? "POST /payment" : "GET /order/{order_id}";
  o.mutating = row.mutating;
  o.idempotent_upstream = row.idempotent;
  o.transport_status = row.transport == kOk
                           ? absl::OkStatus()
                           : absl::Status(row.transport, "transport says no");
  o.delivery = row.delivery;
  o.http_status = row.http_status;
  o.body_readable = row.json;
  o.incomplete = row.incomplete;
  o.has_envelope_code = row.has_code;
  o.envelope_code = row.clink_code;
  o.envelope_msg =
      row.has_code && row.clink_code != 200 ? "msg from clink" : "";

  const UpstreamVerdict verdict = MapUpstreamOutcome(o);
  const absl::Status& status = verdict.status;
  EXPECT_EQ(status.code(), row.want_code) << status;
  if (row.want_code == kOk) {
    EXPECT_EQ(verdict.outcome, Outcome::kCommitted);
    return;
  }
  const auto info = errors::GetErrorInfo(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), row.want_reason);
  EXPECT_TRUE(errors::IsValidReason(info->reason())) << info->reason();
  EXPECT_EQ(info->domain(), row.want_domain);
  // The outcome is a field of the verdict; the ErrorInfo shows the same.
  EXPECT_EQ(OutcomeName(verdict.outcome), row.want_outcome);
  EXPECT_EQ(info->metadata().at("outcome"), row.want_outcome);
  // Clink's own code is metadata, never the reason.
  if (info->domain() == errors::kClinkDomain) {
    EXPECT_EQ(info->metadata().at("clink_code"), absl::StrCat(row.clink_code));
  } else {
    EXPECT_EQ(info->metadata().count("clink_code"), 0u);
  }
  EXPECT_EQ(info->metadata().at("endpoint"), o.endpoint);
  if (row.transport == kOk) {
    EXPECT_EQ(info->metadata().at("http_status"),
              std::to_string(row.http_status));
  } else {
    EXPECT_EQ(info->metadata().count("http_status"), 0u);
  }
  EXPECT_EQ(info->metadata().count("idempotent_upstream"),
            row.idempotent ? 1u : 0u);
  // Never blame the caller's credentials for the gateway's key.
  EXPECT_NE(status.code(), StatusCode::kUnauthenticated);
  EXPECT_NE(status.code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(errors::GetRetryInfo(status).has_value(),
            row.want_code == StatusCode::kResourceExhausted);
  const bool auth = row.want_code == StatusCode::kInternal && row.has_code;
  if (!o.envelope_msg.empty() && !auth) {
    EXPECT_NE(status.message().find("msg from clink"), absl::string_view::npos);
  }
  if (auth) {  // Clink's text about the gateway's key is not passed on.
    EXPECT_EQ(status.message().find("msg from clink"), absl::string_view::npos);
  }
}

INSTANTIATE_TEST_SUITE_P(Table, ErrorMappingTest, testing::ValuesIn(kRows),
                         [](const testing::TestParamInfo<Row>& info) {
                           return info.param.name;
                         });

TEST(ErrorMappingTest, AfterAMaybeSentAttemptNoAnswerMakesTheCallNotSent) {
  // A refund (retried on 5xx): attempt 1 got a 503 and may have created it;
  // attempt 2 gets a 408, a 429 or a bare proxy 404. The call's outcome is
  // still open.
  for (int status : {408, 429, 404, 400}) {
    UpstreamOutcome o;
    o.endpoint = "POST /refund";
    o.mutating = true;
    o.idempotent_upstream = true;
    o.delivery = Delivery::kReceived;
    o.http_status = status;
    o.earlier_attempt_maybe_sent = true;
    const UpstreamVerdict v = MapUpstreamOutcome(o);
    const absl::Status& s = v.status;
    EXPECT_EQ(v.outcome, Outcome::kUnknown) << status;
    EXPECT_EQ(s.code(), StatusCode::kUnknown) << status << " " << s;
    EXPECT_EQ(errors::GetErrorInfo(s)->metadata().at("outcome"), "unknown")
        << status;
    o.earlier_attempt_maybe_sent = false;
    EXPECT_NE(MapUpstreamOutcome(o).outcome, Outcome::kUnknown) << status;
  }
}

TEST(ErrorMappingTest, UnknownPostOutcomeSaysSo) {
  UpstreamOutcome o;
  o.endpoint = "POST /payment";
  o.mutating = true;
  o.transport_status = absl::DeadlineExceededError("timed out");
  o.delivery = Delivery::kUnknown;
  const absl::Status status = MapUpstreamOutcome(o).status;
  EXPECT_NE(status.message().find("outcome unknown"), absl::string_view::npos)
      << status;
}

TEST(ErrorMappingTest, EgressDeniedIsPermissionDeniedNotSent) {
  for (const bool mutating : {false, true}) {
    UpstreamOutcome o;
    o.endpoint = mutating ? "POST /payment" : "GET /order/{order_id}";
    o.mutating = mutating;
    o.transport_status = absl::PermissionDeniedError(
        "POST /payment: egress denied: 127.0.0.2 is a loopback address");
    o.delivery = Delivery::kNotSent;
    o.failure = http::FailureKind::kEgressDenied;
    o.egress_reason = "loopback";
    const absl::Status status = MapUpstreamOutcome(o).status;
    EXPECT_EQ(status.code(), StatusCode::kPermissionDenied) << status;
    EXPECT_NE(status.message().find("127.0.0.2 is a loopback address"),
              absl::string_view::npos)
        << status;
    const auto info = errors::GetErrorInfo(status);
    ASSERT_TRUE(info.has_value());
    EXPECT_EQ(info->reason(), "EGRESS_DENIED");
    EXPECT_EQ(info->domain(), "gateway.clink");
    EXPECT_EQ(info->metadata().at("outcome"), "not_sent");
    EXPECT_EQ(info->metadata().at("egress_reason"), "loopback");
    EXPECT_EQ(MapUpstreamOutcome(o).outcome, Outcome::kNotSent);
  }
}

TEST(ErrorMappingTest, EgressDeniedAfterAPossiblySentWriteIsUnknown) {
  UpstreamOutcome o;
  o.endpoint = "POST /payment";
  o.mutating = true;
  o.transport_status = absl::PermissionDeniedError("egress denied");
  o.delivery = Delivery::kUnknown;  // An earlier attempt may have left.
  o.failure = http::FailureKind::kEgressDenied;
  o.egress_reason = "private";
  const absl::Status status = MapUpstreamOutcome(o).status;
  EXPECT_EQ(status.code(), StatusCode::kUnknown) << status;
  const auto info = errors::GetErrorInfo(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "EGRESS_DENIED");
  EXPECT_EQ(info->metadata().at("outcome"), "unknown");
  EXPECT_EQ(info->metadata().at("egress_reason"), "private");
}

TEST(ErrorMappingTest, Utf8PrefixNeverSplitsACharacter) {
  EXPECT_EQ(Utf8Prefix("abc", 10), "abc");
  EXPECT_EQ(Utf8Prefix("abc", 2), "ab");
  // "订单" is 6 bytes: cutting at 4 keeps only the first character.
  EXPECT_EQ(Utf8Prefix("\xe8\xae\xa2\xe5\x8d\x95", 4), "\xe8\xae\xa2");
  EXPECT_EQ(Utf8Prefix("\xe8\xae\xa2", 2), "");
}

TEST(ErrorMappingTest, RetryAfterSecondsAndHttpDate) {
  const absl::Time now = absl::FromUnixSeconds(1700000000);
  EXPECT_EQ(ParseRetryAfter("7", now), absl::Seconds(7));
  EXPECT_EQ(ParseRetryAfter("", now), absl::Seconds(1));
  EXPECT_EQ(ParseRetryAfter("soon", now), absl::Seconds(1));
  // 1700000000 is Tue, 14 Nov 2023 22:13:20 GMT.
  EXPECT_EQ(ParseRetryAfter("Tue, 14 Nov 2023 22:13:50 GMT", now),
            absl::Seconds(30));
  EXPECT_EQ(ParseRetryAfter("Tue, 14 Nov 2023 22:00:00 GMT", now),
            absl::ZeroDuration());
}

TEST(ErrorMappingTest, RateLimitCarriesRetryAfterAsRetryInfo) {
  UpstreamOutcome o;
  o.endpoint = "GET /order";
  o.http_status = 429;
  o.body_readable = false;
  o.delivery = Delivery::kReceived;
  o.retry_after = "3";
  const auto retry = errors::GetRetryInfo(MapUpstreamOutcome(o).status);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->retry_delay().seconds(), 3);
}

TEST(ErrorMappingTest, AuthFailuresAreClassifiedFromTheSameCodeLists) {
  EXPECT_EQ(AuthFailureOf(401, false, 0), AuthFailure::kApiKey);
  EXPECT_EQ(AuthFailureOf(403, false, 0), AuthFailure::kApiKey);
  EXPECT_EQ(AuthFailureOf(200, true, 80102222), AuthFailure::kApiKey);
  EXPECT_EQ(AuthFailureOf(200, true, 80102212), AuthFailure::kTimestamp);
  // The envelope's timestamp code says more than the HTTP 401 around it.
  EXPECT_EQ(AuthFailureOf(401, true, 80102203), AuthFailure::kTimestamp);
  EXPECT_EQ(AuthFailureOf(401, true, 400), AuthFailure::kApiKey);
  EXPECT_EQ(AuthFailureOf(200, false, 80102203), AuthFailure::kNone);
  EXPECT_EQ(AuthFailureOf(404, true, 404), AuthFailure::kNone);
  EXPECT_EQ(AuthFailureOf(500, false, 0), AuthFailure::kNone);
  EXPECT_EQ(AuthFailureName(AuthFailure::kApiKey), "key");
  EXPECT_EQ(AuthFailureName(AuthFailure::kTimestamp), "timestamp");
  // Every code the classifier names maps to INTERNAL / rejected.
  for (const int64_t code :
       {401, 403, 80102221, 80102222, 80102223, 80102203, 80102212, 80102213}) {
    ASSERT_NE(AuthFailureOfCode(code), AuthFailure::kNone) << code;
    UpstreamOutcome o;
    o.endpoint = "GET /order";
    o.delivery = Delivery::kReceived;
    o.http_status = 200;
    o.has_envelope_code = true;
    o.envelope_code = code;
    const absl::Status status = MapUpstreamOutcome(o).status;
    EXPECT_EQ(status.code(), StatusCode::kInternal) << code;
    EXPECT_EQ(MapUpstreamOutcome(o).outcome, Outcome::kRejected) << code;
  }
}

}  // namespace
}  // namespace clink_gateway::clink
