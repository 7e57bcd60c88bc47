#include "adapters/clink/clink_client.h"

#include <stdlib.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "adapters/clink/validation.h"
#include "adapters/credentials/testing/secret_volume.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "clink/gateway/v1/checkout.grpc.pb.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "common/errors/error_details.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;

// Records each request and answers inline: with the front of `script` while
// it lasts, then with `next`. With `hold`, keeps the callbacks instead (see
// AnswerHeld).
class ScriptedTransport final : public http::HttpTransport {
 public:
  void Send(http::HttpRequest request, http::SendOptions options,
            DoneCallback done) override {
    if (options.signer != nullptr) {
      EXPECT_TRUE(options.signer->Sign(request).ok());
      for (const auto& [name, value] : request.headers) {
        if (name == "X-API-KEY") keys_seen.push_back(value);
      }
      if (accepted_keys.has_value() &&
          accepted_keys->count(keys_seen.back()) == 0) {
        requests.push_back(std::move(request));
        std::move(done)(Refused());
        return;
      }
    }
    requests.push_back(std::move(request));
    options_seen.push_back(std::move(options));
    if (hold) {
      held.push_back(std::move(done));
      return;
    }
    if (!script.empty()) {
      http::HttpResult result = std::move(script.front());
      script.pop_front();
      std::move(done)(std::move(result));
      return;
    }
    std::move(done)(next);
  }
  void AnswerHeld() {
    std::vector<DoneCallback> callbacks;
    callbacks.swap(held);
    for (auto& done : callbacks) std::move(done)(next);
  }
  static http::HttpResult Refused() {
    http::HttpResult r;
    r.delivery = http::Delivery::kReceived;
    r.response.status_code = 401;
    r.response.body = "Unauthorized: invalid API key";
    return r;
  }

  std::vector<http::HttpRequest> requests;
  std::vector<http::SendOptions> options_seen;
  // With a per-call signer: the X-API-KEY of each request, and (when set) the
  // keys "Clink" accepts; others get a 401.
  std::vector<std::string> keys_seen;
  std::optional<std::set<std::string>> accepted_keys;
  std::deque<http::HttpResult> script;
  http::HttpResult next;
  bool hold = false;
  std::vector<DoneCallback> held;
};

http::HttpResult Response(int status, std::string body) {
  http::HttpResult r;
  r.delivery = http::Delivery::kReceived;
  r.response.status_code = status;
  r.response.body = std::move(body);
  return r;
}

http::HttpResult TransportFailure(http::FailureKind kind,
                                  http::Delivery delivery) {
  http::HttpResult r;
  r.status = absl::UnavailableError("transport failure");
  r.failure = kind;
  r.delivery = delivery;
  return r;
}

// Records what the client reports (the scripted transport answers inline, so
// everything happens on the test's thread).
class RecordingObserver final : public UpstreamObserver {
 public:
  void OnCallStarted(const RestMethod& method) override { ++started; }
  void OnCallFinished(const RestMethod& method) override { ++finished; }
  void OnAttempt(const AttemptInfo& attempt) override {
    attempts.push_back(attempt);
  }
  void OnRetry(const RestMethod& method) override { ++retries; }
  void OnRetryDenied(const RestMethod& method, RetryDenial reason) override {
    denials.push_back(reason);
  }
  void OnRejected(const RestMethod& method, RejectReason reason) override {
    rejected.push_back(reason);
  }
  void OnUnknownFields(const RestMethod& method, int count) override {
    unknown_fields += count;
  }
  void OnAuthFailure(const RestMethod& method, AuthFailure reason) override {
    auth_failures.push_back(reason);
  }
  void OnKeyRefused(absl::string_view merchant,
                    absl::string_view key_fingerprint) override {
    refused_keys.push_back(absl::StrCat(merchant, "/", key_fingerprint));
  }
  void OnKeyFallback(absl::string_view merchant, bool recovered) override {
    fallbacks.push_back(recovered);
  }

  int started = 0;
  int finished = 0;
  int retries = 0;
  int unknown_fields = 0;
  std::vector<RetryDenial> denials;
  std::vector<AttemptInfo> attempts;
  std::vector<RejectReason> rejected;
  std::vector<AuthFailure> auth_failures;
  std::vector<std::string> refused_keys;
  std::vector<bool> fallbacks;
};

constexpr char kOrderJson[] =
    R"({"code":200,"msg":"success","data":{"orderId":"ord_1","status":1,)"
    R"("amount":"19.99","currency":"USD"}})";

