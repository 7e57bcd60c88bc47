// Runs the real clink_gateway binary, sends SIGTERM while calls are in flight,
// and checks what callers see and that the process exits 0 in time.
#include <sys/wait.h>

#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/test_ca.h"
#include "tests/integration/gateway_process.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr char kKey[] = "sk_test_sigterm_0123456789";
constexpr int kCalls = 20;

// What one finished call returned.
struct Outcome {
  grpc::StatusCode code = grpc::StatusCode::OK;
  std::string message;
  std::string error_info_outcome;  // ErrorInfo metadata "outcome", if any.
};

std::string ErrorInfoOutcome(const grpc::Status& status) {
  google::rpc::Status rich;
  if (!rich.ParseFromString(status.error_details())) return "";
  for (const auto& any : rich.details()) {
    google::rpc::ErrorInfo info;
    if (any.type_url() == "type.googleapis.com/google.rpc.ErrorInfo" &&
        info.ParseFromString(any.value())) {
      const auto it = info.metadata().find("outcome");
      return it == info.metadata().end() ? "" : it->second;
    }
  }
  return "";
}

class SigtermDrainTest : public ::testing::Test {
 protected:
  // Starts the emulator (every /api call delayed by `upstream_latency`) and the
  // gateway binary with `drain`.
  void Start(absl::Duration upstream_latency, absl::Duration drain) {
    std::string dir = absl::StrCat(::testing::TempDir(), "/drainXXXXXX");
    ASSERT_NE(mkdtemp(dir.data()), nullptr);
    auto ca = emulator::GenerateTestCa(dir);
    ASSERT_TRUE(ca.ok()) << ca.status();
    emulator::ClinkEmulator::Options emulator_options;
    emulator_options.api_keys = {kKey};
    emulator_options.tls_cert_pem_path = ca->server_pem;
    auto emulator = emulator::ClinkEmulator::Start(emulator_options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    emulator::Fault slow;
    slow.kind = emulator::Fault::Kind::kLatency;
    slow.latency = upstream_latency;
    slow.count = -1;
    emulator_->SetFault(slow);

    const std::string key_file = absl::StrCat(dir, "/api-key");
    std::ofstream(key_file) << kKey << "\n";
    auto gateway = GatewayProcess::Start({
        absl::StrCat("--clink_base_url=", emulator_->base_url()),
        "--egress_allow_cidrs=127.0.0.0/8",
        absl::StrCat("--api_key_dir=", dir),
        absl::StrCat("--ca_bundle=", ca->ca_cert_pem),
        absl::StrCat("--drain_timeout=", absl::FormatDuration(drain)),
    });
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    channel_ = gateway_->NewChannel();
  }

  // Records a finished call.
  void Done(const grpc::Status& status) {
    absl::MutexLock lock(&mu_);
    outcomes_.push_back({status.error_code(), status.error_message(),
                         ErrorInfoOutcome(status)});
  }

  // Sends SIGTERM once every call has reached Clink, waits for the exit, and
  // returns how long it took; the exit status must be 0.
  absl::Duration TerminateWhenAllInFlight() {
    EXPECT_TRUE(emulator_->WaitForRequests(kCalls, absl::Seconds(20)));
    const absl::Time sigterm_at = absl::Now();
    const int wstatus = gateway_->Terminate();
    const absl::Duration took = absl::Now() - sigterm_at;
    EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
    return took;
  }

  std::vector<Outcome> WaitForAllOutcomes() {
    absl::MutexLock lock(&mu_);
    auto all = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return outcomes_.size() == static_cast<size_t>(kCalls);
    };
    EXPECT_TRUE(mu_.AwaitWithTimeout(absl::Condition(&all), absl::Seconds(20)));
    return outcomes_;
  }

  std::unique_ptr<emulator::ClinkEmulator> emulator_;
  std::unique_ptr<GatewayProcess> gateway_;
  std::shared_ptr<grpc::Channel> channel_;
  absl::Mutex mu_;
  std::vector<Outcome> outcomes_ ABSL_GUARDED_BY(mu_);
};

TEST_F(SigtermDrainTest, InFlightCallsCompleteWithinTheDrain) {
  Start(/*upstream_latency=*/absl::Milliseconds(800),
        /*drain=*/absl::Seconds(10));
  auto stub = v1::BillingService::NewStub(channel_);
  struct Call {
    grpc::ClientContext context;
    v1::GetProductRequest request;
    v1::GetProductResponse response;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<Call>();
    call->context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    call->request.set_product_id(emulator::kSeedProductBasic);
    stub->async()->GetProduct(&call->context, &call->request, &call->response,
                              [this](grpc::Status s) { Done(s); });
    calls.push_back(std::move(call));
  }
  EXPECT_LT(TerminateWhenAllInFlight(), absl::Seconds(10));
  for (const Outcome& o : WaitForAllOutcomes()) {
    EXPECT_EQ(o.code, grpc::StatusCode::OK) << o.message;
  }
}

