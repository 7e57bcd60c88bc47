// The real clink_gateway binary as a child process, for tests that need a
// separate process (SIGTERM handling, several replicas sharing Redis).
#ifndef CLINK_GATEWAY_TESTS_INTEGRATION_GATEWAY_PROCESS_H_
#define CLINK_GATEWAY_TESTS_INTEGRATION_GATEWAY_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"

namespace clink_gateway::testing {

class GatewayProcess {
 public:
  // Spawns server/clink_gateway (a data dependency of the test) with
  // --grpc_listen=127.0.0.1:0 --metrics_listen=127.0.0.1:0 plus `flags`, and
  // waits (bounded) for its "started" log line to learn the ports. Unless
  // `flags` name a --state_dir, the gateway gets a new empty one under the
  // test's temp dir (its default /var/lib/clink-gateway would be shared by
  // every test, and one process per state dir is all the store allows).
  // Unless `flags` name --grpc_tls_* files (or --grpc_insecure), it gets
  // --grpc_insecure (plaintext, as NewChannel() expects). Its
  // stdout is collected in the background (see output()).
  static absl::StatusOr<std::unique_ptr<GatewayProcess>> Start(
      const std::vector<std::string>& flags);

  // Kills the process if it is still running.
  ~GatewayProcess();

  int port() const { return port_; }
  // The Prometheus /metrics port; 0 when started with --metrics_listen= (off).
  int metrics_port() const { return metrics_port_; }
  // The webhook listener's port; 0 unless started with --webhook_listen.
  int webhook_port() const { return webhook_port_; }
  pid_t pid() const { return pid_; }
  std::shared_ptr<grpc::Channel> NewChannel() const;

  // Sends SIGTERM and waits for the exit; returns the wait status (-1 if the
  // process was already reaped).
  int Terminate();
  // Sends SIGKILL (no drain, nothing flushed) and waits for the exit; returns
  // the wait status (-1 if the process was already reaped).
  int Kill();

  // Everything the process wrote to stdout so far.
  std::string output() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  GatewayProcess() = default;
  void CollectOutput();
  // Sends `signal` and waits for the exit (see Terminate).
  int Signal(int signal);

  pid_t pid_ = 0;
  int port_ = 0;
  int metrics_port_ = 0;
  int webhook_port_ = 0;
  int stdout_fd_ = -1;
  std::thread reader_;
  mutable absl::Mutex mu_;
  std::string output_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clink_gateway::testing

#endif  // CLINK_GATEWAY_TESTS_INTEGRATION_GATEWAY_PROCESS_H_
