// Two real gateway processes sharing one real Redis: a keyed payment reaches
// Clink once whichever replica the retries land on, and while Redis is down
// keyed writes fail closed while reads and unkeyed calls keep working.
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/test_ca.h"
#include "tests/integration/gateway_process.h"
#include "tests/integration/payments.h"
#include "tests/redis/redis_server.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr char kKey[] = "sk_test_fleet_0123456789abcdef";

std::string ErrorReason(const grpc::Status& status) {
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details())) return "";
  for (const auto& any : rich.details()) {
    google::rpc::ErrorInfo info;
    if (any.type_url() == "type.googleapis.com/google.rpc.ErrorInfo" &&
        info.ParseFromString(any.value())) {
      return info.reason();
    }
  }
  return "";
}

class RedisFleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = absl::StrCat(::testing::TempDir(), "/fleetXXXXXX");
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    auto ca = emulator::GenerateTestCa(dir);
    ASSERT_TRUE(ca.ok()) << ca.status();
    emulator::ClinkEmulator::Options emulator_options;
    emulator_options.api_keys = {kKey};
    emulator_options.tls_cert_pem_path = ca->server_pem;
    auto emulator = emulator::ClinkEmulator::Start(emulator_options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);

    // Persistent, as production Redis must be: a restart keeps the keys.
    RedisServer::Options redis_options;
    redis_options.extra_args = {"--appendonly", "yes", "--appendfsync",
                                "always"};
    auto redis = RedisServer::Create(redis_options);
    ASSERT_TRUE(redis.ok()) << redis.status();
    redis_ = *std::move(redis);

    key_dir_ = dir;
    std::ofstream(absl::StrCat(dir, "/api-key")) << kKey << "\n";
    ca_bundle_ = ca->ca_cert_pem;
    for (int i = 0; i < 2; ++i) StartGateway({});
  }

  void StartGateway(const std::vector<std::string>& extra_flags) {
    std::vector<std::string> flags = {
        absl::StrCat("--clink_base_url=", emulator_->base_url()),
        "--egress_allow_cidrs=127.0.0.0/8",
        absl::StrCat("--api_key_dir=", key_dir_),
        absl::StrCat("--ca_bundle=", ca_bundle_),
        absl::StrCat("--idempotency_redis=", redis_->address()),
    };
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    auto gateway = GatewayProcess::Start(flags);
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    stubs_.push_back(v1::PaymentService::NewStub((*gateway)->NewChannel()));
    gateways_.push_back(*std::move(gateway));
  }

  static std::unique_ptr<grpc::ClientContext> Context(
      const std::string& idempotency_key = "") {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!idempotency_key.empty()) {
      context->AddMetadata("idempotency-key", idempotency_key);
      context->AddMetadata("x-clink-caller", "orders");
    }
    return context;
  }

  // Lua script runs (EVAL + EVALSHA) Redis has served so far.
  int64_t ScriptCalls() {
    auto reply = redis_->Command({"INFO", "commandstats"});
    if (!reply.ok()) return -1;
    int64_t total = 0;
    for (absl::string_view name :
         {"cmdstat_evalsha:calls=", "cmdstat_eval:calls="}) {
      const size_t at = reply->text.find(std::string(name));
      if (at == std::string::npos) continue;
      const size_t start = at + name.size();
      int64_t calls = 0;
      if (absl::SimpleAtoi(
              reply->text.substr(start, reply->text.find(',', start) - start),
              &calls)) {
        total += calls;
      }
    }
    return total;
  }

  int PaymentsSent() {
    int n = 0;
    for (const auto& r : emulator_->requests()) {
      n += r.method == "POST" && r.path == "/api/payment";
    }
    return n;
  }

  std::string key_dir_;  // Holds api-key.
  std::string ca_bundle_;
  std::unique_ptr<emulator::ClinkEmulator> emulator_;
  std::unique_ptr<RedisServer> redis_;
  std::vector<std::unique_ptr<GatewayProcess>> gateways_;
  std::vector<std::unique_ptr<v1::PaymentService::Stub>> stubs_;
};