TEST_F(SigtermDrainTest, PaymentsOutlastingTheDrainAreReportedUnknown) {
  // Clink takes longer than the drain allows: each caller must learn that its
  // payment's outcome is unknown, never get a bare UNAVAILABLE it would retry.
  Start(/*upstream_latency=*/absl::Seconds(5), /*drain=*/absl::Seconds(1));
  auto stub = v1::PaymentService::NewStub(channel_);
  struct Call {
    grpc::ClientContext context;
    v1::CreatePaymentRequest request;
    v1::CreatePaymentResponse response;
  };
  std::vector<std::unique_ptr<Call>> calls;
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<Call>();
    call->context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    call->request.set_customer_id(emulator::kSeedCustomerId);
    call->request.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
    call->request.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
    call->request.set_return_url("https://shop.example/return");
    call->request.set_amount("4.20");
    call->request.set_currency("USD");
    stub->async()->CreatePayment(&call->context, &call->request,
                                 &call->response,
                                 [this](grpc::Status s) { Done(s); });
    calls.push_back(std::move(call));
  }
  EXPECT_LT(TerminateWhenAllInFlight(), absl::Seconds(4));  // drain + grace
  for (const Outcome& o : WaitForAllOutcomes()) {
    EXPECT_EQ(o.code, grpc::StatusCode::UNKNOWN) << o.message;
    EXPECT_EQ(o.error_info_outcome, "unknown") << o.message;
  }
}

TEST_F(SigtermDrainTest, UnderSteadyLoadEveryCallThatReachedClinkSucceeds) {
  // 16 callers in a closed loop; SIGTERM arrives mid-stream. Whatever the
  // gateway had forwarded to Clink by then must complete normally; calls it
  // refused while shutting down never reached Clink (a client retries those on
  // another replica).
  Start(/*upstream_latency=*/absl::Milliseconds(100),
        /*drain=*/absl::Seconds(10));
  auto stub = v1::BillingService::NewStub(channel_);
  struct Call {
    std::string id;
    grpc::ClientContext context;
    v1::GetProductRequest request;
    v1::GetProductResponse response;
  };
  absl::Mutex mu;
  bool stop = false;
  int outstanding = 0;
  int next_id = 0;
  std::map<std::string, grpc::StatusCode> finished;
  std::function<void()> issue = [&]() {
    auto call = std::make_shared<Call>();
    {
      absl::MutexLock lock(&mu);
      if (stop) return;
      ++outstanding;
      call->id = absl::StrCat("load-", next_id++);
    }
    call->context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    call->context.AddMetadata("x-request-id", call->id);
    call->request.set_product_id(emulator::kSeedProductBasic);
    stub->async()->GetProduct(&call->context, &call->request, &call->response,
                              [&, call](grpc::Status status) {
                                {
                                  absl::MutexLock lock(&mu);
                                  finished[call->id] = status.error_code();
                                }
                                // A caller stops at its first refusal (the
                                // gateway is shutting down): no busy loop of
                                // instantly failing calls.
                                if (status.ok()) issue();
                                // Last: once `outstanding` is 0 the test may
                                // return and destroy mu, issue and finished,
                                // so nothing of them is touched after this.
                                absl::MutexLock lock(&mu);
                                --outstanding;
                              });
  };
  constexpr int kCallers = 16;
  for (int i = 0; i < kCallers; ++i) issue();
  ASSERT_TRUE(emulator_->WaitForRequests(5 * kCallers, absl::Seconds(20)));

  const absl::Time sigterm_at = absl::Now();
  const int wstatus = gateway_->Terminate();
  const absl::Duration took = absl::Now() - sigterm_at;
  EXPECT_TRUE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0) << wstatus;
  EXPECT_LT(took, absl::Seconds(10));
  {
    absl::MutexLock lock(&mu);
    stop = true;
    auto idle = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return outstanding == 0;
    };
    ASSERT_TRUE(mu.AwaitWithTimeout(absl::Condition(&idle), absl::Seconds(20)));
  }
  int reached_clink = 0;
  for (const auto& request : emulator_->requests()) {
    const auto it = finished.find(request.request_id);
    ASSERT_NE(it, finished.end()) << request.request_id;
    EXPECT_EQ(it->second, grpc::StatusCode::OK) << request.request_id;
    ++reached_clink;
  }
  EXPECT_GE(reached_clink, 5 * kCallers);
}

}  // namespace
}  // namespace clink_gateway::testing
