// Small TCP servers for the egress tests: a canary that only counts the
// connections it accepts, a relay to a local backend, an HTTPS CONNECT proxy,
// and a one-shot HTTP redirect. Each records the peer address of every
// connection it accepts.
#ifndef CLINK_GATEWAY_TESTS_INTEGRATION_TCP_TEST_SERVER_H_
#define CLINK_GATEWAY_TESTS_INTEGRATION_TCP_TEST_SERVER_H_

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace clink_gateway::testing {

class TcpTestServer {
 public:
  enum class Mode {
    // Accepts and closes at once; connections are only counted.
    kCanary,
    // Relays each connection, byte for byte, to 127.0.0.1:backend_port.
    kRelay,
    // Reads "CONNECT host:port HTTP/1.1" and its headers, records the target,
    // answers "200 Connection established" and relays to 127.0.0.1:<port of
    // the target> (every target is local in these tests).
    kConnectProxy,
    // Reads one HTTP request and answers 302 with `Location: redirect_to`.
    kRedirect,
  };

  struct Options {
    Mode mode = Mode::kCanary;
    std::string address = "127.0.0.1";  // IPv4 or IPv6 literal
    int port = 0;                       // 0: the OS picks
    int backend_port = 0;               // kRelay
    std::string redirect_to;            // kRedirect
  };

  // UNAVAILABLE when the address cannot be bound (e.g. no IPv6 loopback).
  static absl::StatusOr<std::unique_ptr<TcpTestServer>> Start(Options options);

  // Stops accepting, closes every connection and joins every thread.
  ~TcpTestServer();

  TcpTestServer(const TcpTestServer&) = delete;
  TcpTestServer& operator=(const TcpTestServer&) = delete;

  int port() const { return port_; }
  int64_t accepted() const { return accepted_.load(); }
  // Peer addresses ("127.0.0.3", "::1") of accepted connections, in order.
  std::vector<std::string> peers() const ABSL_LOCKS_EXCLUDED(mu_);
  // kConnectProxy: the targets of the CONNECT requests ("127.0.0.1:443").
  std::vector<std::string> connect_targets() const ABSL_LOCKS_EXCLUDED(mu_);
  // Closes every open connection (both sides of a relay), as a server
  // closing idle keep-alive connections would.
  void CloseConnections() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit TcpTestServer(Options options) : options_(std::move(options)) {}

  void AcceptLoop();
  void Serve(int fd);
  void Relay(int client, int backend);
  void Track(int fd) ABSL_LOCKS_EXCLUDED(mu_);
  void Untrack(int fd) ABSL_LOCKS_EXCLUDED(mu_);

  const Options options_;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd: readable once stopping
  int port_ = 0;
  std::atomic<int64_t> accepted_{0};
  std::thread accept_thread_;

  mutable absl::Mutex mu_;
  std::vector<std::string> peers_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> targets_ ABSL_GUARDED_BY(mu_);
  std::set<int> open_fds_ ABSL_GUARDED_BY(mu_);
  std::list<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clink_gateway::testing

#endif  // CLINK_GATEWAY_TESTS_INTEGRATION_TCP_TEST_SERVER_H_
