// The audit trail and the caller label end to end: the real gateway in front
// of the emulator, with --audit_log_file and a policy principal. Every write
// RPC leaves one line naming its caller (a replay and a refusal included),
// reads leave none, and the metrics count callers the policy does not name as
// "other".
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "common/testing/exposition.h"
#include "common/testing/http_get.h"
#include "common/testing/json_lines.h"
#include "gtest/gtest.h"
#include "tests/emulator/merchant_api.h"
#include "tests/integration/gateway_fixture.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr char kCheckout[] = "spiffe://cluster.local/ns/shop/sa/checkout-web";

v1::CreatePaymentRequest CardPayment(const std::string& amount) {
  v1::CreatePaymentRequest r;
  r.set_customer_id(emulator::kSeedCustomerId);
  r.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
  r.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  r.set_return_url("https://shop.example/return");
  r.set_amount(amount);
  r.set_currency("USD");
  return r;
}

class AuditTest : public GatewayFixture {
 protected:
  void Configure(server::GatewayOptions& options) override {
    audit_path_ = temp_dir_ + "/audit.log";
    options.audit_log_file = audit_path_;
    options.caller_label_principals = {kCheckout};
    options.metrics_listen = "127.0.0.1:0";
  }

  static std::unique_ptr<grpc::ClientContext> As(const std::string& caller) {
    auto context = Context();
    if (!caller.empty()) context->AddMetadata("x-clink-caller", caller);
    return context;
  }

  std::string audit_path_;
};

TEST_F(AuditTest, EveryWriteNamesItsCallerAndUnknownCallersAreOtherInMetrics) {
  const std::string key = "order-42-jane@example.com";
  v1::CreatePaymentResponse first;
  {
    auto context = As(kCheckout);
    context->AddMetadata("idempotency-key", key);
    ASSERT_TRUE(
        payment_->CreatePayment(context.get(), CardPayment("19.99"), &first)
            .ok());
  }
  v1::CreatePaymentResponse replay;
  {
    auto context = As(kCheckout);
    context->AddMetadata("idempotency-key", key);
    ASSERT_TRUE(
        payment_->CreatePayment(context.get(), CardPayment("19.99"), &replay)
            .ok());
  }
  {  // Refused by validation: nothing sent.
    v1::CreatePaymentResponse response;
    EXPECT_EQ(payment_
                  ->CreatePayment(As(kCheckout).get(), CardPayment("1.001"),
                                  &response)
                  .error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // A read: no audit line.
    v1::GetOrderRequest get;
    get.set_order_id(first.order_id());
    v1::GetOrderResponse order;
    EXPECT_TRUE(payment_->GetOrder(As(kCheckout).get(), get, &order).ok());
  }
  {  // A caller the policy does not name.
    v1::CreatePaymentResponse response;
    EXPECT_TRUE(payment_
                    ->CreatePayment(As("made-up-caller").get(),
                                    CardPayment("2.00"), &response)
                    .ok());
  }

  // Metrics are counted before each RPC is finished.
  const auto scraped = HttpGet(gateway_->metrics_port(), "/metrics");
  ASSERT_TRUE(scraped.ok()) << scraped.status();
  const std::vector<Sample> samples = ParseExposition(scraped->body);
  auto handled = [&](const std::string& caller) {
    return Sum(samples, "grpc_server_handled_total",
               {{"grpc_method", "CreatePayment"}, {"caller", caller}});
  };
  EXPECT_EQ(handled(kCheckout), 3);
  EXPECT_EQ(handled("other"), 1);
  EXPECT_EQ(
      Sum(samples, "grpc_server_handled_total", {{"caller", "made-up-caller"}}),
      0);
  EXPECT_TRUE(Select(samples, "grpc_server_handled_total",
                     {{"caller", "made-up-caller"}})
                  .empty());
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total",
                {{"endpoint", "/payment"}, {"caller", kCheckout}}),
            1);  // The replay and the refusal sent nothing.
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total",
                {{"endpoint", "/payment"}, {"caller", "other"}}),
            1);

  // Each line is written before its RPC is answered: all are there now.
  const auto lines = ::clink_gateway::testing::ReadJsonLines(audit_path_);
  ASSERT_EQ(lines.size(), 4u);  // Three payments by checkout-web, one other.
  for (const auto& line : lines) {
    EXPECT_EQ(line.at("event"), "audit");
    EXPECT_EQ(line.at("method"),
              "clink.gateway.v1.PaymentService.CreatePayment");
    EXPECT_EQ(line.at("merchant"), "default");
    EXPECT_EQ(line.at("currency"), "USD");
    EXPECT_FALSE(line.at("request_id").empty());
    for (const auto& [name, value] : line) {
      EXPECT_EQ(value.find("jane@example.com"), std::string::npos) << name;
      EXPECT_EQ(value.find(kTestApiKey), std::string::npos) << name;
    }
  }
  EXPECT_EQ(lines[0].at("caller"), kCheckout);
  EXPECT_EQ(lines[0].at("amount"), "19.99");
  EXPECT_EQ(lines[0].at("code"), "OK");
  EXPECT_EQ(lines[0].at("outcome"), "committed");
  EXPECT_EQ(lines[0].at("replayed"), "false");
  EXPECT_EQ(lines[0].at("clink_order_id"), first.order_id());
  EXPECT_EQ(lines[0].at("idempotency_key_digest").size(), 64u);
  EXPECT_NE(lines[0].at("idempotency_key_digest"), key);

  EXPECT_EQ(lines[1].at("caller"), kCheckout);
  EXPECT_EQ(lines[1].at("replayed"), "true");
  EXPECT_EQ(lines[1].at("clink_order_id"), first.order_id());
  EXPECT_EQ(lines[1].at("idempotency_key_digest"),
            lines[0].at("idempotency_key_digest"));

  EXPECT_EQ(lines[2].at("caller"), kCheckout);
  EXPECT_EQ(lines[2].at("amount"), "1.001");
  EXPECT_EQ(lines[2].at("code"), "INVALID_ARGUMENT");
  EXPECT_EQ(lines[2].at("outcome"), "not_sent");
  EXPECT_EQ(lines[2].at("idempotency_key_digest"), "none");
  EXPECT_EQ(lines[2].count("clink_order_id"), 0u);

  EXPECT_EQ(lines[3].at("caller"), "made-up-caller");
  EXPECT_EQ(lines[3].at("outcome"), "committed");
}

}  // namespace
}  // namespace clink_gateway::testing