class ClinkClientTest : public testing::Test {
 protected:
  void SetUp() override {
    auto codec = RestCodec::CreateForServices(GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    UseOptions({});
  }

  // Tells `seen_` what the client does unless `options` names an observer.
  void UseOptions(ClinkClientOptions options) {
    if (options.observer == nullptr) options.observer = &seen_;
    client_ =
        std::make_unique<ClinkClient>(*codec_, transport_, clock_, options);
  }

  static v1::GetOrderRequest GetOrder() {
    v1::GetOrderRequest r;
    r.set_order_id("ord_1");
    return r;
  }

  static v1::CreateRefundRequest Refund() {
    v1::CreateRefundRequest r;
    r.set_order_id("ord_1");
    r.set_refund_merchant_order_id("rf_1");
    r.set_refund_amount("5.00");
    return r;
  }

  CallResult Call(const google::protobuf::Message& request,
                  google::protobuf::Message* response,
                  CallOptions options = {}) {
    const RestMethod* method =
        codec_->FindByRequestType(*request.GetDescriptor());
    EXPECT_NE(method, nullptr);
    CallResult out;
    bool called = false;
    client_->Call(*method, request, options, response, [&](CallResult r) {
      out = std::move(r);
      called = true;
    });
    EXPECT_TRUE(called);  // The scripted transport answers inline.
    return out;
  }

  absl::Status Validate(const google::protobuf::Message& request) {
    const RestMethod* method =
        codec_->FindByRequestType(*request.GetDescriptor());
    EXPECT_NE(method, nullptr);
    return ValidateRequest(*codec_, *method, request);
  }

  static v1::CreatePaymentRequest Payment() {
    v1::CreatePaymentRequest r;
    r.set_customer_id("cus_1");
    r.set_payment_instrument_id("pi_1");
    r.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
    r.set_return_url("https://shop.example/return");
    r.set_amount("19.99");
    r.set_currency("USD");
    return r;
  }

  FakeClock clock_;
  ScriptedTransport transport_;
  std::unique_ptr<RestCodec> codec_;
  RecordingObserver seen_;  // Outlives client_.
  std::unique_ptr<ClinkClient> client_;
};

// The rules the gateway checks once per call, in RpcForwarder, before any
// layer (this client included) acts on the request (ClinkApi::Call).
TEST_F(ClinkClientTest, InvalidRequestIsNamedByValidation) {
  v1::CreatePaymentRequest request = Payment();
  request.set_amount("1e3");
  request.clear_customer_id();
  const absl::Status status = Validate(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  const auto bad = errors::GetBadRequest(status);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->field_violations(0).field(), "amount");
  // Like every error, it carries an ErrorInfo; its outcome is not_sent.
  const auto info = errors::GetErrorInfo(status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "INVALID_REQUEST");
  EXPECT_EQ(info->domain(), errors::kGatewayDomain);
  EXPECT_EQ(info->metadata().at("outcome"), "not_sent");
}

TEST_F(ClinkClientTest, CrossFieldRuleIsNamedByValidation) {
  v1::CreatePaymentRequest request = Payment();
  request.clear_customer_id();
  const absl::Status status = Validate(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("customer_id"), absl::string_view::npos);
}

TEST_F(ClinkClientTest, AmountNeedsItsCurrencyEvenWithAPrice) {
  v1::CreatePaymentRequest request = Payment();
  request.set_price_id("price_1");
  request.set_product_id("prd_1");
  request.clear_currency();
  const absl::Status status = Validate(request);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(errors::GetBadRequest(status)->field_violations(0).field(),
            "currency");
}

TEST_F(ClinkClientTest, SuccessWithoutPayloadIsNotOk) {
  transport_.next = Response(200, R"({"code":200,"msg":"success"})");
  v1::CreatePaymentResponse response;
  const CallResult result = Call(Payment(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("outcome"),
            "committed");
}

TEST_F(ClinkClientTest, UnreadableAmountInASuccessIsNotOk) {
  // Clink took the payment but its amount cannot be read exactly: never hand
  // the caller a blank amount as if it were Clink's answer.
  transport_.next =
      Response(200, R"({"code":200,"msg":"success","data":{"orderId":"ord_1",)"
                    R"("status":1,"amount":{},"currency":"USD"}})");
  v1::CreatePaymentResponse response;
  const CallResult result = Call(Payment(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("outcome"),
            "committed");
}

TEST_F(ClinkClientTest, RefundAnsweredWithDeeplyNestedMetadataIsCommitted) {
  // Clink took the refund (code 200) but part of its answer is nested too
  // deep to decode: an error, never a crash, and the refund happened.
  transport_.next = Response(
      200,
      absl::StrCat(R"({"code":200,"msg":"success","data":{"refundId":)"
                   R"("rfd_1","metadata":{"deep":)",
                   std::string(200000, '['), std::string(200000, ']'), "}}}"));
  v1::CreateRefundResponse response;
  const CallResult result = Call(Refund(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(errors::GetErrorInfo(result.status)->reason(),
            "UPSTREAM_INCOMPLETE_RESPONSE");
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("outcome"),
            "committed");
  EXPECT_EQ(transport_.requests.size(), 1u);
}

TEST_F(ClinkClientTest, TwoHundredWithoutEnvelopeOnAPaymentIsUnknown) {
  transport_.next =
      Response(200, R"({"error":"gateway timeout","status":504})");
  v1::CreatePaymentResponse response;
  const CallResult result = Call(Payment(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("outcome"),
            "unknown");
}

TEST_F(ClinkClientTest, SendsEncodedRequestWithDeadlineAndDecodesTheAnswer) {
  transport_.next = Response(
      200,
      R"({"code":200,"msg":"success","data":{"orderId":"ord_1","sessionId":"sess_1",)"
      R"("status":1,"amount":19.99,"currency":"USD","brandNew":true}})");
  v1::CreatePaymentResponse response;
  CallOptions options;
  options.deadline = absl::FromUnixSeconds(2000000000);
  options.request_id = "req-1";
  const CallResult result = Call(Payment(), &response, options);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ASSERT_EQ(transport_.requests.size(), 1u);
  EXPECT_EQ(transport_.requests[0].method, http::Method::kPost);
  EXPECT_EQ(transport_.requests[0].path_and_query, "/payment");
  EXPECT_NE(transport_.requests[0].body.find(R"("amount":19.99)"),
            std::string::npos);
  EXPECT_EQ(transport_.options_seen[0].deadline, options.deadline);
  EXPECT_EQ(transport_.options_seen[0].request_id, "req-1");
  EXPECT_EQ(response.order_id(), "ord_1");
  EXPECT_EQ(response.amount(), "19.99");
  EXPECT_EQ(result.http_status, 200);
  EXPECT_EQ(result.endpoint, "POST /payment");
  EXPECT_EQ(result.unknown_fields, 1);
  EXPECT_EQ(seen_.unknown_fields, 1);
}

TEST_F(ClinkClientTest,
       ResetAfterSendingAPaymentIsUnknownAndClearsTheResponse) {
  transport_.next.status = absl::UnavailableError("connection reset");
  transport_.next.delivery = http::Delivery::kUnknown;
  v1::CreatePaymentResponse response;
  response.set_order_id("stale");
  const CallResult result = Call(Payment(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("outcome"),
            "unknown");
  EXPECT_EQ(response.order_id(), "");
}

TEST_F(ClinkClientTest, BusinessErrorInsideHttp200IsAnError) {
  transport_.next = Response(200, R"({"code":404,"msg":"order not found"})");
  v1::GetOrderRequest request;
  request.set_order_id("ord_missing");
  v1::GetOrderResponse response;
  const CallResult result = Call(request, &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(errors::GetErrorInfo(result.status)->reason(), "NOT_FOUND");
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("clink_code"),
            "404");
  EXPECT_EQ(result.outcome, errors::Outcome::kRejected);
  EXPECT_EQ(transport_.requests[0].path_and_query, "/order/ord_missing");
}

// What the response message holds when each attempt is reported (before the
// client clears it on an error), and the unknown fields counted.
class ResponseAtAttemptObserver final : public UpstreamObserver {
 public:
  explicit ResponseAtAttemptObserver(const google::protobuf::Message& response)
      : response_(response) {}
  void OnAttempt(const AttemptInfo& attempt) override {
    at_attempt.push_back(response_.SerializeAsString());
  }
  void OnUnknownFields(const RestMethod& method, int count) override {
    unknown_fields += count;
  }

  std::vector<std::string> at_attempt;
  int unknown_fields = 0;

 private:
  const google::protobuf::Message& response_;
};

// The status is known before the payload is read: an error answer's payload
// (here a success envelope inside an HTTP 400, with an unreadable amount and
// a field the response lacks) is never decoded into the response, nor counted
// as API drift; the error is the HTTP status's.
TEST_F(ClinkClientTest, ErrorAnswerPayloadIsNeverDecodedIntoTheResponse) {
  v1::CreatePaymentResponse response;
  ResponseAtAttemptObserver observer(response);
  ClinkClientOptions options;
  options.observer = &observer;
  UseOptions(options);
  transport_.next = Response(
      400, R"({"code":200,"msg":"success","data":{"orderId":"ord_leak",)"
           R"("amount":{},"brandNew":true}})");
  const CallResult result = Call(Payment(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument)
      << result.status;
  EXPECT_EQ(errors::GetErrorInfo(result.status)->reason(), "HTTP_400");
  EXPECT_EQ(result.outcome, errors::Outcome::kRejected);
  EXPECT_EQ(result.http_status, 400);
  ASSERT_EQ(observer.at_attempt.size(), 1u);
  EXPECT_EQ(observer.at_attempt[0], "");  // Nothing was decoded into it.
  EXPECT_EQ(response.ByteSizeLong(), 0u);
  EXPECT_EQ(result.unknown_fields, 0);
  EXPECT_EQ(observer.unknown_fields, 0);
}

// An error answer's envelope still names Clink's code and message.
TEST_F(ClinkClientTest, ErrorAnswerEnvelopeCodeStillMapsTheError) {
  transport_.next =
      Response(404, R"({"code":404,"msg":"order not found","data":{"x":1}})");
  v1::GetOrderResponse response;
  const CallResult result = Call(GetOrder(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("clink_code"),
            "404");
  EXPECT_NE(result.status.message().find("order not found"),
            absl::string_view::npos);
  EXPECT_EQ(response.ByteSizeLong(), 0u);
  EXPECT_EQ(result.unknown_fields, 0);
}

// Hostile error answers: a payload nested far deeper than any stack allows
// and a message that unescapes to ill-formed UTF-8. The envelope is read
// without recursion and the message never reaches the status as is.
TEST_F(ClinkClientTest, HostileErrorAnswerIsReadSafely) {
  transport_.next =
      Response(409, absl::StrCat(R"({"code":"409","msg":"\udd00","data":)",
                                 std::string(200000, '['),
                                 std::string(200000, ']'), "}"));
  v1::GetOrderResponse response;
  const CallResult result = Call(GetOrder(), &response);
  EXPECT_FALSE(result.status.ok());
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("clink_code"),
            "409");
  EXPECT_NE(result.status.message().find("(not UTF-8)"),
            absl::string_view::npos)
      << result.status;
  EXPECT_EQ(response.ByteSizeLong(), 0u);
}

TEST_F(ClinkClientTest, LongRetryAfterIsPassedOnNotWaitedOut) {
  transport_.next = Response(429, "slow down");
  transport_.next.response.headers.push_back({"retry-after", "40"});
  v1::GetOrderResponse response;
  const CallResult result = Call(GetOrder(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(errors::GetRetryInfo(result.status)->retry_delay().seconds(), 40);
  EXPECT_EQ(transport_.requests.size(), 1u);
  EXPECT_EQ(result.attempts, 1);
}

TEST_F(ClinkClientTest, ReadIsRetriedThroughABurstOf5xxWithBackoff) {
  transport_.script.push_back(Response(503, "busy"));
  transport_.script.push_back(Response(502, "bad gateway"));
  transport_.next = Response(200, kOrderJson);
  v1::GetOrderResponse response;
  const CallResult result = Call(GetOrder(), &response);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(response.order().order_id(), "ord_1");
  EXPECT_EQ(result.attempts, 3);
  ASSERT_EQ(transport_.options_seen.size(), 3u);
  // Full jitter under the exponential ceiling (25 ms, then 50 ms).
  const absl::Time t0 = clock_.Now();
  EXPECT_EQ(transport_.options_seen[0].not_before, t0);
  EXPECT_LT(transport_.options_seen[1].not_before, t0 + absl::Milliseconds(25));
  EXPECT_LT(transport_.options_seen[2].not_before, t0 + absl::Milliseconds(50));
  EXPECT_EQ(seen_.retries, 2);
}

TEST_F(ClinkClientTest, RetryAfterIsHonoured) {
  http::HttpResult limited = Response(429, "slow down");
  limited.response.headers.push_back({"retry-after", "2"});
  transport_.script.push_back(limited);
  transport_.next = Response(200, kOrderJson);
  v1::GetOrderResponse response;
  const CallResult result = Call(GetOrder(), &response);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ASSERT_EQ(transport_.options_seen.size(), 2u);
  EXPECT_GE(transport_.options_seen[1].not_before,
            clock_.Now() + absl::Seconds(2));
}

TEST_F(ClinkClientTest, PaymentIsNeverRetriedAfterItMayHaveLeft) {
  for (http::HttpResult failure :
       {Response(503, "busy"), Response(429, "slow down"),
        TransportFailure(http::FailureKind::kConnectionLost,
                         http::Delivery::kUnknown)}) {
    transport_.requests.clear();
    transport_.next = failure;
    v1::CreatePaymentResponse response;
    const CallResult result = Call(Payment(), &response);
    EXPECT_FALSE(result.status.ok());
    EXPECT_EQ(transport_.requests.size(), 1u) << result.status;
  }
}

// PUT (UpdatePrice) and a multipart POST (UploadProductImage) are writes like
// any POST: never sent a second time once they may have left, and UNKNOWN
// with outcome "unknown", while a GET of the same resource is retried.
TEST_F(ClinkClientTest,
       PutAndMultipartWritesAreNeverRetriedAfterTheyMayHaveLeft) {
  v1::UpdatePriceRequest update;
  update.set_price_id("price_1");
  update.set_unit_amount("9.99");
  update.set_currency("USD");
  v1::UploadProductImageRequest upload;
  upload.set_file(std::string("\x89PNG\r\n\x1a\n", 8));
  upload.set_file_name("logo.png");
  v1::UpdatePriceResponse update_response;
  v1::UploadProductImageResponse upload_response;
  const std::vector<
      std::pair<const google::protobuf::Message*, google::protobuf::Message*>>
      writes = {{&update, &update_response}, {&upload, &upload_response}};
  for (const auto& [write, response] : writes) {
    for (http::HttpResult failure :
         {Response(503, "busy"),
          TransportFailure(http::FailureKind::kConnectionLost,
                           http::Delivery::kUnknown)}) {
      transport_.requests.clear();
      transport_.next = failure;
      const CallResult result = Call(*write, response);
      EXPECT_EQ(result.status.code(), absl::StatusCode::kUnknown)
          << result.status;
      EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("outcome"),
                "unknown");
      ASSERT_EQ(transport_.requests.size(), 1u) << result.status;
      EXPECT_FALSE(transport_.requests[0].idempotent);
    }
  }
  EXPECT_EQ(transport_.requests[0].method, http::Method::kPost);

  transport_.requests.clear();
  transport_.script.push_back(Response(503, "busy"));
  transport_.next = Response(
      200, R"({"code":200,"msg":"success","data":{"priceId":"price_1"}})");
  v1::GetPriceRequest get;
  get.set_price_id("price_1");
  v1::GetPriceResponse got;
  EXPECT_TRUE(Call(get, &got).status.ok());
  EXPECT_EQ(transport_.requests.size(), 2u);
}

TEST_F(ClinkClientTest, PaymentIsRetriedWhenItProvablyNeverLeft) {
  transport_.script.push_back(
      TransportFailure(http::FailureKind::kConnect, http::Delivery::kNotSent));
  transport_.next = Response(
      200, R"({"code":200,"msg":"success","data":{"orderId":"ord_1"}})");
  v1::CreatePaymentResponse response;
  const CallResult result = Call(Payment(), &response);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(transport_.requests.size(), 2u);
}

TEST_F(ClinkClientTest, RefundIsRetriedBecauseClinkDeduplicatesIt) {
  transport_.script.push_back(TransportFailure(
      http::FailureKind::kConnectionLost, http::Delivery::kUnknown));
  transport_.script.push_back(Response(503, "busy"));
  transport_.next = Response(
      200, R"({"code":200,"msg":"success","data":{"refundId":"rf_clink_1",)"
           R"("orderId":"ord_1","refundAmount":"5.00"}})");
  v1::CreateRefundResponse response;
  const CallResult result = Call(Refund(), &response);
  ASSERT_TRUE(result.status.ok()) << result.status;
  ASSERT_EQ(transport_.requests.size(), 3u);
  // The same refund reference every time.
  EXPECT_EQ(transport_.requests[0].body, transport_.requests[2].body);
}

TEST_F(ClinkClientTest, ARetryThatNeverLeftDoesNotHideAnEarlierUnknown) {
  // The first attempt may have reached Clink; the later ones fail to connect.
  // The caller must not be told "nothing was sent".
  transport_.script.push_back(TransportFailure(
      http::FailureKind::kConnectionLost, http::Delivery::kUnknown));
  transport_.next =
      TransportFailure(http::FailureKind::kConnect, http::Delivery::kNotSent);
  v1::CreateRefundResponse response;
  const CallResult result = Call(Refund(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnknown) << result.status;
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("outcome"),
            "unknown");
  EXPECT_EQ(transport_.requests.size(), 4u);
}

TEST_F(ClinkClientTest, RetriesStopWhenTheDeadlineLeavesNoRoomForAnAttempt) {
  ClinkClientOptions options;
  options.retry.min_attempt_time = absl::Milliseconds(20);
  UseOptions(options);
  transport_.next = Response(503, "busy");
  CallOptions call_options;
  call_options.deadline = clock_.Now() + absl::Milliseconds(15);
  v1::GetOrderResponse response;
  const CallResult result = Call(GetOrder(), &response, call_options);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(transport_.requests.size(), 1u);
}

TEST_F(ClinkClientTest, RetriesStopAtMaxAttempts) {
  transport_.next = Response(503, "busy");
  v1::GetOrderResponse response;
  const CallResult result = Call(GetOrder(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(transport_.requests.size(), 4u);
  EXPECT_EQ(result.attempts, 4);
}

TEST_F(ClinkClientTest, RetriesStopWhenTheBudgetIsSpent) {
  ClinkClientOptions options;
  options.retry.budget_ratio = 0;
  options.retry.budget_min_per_second = 1;  // 10 retries per 10 s window
  UseOptions(options);
  transport_.next = Response(503, "busy");
  for (int i = 0; i < 10; ++i) {
    v1::GetOrderResponse response;
    Call(GetOrder(), &response);
  }
  // 10 calls with 3 retries allowed each would be 40 requests; the budget
  // allows 10 retries in all.
  EXPECT_EQ(transport_.requests.size(), 20u);
  EXPECT_EQ(seen_.retries, 10);
  EXPECT_GT(std::count(seen_.denials.begin(), seen_.denials.end(),
                       RetryDenial::kBudget),
            0);
}

TEST_F(ClinkClientTest, BeyondTheInFlightCapCallsFailFastAndOthersFinish) {
  ClinkClientOptions options;
  options.max_in_flight = 2;
  UseOptions(options);
  transport_.hold = true;
  transport_.next = Response(200, kOrderJson);
  const RestMethod* method =
      codec_->FindByRequestType(*v1::GetOrderRequest::descriptor());
  std::vector<CallResult> results(3);
  std::vector<bool> called(3, false);
  v1::GetOrderResponse responses[3];
  for (int i = 0; i < 3; ++i) {
    client_->Call(*method, GetOrder(), {}, &responses[i], [&, i](CallResult r) {
      results[i] = std::move(r);
      called[i] = true;
    });
  }
  // The third is refused inline, before anything is sent.
  EXPECT_FALSE(called[0]);
  EXPECT_FALSE(called[1]);
  ASSERT_TRUE(called[2]);
  EXPECT_EQ(results[2].status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(errors::GetErrorInfo(results[2].status)->reason(),
            "GATEWAY_OVERLOADED");
  EXPECT_EQ(errors::GetErrorInfo(results[2].status)->metadata().at("outcome"),
            "not_sent");
  EXPECT_TRUE(errors::GetRetryInfo(results[2].status).has_value());
  EXPECT_EQ(transport_.requests.size(), 2u);
  EXPECT_EQ(seen_.started - seen_.finished, 2);  // In flight.
  // The accepted calls still finish, and capacity comes back.
  transport_.AnswerHeld();
  EXPECT_TRUE(results[0].status.ok()) << results[0].status;
  EXPECT_TRUE(results[1].status.ok()) << results[1].status;
  EXPECT_EQ(seen_.started, seen_.finished);
  transport_.hold = false;
  v1::GetOrderResponse response;
  EXPECT_TRUE(Call(GetOrder(), &response).status.ok());
  EXPECT_EQ(seen_.rejected,
            std::vector<RejectReason>{RejectReason::kOverloaded});
}

TEST_F(ClinkClientTest, RateLimitSpacesRequestsOrRefusesBeyondTheWait) {
  ClinkClientOptions options;
  options.rate_limit_per_second = 10;
  options.rate_limit_burst = 1;
  options.max_rate_limit_wait = absl::Milliseconds(150);
  UseOptions(options);
  transport_.next = Response(200, kOrderJson);
  const absl::Time t0 = clock_.Now();
  for (int i = 0; i < 2; ++i) {
    v1::GetOrderResponse response;
    EXPECT_TRUE(Call(GetOrder(), &response).status.ok());
  }
  ASSERT_EQ(transport_.options_seen.size(), 2u);
  EXPECT_EQ(transport_.options_seen[0].not_before, t0);
  EXPECT_EQ(transport_.options_seen[1].not_before,
            t0 + absl::Milliseconds(100));
  // The next token is 200 ms away: more than the 150 ms wait allowed.
  v1::GetOrderResponse response;
  const CallResult refused = Call(GetOrder(), &response);
  EXPECT_EQ(refused.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(errors::GetErrorInfo(refused.status)->reason(),
            "UPSTREAM_RATE_LIMITED");
  EXPECT_EQ(transport_.requests.size(), 2u);
}

TEST_F(ClinkClientTest, ObserverSeesEachAttemptTheRetryAndOneCall) {
  RecordingObserver observer;
  ClinkClientOptions options;
  options.observer = &observer;
  UseOptions(options);
  http::HttpResult busy = Response(503, "busy");
  busy.connections_opened = 1;  // The first attempt opened the connection.
  busy.response_bytes = 70;
  transport_.script.push_back(busy);
  transport_.next = Response(
      200,
      R"({"code":200,"msg":"success","data":{"orderId":"ord_1","status":1,)"
      R"("amount":"19.99","currency":"USD","brandNew":1}})");
  transport_.next.response_bytes = 190;
  v1::GetOrderResponse response;
  const CallResult result = Call(GetOrder(), &response);
  ASSERT_TRUE(result.status.ok()) << result.status;

  EXPECT_EQ(observer.started, 1);
  EXPECT_EQ(observer.finished, 1);
  EXPECT_EQ(observer.retries, 1);
  EXPECT_GT(result.unknown_fields, 0);
  EXPECT_EQ(observer.unknown_fields, result.unknown_fields);
  ASSERT_EQ(observer.attempts.size(), 2u);
  const AttemptInfo& first = observer.attempts[0];
  EXPECT_EQ(first.method->path_template, "/order/{order_id}");
  EXPECT_EQ(first.http_status, 503);
  EXPECT_TRUE(first.sent);
  EXPECT_EQ(first.connections_opened, 1);
  EXPECT_EQ(first.response_bytes, 70);
  EXPECT_FALSE(first.throttled);
  const AttemptInfo& second = observer.attempts[1];
  EXPECT_EQ(second.http_status, 200);
  EXPECT_EQ(second.failure, http::FailureKind::kNone);
  EXPECT_EQ(second.connections_opened, 0);  // Reused.
  EXPECT_EQ(second.response_bytes, 190);
  // The fake transport answers before the backoff's not_before: no negative
  // durations.
  EXPECT_EQ(second.duration, absl::ZeroDuration());
  EXPECT_TRUE(observer.rejected.empty());
  EXPECT_TRUE(observer.auth_failures.empty());
}

TEST_F(ClinkClientTest,
       ObserverSeesTransportFailuresAuthFailuresAndThrottling) {
  RecordingObserver observer;
  ClinkClientOptions options;
  options.observer = &observer;
  options.retry.max_attempts = 1;
  UseOptions(options);
  v1::GetOrderResponse response;
  transport_.next =
      TransportFailure(http::FailureKind::kConnect, http::Delivery::kNotSent);
  Call(GetOrder(), &response);
  transport_.next = Response(401, R"({"code":401,"msg":"bad key"})");
  Call(GetOrder(), &response);
  transport_.next = Response(200, R"({"code":80102212,"msg":"expired"})");
  Call(GetOrder(), &response);
  transport_.next = Response(429, "slow down");
  Call(GetOrder(), &response);

  ASSERT_EQ(observer.attempts.size(), 4u);
  EXPECT_EQ(observer.attempts[0].http_status, 0);
  EXPECT_EQ(observer.attempts[0].failure, http::FailureKind::kConnect);
  EXPECT_FALSE(observer.attempts[0].sent);
  EXPECT_EQ(observer.attempts[1].http_status, 401);
  EXPECT_TRUE(observer.attempts[3].throttled);
  EXPECT_EQ(observer.auth_failures,
            (std::vector<AuthFailure>{AuthFailure::kApiKey,
                                      AuthFailure::kTimestamp}));
  EXPECT_EQ(observer.started, 4);
  EXPECT_EQ(observer.finished, 4);
}

TEST_F(ClinkClientTest, ObserverSeesRefusalsAndDeniedRetries) {
  RecordingObserver observer;
  ClinkClientOptions options;
  options.observer = &observer;
  options.max_in_flight = 1;
  options.retry.budget_ratio = 0;
  options.retry.budget_min_per_second = 1;  // 1 retry per 1 s window
  options.retry.budget_window = absl::Seconds(1);
  UseOptions(options);
  transport_.hold = true;
  transport_.next = Response(503, "busy");
  const RestMethod* method =
      codec_->FindByRequestType(*v1::GetOrderRequest::descriptor());
  v1::GetOrderResponse held_response;
  bool held_done = false;
  client_->Call(*method, GetOrder(), {}, &held_response,
                [&](CallResult) { held_done = true; });
  v1::GetOrderResponse response;
  EXPECT_EQ(Call(GetOrder(), &response).status.code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(observer.rejected,
            std::vector<RejectReason>{RejectReason::kOverloaded});
  EXPECT_EQ(observer.started, 1);  // The refused call never started.
  // The held call: 503, one retry (the budget's only one), 503, denied.
  transport_.AnswerHeld();
  transport_.AnswerHeld();
  ASSERT_TRUE(held_done);
  EXPECT_EQ(observer.retries, 1);
  EXPECT_EQ(observer.denials, std::vector<RetryDenial>{RetryDenial::kBudget});
  EXPECT_EQ(observer.finished, 1);
  EXPECT_EQ(RejectReasonName(RejectReason::kOverloaded), "overloaded");
  EXPECT_EQ(RejectReasonName(RejectReason::kRateLimited), "rate_limited");
  EXPECT_EQ(RetryDenialName(RetryDenial::kBudget), "budget");

  // Attempts running out, and a Retry-After too long to wait out.
  observer.denials.clear();
  transport_.hold = false;
  options.retry.max_attempts = 1;
  UseOptions(options);
  EXPECT_FALSE(Call(GetOrder(), &response).status.ok());
  transport_.next = Response(429, "slow down");
  transport_.next.response.headers.push_back({"retry-after", "60"});
  options.retry.max_attempts = 4;
  UseOptions(options);
  EXPECT_FALSE(Call(GetOrder(), &response).status.ok());
  EXPECT_EQ(observer.denials,
            (std::vector<RetryDenial>{RetryDenial::kMaxAttempts,
                                      RetryDenial::kRetryAfter}));
}

namespace key_rotation {

constexpr char kNewKey[] = "sk_test_new_0123456789abcdef";
constexpr char kOldKey[] = "sk_test_old_0123456789abcdef";

// A client whose merchant "acme" has a signing and a previous key.
class KeyFallbackTest : public ClinkClientTest {
 protected:
  void SetUp() override {
    ClinkClientTest::SetUp();
    volume_ = std::make_unique<credentials::testing::SecretVolume>(
        credentials::testing::NewTempPath("keys"));
    volume_->Write({{"api-key", kNewKey}, {"api-key-previous", kOldKey}});
    ring_ = *credentials::KeyRing::Load("acme", volume_->dir(), clock_);
    ClinkClientOptions options;
    options.observer = &observer_;
    options.merchant = "acme";
    options.keys = ring_.get();
    options.retry.max_attempts = 1;  // Fallbacks are not retries.
    UseOptions(options);
    transport_.next = Response(200, kOrderJson);
  }

  static std::string Refused(const char* key) {
    return absl::StrCat("acme/", Secret(key).Fingerprint());
  }

  RecordingObserver observer_;
  std::unique_ptr<credentials::testing::SecretVolume> volume_;
  std::unique_ptr<credentials::KeyRing> ring_;
};

TEST_F(KeyFallbackTest, NewKeyRefusedTheSamePaymentGoesOnceWithThePreviousKey) {
  transport_.accepted_keys = std::set<std::string>{kOldKey};
  v1::CreatePaymentResponse response;
  transport_.next = Response(
      200, R"({"code":200,"msg":"ok","data":{"orderId":"ord_9","status":1}})");
  const CallResult result = Call(Payment(), &response);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(response.order_id(), "ord_9");
  EXPECT_EQ(transport_.keys_seen, (std::vector<std::string>{kNewKey, kOldKey}));
  ASSERT_EQ(transport_.requests.size(), 2u);
  EXPECT_EQ(transport_.requests[0].body, transport_.requests[1].body);
  EXPECT_EQ(result.attempts, 2);
  EXPECT_EQ(result.key_fingerprint, Secret(kOldKey).Fingerprint());
  EXPECT_EQ(observer_.refused_keys, std::vector<std::string>{Refused(kNewKey)});
  EXPECT_EQ(observer_.fallbacks, std::vector<bool>{true});
  EXPECT_EQ(observer_.retries, 0);

  // Later calls start with the key that worked, then try the new one again.
  v1::GetOrderResponse order;
  ASSERT_TRUE(Call(GetOrder(), &order).status.ok());
  EXPECT_EQ(transport_.keys_seen.back(), kOldKey);
  EXPECT_EQ(transport_.keys_seen.size(), 3u);
  clock_.Advance(absl::Seconds(61));
  ASSERT_TRUE(Call(GetOrder(), &order).status.ok());
  EXPECT_EQ(
      transport_.keys_seen,
      (std::vector<std::string>{kNewKey, kOldKey, kOldKey, kNewKey, kOldKey}));
}

TEST_F(KeyFallbackTest, OldKeyRevokedWhileInUseFallsBackToTheNewKey) {
  // The gateway is living on the previous key (an earlier fallback)...
  transport_.accepted_keys = std::set<std::string>{kOldKey};
  v1::GetOrderResponse order;
  ASSERT_TRUE(Call(GetOrder(), &order).status.ok());
  // ...when Clink activates the new key and revokes the old one.
  transport_.accepted_keys = std::set<std::string>{kNewKey};
  transport_.keys_seen.clear();
  const CallResult result = Call(GetOrder(), &order);
  ASSERT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(transport_.keys_seen, (std::vector<std::string>{kOldKey, kNewKey}));
  EXPECT_EQ(result.key_fingerprint, Secret(kNewKey).Fingerprint());
  EXPECT_EQ(observer_.fallbacks, (std::vector<bool>{true, true}));
  // The new key is preferred again at once.
  ASSERT_TRUE(Call(GetOrder(), &order).status.ok());
  EXPECT_EQ(transport_.keys_seen.back(), kNewKey);
  EXPECT_EQ(transport_.keys_seen.size(), 3u);
}

TEST_F(KeyFallbackTest, BothKeysRefusedFailsAfterExactlyTwoAttempts) {
  transport_.accepted_keys = std::set<std::string>{};
  v1::CreatePaymentResponse response;
  const CallResult result = Call(Payment(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal) << result.status;
  EXPECT_EQ(transport_.keys_seen, (std::vector<std::string>{kNewKey, kOldKey}));
  // The error names the last key refused, by fingerprint only.
  EXPECT_TRUE(
      absl::StrContains(result.status.message(), Secret(kOldKey).Fingerprint()))
      << result.status;
  EXPECT_FALSE(absl::StrContains(result.status.ToString(), kOldKey));
  EXPECT_FALSE(absl::StrContains(result.status.ToString(), kNewKey));
  EXPECT_EQ(observer_.refused_keys,
            (std::vector<std::string>{Refused(kNewKey), Refused(kOldKey)}));
  EXPECT_EQ(observer_.fallbacks, std::vector<bool>{false});
  // No preference was learnt: the next call starts with the new key.
  Call(Payment(), &response);
  EXPECT_EQ(transport_.keys_seen[2], kNewKey);
}

TEST_F(KeyFallbackTest, OtherFailuresNeverSwitchKeys) {
  v1::CreatePaymentResponse response;
  // 403: the key is valid but lacks a permission; the other key must not be
  // used to get around that.
  for (const char* status_and_body :
       {"500 oops", "403 Forbidden", "200 {\"code\":403,\"msg\":\"no\"}"}) {
    transport_.keys_seen.clear();
    const absl::string_view text(status_and_body);
    int status = 0;
    ASSERT_TRUE(absl::SimpleAtoi(text.substr(0, 3), &status));
    transport_.next = Response(status, std::string(text.substr(4)));
    Call(Payment(), &response);
    EXPECT_EQ(transport_.keys_seen, std::vector<std::string>{kNewKey})
        << status_and_body;
  }
  EXPECT_TRUE(observer_.fallbacks.empty());
  EXPECT_TRUE(observer_.refused_keys.empty());
}

TEST_F(KeyFallbackTest, KeyCodeInsideA5xxNeverResendsThePayment) {
  // A 5xx leaves the payment's outcome open, whatever envelope code it
  // carries: a resend with the other key could charge it twice.
  v1::CreatePaymentResponse response;
  for (const char* body : {R"({"code":401,"msg":"key invalid"})",
                           R"({"code":80102221,"msg":"key expired"})"}) {
    for (int status : {500, 502, 503}) {
      transport_.keys_seen.clear();
      transport_.next = Response(status, body);
      const CallResult result = Call(Payment(), &response);
      EXPECT_EQ(transport_.keys_seen, std::vector<std::string>{kNewKey})
          << status << " " << body;
      EXPECT_EQ(result.attempts, 1);
      EXPECT_EQ(result.status.code(), absl::StatusCode::kUnknown)
          << result.status;
      EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("outcome"),
                "unknown");
    }
  }
  EXPECT_TRUE(observer_.fallbacks.empty());
}

TEST_F(KeyFallbackTest, ASingleKeyHasNothingToFallBackTo) {
  volume_->Write({{"api-key", kNewKey}});
  ASSERT_EQ(ring_->Reload().outcome, credentials::ReloadOutcome::kApplied);
  transport_.accepted_keys = std::set<std::string>{kOldKey};
  v1::GetOrderResponse order;
  EXPECT_FALSE(Call(GetOrder(), &order).status.ok());
  EXPECT_EQ(transport_.keys_seen, std::vector<std::string>{kNewKey});
  EXPECT_EQ(observer_.refused_keys, std::vector<std::string>{Refused(kNewKey)});
}

TEST_F(ClinkClientTest, DateHeadersFeedTheClockSkewMonitor) {
  ClockSkewMonitor skew("acme", clock_);
  ClinkClientOptions options;
  options.clock_skew = &skew;
  UseOptions(options);
  transport_.next = Response(200, kOrderJson);
  transport_.next.response.headers = {
      {"date", absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT",
                                clock_.Now() + absl::Seconds(100),
                                absl::UTCTimeZone())}};
  v1::GetOrderResponse order;
  ASSERT_TRUE(Call(GetOrder(), &order).status.ok());
  ASSERT_TRUE(skew.offset().has_value());
  EXPECT_NEAR(absl::ToDoubleSeconds(*skew.offset()), 100.5, 1.0);
}

}  // namespace key_rotation

}  // namespace
}  // namespace clink_gateway::clink
