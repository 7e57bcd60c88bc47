// End-to-end: generated C++ stubs -> gateway (real server, real curl transport)
// -> emulator over TLS with a throwaway CA.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "tests/emulator/merchant_api.h"
#include "tests/integration/gateway_fixture.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;
using emulator::Fault;

class GatewayIntegrationTest : public GatewayFixture {
 protected:
  v1::CreatePaymentRequest CardPayment(const std::string& amount) {
    v1::CreatePaymentRequest r;
    r.set_customer_id(emulator::kSeedCustomerId);
    r.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
    r.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
    r.set_return_url("https://shop.example/return");
    r.set_amount(amount);
    r.set_currency("USD");
    r.set_merchant_reference_id("order-42");
    (*r.mutable_metadata())["cart"] = "c-1";
    return r;
  }

  // GetProduct of the seeded basic product, with a deadline `timeout` away.
  grpc::Status GetBasicProduct(absl::Duration timeout = absl::Seconds(10)) {
    v1::GetProductRequest get;
    get.set_product_id(emulator::kSeedProductBasic);
    v1::GetProductResponse product;
    return billing_->GetProduct(Context(timeout).get(), get, &product);
  }

  // Requests the emulator received on `path` (e.g. "/api/payment").
  int RequestsTo(const std::string& method, const std::string& path) {
    int n = 0;
    for (const auto& r : emulator_->requests())
      n += r.method == method && r.path == path;
    return n;
  }
};

TEST_F(GatewayIntegrationTest, CheckoutSessionCreateThenGet) {
  v1::CreateCheckoutSessionRequest create;
  create.set_customer_email("buyer@example.com");
  create.set_original_amount("19.990");
  create.set_original_currency("USD");
  create.set_ui_mode(v1::UI_MODE_HOSTED_PAGE);
  create.set_success_url("https://shop.example/ok");
  auto* item = create.add_price_data_list();
  item->set_name("T-shirt");
  item->set_quantity(2);
  item->set_unit_amount("9.950");
  item->set_currency("USD");
  v1::CreateCheckoutSessionResponse created;
  ASSERT_TRUE(
      checkout_->CreateCheckoutSession(Context().get(), create, &created).ok());
  EXPECT_TRUE(absl::StartsWith(created.session_id(), "sess_"))
      << created.session_id();
  EXPECT_EQ(created.original_amount(),
            "19.990");  // Digit for digit, trailing zero kept.
  EXPECT_EQ(created.ui_mode(), v1::UI_MODE_HOSTED_PAGE);
  EXPECT_GT(created.expire_time().seconds(), absl::ToUnixSeconds(absl::Now()));

  v1::GetCheckoutSessionRequest get;
  get.set_session_id(created.session_id());
  v1::GetCheckoutSessionResponse got;
  ASSERT_TRUE(checkout_->GetCheckoutSession(Context().get(), get, &got).ok());
  EXPECT_EQ(got.checkout_session().session_id(), created.session_id());
  EXPECT_EQ(got.checkout_session().status(), v1::CHECKOUT_SESSION_STATUS_OPEN);
  ASSERT_EQ(got.checkout_session().price_data_list_size(), 1);
  EXPECT_EQ(got.checkout_session().price_data_list(0).unit_amount(), "9.950");
}

