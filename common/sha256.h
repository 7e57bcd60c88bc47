// SHA-256 of a byte string, as 64 lower-case hex digits.
#ifndef CLINK_GATEWAY_COMMON_SHA256_H_
#define CLINK_GATEWAY_COMMON_SHA256_H_

#include <string>

#include "absl/strings/string_view.h"

namespace clink_gateway {

// Aborts if OpenSSL cannot compute it (only on allocation failure): callers use
// the digest as an identity, and an empty one would make every input collide.
std::string Sha256Hex(absl::string_view bytes);

}  // namespace clink_gateway

#endif  // CLINK_GATEWAY_COMMON_SHA256_H_
