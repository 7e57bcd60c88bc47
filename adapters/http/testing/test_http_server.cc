#include "adapters/http/testing/test_http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <mutex>  // NOLINT(build/c++11): std::call_once
#include <string>
#include <thread>  // NOLINT(build/c++11)
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/sync.h"

namespace clink_gateway::http::testing {
namespace {

constexpr size_t kReadChunk = 16 << 10;

void InitCivetwebOnce() {
  static std::once_flag once;
  std::call_once(once, [] { mg_init_library(0); });
}

// Opens and immediately closes a TCP connection to 127.0.0.1:port.
void WakeAcceptLoop(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return;
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  (void)::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::close(fd);
}

}  // namespace

std::optional<std::string> RecordedRequest::Header(
    absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<TestHttpServer>> TestHttpServer::Start(
    Handler handler, int threads) {
  InitCivetwebOnce();
  std::unique_ptr<TestHttpServer> server(
      new TestHttpServer(std::move(handler)));
  const std::string num_threads = absl::StrCat(threads);
  const char* options[] = {
      "listening_ports",
      "127.0.0.1:0",
      "num_threads",
      num_threads.c_str(),
      "enable_keep_alive",
      "yes",
      "keep_alive_timeout_ms",
      "30000",
      "request_timeout_ms",
      "30000",
      // Headers and body go out in separate writes; without this, Nagle's
      // algorithm and the client's delayed ACK add ~40 ms to every keep-alive
      // response.
      "tcp_nodelay",
      "1",
      nullptr,
  };
  mg_callbacks callbacks = {};
  callbacks.begin_request = &TestHttpServer::BeginRequest;
  callbacks.init_connection = &TestHttpServer::InitConnection;
  callbacks.log_message = [](const mg_connection*, const char*) {
    return 1;
  };  // quiet
  server->context_ = mg_start(&callbacks, server.get(), options);
  if (server->context_ == nullptr)
    return absl::InternalError("civetweb failed to start");
  mg_server_port ports[4] = {};
  const int n = mg_get_server_ports(server->context_, 4, ports);
  if (n < 1 || ports[0].port <= 0)
    return absl::InternalError("civetweb reported no port");
  server->port_ = ports[0].port;
  return server;
}

TestHttpServer::~TestHttpServer() {
  if (context_ == nullptr) return;
  if (port_ == 0) {
    mg_stop(context_);
    return;
  }
  // civetweb's accept loop only checks its stop flag between polls of up to 2
  // s; connecting to the listening port wakes it so each server stops in
  // milliseconds instead.
  Notification stopped;
  std::thread stopper([this, &stopped] {
    mg_stop(context_);
    stopped.Notify();
  });
  while (!stopped.WaitForNotificationWithTimeout(absl::Milliseconds(10)))
    WakeAcceptLoop(port_);
  stopper.join();
}

std::string TestHttpServer::base_url() const {
  return absl::StrCat("http://127.0.0.1:", port_);
}

std::vector<RecordedRequest> TestHttpServer::requests() const {
  MutexLock lock(&mu_);
  return requests_;
}

size_t TestHttpServer::request_count() const {
  MutexLock lock(&mu_);
  return requests_.size();
}

int64_t TestHttpServer::connections_accepted() const {
  MutexLock lock(&mu_);
  return connections_;
}

bool TestHttpServer::WaitForRequests(size_t n, absl::Duration timeout) const {
  MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return requests_.size() >= n;
  };
  return mu_.AwaitWithTimeout(enough, timeout);
}

int TestHttpServer::InitConnection(const mg_connection* conn,
                                   void** conn_data) {
  auto* self =
      static_cast<TestHttpServer*>(mg_get_user_data(mg_get_context(conn)));
  MutexLock lock(&self->mu_);
  // The connection's id travels as the user-data pointer value; nothing to
  // free.
  *conn_data =
      reinterpret_cast<void*>(static_cast<intptr_t>(++self->connections_));
  return 0;
}

int TestHttpServer::BeginRequest(mg_connection* conn) {
  auto* self =
      static_cast<TestHttpServer*>(mg_get_user_data(mg_get_context(conn)));
  return self->HandleRequest(conn);
}

int TestHttpServer::HandleRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  RecordedRequest request;
  request.method = info->request_method != nullptr ? info->request_method : "";
  request.path = info->local_uri_raw != nullptr ? info->local_uri_raw : "";
  request.query = info->query_string != nullptr ? info->query_string : "";
  for (int i = 0; i < info->num_headers; ++i) {
    request.headers.emplace_back(info->http_headers[i].name,
                                 info->http_headers[i].value);
  }
  request.connection_id =
      static_cast<int64_t>(reinterpret_cast<intptr_t>(info->conn_data));
  std::vector<char> buffer(kReadChunk);
  for (;;) {
    const int n = mg_read(conn, buffer.data(), buffer.size());
    if (n <= 0) break;
    request.body.append(buffer.data(), static_cast<size_t>(n));
  }
  request.received_at = absl::Now();
  {
    MutexLock lock(&mu_);
    requests_.push_back(request);
  }

  const TestResponse response = handler_(request);
  mg_response_header_start(conn, response.status);
  for (const auto& [name, value] : response.headers) {
    mg_response_header_add(conn, name.c_str(), value.c_str(),
                           static_cast<int>(value.size()));
  }
  if (response.chunked) {
    mg_response_header_add(conn, "Transfer-Encoding", "chunked", -1);
  } else {
    const std::string length = absl::StrCat(response.body.size());
    mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  }
  mg_response_header_send(conn);
  if (response.chunked) {
    constexpr size_t kChunk = 1024;
    for (size_t offset = 0; offset < response.body.size(); offset += kChunk) {
      const size_t size = std::min(kChunk, response.body.size() - offset);
      if (mg_send_chunk(conn, response.body.data() + offset,
                        static_cast<unsigned>(size)) < 0) {
        break;
      }
    }
    mg_send_chunk(conn, "", 0);
  } else if (!response.body.empty()) {
    mg_write(conn, response.body.data(), response.body.size());
  }
  return response.status;
}

}  // namespace clink_gateway::http::testing