TEST_F(GatewayIntegrationTest, PaymentOrderRefundLifecycle) {
  v1::CreatePaymentResponse paid;
  ASSERT_TRUE(
      payment_->CreatePayment(Context().get(), CardPayment("25.50"), &paid)
          .ok());
  EXPECT_EQ(paid.status(), v1::PAYMENT_RESULT_STATUS_SUCCESS);
  EXPECT_EQ(paid.amount(), "25.50");
  ASSERT_FALSE(paid.order_id().empty());

  v1::GetOrderRequest get_order;
  get_order.set_order_id(paid.order_id());
  v1::GetOrderResponse order;
  ASSERT_TRUE(payment_->GetOrder(Context().get(), get_order, &order).ok());
  EXPECT_EQ(order.order().status(), v1::ORDER_STATUS_SUCCESS);
  EXPECT_EQ(order.order().amount_total(), "25.50");
  EXPECT_EQ(order.order().metadata().at("cart"), "c-1");
  EXPECT_GT(order.order().create_time().seconds(), 1700000000);

  v1::ListOrdersRequest list;
  list.set_customer_id(emulator::kSeedCustomerId);
  list.set_page_num(1);
  list.set_page_size(50);
  v1::ListOrdersResponse orders;
  ASSERT_TRUE(payment_->ListOrders(Context().get(), list, &orders).ok());
  EXPECT_GE(orders.total(), 1);
  bool listed = false;
  for (const auto& o : orders.orders())
    listed |= o.order_id() == paid.order_id();
  EXPECT_TRUE(listed);

  v1::CreateRefundRequest refund;
  refund.set_order_id(paid.order_id());
  refund.set_refund_merchant_order_id("rf-1");
  refund.set_refund_amount("10.25");
  refund.set_refund_reason_type(v1::REFUND_REASON_TYPE_CUSTOMER_INITIATED);
  v1::CreateRefundResponse refunded;
  ASSERT_TRUE(payment_->CreateRefund(Context().get(), refund, &refunded).ok());
  EXPECT_EQ(refunded.refund().refund_amount(), "10.25");

  // Same refund reference again: Clink returns the same refund, nothing is
  // refunded twice.
  v1::CreateRefundResponse again;
  ASSERT_TRUE(payment_->CreateRefund(Context().get(), refund, &again).ok());
  EXPECT_EQ(again.refund().refund_id(), refunded.refund().refund_id());

  v1::GetRefundRequest get_refund;
  get_refund.set_refund_id(refunded.refund().refund_id());
  v1::GetRefundResponse got_refund;
  ASSERT_TRUE(
      payment_->GetRefund(Context().get(), get_refund, &got_refund).ok());
  EXPECT_EQ(got_refund.refund().order_id(), paid.order_id());

  ASSERT_TRUE(payment_->GetOrder(Context().get(), get_order, &order).ok());
  EXPECT_EQ(order.order().status(), v1::ORDER_STATUS_PARTIAL_REFUNDED);

  // More than what is left to refund: Clink's business error, not retryable as
  // is.
  refund.set_refund_merchant_order_id("rf-2");
  refund.set_refund_amount("15.26");
  const grpc::Status too_much =
      payment_->CreateRefund(Context().get(), refund, &again);
  EXPECT_EQ(too_much.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(ErrorInfoOf(too_much).domain(), "clinkbill.com");
}

TEST_F(GatewayIntegrationTest, PaymentInstrumentAndWalletQrCode) {
  v1::CreatePaymentInstrumentRequest create;
  create.set_customer_email("wallet@example.com");
  create.set_payment_instrument_type(v1::PAYMENT_METHOD_TYPE_CASHAPP);
  v1::CreatePaymentInstrumentResponse instrument;
  ASSERT_TRUE(
      payment_->CreatePaymentInstrument(Context().get(), create, &instrument)
          .ok());
  EXPECT_TRUE(absl::StartsWith(instrument.payment_instrument().id(), "pi_"));
  EXPECT_EQ(instrument.payment_instrument().type(),
            v1::PAYMENT_METHOD_TYPE_CASHAPP);

  v1::CreatePaymentRequest pay = CardPayment("5");
  pay.clear_customer_id();
  pay.set_customer_email("wallet@example.com");
  pay.set_payment_instrument_id(instrument.payment_instrument().id());
  pay.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CASHAPP);
  v1::CreatePaymentResponse paid;
  ASSERT_TRUE(payment_->CreatePayment(Context().get(), pay, &paid).ok());
  EXPECT_EQ(paid.status(), v1::PAYMENT_RESULT_STATUS_NEXT_ACTION);

  v1::RefreshPaymentQrCodeRequest refresh;
  refresh.set_order_id(paid.order_id());
  v1::RefreshPaymentQrCodeResponse qr;
  ASSERT_TRUE(
      payment_->RefreshPaymentQrCode(Context().get(), refresh, &qr).ok());
  EXPECT_EQ(qr.order_id(), paid.order_id());
  EXPECT_EQ(qr.action().type(), v1::PAYMENT_METHOD_TYPE_CASHAPP);
}

