// Unknown payment outcomes resolve themselves (issue 12 §5), end to end: the
// gateway in front of the emulator, whose answer to a payment is lost after
// the payment was made.
#include <algorithm>
#include <memory>
#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
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

  grpc::Status Pay(v1::CreatePaymentResponse* paid) {
    auto context = Context(absl::Seconds(5));
    context->AddMetadata("idempotency-key", "pay-lost");
    context->AddMetadata("x-clink-caller", "checkout-web");
    return payment_->CreatePayment(context.get(),
                                   CardPayment("12.00", "cart-lost"), paid);
  }
};

TEST_F(ReconcileTest, ALostAnswerIsFoundAndTheRetryGetsTheOrder) {
  Fault fault;
  fault.kind = Fault::Kind::kProcessThenDrop;
  fault.path_prefix = "/api/payment";
  emulator_->SetFault(fault);

  v1::CreatePaymentResponse paid;
  const grpc::Status lost = Pay(&paid);
  ASSERT_EQ(lost.error_code(), grpc::StatusCode::UNKNOWN)
      << lost.error_message();
  EXPECT_EQ(ErrorInfoOf(lost).metadata().at("outcome"), "unknown");

  // The reconciler's first ListOrders poll (after its initial backoff, 5 s).
  ASSERT_TRUE(emulator_->WaitForRequests(2, absl::Seconds(60)));
  // The key is settled right after that answer; until then a retry replays
  // UNKNOWN (and never sends).
  grpc::Status retried;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  do {
    paid.Clear();
    retried = Pay(&paid);
    if (retried.ok()) break;
    ASSERT_EQ(retried.error_code(), grpc::StatusCode::UNKNOWN)
        << retried.error_message();
    absl::SleepFor(absl::Milliseconds(100));
  } while (absl::Now() < give_up);
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

}  // namespace
}  // namespace clink_gateway::testing
