// TLS termination in front of the emulator's plain-HTTP civetweb listener.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_TLS_FRONTEND_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_TLS_FRONTEND_H_

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "openssl/ssl.h"

namespace clink_gateway::emulator {

// Accepts TLS connections and relays the decrypted bytes to a plain-HTTP
// backend on 127.0.0.1, one backend connection per client connection, so HTTP
// keep-alive and connection counts carry through unchanged. When the backend
// closes its connection the client's is closed (close_notify + FIN); when the
// backend resets it the client's is reset (RST), so the emulator's connection
// faults look the same over TLS as over plain HTTP.
//
// Why this exists: Debian 12's civetweb 1.15 loads OpenSSL with dlopen/dlsym
// and looks up SSL_get_peer_certificate, which OpenSSL 3 no longer exports (it
// is now a macro for SSL_get1_peer_certificate). civetweb then calls a null
// function pointer for every accepted TLS connection and crashes, although
// mg_check_feature(2) reports TLS support.
class TlsFrontend {
 public:
  struct Options {
    std::string listen_address = "127.0.0.1";  // IPv4 or IPv6 literal.
    int port = 0;                              // 0 picks a free port.
    std::string cert_pem_path;  // Server certificate (chain) followed by its
                                // private key.
    int backend_port = 0;       // Plain HTTP listener on 127.0.0.1.
    std::function<void()>
        on_accept;  // Called once per accepted TCP connection; optional.
    // Called once per accepted TCP connection, on its relay thread, after the
    // frontend has closed it (close_notify + FIN, a bare FIN or RST);
    // optional. Lets a test wait until an idle connection is really closed.
    std::function<void()> on_close;
    // Send TLS close_notify before the FIN when the backend closes (as most
    // servers do); false closes with a bare FIN, as a server that crashed or
    // a load balancer that drops the TLS session without a word.
    bool close_notify = true;
  };

  static absl::StatusOr<std::unique_ptr<TlsFrontend>> Start(Options options);

  // Stops accepting, closes every relayed connection and waits for the relay
  // threads.
  ~TlsFrontend();

  TlsFrontend(const TlsFrontend&) = delete;
  TlsFrontend& operator=(const TlsFrontend&) = delete;

  int port() const { return port_; }

 private:
  struct RelayThread {
    std::thread thread;
    std::atomic<bool> done{false};
  };

  explicit TlsFrontend(Options options) : options_(std::move(options)) {}

  void AcceptLoop();
  void Relay(int client_fd);
  // Waits until `fd` has `events` or the frontend stops; false on stop, error
  // or timeout.
  bool WaitFor(int fd, short events, int timeout_ms) const;
  bool SslWriteAll(SSL* ssl, int fd, const char* data, size_t size) const;

  const Options options_;
  SSL_CTX* ssl_ctx_ = nullptr;
  int listen_fd_ = -1;
  int stop_fd_ = -1;  // eventfd, readable once the frontend is stopping.
  int port_ = 0;
  std::thread accept_thread_;
  // Owned by the accept thread while it runs, then by the destructor.
  std::list<std::unique_ptr<RelayThread>> relays_;
};

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_TLS_FRONTEND_H_