TEST_F(GatewayIntegrationTest, AgentPaymentSessionAndPortal) {
  v1::CreateAgentPaymentSessionRequest create;
  create.set_customer_email("agent@example.com");
  create.set_amount("0.50");
  create.set_currency("USD");
  v1::CreateAgentPaymentSessionResponse created;
  ASSERT_TRUE(
      payment_->CreateAgentPaymentSession(Context().get(), create, &created)
          .ok());
  v1::GetAgentPaymentSessionRequest get;
  get.set_session_id(created.session_id());
  v1::GetAgentPaymentSessionResponse got;
  ASSERT_TRUE(
      payment_->GetAgentPaymentSession(Context().get(), get, &got).ok());
  EXPECT_EQ(got.agent_payment_session().amount(), "0.50");
  EXPECT_EQ(got.agent_payment_session().customer_email(), "agent@example.com");

  v1::CreateCustomerPortalSessionRequest portal;
  portal.set_customer_id(emulator::kSeedCustomerId);
  portal.set_return_url("https://shop.example/account");
  v1::CreateCustomerPortalSessionResponse link;
  ASSERT_TRUE(
      billing_->CreateCustomerPortalSession(Context().get(), portal, &link)
          .ok());
  EXPECT_FALSE(link.url().empty());
  EXPECT_GT(link.expires_at().seconds(), absl::ToUnixSeconds(absl::Now()));
}

TEST_F(GatewayIntegrationTest, CatalogProductsAndPrices) {
  v1::ListProductsRequest list;
  list.set_page_num(1);
  list.set_page_size(100);
  v1::ListProductsResponse products;
  ASSERT_TRUE(billing_->ListProducts(Context().get(), list, &products).ok());
  EXPECT_GE(products.total(), 3);
  v1::GetProductRequest get;
  get.set_product_id(emulator::kSeedProductBasic);
  v1::GetProductResponse product;
  ASSERT_TRUE(billing_->GetProduct(Context().get(), get, &product).ok());
  EXPECT_EQ(product.product().product_id(), emulator::kSeedProductBasic);

  v1::ListPricesRequest prices_request;
  prices_request.set_product_id(emulator::kSeedProductBasic);
  prices_request.set_page_num(1);
  prices_request.set_page_size(10);
  prices_request.set_active(true);
  v1::ListPricesResponse prices;
  ASSERT_TRUE(
      billing_->ListPrices(Context().get(), prices_request, &prices).ok());
  ASSERT_GE(prices.prices_size(), 1);
  for (const auto& p : prices.prices()) EXPECT_TRUE(p.active()) << p.price_id();

  v1::GetPriceRequest get_price;
  get_price.set_price_id(emulator::kSeedPriceOneTime);
  v1::GetPriceResponse price;
  ASSERT_TRUE(billing_->GetPrice(Context().get(), get_price, &price).ok());
  EXPECT_EQ(price.price().unit_amount(), "19.990");
}

TEST_F(GatewayIntegrationTest, SubscriptionInvoiceAndCancel) {
  v1::CreateSubscriptionRequest create;
  create.set_customer_id(emulator::kSeedCustomerId);
  create.set_price_id(emulator::kSeedPriceMonthly);
  create.set_product_id(emulator::kSeedProductBasic);
  create.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
  create.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  create.set_payment_currency("USD");
  create.set_return_url("https://shop.example/return");
  v1::CreateSubscriptionResponse created;
  ASSERT_TRUE(
      billing_->CreateSubscription(Context().get(), create, &created).ok());
  ASSERT_FALSE(created.subscription_id().empty());

  v1::GetSubscriptionRequest get;
  get.set_subscription_id(created.subscription_id());
  v1::GetSubscriptionResponse sub;
  ASSERT_TRUE(billing_->GetSubscription(Context().get(), get, &sub).ok());
  EXPECT_EQ(sub.subscription().status(), v1::SUBSCRIPTION_STATUS_ACTIVE);

  v1::GetInvoiceRequest get_invoice;
  get_invoice.set_invoice_id(created.invoice_id());
  v1::GetInvoiceResponse invoice;
  ASSERT_TRUE(
      billing_->GetInvoice(Context().get(), get_invoice, &invoice).ok());
  EXPECT_EQ(invoice.invoice().subscription_id(), created.subscription_id());
  EXPECT_EQ(invoice.invoice().status(), v1::INVOICE_STATUS_PAID);

  v1::CancelSubscriptionRequest cancel;
  cancel.set_subscription_id(created.subscription_id());
  cancel.set_reason("moving to annual billing");
  cancel.set_cancel_immediately(true);
  v1::CancelSubscriptionResponse cancelled;
  ASSERT_TRUE(
      billing_->CancelSubscription(Context().get(), cancel, &cancelled).ok());
  ASSERT_TRUE(billing_->GetSubscription(Context().get(), get, &sub).ok());
  EXPECT_EQ(sub.subscription().status(), v1::SUBSCRIPTION_STATUS_CANCELLED);
}

