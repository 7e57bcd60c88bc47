#include "tests/emulator/tls_frontend.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "openssl/err.h"

namespace clink_gateway::emulator {
namespace {

constexpr int kHandshakeTimeoutMs = 10000;
constexpr int kListenBacklog = 128;

std::string OpenSslError() {
  const unsigned long error =
      ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type.
  if (error == 0) return "unknown OpenSSL error";
  char buffer[256];
  ERR_error_string_n(error, buffer, sizeof(buffer));
  return buffer;
}

void SetNonBlocking(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
}

void SetNoDelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

// Makes the next close() send RST instead of FIN.
void SetAbortiveClose(int fd) {
  const linger abortive{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &abortive, sizeof(abortive));
}

bool SendAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t sent = send(fd, data, size, MSG_NOSIGNAL);
    if (sent < 0 && errno == EINTR) continue;
    if (sent <= 0) return false;
    data += sent;
    size -= static_cast<size_t>(sent);
  }
  return true;
}

int ConnectToBackend(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address),
              sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  SetNoDelay(fd);
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TlsFrontend>> TlsFrontend::Start(
    Options options) {
  if (options.cert_pem_path.empty()) {
    return absl::InvalidArgumentError("TlsFrontend needs cert_pem_path");
  }
  std::unique_ptr<TlsFrontend> frontend(new TlsFrontend(std::move(options)));
  const Options& opts = frontend->options_;

  frontend->ssl_ctx_ = SSL_CTX_new(TLS_server_method());
  if (frontend->ssl_ctx_ == nullptr) {
    return absl::InternalError(absl::StrCat("SSL_CTX_new: ", OpenSslError()));
  }
  SSL_CTX_set_min_proto_version(frontend->ssl_ctx_, TLS1_2_VERSION);
  if (SSL_CTX_use_certificate_chain_file(frontend->ssl_ctx_,
                                         opts.cert_pem_path.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(frontend->ssl_ctx_,
                                  opts.cert_pem_path.c_str(),
                                  SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(frontend->ssl_ctx_) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot load certificate and key from ",
                     opts.cert_pem_path, ": ", OpenSslError()));
  }

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* resolved = nullptr;
  const std::string port_text = std::to_string(opts.port);
  if (const int rc = getaddrinfo(opts.listen_address.c_str(), port_text.c_str(),
                                 &hints, &resolved);
      rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address ", opts.listen_address,
                     " is not an IP literal: ", gai_strerror(rc)));
  }
  const int fd = socket(resolved->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  if (fd >= 0) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const bool bound = fd >= 0 &&
                     bind(fd, resolved->ai_addr, resolved->ai_addrlen) == 0 &&
                     listen(fd, kListenBacklog) == 0;
  const int bind_errno = errno;
  freeaddrinfo(resolved);
  if (!bound) {
    if (fd >= 0) close(fd);
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", opts.listen_address, ":", opts.port,
                     ": ", std::strerror(bind_errno)));
  }
  frontend->listen_fd_ = fd;
  sockaddr_storage local{};
  socklen_t local_size = sizeof(local);
  getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size);
  frontend->port_ =
      ntohs(local.ss_family == AF_INET6
                ? reinterpret_cast<sockaddr_in6*>(&local)->sin6_port
                : reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  SetNonBlocking(fd);

  frontend->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (frontend->stop_fd_ < 0) return absl::InternalError("eventfd failed");
  TlsFrontend* raw = frontend.get();
  frontend->accept_thread_ = std::thread([raw] { raw->AcceptLoop(); });
  return frontend;
}

TlsFrontend::~TlsFrontend() {
  if (stop_fd_ >= 0) {
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t written = write(stop_fd_, &one, sizeof(one));
  }
  if (accept_thread_.joinable()) accept_thread_.join();
  for (const std::unique_ptr<RelayThread>& relay : relays_)
    relay->thread.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  if (stop_fd_ >= 0) close(stop_fd_);
  if (ssl_ctx_ != nullptr) SSL_CTX_free(ssl_ctx_);
}

bool TlsFrontend::WaitFor(int fd, short events, int timeout_ms) const {
  pollfd fds[2] = {{fd, events, 0}, {stop_fd_, POLLIN, 0}};
  for (;;) {
    const int ready = poll(fds, 2, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0 || (fds[1].revents & POLLIN) != 0) return false;
    return true;
  }
}