TEST_F(RedisFleetTest, ConcurrentDuplicatesAcrossTwoReplicasReachClinkOnce) {
  emulator::Fault slow;
  slow.kind = emulator::Fault::Kind::kLatency;
  slow.path_prefix = "/api/payment";
  slow.latency = absl::Milliseconds(300);
  slow.count = -1;
  emulator_->SetFault(slow);

  constexpr int kCalls = 50;
  const v1::CreatePaymentRequest request =
      CardPayment("99.99", /*merchant_reference_id=*/"");
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<v1::CreatePaymentResponse> responses(kCalls);
  std::vector<grpc::Status> statuses(kCalls);
  absl::BlockingCounter done(kCalls);
  for (int i = 0; i < kCalls; ++i) {
    contexts.push_back(Context("fleet-pay-1"));
    stubs_[i % 2]->async()->CreatePayment(
        contexts.back().get(), &request, &responses[i],
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
  EXPECT_EQ(PaymentsSent(), 1);

  // A later retry on either replica replays the same payment.
  for (auto& stub : stubs_) {
    v1::CreatePaymentResponse again;
    ASSERT_TRUE(
        stub->CreatePayment(Context("fleet-pay-1").get(), request, &again)
            .ok());
    EXPECT_EQ(again.order_id(), responses[0].order_id());
  }
  EXPECT_EQ(PaymentsSent(), 1);
}

TEST_F(RedisFleetTest, RedisDownFailsKeyedWritesClosedAndNothingIsSentTwice) {
  v1::CreatePaymentResponse first;
  ASSERT_TRUE(stubs_[0]
                  ->CreatePayment(
                      Context("fleet-pay-2").get(),
                      CardPayment("5.00", /*merchant_reference_id=*/""), &first)
                  .ok());
  ASSERT_EQ(PaymentsSent(), 1);

  ASSERT_TRUE(redis_->Stop().ok());
  for (auto& stub : stubs_) {
    // A keyed write cannot be deduplicated: refused, nothing sent.
    v1::CreatePaymentResponse paid;
    const grpc::Status keyed = stub->CreatePayment(
        Context("fleet-pay-3").get(),
        CardPayment("6.00", /*merchant_reference_id=*/""), &paid);
    EXPECT_EQ(keyed.error_code(), grpc::StatusCode::UNAVAILABLE)
        << keyed.error_message();
    EXPECT_EQ(ErrorReason(keyed), "IDEMPOTENCY_STORE_UNAVAILABLE");
    // The retry of the first payment is refused too, not re-sent.
    const grpc::Status retry = stub->CreatePayment(
        Context("fleet-pay-2").get(),
        CardPayment("5.00", /*merchant_reference_id=*/""), &paid);
    EXPECT_EQ(retry.error_code(), grpc::StatusCode::UNAVAILABLE);
    // Reads and unkeyed calls do not need the store.
    v1::GetOrderRequest get;
    get.set_order_id(first.order_id());
    v1::GetOrderResponse order;
    const grpc::Status read = stub->GetOrder(Context().get(), get, &order);
    EXPECT_TRUE(read.ok()) << read.error_message();
  }
  EXPECT_EQ(PaymentsSent(), 1);
  v1::CreatePaymentResponse unkeyed;
  EXPECT_TRUE(
      stubs_[1]
          ->CreatePayment(Context().get(),
                          CardPayment("7.00", /*merchant_reference_id=*/""),
                          &unkeyed)
          .ok());
  EXPECT_EQ(PaymentsSent(), 2);

  // Back up (with its data): the first payment's key replays, on either
  // replica, once the store has reconnected by itself.
  ASSERT_TRUE(redis_->Start().ok());
  for (auto& stub : stubs_) {
    v1::CreatePaymentResponse again;
    grpc::Status status;
    for (int attempt = 0; attempt < 100; ++attempt) {  // reconnect backoff
      status = stub->CreatePayment(
          Context("fleet-pay-2").get(),
          CardPayment("5.00", /*merchant_reference_id=*/""), &again);
      if (status.error_code() != grpc::StatusCode::UNAVAILABLE) break;
      absl::SleepFor(absl::Milliseconds(50));  // polling an external process
    }
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(again.order_id(), first.order_id());
  }
  EXPECT_EQ(PaymentsSent(), 2);
}

TEST_F(RedisFleetTest, ADrainingReplicaStopsWaitingForAnotherReplicasKey) {
  // Replica 0 holds the key while Clink takes 8 s; replica 2 (drain 1 s) has a
  // duplicate waiting on it. SIGTERM must not wait for the holder: the waiting
  // caller is told to retry with the same key, and the process exits within
  // the drain plus its 2 s grace.
  StartGateway({"--drain_timeout=1s"});
  emulator::Fault slow;
  slow.kind = emulator::Fault::Kind::kLatency;
  slow.path_prefix = "/api/payment";
  slow.latency = absl::Seconds(8);
  slow.count = 1;
  emulator_->SetFault(slow);
  const v1::CreatePaymentRequest request =
      CardPayment("12.34", /*merchant_reference_id=*/"");

  auto holder_context = Context("fleet-pay-drain");
  holder_context->set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
  v1::CreatePaymentResponse holder_response;
  grpc::Status holder_status;
  absl::Notification holder_done;
  stubs_[0]->async()->CreatePayment(holder_context.get(), &request,
                                    &holder_response, [&](grpc::Status s) {
                                      holder_status = std::move(s);
                                      holder_done.Notify();
                                    });
  ASSERT_TRUE(emulator_->WaitForRequests(1, absl::Seconds(10)));

  auto waiter_context = Context("fleet-pay-drain");
  waiter_context->set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
  v1::CreatePaymentResponse waiter_response;
  grpc::Status waiter_status;
  absl::Notification waiter_done;
  stubs_[2]->async()->CreatePayment(waiter_context.get(), &request,
                                    &waiter_response, [&](grpc::Status s) {
                                      waiter_status = std::move(s);
                                      waiter_done.Notify();
                                    });
  // The duplicate is waiting once its replica has asked Redis about the key
  // at least twice (its Begin, then a poll).
  const int64_t baseline = ScriptCalls();
  bool waiting = false;
  for (int i = 0; i < 200 && !waiting; ++i) {  // bounded: about 10 s
    waiting = ScriptCalls() >= baseline + 2;
    if (!waiting) absl::SleepFor(absl::Milliseconds(50));  // polling Redis
  }
  ASSERT_TRUE(waiting);
  EXPECT_FALSE(waiter_done.HasBeenNotified());

  const absl::Time sigterm_at = absl::Now();
  const int wstatus = gateways_[2]->Terminate();
  EXPECT_LT(absl::Now() - sigterm_at, absl::Seconds(3) + absl::Seconds(1));
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
  ASSERT_TRUE(waiter_done.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(waiter_status.error_code(), grpc::StatusCode::ABORTED)
      << waiter_status.error_message();
  EXPECT_EQ(ErrorReason(waiter_status), "IDEMPOTENCY_KEY_IN_USE");

  // The holder finishes normally, and the key then replays its payment.
  ASSERT_TRUE(holder_done.WaitForNotificationWithTimeout(absl::Seconds(15)));
  ASSERT_TRUE(holder_status.ok()) << holder_status.error_message();
  v1::CreatePaymentResponse again;
  ASSERT_TRUE(
      stubs_[1]
          ->CreatePayment(Context("fleet-pay-drain").get(), request, &again)
          .ok());
  EXPECT_EQ(again.order_id(), holder_response.order_id());
  EXPECT_EQ(PaymentsSent(), 1);
}

}  // namespace
}  // namespace clink_gateway::testing
