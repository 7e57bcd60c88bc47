// A small in-process HTTP/1.1 server (civetweb) for transport tests: records
// every request, counts accepted connections, and answers with a test-supplied
// handler.
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_TESTING_TEST_HTTP_SERVER_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_TESTING_TEST_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/sync.h"

struct mg_connection;
struct mg_context;

namespace clink_gateway::http::testing {

struct RecordedRequest {
  std::string method;
  std::string path;   // raw (not decoded), without the query
  std::string query;  // without '?'
  std::vector<std::pair<std::string, std::string>>
      headers;  // as received, in order
  std::string body;
  int64_t connection_id =
      0;                   // 1, 2, ...: the accepted connection that carried it
  absl::Time received_at;  // real time (absl::Now()) when it had been read

  // First value of header `name` (case-insensitive). std::optional so gtest
  // prints it.
  std::optional<std::string> Header(absl::string_view name) const;
};

struct TestResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  // Send the body with chunked transfer encoding instead of Content-Length.
  bool chunked = false;
};

class TestHttpServer {
 public:
  // Runs on a server thread, possibly several at once; may block (e.g. on a
  // Notification the test releases) to simulate a slow upstream.
  using Handler = std::function<TestResponse(const RecordedRequest&)>;

  // Listens on 127.0.0.1 on a port the OS picks. Up to `threads` connections
  // are served at once (civetweb holds one thread per keep-alive connection).
  static absl::StatusOr<std::unique_ptr<TestHttpServer>> Start(
      Handler handler, int threads = 16);

  // Stops the server; any handler still blocked must return first.
  ~TestHttpServer();

  TestHttpServer(const TestHttpServer&) = delete;
  TestHttpServer& operator=(const TestHttpServer&) = delete;

  int port() const { return port_; }
  std::string base_url() const;  // "http://127.0.0.1:<port>"

  std::vector<RecordedRequest> requests() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t request_count() const ABSL_LOCKS_EXCLUDED(mu_);
  int64_t connections_accepted() const ABSL_LOCKS_EXCLUDED(mu_);

  // Waits until at least `n` requests have been received (a request counts as
  // soon as it is read, before its handler runs). False on timeout.
  bool WaitForRequests(size_t n, absl::Duration timeout) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit TestHttpServer(Handler handler) : handler_(std::move(handler)) {}

  static int BeginRequest(mg_connection* conn);
  static int InitConnection(const mg_connection* conn, void** conn_data);
  int HandleRequest(mg_connection* conn) ABSL_LOCKS_EXCLUDED(mu_);

  const Handler handler_;
  mg_context* context_ = nullptr;
  int port_ = 0;

  mutable Mutex mu_;
  std::vector<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
  int64_t connections_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace clink_gateway::http::testing

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_TESTING_TEST_HTTP_SERVER_H_
