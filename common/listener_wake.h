// Stopping a civetweb server without its shutdown delay. civetweb's listener
// thread polls its sockets with a 2 s timeout and only then sees the stop
// flag, so mg_stop() (and prometheus-cpp's Exposer destructor) would add up to
// 2 s to every shutdown. A connection to the listening port wakes it at once.
#ifndef CLINK_GATEWAY_COMMON_LISTENER_WAKE_H_
#define CLINK_GATEWAY_COMMON_LISTENER_WAKE_H_

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/strings/string_view.h"

namespace clink_gateway {

// The host to connect to for a listen address ("host:port", "[v6]:port"):
// the wildcard addresses (empty, 0.0.0.0, *, ::) mean this machine's loopback.
std::string KnockHost(absl::string_view listen);

// Runs `stop` (which blocks until the server's threads are gone) while
// opening and closing connections to host:port every 20 ms, until it returns.
void StopWithKnocks(const std::string& host, int port,
                    absl::FunctionRef<void()> stop);

}  // namespace clink_gateway

#endif  // CLINK_GATEWAY_COMMON_LISTENER_WAKE_H_
