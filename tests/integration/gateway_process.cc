#include "tests/integration/gateway_process.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace clink_gateway::testing {
namespace {

constexpr char kBinary[] = "server/clink_gateway";
constexpr absl::Duration kStartTimeout = absl::Seconds(30);

// The port named `field` ("grpc_port", "metrics_port") in the "started" log
// line in `output`, or 0.
int PortIn(const std::string& output, absl::string_view field = "grpc_port") {
  const std::string key = absl::StrCat("\"", field, "\":\"");
  const size_t at = output.find(key);
  if (at == std::string::npos) return 0;
  const size_t start = at + key.size();
  const size_t end = output.find('"', start);
  int port = 0;
  if (end == std::string::npos ||
      !absl::SimpleAtoi(output.substr(start, end - start), &port)) {
    return 0;
  }
  return port;
}

}  // namespace

absl::StatusOr<std::unique_ptr<GatewayProcess>> GatewayProcess::Start(
    const std::vector<std::string>& flags) {
  std::unique_ptr<GatewayProcess> process(new GatewayProcess());
  int out[2];
  if (pipe(out) != 0) return absl::InternalError("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  // Metrics on a free port too (flags may override): replicas and tests
  // running side by side must not all take the default 9464.
  std::vector<std::string> args = {kBinary, "--grpc_listen=127.0.0.1:0",
                                   "--metrics_listen=127.0.0.1:0"};
  args.insert(args.end(), flags.begin(), flags.end());
  // Plaintext gRPC unless the test gives the gateway its TLS files.
  if (std::none_of(flags.begin(), flags.end(), [](const std::string& flag) {
        return absl::StartsWith(flag, "--grpc_tls_") ||
               absl::StartsWith(flag, "--grpc_insecure");
      })) {
    args.push_back("--grpc_insecure");
  }
  if (std::none_of(flags.begin(), flags.end(), [](const std::string& flag) {
        return absl::StartsWith(flag, "--state_dir=");
      })) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    std::string dir =
        absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/gateway-state-XXXXXX");
    if (mkdtemp(dir.data()) == nullptr) {
      return absl::InternalError("cannot make a state directory");
    }
    args.push_back(absl::StrCat("--state_dir=", dir));
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const int rc = posix_spawn(&process->pid_, kBinary, &actions, nullptr,
                             argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out[1]);
  if (rc != 0) {
    close(out[0]);
    return absl::InternalError(absl::StrCat("cannot spawn ", kBinary));
  }
  process->stdout_fd_ = out[0];
  GatewayProcess* self = process.get();
  process->reader_ = std::thread([self] { self->CollectOutput(); });

  absl::MutexLock lock(&process->mu_);
  auto started = [self]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(self->mu_) {
    return PortIn(self->output_) > 0 ||
           self->output_.find("startup_failed") != std::string::npos;
  };
  if (!process->mu_.AwaitWithTimeout(absl::Condition(&started),
                                     kStartTimeout)) {
    return absl::DeadlineExceededError("the gateway did not report its port");
  }
  process->port_ = PortIn(process->output_);
  process->metrics_port_ = PortIn(process->output_, "metrics_port");
  process->webhook_port_ = PortIn(process->output_, "webhook_port");
  if (process->port_ == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the gateway failed to start: ", process->output_));
  }
  return process;
}

void GatewayProcess::CollectOutput() {
  char chunk[4096];
  for (;;) {
    const ssize_t n = read(stdout_fd_, chunk, sizeof(chunk));
    if (n <= 0) return;  // EOF: the process exited.
    absl::MutexLock lock(&mu_);
    output_.append(chunk, static_cast<size_t>(n));
  }
}

GatewayProcess::~GatewayProcess() {
  if (pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (reader_.joinable()) reader_.join();
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

std::shared_ptr<grpc::Channel> GatewayProcess::NewChannel() const {
  return grpc::CreateChannel(absl::StrCat("127.0.0.1:", port_),
                             grpc::InsecureChannelCredentials());
}

int GatewayProcess::Terminate() { return Signal(SIGTERM); }

int GatewayProcess::Kill() { return Signal(SIGKILL); }

int GatewayProcess::Signal(int signal) {
  if (pid_ <= 0) return -1;
  kill(pid_, signal);
  int wstatus = 0;
  if (waitpid(pid_, &wstatus, 0) != pid_) return -1;
  pid_ = 0;
  return wstatus;
}

std::string GatewayProcess::output() const {
  absl::MutexLock lock(&mu_);
  return output_;
}

}  // namespace clink_gateway::testing
