#include "adapters/http/testing/raw_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"

namespace clink_gateway::http::testing {
namespace {

constexpr size_t kReadChunk = 16 << 10;

// Appends what one recv() returns; false on end of stream or error.
bool ReadMore(int fd, std::string& buffer) {
  char chunk[kReadChunk];
  for (;;) {
    const ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n > 0) {
      buffer.append(chunk, static_cast<size_t>(n));
      return true;
    }
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

void WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

// Parses the request line and headers (`head`, without the blank line) into
// `request`; returns the Content-Length (0 without one), or -1 if malformed.
int64_t ParseHead(absl::string_view head, RecordedRequest& request) {
  std::vector<absl::string_view> lines = absl::StrSplit(head, "\r\n");
  if (lines.empty()) return -1;
  std::vector<absl::string_view> parts = absl::StrSplit(lines[0], ' ');
  if (parts.size() != 3) return -1;
  request.method = std::string(parts[0]);
  const absl::string_view target = parts[1];
  const size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != absl::string_view::npos) {
    request.query = std::string(target.substr(question + 1));
  }
  int64_t content_length = 0;
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == absl::string_view::npos) return -1;
    const absl::string_view name = lines[i].substr(0, colon);
    const absl::string_view value =
        absl::StripAsciiWhitespace(lines[i].substr(colon + 1));
    request.headers.emplace_back(std::string(name), std::string(value));
    if (absl::EqualsIgnoreCase(name, "Content-Length") &&
        (!absl::SimpleAtoi(value, &content_length) || content_length < 0)) {
      return -1;
    }
  }
  return content_length;
}

}  // namespace

RawHttpServer::RawHttpServer(Handler handler) : handler_(std::move(handler)) {}

absl::StatusOr<std::unique_ptr<RawHttpServer>> RawHttpServer::Start(
    Handler handler) {
  std::unique_ptr<RawHttpServer> server(new RawHttpServer(std::move(handler)));
  server->listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server->listen_fd_ < 0) return absl::InternalError("socket() failed");
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr),
             sizeof(addr)) != 0 ||
      ::listen(server->listen_fd_, 16) != 0 ||
      ::getsockname(server->listen_fd_, reinterpret_cast<sockaddr*>(&addr),
                    &len) != 0) {
    return absl::InternalError("bind/listen on 127.0.0.1:0 failed");
  }
  server->port_ = ntohs(addr.sin_port);
  RawHttpServer* self = server.get();
  server->accept_thread_ = std::thread([self] { self->AcceptLoop(); });
  return server;
}

RawHttpServer::~RawHttpServer() {
  if (listen_fd_ < 0) return;
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (accept_thread_.joinable()) {
    ::shutdown(listen_fd_, SHUT_RDWR);  // accept() returns (EINVAL) on Linux
    accept_thread_.join();
  }
  std::vector<std::thread> threads;
  {
    MutexLock lock(&mu_);
    // Ends every connection thread's recv().
    for (auto& [id, connection] : connections_) {
      if (connection.fd >= 0) ::shutdown(connection.fd, SHUT_RDWR);
    }
    threads.swap(threads_);
  }
  for (std::thread& thread : threads) thread.join();
  MutexLock lock(&mu_);
  for (auto& [id, connection] : connections_) {
    if (connection.fd >= 0) ::close(connection.fd);
    connection.fd = -1;
  }
  ::close(listen_fd_);
}

std::string RawHttpServer::base_url() const {
  return absl::StrCat("http://127.0.0.1:", port_);
}

std::vector<RecordedRequest> RawHttpServer::requests() const {
  MutexLock lock(&mu_);
  return requests_;
}

int64_t RawHttpServer::connections_accepted() const {
  MutexLock lock(&mu_);
  return static_cast<int64_t>(connections_.size());
}

int RawHttpServer::client_port(int64_t connection_id) const {
  MutexLock lock(&mu_);
  auto it = connections_.find(connection_id);
  return it == connections_.end() ? 0 : it->second.client_port;
}

bool RawHttpServer::WaitForServerCloses(int64_t n,
                                        absl::Duration timeout) const {
  MutexLock lock(&mu_);
  auto enough = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return server_closes_ >= n;
  };
  return mu_.AwaitWithTimeout(enough, timeout);
}

void RawHttpServer::AcceptLoop() {
  for (;;) {
    sockaddr_in peer = {};
    socklen_t len = sizeof(peer);
    const int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer),
                             &len, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    MutexLock lock(&mu_);
    if (stopping_) {
      ::close(fd);
      return;
    }
    const auto id = static_cast<int64_t>(connections_.size()) + 1;
    connections_[id] = Connection{fd, ntohs(peer.sin_port)};
    threads_.emplace_back([this, id, fd] { Serve(id, fd); });
  }
}

void RawHttpServer::Serve(int64_t id, int fd) {
  std::string buffer;
  for (;;) {
    size_t head_end;
    while ((head_end = buffer.find("\r\n\r\n")) == std::string::npos) {
      // End of stream or shutdown: keep the socket open (the destructor closes
      // it), so a client that shut down its sending side sees no FIN from us.
      if (!ReadMore(fd, buffer)) return;
    }
    RecordedRequest request;
    request.connection_id = id;
    const int64_t content_length =
        ParseHead(absl::string_view(buffer).substr(0, head_end), request);
    if (content_length < 0) return;
    const size_t total = head_end + 4 + static_cast<size_t>(content_length);
    while (buffer.size() < total) {
      if (!ReadMore(fd, buffer)) return;
    }
    request.body = buffer.substr(head_end + 4, content_length);
    buffer.erase(0, total);
    request.received_at = absl::Now();
    {
      MutexLock lock(&mu_);
      requests_.push_back(request);
    }

    const Reply reply = handler_(request);
    if (reply.respond) {
      WriteAll(fd, absl::StrCat("HTTP/1.1 ", reply.status,
                                " Test\r\nContent-Type: application/json\r\n"
                                "Content-Length: ",
                                reply.body.size(), "\r\n\r\n", reply.body));
    }
    switch (reply.after) {
      case After::kKeepAlive:
        break;
      case After::kClose:
        CloseConnection(id, /*reset=*/false);
        return;
      case After::kReset:
        CloseConnection(id, /*reset=*/true);
        return;
    }
  }
}

void RawHttpServer::CloseConnection(int64_t id, bool reset) {
  MutexLock lock(&mu_);
  auto it = connections_.find(id);
  if (it == connections_.end() || it->second.fd < 0) return;
  const int fd = it->second.fd;
  if (reset) {
    linger option = {};
    option.l_onoff = 1;
    option.l_linger = 0;
    (void)::setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, sizeof(option));
  }
  ::close(fd);
  it->second.fd = -1;
  ++server_closes_;
}

}  // namespace clink_gateway::http::testing
