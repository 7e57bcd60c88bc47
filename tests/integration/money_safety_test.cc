// Money safety under failure, end to end through the real gateway and the
// emulator's fault switches: idempotency keys, what writes and reads do on
// timeouts, resets, 5xx and 429, retry deadlines and budget, and the in-flight
// cap.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/emulator/merchant_api.h"
#include "tests/integration/gateway_fixture.h"
#include "tests/integration/payments.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;
using emulator::Fault;

class MoneySafetyTest : public GatewayFixture {
 protected:
  int RequestsTo(const std::string& method, const std::string& path) {
    int n = 0;
    for (const auto& r : emulator_->requests()) {
      n += r.method == method && r.path == path;
    }
    return n;
  }

  static std::unique_ptr<grpc::ClientContext> Keyed(
      const std::string& key, absl::Duration timeout = absl::Seconds(10)) {
    auto context = Context(timeout);
    context->AddMetadata("idempotency-key", key);
    context->AddMetadata("x-clink-caller", "checkout-web");
    return context;
  }

  grpc::Status GetOrder(const std::string& id, absl::Duration timeout) {
    v1::GetOrderRequest get;
    get.set_order_id(id);
    v1::GetOrderResponse order;
    return payment_->GetOrder(Context(timeout).get(), get, &order);
  }

  // Creates an order to read back.
  std::string MakeOrder() {
    v1::CreatePaymentResponse paid;
    const grpc::Status status =
        payment_->CreatePayment(Context().get(), CardPayment("1.00"), &paid);
    EXPECT_TRUE(status.ok()) << status.error_message();
    emulator_->ClearRequests();
    return paid.order_id();
  }

  void Fail(Fault::Kind kind, const std::string& path, int count,
            int http_status = 503, const std::string& retry_after = "0") {
    Fault fault;
    fault.kind = kind;
    fault.path_prefix = path;
    fault.count = count;
    fault.http_status = http_status;
    fault.retry_after = retry_after;
    emulator_->SetFault(fault);
  }

  void Slow(const std::string& path, absl::Duration latency, int count = -1) {
    Fault fault;
    fault.kind = Fault::Kind::kLatency;
    fault.path_prefix = path;
    fault.latency = latency;
    fault.count = count;
    emulator_->SetFault(fault);
  }
};

TEST_F(MoneySafetyTest, SequentialDuplicatesReachClinkOnce) {
  std::string first_order;
  for (int i = 0; i < 5; ++i) {
    v1::CreatePaymentResponse paid;
    const grpc::Status status = payment_->CreatePayment(
        Keyed("pay-seq-1").get(), CardPayment("25.50"), &paid);
    ASSERT_TRUE(status.ok()) << status.error_message();
    if (i == 0) first_order = paid.order_id();
    EXPECT_EQ(paid.order_id(), first_order);
    EXPECT_EQ(paid.amount(), "25.50");
  }
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
}

TEST_F(MoneySafetyTest, FiftyConcurrentDuplicatesReachClinkOnce) {
  // Slow enough that every duplicate arrives while the first is in flight.
  Slow("/api/payment", absl::Milliseconds(300));
  constexpr int kCalls = 50;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<v1::CreatePaymentResponse> responses(kCalls);
  std::vector<grpc::Status> statuses(kCalls);
  absl::BlockingCounter done(kCalls);
  const v1::CreatePaymentRequest request = CardPayment("42.00");
  for (int i = 0; i < kCalls; ++i) {
    contexts.push_back(Keyed("pay-concurrent-1"));
    payment_->async()->CreatePayment(contexts.back().get(), &request,
                                     &responses[i],
                                     [&statuses, &done, i](grpc::Status s) {
                                       statuses[i] = std::move(s);
                                       done.DecrementCount();
                                     });
  }
  done.Wait();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(statuses[i].ok()) << i << ": " << statuses[i].error_message();
    EXPECT_EQ(responses[i].order_id(), responses[0].order_id()) << i;
  }
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
}

