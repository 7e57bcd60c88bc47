#include "common/listener_wake.h"

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/sync.h"

namespace clink_gateway {
namespace {

// Opens and closes a TCP connection to host:port (best effort, no wait
// beyond the connect itself: the host is this machine).
void Knock(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), absl::StrCat(port).c_str(), &hints, &found) !=
      0) {
    return;
  }
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
                          a->ai_protocol);
    if (fd < 0) continue;
    const bool connected = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    close(fd);
    if (connected) break;
  }
  freeaddrinfo(found);
}

}  // namespace

std::string KnockHost(absl::string_view listen) {
  absl::string_view host = listen.substr(0, listen.rfind(':'));
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  if (host.empty() || host == "0.0.0.0" || host == "*") return "127.0.0.1";
  if (host == "::") return "::1";
  return std::string(host);
}

void StopWithKnocks(const std::string& host, int port,
                    absl::FunctionRef<void()> stop) {
  // Keep knocking until `stop` returns: the first knock may come before the
  // stop flag is set.
  Notification stopped;
  std::thread waker([&host, port, &stopped] {
    do {
      Knock(host, port);
    } while (!stopped.WaitForNotificationWithTimeout(absl::Milliseconds(20)));
  });
  stop();
  stopped.Notify();
  waker.join();
}

}  // namespace clink_gateway
