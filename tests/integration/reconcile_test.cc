// Unknown payment outcomes resolve themselves (issue 12 §5), end to end: the
// gateway in front of the emulator, whose answer to a payment is lost after
// the payment was made.
#include <algorithm>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "adapters/events/event_store.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/integration/gateway_fixture.h"
#include "tests/integration/payments.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;
using emulator::Fault;

class ReconcileTest : public GatewayFixture {
 protected:
  int RequestsTo(const std::string& method, const std::string& path) {
    const auto requests = emulator_->requests();
    return static_cast<int>(
        std::count_if(requests.begin(), requests.end(), [&](const auto& r) {
          return r.method == method && r.path == path;
        }));
  }

  // Clink makes the next payment, but its answer is lost.
  void LoseTheNextPaymentAnswer() {
    Fault fault;
    fault.kind = Fault::Kind::kProcessThenDrop;
    fault.path_prefix = "/api/payment";
    emulator_->SetFault(fault);
  }

  // Retries the keyed payment until it is no longer UNKNOWN (bounded).
  grpc::Status RetryUntilSettled(v1::CreatePaymentResponse* paid) {
    grpc::Status retried;
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    do {
      paid->Clear();
      retried = Pay(paid);
      if (retried.error_code() != grpc::StatusCode::UNKNOWN) break;
      absl::SleepFor(absl::Milliseconds(100));
    } while (absl::Now() < give_up);
    return retried;
  }

  grpc::Status Pay(v1::CreatePaymentResponse* paid) {
    auto context = Context(absl::Seconds(5));
    context->AddMetadata("idempotency-key", "pay-lost");
    context->AddMetadata("x-clink-caller", "checkout-web");
    return payment_->CreatePayment(context.get(),
                                   CardPayment("12.00", "cart-lost"), paid);
  }
};

TEST_F(ReconcileTest, ALostAnswerIsFoundAndTheRetryGetsTheOrder) {
  LoseTheNextPaymentAnswer();

  v1::CreatePaymentResponse paid;
  const grpc::Status lost = Pay(&paid);
  ASSERT_EQ(lost.error_code(), grpc::StatusCode::UNKNOWN)
      << lost.error_message();
  EXPECT_EQ(ErrorInfoOf(lost).metadata().at("outcome"), "unknown");

  // The reconciler's first ListOrders poll (after its initial backoff, 5 s).
  ASSERT_TRUE(emulator_->WaitForRequests(2, absl::Seconds(60)));
  // The key is settled right after that answer; until then a retry replays
  // UNKNOWN (and never sends).
  const grpc::Status retried = RetryUntilSettled(&paid);
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  EXPECT_FALSE(paid.order_id().empty());
  EXPECT_EQ(paid.status(), v1::PAYMENT_RESULT_STATUS_SUCCESS);
  EXPECT_EQ(paid.amount(), "12.00");
  EXPECT_EQ(paid.currency(), "USD");

  // It is that order, and the payment was sent exactly once.
  v1::GetOrderRequest get;
  get.set_order_id(paid.order_id());
  v1::GetOrderResponse order;
  ASSERT_TRUE(payment_->GetOrder(Context().get(), get, &order).ok());
  EXPECT_EQ(order.order().merchant_reference_id(), "cart-lost");
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 1);
  EXPECT_GE(RequestsTo("GET", "/api/order"), 1);
}

TEST_F(ReconcileTest, AnOrderEventSettlesTheKeyBeforeAnyPoll) {
  LoseTheNextPaymentAnswer();
  v1::CreatePaymentResponse paid;
  ASSERT_EQ(Pay(&paid).error_code(), grpc::StatusCode::UNKNOWN);

  // The order Clink made (as its order.succeeded webhook would name it).
  v1::ListOrdersRequest list;
  list.set_customer_id(CardPayment().customer_id());
  v1::ListOrdersResponse orders;
  ASSERT_TRUE(payment_->ListOrders(Context().get(), list, &orders).ok());
  ASSERT_EQ(orders.orders_size(), 1);
  const std::string order_id = orders.orders(0).order_id();
  emulator_->ClearRequests();

  events::EventListener* listener = gateway_->outcome_event_listener();
  ASSERT_NE(listener, nullptr);
  events::StoredEvent event;
  event.merchant = "default";
  event.event_id = "evt_1";
  event.type = "order.succeeded";
  event.body = absl::StrCat(
      R"({"id":"evt_1","type":"order.succeeded","created":1700000000000,)",
      R"("data":{"object":{"orderId":")", order_id,
      R"(","merchantReferenceId":"cart-lost","status":"success"}}})");
  listener->OnEventStored(event);

  const grpc::Status retried = RetryUntilSettled(&paid);
  ASSERT_TRUE(retried.ok()) << retried.error_message();
  EXPECT_EQ(paid.order_id(), order_id);
  // Settled by reading that order, before the first poll (5 s) listed any.
  EXPECT_EQ(RequestsTo("GET", "/api/order/" + order_id), 1);
  EXPECT_EQ(RequestsTo("GET", "/api/order"), 0);
  EXPECT_EQ(RequestsTo("POST", "/api/payment"), 0);
}

}  // namespace
}  // namespace clink_gateway::testing
