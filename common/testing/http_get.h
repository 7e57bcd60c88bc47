// A minimal blocking HTTP client over a raw socket to 127.0.0.1, for tests
// that scrape the gateway's /metrics endpoint or post to its webhook listener
// (no HTTP client library needed).
#ifndef CLINK_GATEWAY_COMMON_TESTING_HTTP_GET_H_
#define CLINK_GATEWAY_COMMON_TESTING_HTTP_GET_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace clink_gateway::testing {

struct HttpGetResponse {
  int status_code = 0;
  std::string headers;  // The status line and headers, as received.
  std::string body;
};

// GETs `path` from 127.0.0.1:`port` and reads until the server closes the
// connection, within `timeout`. UNAVAILABLE when the connection fails,
// DEADLINE_EXCEEDED on timeout, INTERNAL for a malformed response.
absl::StatusOr<HttpGetResponse> HttpGet(int port, const std::string& path,
                                        absl::Duration timeout =
                                            absl::Seconds(10));

// A TCP connection to 127.0.0.1:`port` (a blocking socket the caller
// closes), or -1 when it cannot be made.
int ConnectToLoopback(int port);

// Sends `request` (a complete HTTP request, as bytes: any method, headers,
// chunked bodies) to 127.0.0.1:`port` and reads the response until the server
// closes the connection, within `timeout`. Errors as for HttpGet.
absl::StatusOr<HttpGetResponse> HttpExchange(int port,
                                             const std::string& request,
                                             absl::Duration timeout =
                                                 absl::Seconds(10));

}  // namespace clink_gateway::testing

#endif  // CLINK_GATEWAY_COMMON_TESTING_HTTP_GET_H_
