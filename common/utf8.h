// UTF-8-safe truncation, for text cut to fit a message or a log line.
#ifndef CLINK_GATEWAY_COMMON_UTF8_H_
#define CLINK_GATEWAY_COMMON_UTF8_H_

#include <cstddef>

#include "absl/strings/string_view.h"

namespace clink_gateway {

// The longest prefix of `text` that is at most `max_bytes` long and does not
// end inside a UTF-8 sequence (protobuf rejects strings cut mid-character).
inline absl::string_view Utf8Prefix(absl::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t end = max_bytes;
  // Step back over continuation bytes (10xxxxxx) to a character start.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return text.substr(0, end);
}

}  // namespace clink_gateway

#endif  // CLINK_GATEWAY_COMMON_UTF8_H_