// A caller that gives up on a keyed payment does not stop it (a write is never
// aborted mid-flight): it runs to Clink's answer, its result is stored for the
// key, and the retry gets that result, never a second payment.
TEST_F(MoneySafetyTest, ACancelledPaymentRunsToItsEndAndItsRetryGetsItsResult) {
  Slow("/api/payment", absl::Seconds(2), /*count=*/1);
  const v1::CreatePaymentRequest request = CardPayment("7.00");
  auto first = Keyed("pay-cancelled-1");
  v1::CreatePaymentResponse first_response;
  absl::Notification first_done;
  grpc::Status first_status;
  payment_->async()->CreatePayment(first.get(), &request, &first_response,
                                   [&](grpc::Status s) {
                                     first_status = std::move(s);
                                     first_done.Notify();
                                   });
  ASSERT_TRUE(emulator_->WaitForRequests(1, absl::Seconds(10)));
  first->TryCancel();
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(first_status.error_code(), grpc::StatusCode::CANCELLED);

  // The retry waits for the first call, still running at Clink, and gets its
  // answer.
  v1::CreatePaymentResponse retried;
  const grpc::Status status = payment_->CreatePayment(
      Keyed("pay-cancelled-1").get(), request, &retried);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_FALSE(retried.order_id().empty());
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
}

TEST_F(MoneySafetyTest, KeyReusedForAnotherRequestIsRefusedBeforeSending) {
  v1::CreatePaymentResponse paid;
  ASSERT_TRUE(
      payment_
          ->CreatePayment(Keyed("pay-reuse").get(), CardPayment("10.00"), &paid)
          .ok());
  const grpc::Status reused = payment_->CreatePayment(
      Keyed("pay-reuse").get(), CardPayment("10.01"), &paid);
  EXPECT_EQ(reused.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_EQ(ErrorInfoOf(reused).reason(), "IDEMPOTENCY_KEY_REUSED");
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
}

TEST_F(MoneySafetyTest, MalformedKeyIsInvalidArgumentNamingTheMetadata) {
  auto context = Context();
  context->AddMetadata("idempotency-key", std::string(256, 'k'));
  v1::CreatePaymentResponse paid;
  const grpc::Status status =
      payment_->CreatePayment(context.get(), CardPayment("1.00"), &paid);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadRequestOf(status).field_violations(0).field(),
            "idempotency-key");
  EXPECT_TRUE(emulator_->requests().empty());
}

TEST_F(MoneySafetyTest, WriteTimeoutIsUnknownSentOnceAndStaysUnknown) {
  Slow("/api/payment", absl::Seconds(2), /*count=*/1);
  v1::CreatePaymentResponse paid;
  const grpc::Status timed_out = payment_->CreatePayment(
      Keyed("pay-timeout", absl::Milliseconds(500)).get(), CardPayment("7.00"),
      &paid);
  EXPECT_EQ(timed_out.error_code(), grpc::StatusCode::UNKNOWN)
      << timed_out.error_message();
  EXPECT_EQ(ErrorInfoOf(timed_out).metadata().at("outcome"), "unknown");
  // The retry with the key is told the same; it does not send the payment
  // again, even though Clink would now answer at once.
  const grpc::Status retried = payment_->CreatePayment(
      Keyed("pay-timeout").get(), CardPayment("7.00"), &paid);
  EXPECT_EQ(retried.error_code(), grpc::StatusCode::UNKNOWN);
  EXPECT_EQ(ErrorInfoOf(retried).metadata().at("outcome"), "unknown");
  ASSERT_TRUE(emulator_->WaitForRequests(1, absl::Seconds(5)));
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
}

TEST_F(MoneySafetyTest, WriteResetAnd5xxAreSentOnceWithTheirOutcome) {
  for (Fault::Kind kind :
       {Fault::Kind::kResetConnection, Fault::Kind::kHttpError}) {
    emulator_->ClearRequests();
    Fail(kind, "/api/payment", 1);
    v1::CreatePaymentResponse paid;
    const grpc::Status status =
        payment_->CreatePayment(Context().get(), CardPayment("8.00"), &paid);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN);
    EXPECT_EQ(ErrorInfoOf(status).metadata().at("outcome"), "unknown");
    EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
  }
}

