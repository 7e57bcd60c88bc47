#include "common/testing/http_get.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace clink_gateway::testing {

int ConnectToLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) !=
      0) {
    close(fd);
    return -1;
  }
  return fd;
}

absl::StatusOr<HttpGetResponse> HttpGet(int port, const std::string& path,
                                        absl::Duration timeout) {
  return HttpExchange(
      port,
      absl::StrCat("GET ", path, " HTTP/1.0\r\nHost: 127.0.0.1:", port,
                   "\r\nConnection: close\r\n\r\n"),
      timeout);
}

absl::StatusOr<HttpGetResponse> HttpExchange(int port,
                                             const std::string& request,
                                             absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  const int fd = ConnectToLoopback(port);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot connect to 127.0.0.1:", port));
  }
  size_t written = 0;
  while (written < request.size()) {
    const ssize_t n = send(fd, request.data() + written,
                           request.size() - written, MSG_NOSIGNAL);
    // The server may answer (e.g. 413) and close before taking the whole
    // request: read what it said.
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  std::string response;
  char buffer[16384];
  for (;;) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      close(fd);
      return absl::DeadlineExceededError("no complete response in time");
    }
    pollfd p{fd, POLLIN, 0};
    const int ready =
        poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // The deadline check above ends the loop.
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // Closed: the response is complete (HTTP/1.0).
    response.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  const size_t end = response.find("\r\n\r\n");
  int status = 0;
  if (end == std::string::npos || response.size() < 12 ||
      !absl::SimpleAtoi(absl::string_view(response).substr(9, 3), &status)) {
    return absl::InternalError("malformed HTTP response");
  }
  HttpGetResponse out;
  out.status_code = status;
  out.headers = response.substr(0, end);
  out.body = response.substr(end + 4);
  return out;
}

}  // namespace clink_gateway::testing
