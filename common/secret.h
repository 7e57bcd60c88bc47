// A secret string (the Clink API key) that cannot be printed or logged by
// accident.
#ifndef CLINK_GATEWAY_COMMON_SECRET_H_
#define CLINK_GATEWAY_COMMON_SECRET_H_

#include <cstddef>
#include <iosfwd>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"

namespace clink_gateway {

// Owns a secret value. It has no operator<<, no conversion to string and no
// copy; every way of printing it (DebugString, AbslStringify, gtest's PrintTo)
// shows only Fingerprint(). The buffer is zeroed (OPENSSL_cleanse) when the
// Secret is destroyed. Moving transfers the buffer, so no copy of the value is
// left behind.
class Secret {
 public:
  // Takes the value and zeroes `value`'s buffer after copying it. Pass the
  // string you read the secret into with std::move so its only heap copy is the
  // one cleansed here.
  explicit Secret(std::string value);
  Secret() = default;  // empty

  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;
  ~Secret();

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

  // The secret itself. Only the request signer may call this.
  absl::string_view Reveal() const {
    return absl::string_view(data_.get(), size_);
  }

  // Whether both hold the same value; the comparison takes the same time
  // wherever the values differ (CRYPTO_memcmp), so it leaks nothing but the
  // lengths.
  bool Equals(const Secret& other) const;

  // A short identifier that is safe to log, e.g. "sk_test_…a1b2#3f9c1e2a": the
  // prefix up to the second '_', an ellipsis, the last 4 characters, '#', and
  // the first 8 hex digits of the value's SHA-256. Values shorter than 12
  // characters show only "#<hash>"; the prefix is left out when it would leave
  // fewer than 8 characters hidden. An empty secret is "<empty>".
  std::string Fingerprint() const;

  // "Secret(<fingerprint>)".
  std::string DebugString() const;

  // Debug helpers for absl::StrCat/StrFormat (Abseil versions that have
  // AbslStringify) and GoogleTest: both print only DebugString().
  template <typename Sink>
  friend void AbslStringify(Sink& sink, const Secret& secret) {
    sink.Append(secret.DebugString());
  }
  friend void PrintTo(const Secret& secret, std::ostream* os);

 private:
  void Wipe() noexcept;

  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
};

// Zeroes `size` bytes at `data` (OPENSSL_cleanse: not optimised away). For
// buffers that held a copy of a secret and are about to be freed.
void WipeBytes(void* data, size_t size) noexcept;

// Zeroes the whole buffer of `value` (its capacity, not only its size) and
// leaves it empty. For strings that held a copy of a secret (a header value or
// line carrying the API key) before they are freed or reused.
void WipeString(std::string& value) noexcept;

}  // namespace clink_gateway

#endif  // CLINK_GATEWAY_COMMON_SECRET_H_