TEST_F(GatewayIntegrationTest, RequestsAreSignedAndDescribed) {
  const int64_t before_ms = absl::ToUnixMillis(absl::Now());
  v1::CreatePaymentResponse paid;
  auto context = Context();
  context->AddMetadata("x-request-id", "trace-abc-123");
  ASSERT_TRUE(
      payment_->CreatePayment(context.get(), CardPayment("1.00"), &paid).ok());
  const auto requests = emulator_->requests();
  ASSERT_EQ(requests.size(), 1u);
  const auto& r = requests[0];
  EXPECT_EQ(r.api_key, kTestApiKey);
  int64_t ts = 0;
  ASSERT_TRUE(absl::SimpleAtoi(r.timestamp, &ts));
  EXPECT_GE(ts, before_ms);
  EXPECT_LE(ts, absl::ToUnixMillis(absl::Now()));
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_TRUE(absl::StartsWith(r.user_agent, "clink-gateway/")) << r.user_agent;
  EXPECT_EQ(r.request_id, "trace-abc-123");
  EXPECT_NE(r.body.find(R"("amount":1.00)"), std::string::npos) << r.body;

  v1::GetOrderRequest get;
  get.set_order_id(paid.order_id());
  v1::GetOrderResponse order;
  ASSERT_TRUE(payment_->GetOrder(Context().get(), get, &order).ok());
  EXPECT_EQ(emulator_->requests().back().content_type,
            "");  // No body, no Content-Type.
}

TEST_F(GatewayIntegrationTest, InvalidRequestIsRejectedBeforeAnythingIsSent) {
  for (const char* amount : {"1e3", "-1", "1.2.3", ""}) {
    v1::CreatePaymentResponse paid;
    const grpc::Status status =
        payment_->CreatePayment(Context().get(), CardPayment(amount), &paid);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << amount;
    const auto bad = BadRequestOf(status);
    ASSERT_GE(bad.field_violations_size(), 1) << amount;
    EXPECT_EQ(bad.field_violations(0).field(), "amount");
  }
  EXPECT_TRUE(emulator_->requests().empty());
}

// An amount finer than its currency's minor unit, or a currency code that is
// not a current upper-case ISO 4217 code, never reaches Clink (what would be
// charged would depend on Clink's rounding).
TEST_F(GatewayIntegrationTest, AmountsFinerThanTheCurrencyAreRefusedUnsent) {
  struct Case {
    const char* amount;
    const char* currency;
    const char* field;
  };
  for (const Case& c :
       {Case{"0.001", "USD", "amount"}, Case{"19.999", "USD", "amount"},
        Case{"1.5", "JPY", "amount"}, Case{"1.2345", "KWD", "amount"},
        Case{"1.00", "usd", "currency"}, Case{"1", "XYZ", "currency"}}) {
    SCOPED_TRACE(absl::StrCat(c.amount, " ", c.currency));
    v1::CreatePaymentRequest request = CardPayment(c.amount);
    request.set_currency(c.currency);
    v1::CreatePaymentResponse paid;
    const grpc::Status status =
        payment_->CreatePayment(Context().get(), request, &paid);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    const auto bad = BadRequestOf(status);
    ASSERT_EQ(bad.field_violations_size(), 1);
    EXPECT_EQ(bad.field_violations(0).field(), c.field);
  }
  EXPECT_TRUE(emulator_->requests().empty());
}

