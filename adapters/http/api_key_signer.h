// Clink's API-key authentication: X-API-KEY plus a millisecond X-Timestamp.
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_API_KEY_SIGNER_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_API_KEY_SIGNER_H_

#include <string>

#include "absl/status/status.h"
#include "adapters/http/http_types.h"
#include "adapters/http/request_signer.h"
#include "common/clock.h"
#include "common/secret.h"

namespace clink_gateway::http {

inline constexpr char kApiKeyHeader[] = "X-API-KEY";
inline constexpr char kTimestampHeader[] = "X-Timestamp";

// Sets `X-API-KEY: <key>` and `X-Timestamp: <Unix milliseconds from clock>` on
// each request, replacing any headers of those names (compared
// case-insensitively) already present. Clink rejects timestamps more than ±2
// minutes from its own clock, so a 401 may mean clock skew.
//
// This is the only code that calls Secret::Reveal(). Thread-safe.
class ApiKeySigner final : public RequestSigner {
 public:
  // `clock` must outlive the signer.
  ApiKeySigner(Secret key, const Clock& clock);

  // kFailedPrecondition (nothing added) when the key is empty or contains bytes
  // that are not allowed in a header value. The message never contains the key.
  [[nodiscard]] absl::Status Sign(HttpRequest& request) const override;

  // OK when `key` can be sent: non-empty visible ASCII (no spaces or control
  // characters, which could inject headers). The message never shows the key.
  static absl::Status CheckKey(const Secret& key);

  // Whether `other` signs with the same key (constant-time comparison).
  bool SameKey(const ApiKeySigner& other) const {
    return key_.Equals(other.key_);
  }

  // The key's Secret::Fingerprint(), safe to log.
  std::string KeyFingerprint() const { return key_.Fingerprint(); }

 private:
  const Secret key_;
  const Clock& clock_;
  const bool key_valid_;
};

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_API_KEY_SIGNER_H_
