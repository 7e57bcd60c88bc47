#include "adapters/http/api_key_signer.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace clink_gateway::http {
namespace {

// Visible ASCII only: no spaces, control characters (CR/LF would allow header
// injection) or bytes that curl or a proxy might mangle.
bool IsValidKey(absl::string_view key) {
  if (key.empty()) return false;
  return std::all_of(key.begin(), key.end(),
                     [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

absl::Status ApiKeySigner::CheckKey(const Secret& key) {
  if (key.empty())
    return absl::InvalidArgumentError("the Clink API key is empty");
  if (!IsValidKey(key.Reveal())) {
    return absl::InvalidArgumentError(
        "the Clink API key contains characters a header cannot carry");
  }
  return absl::OkStatus();
}

ApiKeySigner::ApiKeySigner(Secret key, const Clock& clock)
    : key_(std::move(key)),
      clock_(clock),
      key_valid_(IsValidKey(key_.Reveal())) {}

absl::Status ApiKeySigner::Sign(HttpRequest& request) const {
  if (!key_valid_) {
    return absl::FailedPreconditionError(
        absl::StrCat("API key ", key_.Fingerprint(),
                     " is empty or has characters not allowed in a header"));
  }
  HeaderList& headers = request.headers;
  for (auto& [name, value] : headers) {
    // A key from an earlier signing: no copy is freed unwiped.
    if (absl::EqualsIgnoreCase(name, kApiKeyHeader)) WipeString(value);
  }
  headers.erase(std::remove_if(headers.begin(), headers.end(),
                               [](const auto& header) {
                                 return absl::EqualsIgnoreCase(header.first,
                                                               kApiKeyHeader) ||
                                        absl::EqualsIgnoreCase(
                                            header.first, kTimestampHeader);
                               }),
                headers.end());
  headers.emplace_back(kApiKeyHeader, std::string(key_.Reveal()));
  headers.emplace_back(kTimestampHeader,
                       absl::StrCat(absl::ToUnixMillis(clock_.Now())));
  return absl::OkStatus();
}

}  // namespace clink_gateway::http
