#include "adapters/clink/clink_client.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "adapters/clink/error_details.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "clink/gateway/v1/checkout.grpc.pb.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;

// Records each request and answers with a scripted result, inline.
class ScriptedTransport final : public http::HttpTransport {
 public:
  void Send(http::HttpRequest request, http::SendOptions options,
            DoneCallback done) override {
    requests.push_back(std::move(request));
    options_seen.push_back(std::move(options));
    std::move(done)(next);
  }
  std::vector<http::HttpRequest> requests;
  std::vector<http::SendOptions> options_seen;
  http::HttpResult next;
};

http::HttpResult Response(int status, std::string body) {
  http::HttpResult r;
  r.delivery = http::Delivery::kReceived;
  r.response.status_code = status;
  r.response.body = std::move(body);
  return r;
}

class ClinkClientTest : public testing::Test {
 protected:
  void SetUp() override {
    auto codec = RestCodec::CreateForServices(GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    client_ = std::make_unique<ClinkClient>(*codec_, transport_, clock_);
  }

  CallResult Call(const google::protobuf::Message& request,
                  google::protobuf::Message* response,
                  CallOptions options = {}) {
    const RestMethod* method =
        codec_->FindByRequestType(*request.GetDescriptor());
    EXPECT_NE(method, nullptr);
    CallResult out;
    bool called = false;
    client_->Call(*method->method, request, options, response,
                  [&](CallResult r) {
                    out = std::move(r);
                    called = true;
                  });
    EXPECT_TRUE(called);  // The scripted transport answers inline.
    return out;
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
  std::unique_ptr<ClinkClient> client_;
};

TEST_F(ClinkClientTest, InvalidRequestFailsBeforeAnythingIsSent) {
  v1::CreatePaymentRequest request = Payment();
  request.set_amount("1e3");
  request.clear_customer_id();
  v1::CreatePaymentResponse response;
  const CallResult result = Call(request, &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(transport_.requests.empty());
  const auto bad = GetBadRequest(result.status);
  ASSERT_TRUE(bad.has_value());
  EXPECT_EQ(bad->field_violations(0).field(), "amount");
}

TEST_F(ClinkClientTest, CrossFieldRuleFailsBeforeAnythingIsSent) {
  v1::CreatePaymentRequest request = Payment();
  request.clear_customer_id();
  v1::CreatePaymentResponse response;
  const CallResult result = Call(request, &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(result.status.message().find("customer_id"),
            absl::string_view::npos);
  EXPECT_TRUE(transport_.requests.empty());
}

TEST_F(ClinkClientTest, AmountNeedsItsCurrencyEvenWithAPrice) {
  v1::CreatePaymentRequest request = Payment();
  request.set_price_id("price_1");
  request.set_product_id("prd_1");
  request.clear_currency();
  v1::CreatePaymentResponse response;
  const CallResult result = Call(request, &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GetBadRequest(result.status)->field_violations(0).field(),
            "currency");
  EXPECT_TRUE(transport_.requests.empty());
}

TEST_F(ClinkClientTest, SuccessWithoutPayloadIsNotOk) {
  transport_.next = Response(200, R"({"code":200,"msg":"success"})");
  v1::CreatePaymentResponse response;
  const CallResult result = Call(Payment(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInternal);
  EXPECT_EQ(GetErrorInfo(result.status)->metadata().at("outcome"), "committed");
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
  EXPECT_EQ(GetErrorInfo(result.status)->metadata().at("outcome"), "committed");
}

TEST_F(ClinkClientTest, TwoHundredWithoutEnvelopeOnAPaymentIsUnknown) {
  transport_.next =
      Response(200, R"({"error":"gateway timeout","status":504})");
  v1::CreatePaymentResponse response;
  const CallResult result = Call(Payment(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(GetErrorInfo(result.status)->metadata().at("outcome"), "unknown");
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
  EXPECT_EQ(client_->unknown_fields_total(), 1);
}

TEST_F(ClinkClientTest,
       ResetAfterSendingAPaymentIsUnknownAndClearsTheResponse) {
  transport_.next.status = absl::UnavailableError("connection reset");
  transport_.next.delivery = http::Delivery::kUnknown;
  v1::CreatePaymentResponse response;
  response.set_order_id("stale");
  const CallResult result = Call(Payment(), &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(GetErrorInfo(result.status)->metadata().at("outcome"), "unknown");
  EXPECT_EQ(response.order_id(), "");
}

TEST_F(ClinkClientTest, BusinessErrorInsideHttp200IsAnError) {
  transport_.next = Response(200, R"({"code":404,"msg":"order not found"})");
  v1::GetOrderRequest request;
  request.set_order_id("ord_missing");
  v1::GetOrderResponse response;
  const CallResult result = Call(request, &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(GetErrorInfo(result.status)->reason(), "404");
  EXPECT_EQ(transport_.requests[0].path_and_query, "/order/ord_missing");
}

TEST_F(ClinkClientTest, RateLimitCarriesRetryInfo) {
  transport_.next = Response(429, "slow down");
  transport_.next.response.headers.push_back({"retry-after", "4"});
  v1::GetOrderRequest request;
  request.set_order_id("ord_1");
  v1::GetOrderResponse response;
  const CallResult result = Call(request, &response);
  EXPECT_EQ(result.status.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(GetRetryInfo(result.status)->retry_delay().seconds(), 4);
}

}  // namespace
}  // namespace clink_gateway::clink