void TlsFrontend::AcceptLoop() {
  while (WaitFor(listen_fd_, POLLIN, -1)) {
    const int client_fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client_fd < 0)
      continue;  // EAGAIN after a spurious wakeup, or a transient error.
    if (options_.on_accept) options_.on_accept();
    // Reap finished relays so a long-running server does not accumulate
    // threads.
    for (auto it = relays_.begin(); it != relays_.end();) {
      if ((*it)->done.load()) {
        (*it)->thread.join();
        it = relays_.erase(it);
      } else {
        ++it;
      }
    }
    auto relay = std::make_unique<RelayThread>();
    RelayThread* raw = relay.get();
    relay->thread = std::thread([this, raw, client_fd] {
      Relay(client_fd);
      raw->done.store(true);
    });
    relays_.push_back(std::move(relay));
  }
}

bool TlsFrontend::SslWriteAll(SSL* ssl, int fd, const char* data,
                              size_t size) const {
  while (size > 0) {
    const int written = SSL_write(ssl, data, static_cast<int>(size));
    if (written > 0) {
      data += written;
      size -= static_cast<size_t>(written);
      continue;
    }
    const int error = SSL_get_error(ssl, written);
    if (error == SSL_ERROR_WANT_WRITE && WaitFor(fd, POLLOUT, -1)) continue;
    if (error == SSL_ERROR_WANT_READ && WaitFor(fd, POLLIN, -1)) continue;
    return false;
  }
  return true;
}

void TlsFrontend::Relay(int client_fd) {
  SetNonBlocking(client_fd);
  SetNoDelay(client_fd);
  SSL* ssl = SSL_new(ssl_ctx_);
  SSL_set_fd(ssl, client_fd);
  bool handshake_done = false;
  for (;;) {
    const int rc = SSL_accept(ssl);
    if (rc == 1) {
      handshake_done = true;
      break;
    }
    const int error = SSL_get_error(ssl, rc);
    const short events = error == SSL_ERROR_WANT_READ    ? POLLIN
                         : error == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                         : 0;
    if (events == 0 || !WaitFor(client_fd, events, kHandshakeTimeoutMs)) break;
  }
  const int backend_fd =
      handshake_done ? ConnectToBackend(options_.backend_port) : -1;

  enum class End { kClient, kBackendClosed, kBackendReset };
  End end = End::kClient;
  char buffer[16384];
  while (backend_fd >= 0) {
    bool client_readable = SSL_pending(ssl) > 0;
    bool backend_readable = false;
    if (!client_readable) {
      pollfd fds[3] = {{client_fd, POLLIN, 0},
                       {backend_fd, POLLIN, 0},
                       {stop_fd_, POLLIN, 0}};
      if (poll(fds, 3, -1) < 0) {
        if (errno == EINTR) continue;
        break;
      }
      if (fds[2].revents != 0) break;
      client_readable = fds[0].revents != 0;
      backend_readable = fds[1].revents != 0;
    }
    if (client_readable) {
      const int n = SSL_read(ssl, buffer, sizeof(buffer));
      if (n > 0) {
        if (!SendAll(backend_fd, buffer, static_cast<size_t>(n))) {
          end = End::kBackendReset;
          break;
        }
      } else {
        const int error = SSL_get_error(ssl, n);
        if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE)
          break;  // Client gone.
      }
    }
    if (backend_readable) {
      const ssize_t n = recv(backend_fd, buffer, sizeof(buffer), MSG_DONTWAIT);
      if (n > 0) {
        if (!SslWriteAll(ssl, client_fd, buffer, static_cast<size_t>(n))) break;
      } else if (n == 0) {
        end = End::kBackendClosed;
        break;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        end = End::kBackendReset;
        break;
      }
    }
  }

  if (end == End::kBackendReset) {
    SetAbortiveClose(client_fd);
  } else if (end == End::kBackendClosed && options_.close_notify) {
    SSL_shutdown(ssl);  // Best effort close_notify; the FIN follows on close().
  }
  SSL_free(ssl);
  close(client_fd);
  if (backend_fd >= 0) close(backend_fd);
  if (options_.on_close) options_.on_close();
}

}  // namespace clink_gateway::emulator
