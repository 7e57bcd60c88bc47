// Runs the real clink_gateway binary, sends SIGTERM while calls are in flight,
// and checks that none of them is lost and the process exits 0 within the drain
// deadline.
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/test_ca.h"

extern char** environ;

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr char kKey[] = "sk_test_sigterm_0123456789";
constexpr int kCalls = 20;

// Reads the child's stdout until the JSON "started" line and returns its
// grpc_port.
int ReadPortFromLog(int fd) {
  std::string buffer;
  char chunk[512];
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (absl::Now() < give_up) {
    const ssize_t n = read(fd, chunk, sizeof(chunk));
    if (n <= 0) return 0;
    buffer.append(chunk, n);
    const size_t at = buffer.find("\"grpc_port\":\"");
    if (at != std::string::npos) {
      const size_t start = at + 13;
      const size_t end = buffer.find('"', start);
      int port = 0;
      if (end != std::string::npos &&
          absl::SimpleAtoi(buffer.substr(start, end - start), &port)) {
        return port;
      }
    }
  }
  return 0;
}

TEST(SigtermDrainTest, InFlightCallsCompleteAndTheProcessExitsZero) {
  std::string dir = absl::StrCat(::testing::TempDir(), "/drainXXXXXX");
  ASSERT_NE(mkdtemp(dir.data()), nullptr);
  auto ca = emulator::GenerateTestCa(dir);
  ASSERT_TRUE(ca.ok()) << ca.status();
  emulator::ClinkEmulator::Options emulator_options;
  emulator_options.api_keys = {kKey};
  emulator_options.tls_cert_pem_path = ca->server_pem;
  auto emulator = emulator::ClinkEmulator::Start(emulator_options);
  ASSERT_TRUE(emulator.ok()) << emulator.status();
  emulator::Fault slow;
  slow.kind = emulator::Fault::Kind::kLatency;
  slow.latency = absl::Milliseconds(800);
  slow.count = -1;
  (*emulator)->SetFault(slow);

  const std::string key_file = absl::StrCat(dir, "/api-key");
  std::ofstream(key_file) << kKey << "\n";

  int out[2];
  ASSERT_EQ(pipe(out), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  const std::string binary = "server/clink_gateway";
  std::vector<std::string> args = {
      binary,
      "--grpc_listen=127.0.0.1:0",
      absl::StrCat("--clink_base_url=", (*emulator)->base_url()),
      absl::StrCat("--api_key_file=", key_file),
      absl::StrCat("--ca_bundle=", ca->ca_cert_pem),
      "--drain_timeout=10s",
  };
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  ASSERT_EQ(posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(),
                        environ),
            0);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  const int port = ReadPortFromLog(out[0]);
  ASSERT_GT(port, 0) << "the gateway did not report its port";

  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", port),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::BillingService::NewStub(channel);
  struct Call {
    grpc::ClientContext context;
    v1::GetProductRequest request;
    v1::GetProductResponse response;
  };
  std::vector<std::unique_ptr<Call>> calls;
  absl::Mutex mu;
  int finished = 0;
  int ok = 0;
  std::vector<std::string> errors;
  for (int i = 0; i < kCalls; ++i) {
    auto call = std::make_unique<Call>();
    call->context.set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    call->request.set_product_id(emulator::kSeedProductBasic);
    stub->async()->GetProduct(&call->context, &call->request, &call->response,
                              [&](grpc::Status status) {
                                absl::MutexLock lock(&mu);
                                ++finished;
                                if (status.ok()) {
                                  ++ok;
                                } else {
                                  errors.push_back(status.error_message());
                                }
                              });
    calls.push_back(std::move(call));
  }
  // Every call has reached Clink (and is held there by the latency fault): now
  // stop.
  ASSERT_TRUE((*emulator)->WaitForRequests(kCalls, absl::Seconds(20)));
  const absl::Time sigterm_at = absl::Now();
  ASSERT_EQ(kill(pid, SIGTERM), 0);

  int wstatus = 0;
  ASSERT_EQ(waitpid(pid, &wstatus, 0), pid);
  const absl::Duration exit_after = absl::Now() - sigterm_at;
  close(out[0]);
  EXPECT_TRUE(WIFEXITED(wstatus)) << wstatus;
  EXPECT_EQ(WEXITSTATUS(wstatus), 0);
  EXPECT_LT(exit_after, absl::Seconds(10));

  absl::MutexLock lock(&mu);
  ASSERT_TRUE(
      mu.AwaitWithTimeout(absl::Condition(
                              +[](int* n) { return *n == kCalls; }, &finished),
                          absl::Seconds(20)));
  EXPECT_EQ(ok, kCalls) << (errors.empty() ? "" : errors.front());
}

}  // namespace
}  // namespace clink_gateway::testing
