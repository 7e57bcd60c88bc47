// The services without a server: grpc::testing::DefaultReactorTestPeer drives
// the handlers, with a fake ClinkApi that answers from another thread, as the
// transport does.
#include "server/services.h"

#include <memory>
#include <thread>
#include <utility>

#include "common/errors/error_details.h"
#include "common/sync.h"
#include "common/testing/fake_clock.h"
#include "grpcpp/test/default_reactor_test_peer.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;

// Records the call and completes it later, on its own thread.
class FakeClinkApi final : public clink::ClinkApi {
 public:
  void Call(const google::protobuf::MethodDescriptor& method,
            const google::protobuf::Message& request,
            const clink::CallOptions& options,
            google::protobuf::Message* response, Callback done) override {
    method_name = method.full_name();
    seen_options = options;
    request_type = request.GetDescriptor()->full_name();
    worker = std::thread([this, response, done = std::move(done)]() mutable {
      if (fill) fill(response);
      clink::CallResult call;
      call.status = result;
      call.endpoint = "POST /payment";
      call.http_status = 200;
      std::move(done)(std::move(call));
    });
  }
  ~FakeClinkApi() override { JoinWorker(); }

  // The test peer's Finish runs our callback and then still writes to the
  // ServerContext: join the worker before the context goes.
  void JoinWorker() {
    if (worker.joinable()) worker.join();
  }

  std::function<void(google::protobuf::Message*)> fill;
  absl::Status result;
  std::string method_name;
  std::string request_type;
  clink::CallOptions seen_options;
  std::thread worker;
};

class ServicesTest : public testing::Test {
 protected:
  void SetUp() override {
    auto codec =
        clink::RestCodec::CreateForServices(clink::GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    forwarder_ = std::make_unique<RpcForwarder>(*codec_, api_, clock_,
                                                ForwarderOptions{});
  }

  FakeClock clock_;
  std::unique_ptr<clink::RestCodec> codec_;
  std::unique_ptr<RpcForwarder> forwarder_;
  // Last, so it is destroyed (and its worker joined) before what it calls into.
  FakeClinkApi api_;
};

TEST_F(ServicesTest,
       ForwardsToTheMappedMethodAndFinishesFromTheTransportThread) {
  PaymentServiceImpl service(*forwarder_);
  grpc::CallbackServerContext context;
  Notification finished;
  grpc::Status final_status;
  grpc::testing::DefaultReactorTestPeer peer(&context, [&](grpc::Status s) {
    final_status = std::move(s);
    finished.Notify();
  });
  api_.fill = [](google::protobuf::Message* m) {
    static_cast<v1::CreatePaymentResponse*>(m)->set_order_id("ord_1");
  };
  v1::CreatePaymentRequest request;
  v1::CreatePaymentResponse response;
  grpc::ServerUnaryReactor* reactor =
      service.CreatePayment(&context, &request, &response);
  EXPECT_EQ(reactor, peer.reactor());
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(10)));
  api_.JoinWorker();
  EXPECT_TRUE(final_status.ok());
  EXPECT_EQ(response.order_id(), "ord_1");
  EXPECT_EQ(api_.method_name, "clink.gateway.v1.PaymentService.CreatePayment");
  EXPECT_EQ(api_.request_type, "clink.gateway.v1.CreatePaymentRequest");
  // No caller deadline: bounded by max_rpc_timeout (30 s by default), minus the
  // margin.
  EXPECT_LE(api_.seen_options.deadline, clock_.Now() + absl::Seconds(30));
  EXPECT_EQ(api_.seen_options.request_id.size(), 32u);  // Generated.
}

TEST_F(ServicesTest, ErrorsKeepTheirCodeAndDetails) {
  BillingServiceImpl service(*forwarder_);
  grpc::CallbackServerContext context;
  Notification finished;
  grpc::Status final_status;
  grpc::testing::DefaultReactorTestPeer peer(&context, [&](grpc::Status s) {
    final_status = std::move(s);
    finished.Notify();
  });
  api_.result = errors::InvalidArgumentWithViolations(
      {{"subscription_id", "is required"}});
  v1::GetSubscriptionRequest request;
  v1::GetSubscriptionResponse response;
  service.GetSubscription(&context, &request, &response);
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(10)));
  api_.JoinWorker();
  EXPECT_EQ(final_status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_FALSE(final_status.error_details().empty());
}

TEST(UpstreamDeadlineTest, LeavesAMarginAndHonoursTheCap) {
  const absl::Time now = absl::FromUnixSeconds(1000);
  EXPECT_EQ(
      UpstreamDeadline(now + absl::Milliseconds(300), now, absl::Seconds(30)),
      now + absl::Milliseconds(270));
  EXPECT_EQ(UpstreamDeadline(now + absl::Seconds(10), now, absl::Seconds(30)),
            now + absl::Seconds(10) - absl::Milliseconds(50));
  EXPECT_EQ(UpstreamDeadline(absl::InfiniteFuture(), now, absl::Seconds(30)),
            now + absl::Seconds(30));
  EXPECT_EQ(
      UpstreamDeadline(now - absl::Seconds(1), now, absl::Seconds(30)),
      now - absl::Seconds(1));  // Already passed: the transport sends nothing.
}

}  // namespace
}  // namespace clink_gateway::server