TEST_F(GatewayIntegrationTest, UnknownIdIsNotFound) {
  v1::GetOrderRequest get;
  get.set_order_id("ord_does_not_exist");
  v1::GetOrderResponse order;
  const grpc::Status status = payment_->GetOrder(Context().get(), get, &order);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(GatewayIntegrationTest, RateLimitIsResourceExhaustedWithRetryInfo) {
  Fault fault;
  fault.kind = Fault::Kind::kRateLimit;
  fault.retry_after = "2";
  fault.count = -1;  // Persistent: retries (see money_safety_test) run out.
  emulator_->SetFault(fault);
  const grpc::Status status = GetBasicProduct(absl::Seconds(1));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(HasRetryInfo(status));
}

TEST_F(GatewayIntegrationTest, ServerErrorOnReadIsUnavailable) {
  Fault fault;
  fault.kind = Fault::Kind::kHttpError;
  fault.http_status = 503;
  fault.count = -1;  // Persistent: retries (see money_safety_test) run out.
  emulator_->SetFault(fault);
  const grpc::Status status = GetBasicProduct();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("http_status"), "503");
}

TEST_F(GatewayIntegrationTest, ServerErrorOnPaymentIsUnknownAndSentOnce) {
  Fault fault;
  fault.kind = Fault::Kind::kHttpError;
  fault.http_status = 500;
  emulator_->SetFault(fault);
  v1::CreatePaymentResponse paid;
  const grpc::Status status =
      payment_->CreatePayment(Context().get(), CardPayment("3"), &paid);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("outcome"), "unknown");
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
}

TEST_F(GatewayIntegrationTest, ResetAfterPaymentWasReadIsUnknownAndSentOnce) {
  Fault fault;
  fault.kind = Fault::Kind::kResetConnection;
  emulator_->SetFault(fault);
  v1::CreatePaymentResponse paid;
  const grpc::Status status =
      payment_->CreatePayment(Context().get(), CardPayment("3"), &paid);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN)
      << status.error_message();
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("outcome"), "unknown");
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
}

TEST_F(GatewayIntegrationTest,
       PaymentIsNeverResentOnAReusedConnectionThatDied) {
  // Warm the pool so the next call reuses a kept-alive connection.
  ASSERT_TRUE(GetBasicProduct().ok());
  // Clink reads the payment, then the connection closes without an answer.
  // libcurl would resend it on a fresh connection; the gateway must not.
  Fault drop;
  drop.kind = Fault::Kind::kDropConnection;
  drop.path_prefix = "/api/payment";
  emulator_->SetFault(drop);
  v1::CreatePaymentResponse paid;
  const grpc::Status status =
      payment_->CreatePayment(Context().get(), CardPayment("7"), &paid);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN)
      << status.error_message();
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("outcome"), "unknown");
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);

  // A read in the same situation is simply answered (a resend is harmless).
  ASSERT_TRUE(GetBasicProduct().ok());
  drop.path_prefix = "/api/product";
  emulator_->SetFault(drop);
  EXPECT_TRUE(GetBasicProduct().ok());
}

TEST_F(GatewayIntegrationTest, MalformedJson) {
  Fault fault;
  fault.kind = Fault::Kind::kMalformedJson;
  fault.count = 2;
  emulator_->SetFault(fault);
  EXPECT_EQ(GetBasicProduct().error_code(), grpc::StatusCode::INTERNAL);
  v1::CreatePaymentResponse paid;
  EXPECT_EQ(payment_->CreatePayment(Context().get(), CardPayment("3"), &paid)
                .error_code(),
            grpc::StatusCode::UNKNOWN);
}

