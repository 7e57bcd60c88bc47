// A crash never costs money: the real clink_gateway binary, with its default
// idempotency store (SQLite in --state_dir), is SIGKILLed with a keyed payment
// in flight at Clink and restarted on the same state directory; the caller's
// retry with the same key must not reach Clink again.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
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

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr char kApiKey[] = "sk_test_crash_0123456789";

// The google.rpc.ErrorInfo reason in `status`'s details, or "".
std::string ErrorInfoReason(const grpc::Status& status) {
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

class CrashSafetyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string dir = absl::StrCat(::testing::TempDir(), "/crashXXXXXX");
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    auto ca = emulator::GenerateTestCa(dir);
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_pem_ = ca->ca_cert_pem;
    emulator::ClinkEmulator::Options emulator_options;
    emulator_options.api_keys = {kApiKey};
    emulator_options.tls_cert_pem_path = ca->server_pem;
    auto emulator = emulator::ClinkEmulator::Start(emulator_options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    key_dir_ = absl::StrCat(dir, "/keys");
    ASSERT_EQ(mkdir(key_dir_.c_str(), 0700), 0);
    std::ofstream(absl::StrCat(key_dir_, "/api-key")) << kApiKey << "\n";
    state_dir_ = absl::StrCat(dir, "/state");
  }

  // The gateway as deployed: no idempotency flag, only where its state lives.
  void StartGateway() {
    auto gateway = GatewayProcess::Start({
        absl::StrCat("--clink_base_url=", emulator_->base_url()),
        "--egress_allow_cidrs=127.0.0.0/8",
        absl::StrCat("--api_key_dir=", key_dir_),
        absl::StrCat("--ca_bundle=", ca_pem_),
        absl::StrCat("--state_dir=", state_dir_),
    });
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    EXPECT_NE(gateway_->output().find("\"idempotency_store\":\"sqlite\""),
              std::string::npos)
        << gateway_->output();
    payment_ = v1::PaymentService::NewStub(gateway_->NewChannel());
  }

  // SIGKILL: no drain, no destructor, nothing flushed by the gateway.
  void KillGateway() {
    ASSERT_EQ(kill(gateway_->pid(), SIGKILL), 0);
    int wstatus = 0;
    ASSERT_EQ(waitpid(gateway_->pid(), &wstatus, 0), gateway_->pid());
    EXPECT_TRUE(WIFSIGNALED(wstatus) && WTERMSIG(wstatus) == SIGKILL);
    payment_.reset();
    gateway_.reset();
  }

  static std::unique_ptr<grpc::ClientContext> Keyed(const std::string& key) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    context->AddMetadata("idempotency-key", key);
    context->AddMetadata("x-clink-caller", "checkout-web");
    return context;
  }

  int PaymentPosts() const {
    int n = 0;
    for (const auto& r : emulator_->requests()) {
      n += r.method == "POST" && r.path == "/api/payment";
    }
    return n;
  }

  std::string ca_pem_;
  std::string key_dir_;
  std::string state_dir_;
  std::unique_ptr<emulator::ClinkEmulator> emulator_;
  std::unique_ptr<GatewayProcess> gateway_;
  std::unique_ptr<v1::PaymentService::Stub> payment_;
};

TEST_F(CrashSafetyTest, PaymentInFlightAtACrashIsNeverSentAgain) {
  StartGateway();
  // Clink holds the payment: it is in flight when the gateway dies.
  emulator::Fault hold;
  hold.kind = emulator::Fault::Kind::kLatency;
  hold.latency = absl::Seconds(60);
  hold.path_prefix = "/api/payment";
  hold.count = 1;
  emulator_->SetFault(hold);

  auto first_context = Keyed("pay-crash-1");
  const v1::CreatePaymentRequest request =
      CardPayment("19.99", "order-crash-1");
  v1::CreatePaymentResponse first_response;
  absl::Notification first_done;
  grpc::Status first_status;
  payment_->async()->CreatePayment(first_context.get(), &request,
                                   &first_response, [&](grpc::Status s) {
                                     first_status = s;
                                     first_done.Notify();
                                   });
  ASSERT_TRUE(emulator_->WaitForRequests(1, absl::Seconds(20)));
  ASSERT_EQ(PaymentPosts(), 1);
  KillGateway();
  ASSERT_TRUE(first_done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_FALSE(first_status.ok());  // The caller does not know: it retries.

  StartGateway();  // Same state directory, default configuration.
  EXPECT_NE(gateway_->output().find("idempotency_keys_abandoned"),
            std::string::npos)
      << gateway_->output();
  for (int attempt = 0; attempt < 2; ++attempt) {
    v1::CreatePaymentResponse retried;
    const grpc::Status status =
        payment_->CreatePayment(Keyed("pay-crash-1").get(), request, &retried);
    // The first attempt may have charged: the caller is told UNKNOWN (or
    // would get the real result), never a second charge.
    if (!status.ok()) {
      EXPECT_EQ(status.error_code(), grpc::StatusCode::UNKNOWN)
          << status.error_message();
      EXPECT_EQ(ErrorInfoReason(status), "IDEMPOTENT_CALL_ABANDONED")
          << status.error_message();
    }
  }
  EXPECT_EQ(PaymentPosts(), 1);

  // Another key is a new payment: the gateway works normally.
  v1::CreatePaymentResponse fresh;
  const grpc::Status other =
      payment_->CreatePayment(Keyed("pay-crash-2").get(), request, &fresh);
  EXPECT_TRUE(other.ok()) << other.error_message();
  EXPECT_EQ(PaymentPosts(), 2);
}

TEST_F(CrashSafetyTest, CompletedPaymentReplaysAfterACrash) {
  StartGateway();
  const v1::CreatePaymentRequest request =
      CardPayment("19.99", "order-crash-1");
  v1::CreatePaymentResponse paid;
  const grpc::Status status =
      payment_->CreatePayment(Keyed("pay-done-1").get(), request, &paid);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(paid.order_id().empty()) << paid.DebugString();
  EXPECT_EQ(PaymentPosts(), 1);
  KillGateway();

  StartGateway();
  v1::CreatePaymentResponse replayed;
  const grpc::Status again =
      payment_->CreatePayment(Keyed("pay-done-1").get(), request, &replayed);
  ASSERT_TRUE(again.ok()) << again.error_message();
  EXPECT_EQ(replayed.SerializeAsString(), paid.SerializeAsString());
  EXPECT_EQ(PaymentPosts(), 1);
}

}  // namespace
}  // namespace clink_gateway::testing
