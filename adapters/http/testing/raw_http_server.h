// A minimal HTTP/1.1 server for transport tests that need control over the TCP
// connection itself, which civetweb (TestHttpServer) hides: after any response
// the test can have the connection closed (FIN) or reset (RST) although the
// response promised keep-alive, or read a request and never answer it. The
// server never closes a connection on its own, not even when the client shuts
// down its sending side.
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_TESTING_RAW_HTTP_SERVER_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_TESTING_RAW_HTTP_SERVER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>  // NOLINT(build/c++11)
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/http/testing/test_http_server.h"
#include "common/sync.h"

namespace clink_gateway::http::testing {

class RawHttpServer {
 public:
  // What happens to the connection after the handler's reply.
  enum class After {
    kKeepAlive,  // wait for the next request on it
    kClose,      // close it (FIN)
    kReset,      // reset it (RST: SO_LINGER 0, then close)
  };

  struct Reply {
    int status = 200;
    std::string body;
    // false: write nothing at all (the request was read; no response).
    bool respond = true;
    After after = After::kKeepAlive;
  };

  // Runs on the connection's thread; requests on different connections may be
  // handled at the same time.
  using Handler = std::function<Reply(const RecordedRequest&)>;

  // Listens on 127.0.0.1 on a port the OS picks; one thread per connection.
  // Requests must have no body or a Content-Length (no chunked uploads).
  static absl::StatusOr<std::unique_ptr<RawHttpServer>> Start(Handler handler);

  // Closes every connection and joins the server's threads. Handlers must not
  // be blocked.
  ~RawHttpServer();

  RawHttpServer(const RawHttpServer&) = delete;
  RawHttpServer& operator=(const RawHttpServer&) = delete;

  int port() const { return port_; }
  std::string base_url() const;  // "http://127.0.0.1:<port>"

  std::vector<RecordedRequest> requests() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t connections_accepted() const ABSL_LOCKS_EXCLUDED(mu_);

  // The client-side port of connection `connection_id` (1, 2, ...); 0 if there
  // is no such connection.
  int client_port(int64_t connection_id) const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until the server has closed or reset at least `n` connections (after
  // kClose / kReset, once close() has returned). False on timeout.
  bool WaitForServerCloses(int64_t n, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Connection {
    int fd = -1;  // -1 once the server closed it
    int client_port = 0;
  };

  explicit RawHttpServer(Handler handler);

  void AcceptLoop() ABSL_LOCKS_EXCLUDED(mu_);
  void Serve(int64_t id, int fd) ABSL_LOCKS_EXCLUDED(mu_);
  // Closes connection `id` (resetting it when `reset`).
  void CloseConnection(int64_t id, bool reset) ABSL_LOCKS_EXCLUDED(mu_);

  const Handler handler_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread accept_thread_;

  mutable Mutex mu_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<int64_t, Connection> connections_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
  std::vector<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
  int64_t server_closes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace clink_gateway::http::testing

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_TESTING_RAW_HTTP_SERVER_H_