TEST_F(MoneySafetyTest, KeyedPaymentAnswered408IsNotSentAndTheRetryRuns) {
  // A 408 from Clink's web server or a proxy in front of it: the payment was
  // not processed, so the key is freed (not stored as a final refusal) and the
  // caller's retry with the same key pays.
  Fail(Fault::Kind::kHttpError, "/api/payment", 1, /*http_status=*/408);
  v1::CreatePaymentResponse paid;
  const grpc::Status refused = payment_->CreatePayment(
      Keyed("pay-408").get(), CardPayment("9.00"), &paid);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE)
      << refused.error_message();
  EXPECT_EQ(ErrorInfoOf(refused).metadata().at("outcome"), "not_sent");
  EXPECT_EQ(ErrorInfoOf(refused).reason(), "HTTP_408");
  const grpc::Status retried = payment_->CreatePayment(
      Keyed("pay-408").get(), CardPayment("9.00"), &paid);
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  EXPECT_EQ(paid.amount(), "9.00");
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 2);
  // And now it is stored: a third call replays without reaching Clink.
  v1::CreatePaymentResponse replayed;
  ASSERT_TRUE(payment_
                  ->CreatePayment(Keyed("pay-408").get(), CardPayment("9.00"),
                                  &replayed)
                  .ok());
  EXPECT_EQ(replayed.order_id(), paid.order_id());
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 2);
}

TEST_F(MoneySafetyTest, RefundIsRetriedBecauseClinkDeduplicatesIt) {
  const std::string order = MakeOrder();
  Fail(Fault::Kind::kHttpError, "/api/refund", 1);
  v1::CreateRefundRequest refund;
  refund.set_order_id(order);
  refund.set_refund_merchant_order_id("rf-retry-1");
  refund.set_refund_amount("0.50");
  v1::CreateRefundResponse refunded;
  const grpc::Status status =
      payment_->CreateRefund(Context().get(), refund, &refunded);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(RequestsTo("POST", "/api/refund"), 2);
}

TEST_F(MoneySafetyTest, ReadsSurviveABurstOf5xxAnd429) {
  const std::string order = MakeOrder();
  const std::string path = absl::StrCat("/api/order/", order);
  Fail(Fault::Kind::kHttpError, path, 2, 503);
  Fail(Fault::Kind::kRateLimit, path, 1, 429, "0");
  const grpc::Status status = GetOrder(order, absl::Seconds(5));
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(RequestsTo("GET", path), 4);
}

TEST_F(MoneySafetyTest, RetryAfterIsHonoured) {
  const std::string order = MakeOrder();
  Fail(Fault::Kind::kRateLimit, "/api/order/", 1, 429, "1");
  const absl::Time start = absl::Now();
  const grpc::Status status = GetOrder(order, absl::Seconds(5));
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_GE(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(RequestsTo("GET", absl::StrCat("/api/order/", order)), 2);
}

TEST_F(MoneySafetyTest, RetriesStopAtTheDeadline) {
  const std::string order = MakeOrder();
  Fail(Fault::Kind::kHttpError, "/api/order/", -1, 503);
  const absl::Time start = absl::Now();
  const grpc::Status status = GetOrder(order, absl::Milliseconds(400));
  // The gateway's own status, before the caller's deadline.
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << status.error_message();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(400));
  const int sent = RequestsTo("GET", absl::StrCat("/api/order/", order));
  EXPECT_GE(sent, 2);
  EXPECT_LE(sent, 4);  // max_upstream_attempts
}

