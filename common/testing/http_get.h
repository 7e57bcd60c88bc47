// A minimal blocking HTTP/1.0 GET over a raw socket to 127.0.0.1, for tests
// that scrape the gateway's /metrics endpoint (no HTTP client library needed).
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

}  // namespace clink_gateway::testing

#endif  // CLINK_GATEWAY_COMMON_TESTING_HTTP_GET_H_