TEST_F(GatewayIntegrationTest, SlowUpstreamIsBoundedByTheCallersDeadline) {
  Fault fault;
  fault.kind = Fault::Kind::kLatency;
  fault.latency = absl::Seconds(3);
  fault.count = -1;
  emulator_->SetFault(fault);
  const absl::Time start = absl::Now();
  const grpc::Status status = GetBasicProduct(absl::Milliseconds(300));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(ErrorInfoOf(status).reason(),
            "UPSTREAM_TIMEOUT");  // The gateway's own answer.
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));

  // A payment that times out after it was sent: the gateway answers just before
  // the caller's deadline that the outcome is unknown, and sent it once.
  v1::CreatePaymentResponse paid;
  const grpc::Status payment = payment_->CreatePayment(
      Context(absl::Milliseconds(500)).get(), CardPayment("3"), &paid);
  EXPECT_EQ(payment.error_code(), grpc::StatusCode::UNKNOWN)
      << payment.error_message();
  EXPECT_EQ(ErrorInfoOf(payment).metadata().at("outcome"), "unknown");
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
}

TEST_F(GatewayIntegrationTest, StaleTimestampIsRefusedAndNotBlamedOnTheCaller) {
  emulator_clock_offset_ms_ = absl::ToInt64Milliseconds(absl::Minutes(5));
  const grpc::Status status = GetBasicProduct();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_EQ(ErrorInfoOf(status).metadata().at("http_status"), "401");
}

TEST_F(GatewayIntegrationTest, SequentialCallsReusePooledConnections) {
  const int64_t before = emulator_->connections_accepted();
  v1::GetProductRequest get;
  get.set_product_id(emulator::kSeedProductBasic);
  for (int i = 0; i < 200; ++i) {
    v1::GetProductResponse product;
    ASSERT_TRUE(GetBasicProduct().ok()) << i;
  }
  EXPECT_LE(emulator_->connections_accepted() - before, kPoolSize);
}

TEST_F(GatewayIntegrationTest, KeyNeverAppearsInLogsErrorsOrDetails) {
  ::testing::internal::CaptureStdout();
  ::testing::internal::CaptureStderr();
  std::string statuses;
  {
    // A gateway started and stopped inside the capture, so its startup and
    // drain lines count.
    server::GatewayOptions options;
    options.grpc_listen = "127.0.0.1:0";
    options.grpc_insecure = true;
    options.clink_base_url = emulator_->base_url();
    options.egress_allow_cidrs = "127.0.0.0/8";
    options.merchants = {{"default", key_volume_->dir(), ""}};
    options.ca_bundle = ca_.ca_cert_pem;
    auto gateway = server::GatewayServer::BuildAndStart(std::move(options));
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    auto channel =
        grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*gateway)->port()),
                            grpc::InsecureChannelCredentials());
    auto payments = v1::PaymentService::NewStub(channel);
    auto record = [&](const grpc::Status& status) {
      absl::StrAppend(&statuses, status.error_message(),
                      status.error_details());
    };
    v1::CreatePaymentResponse paid;
    record(payments->CreatePayment(Context().get(), CardPayment("2"),
                                   &paid));  // OK
    record(payments->CreatePayment(Context().get(), CardPayment("x"),
                                   &paid));  // invalid
    Fault fault;
    fault.kind = Fault::Kind::kHttpError;
    emulator_->SetFault(fault);
    record(payments->CreatePayment(Context().get(), CardPayment("2"),
                                   &paid));  // 5xx
    emulator_clock_offset_ms_ = absl::ToInt64Milliseconds(absl::Minutes(10));
    record(payments->CreatePayment(Context().get(), CardPayment("2"),
                                   &paid));  // 401
    (*gateway)->Shutdown(absl::Seconds(5));
  }
  FlushLogs();
  const std::string out = ::testing::internal::GetCapturedStdout();
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(out.find("\"event\":\"rpc\""),
            std::string::npos);                        // Something was logged.
  EXPECT_NE(out.find("sk_test_"), std::string::npos);  // The fingerprint was.
  EXPECT_EQ(out.find(kTestApiKey), std::string::npos);
  EXPECT_EQ(err.find(kTestApiKey), std::string::npos);
  EXPECT_EQ(statuses.find(kTestApiKey), std::string::npos);
  EXPECT_EQ(statuses.find("0123456789abcdef"),
            std::string::npos);  // Not even its tail.
}

TEST_F(GatewayIntegrationTest, HealthIsServing) {
  EXPECT_EQ(HealthStatus(), 1);  // Readiness.
  EXPECT_EQ(HealthStatus(server::GatewayServer::kLivenessService), 1);
}

}  // namespace
}  // namespace clink_gateway::testing