TEST_F(MoneySafetyTest, RetryAfterBeyondTheDeadlineIsPassedToTheCaller) {
  const std::string order = MakeOrder();
  Fail(Fault::Kind::kRateLimit, "/api/order/", -1, 429, "3");
  const grpc::Status status = GetOrder(order, absl::Seconds(1));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(HasRetryInfo(status));
  EXPECT_EQ(RequestsTo("GET", absl::StrCat("/api/order/", order)), 1);
}

class RetryBudgetTest : public MoneySafetyTest {
 protected:
  void Configure(server::GatewayOptions& options) override {
    options.upstream.retry.budget_ratio = 0;
    options.upstream.retry.budget_min_per_second = 1;  // 10 per 10 s window
    options.upstream.retry.initial_backoff = absl::Milliseconds(1);
    options.upstream.retry.max_backoff = absl::Milliseconds(2);
  }
};

TEST_F(RetryBudgetTest, AnOutageIsNotAmplifiedBeyondTheBudget) {
  const std::string order = MakeOrder();
  Fail(Fault::Kind::kHttpError, "/api/order/", -1, 503);
  constexpr int kCalls = 20;
  for (int i = 0; i < kCalls; ++i) {
    EXPECT_EQ(GetOrder(order, absl::Seconds(5)).error_code(),
              grpc::StatusCode::UNAVAILABLE);
  }
  // Up to 3 retries each would be 80 requests; the budget allows 10 retries.
  EXPECT_EQ(RequestsTo("GET", absl::StrCat("/api/order/", order)), kCalls + 10);
}

class OverloadTest : public MoneySafetyTest {
 protected:
  static constexpr int kCap = 4;
  void Configure(server::GatewayOptions& options) override {
    options.upstream.max_in_flight = kCap;
  }
};

TEST_F(OverloadTest, BeyondTheCapRejectionsAreImmediateAndAcceptedCallsFinish) {
  Slow("/api/product/", absl::Seconds(1));
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<v1::GetProductResponse> responses(kCap);
  std::vector<grpc::Status> statuses(kCap);
  absl::BlockingCounter done(kCap);
  v1::GetProductRequest get;
  get.set_product_id(emulator::kSeedProductBasic);
  for (int i = 0; i < kCap; ++i) {
    contexts.push_back(Context());
    billing_->async()->GetProduct(contexts.back().get(), &get, &responses[i],
                                  [&statuses, &done, i](grpc::Status s) {
                                    statuses[i] = std::move(s);
                                    done.DecrementCount();
                                  });
  }
  ASSERT_TRUE(emulator_->WaitForRequests(kCap, absl::Seconds(5)));
  // The cap is full: further calls are refused without waiting for Clink.
  std::vector<absl::Duration> latencies;
  for (int i = 0; i < 20; ++i) {
    v1::GetProductResponse product;
    const absl::Time start = absl::Now();
    const grpc::Status refused =
        billing_->GetProduct(Context().get(), get, &product);
    latencies.push_back(absl::Now() - start);
    ASSERT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_EQ(ErrorInfoOf(refused).reason(), "GATEWAY_OVERLOADED");
    EXPECT_EQ(ErrorInfoOf(refused).metadata().at("outcome"), "not_sent");
    EXPECT_TRUE(HasRetryInfo(refused));
  }
  std::sort(latencies.begin(), latencies.end());
  // Figures, not a timed assertion: the refusal never waits for Clink (the
  // accepted calls are still in their 1 s upstream latency).
  std::printf("overload rejection round trip (gRPC loopback): p50 %s, max %s\n",
              absl::FormatDuration(latencies[latencies.size() / 2]).c_str(),
              absl::FormatDuration(latencies.back()).c_str());
  EXPECT_LT(latencies.back(), absl::Milliseconds(500));
  done.Wait();
  for (int i = 0; i < kCap; ++i) {
    EXPECT_TRUE(statuses[i].ok()) << statuses[i].error_message();
  }
  EXPECT_EQ(emulator_->requests().size(), static_cast<size_t>(kCap));
}

}  // namespace
}  // namespace clink_gateway::testing
