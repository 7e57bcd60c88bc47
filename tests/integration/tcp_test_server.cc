#include "tests/integration/tcp_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace clink_gateway::testing {
namespace {

std::string PeerOf(int fd) {
  sockaddr_storage peer{};
  socklen_t length = sizeof(peer);
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) {
    return "?";
  }
  char text[INET6_ADDRSTRLEN] = {};
  if (peer.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&peer)->sin_addr, text,
              sizeof(text));
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&peer)->sin6_addr,
              text, sizeof(text));
  }
  return text;
}

int ConnectLocal(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) !=
      0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    const ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads until the end of an HTTP header block ("\r\n\r\n"), at most 16 KiB,
// 5 s. Whatever came after the block is returned in `rest`.
bool ReadHeaderBlock(int fd, std::string* head, std::string* rest) {
  std::string data;
  char buffer[4096];
  while (data.find("\r\n\r\n") == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0) return false;
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0 || data.size() > 16384) return false;
    data.append(buffer, static_cast<size_t>(n));
  }
  const size_t end = data.find("\r\n\r\n") + 4;
  *head = data.substr(0, end);
  *rest = data.substr(end);
  return true;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TcpTestServer>> TcpTestServer::Start(
    Options options) {
  std::unique_ptr<TcpTestServer> server(new TcpTestServer(std::move(options)));
  const Options& o = server->options_;
  sockaddr_storage address{};
  socklen_t length = 0;
  int family = AF_INET;
  auto* in = reinterpret_cast<sockaddr_in*>(&address);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
  if (inet_pton(AF_INET, o.address.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(static_cast<uint16_t>(o.port));
    length = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, o.address.c_str(), &in6->sin6_addr) == 1) {
    family = AF_INET6;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(o.port));
    length = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IP literal: ", o.address));
  }
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::UnavailableError("socket failed");
  server->listen_fd_ = fd;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(fd, 64) != 0) {
    const std::string error = std::strerror(errno);
    return absl::UnavailableError(absl::StrCat(
        "cannot listen on ", o.address, ":", o.port, ": ", error));
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  server->port_ =
      ntohs(family == AF_INET
                ? reinterpret_cast<sockaddr_in*>(&bound)->sin_port
                : reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  server->stop_fd_ = eventfd(0, EFD_CLOEXEC);
  TcpTestServer* self = server.get();
  server->accept_thread_ = std::thread([self] { self->AcceptLoop(); });
  return server;
}

TcpTestServer::~TcpTestServer() {
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    (void)!write(stop_fd_, &one, sizeof(one));
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  CloseConnections();
  std::list<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
}

std::vector<std::string> TcpTestServer::peers() const {
  absl::MutexLock lock(&mu_);
  return peers_;
}

std::vector<std::string> TcpTestServer::connect_targets() const {
  absl::MutexLock lock(&mu_);
  return targets_;
}

void TcpTestServer::CloseConnections() {
  absl::MutexLock lock(&mu_);
  for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
}

void TcpTestServer::Track(int fd) {
  absl::MutexLock lock(&mu_);
  open_fds_.insert(fd);
}

void TcpTestServer::Untrack(int fd) {
  absl::MutexLock lock(&mu_);
  open_fds_.erase(fd);
}

void TcpTestServer::AcceptLoop() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents != 0) return;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    accepted_.fetch_add(1);
    {
      absl::MutexLock lock(&mu_);
      peers_.push_back(PeerOf(fd));
    }
    if (options_.mode == Mode::kCanary) {
      close(fd);
      continue;
    }
    Track(fd);
    absl::MutexLock lock(&mu_);
    threads_.emplace_back([this, fd] { Serve(fd); });
  }
}

void TcpTestServer::Serve(int fd) {
  std::string head, rest;
  switch (options_.mode) {
    case Mode::kCanary:
      break;
    case Mode::kRelay: {
      const int backend = ConnectLocal(options_.backend_port);
      if (backend >= 0) Relay(fd, backend);
      break;
    }
    case Mode::kConnectProxy: {
      if (!ReadHeaderBlock(fd, &head, &rest)) break;
      // "CONNECT host:port HTTP/1.1"
      const size_t sp1 = head.find(' ');
      const size_t sp2 = head.find(' ', sp1 + 1);
      if (!absl::StartsWith(head, "CONNECT ") || sp2 == std::string::npos) {
        WriteAll(fd, "HTTP/1.1 405 Method Not Allowed\r\n\r\n");
        break;
      }
      const std::string target = head.substr(sp1 + 1, sp2 - sp1 - 1);
      {
        absl::MutexLock lock(&mu_);
        targets_.push_back(target);
      }
      int port = 0;
      const int backend =
          absl::SimpleAtoi(target.substr(target.rfind(':') + 1), &port)
              ? ConnectLocal(port)
              : -1;
      if (backend < 0) {
        WriteAll(fd, "HTTP/1.1 502 Bad Gateway\r\n\r\n");
        break;
      }
      if (!WriteAll(fd, "HTTP/1.1 200 Connection established\r\n\r\n") ||
          !WriteAll(backend, rest)) {
        close(backend);
        break;
      }
      Relay(fd, backend);
      break;
    }
    case Mode::kRedirect:
      if (!ReadHeaderBlock(fd, &head, &rest)) break;
      WriteAll(fd, absl::StrCat("HTTP/1.1 302 Found\r\nLocation: ",
                                options_.redirect_to,
                                "\r\nContent-Length: 0\r\n"
                                "Connection: close\r\n\r\n"));
      break;
  }
  Untrack(fd);
  close(fd);
}

void TcpTestServer::Relay(int client, int backend) {
  Track(backend);
  char buffer[16384];
  for (;;) {
    pollfd fds[3] = {
        {client, POLLIN, 0}, {backend, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    if (poll(fds, 3, -1) < 0) break;
    if (fds[2].revents != 0) break;
    bool closed = false;
    for (int i = 0; i < 2 && !closed; ++i) {
      if (fds[i].revents == 0) continue;
      const ssize_t n = recv(fds[i].fd, buffer, sizeof(buffer), 0);
      if (n <= 0 ||
          !WriteAll(fds[1 - i].fd,
                    absl::string_view(buffer, static_cast<size_t>(n)))) {
        closed = true;
      }
    }
    if (closed) break;
  }
  Untrack(backend);
  close(backend);
}

}  // namespace clink_gateway::testing
