#include "common/secret.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstring>
#include <ostream>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace clink_gateway {
namespace {

constexpr size_t kMinLengthForHint = 12;  // shorter values show only the hash
constexpr size_t kSuffixLength = 4;
constexpr size_t kMinHidden = 8;  // characters never shown
constexpr size_t kHashHexDigits = 8;

// The first kHashHexDigits hex digits of SHA-256(value).
std::string HashPrefix(absl::string_view value) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digest_length = 0;
  if (EVP_Digest(value.data(), value.size(), digest, &digest_length,
                 EVP_sha256(), nullptr) != 1 ||
      digest_length < kHashHexDigits / 2) {
    return "????????";
  }
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest), kHashHexDigits / 2));
}

// "sk_test_" for "sk_test_abc…": everything up to and including the second '_',
// or empty.
absl::string_view Prefix(absl::string_view value) {
  const size_t first = value.find('_');
  if (first == absl::string_view::npos) return {};
  const size_t second = value.find('_', first + 1);
  if (second == absl::string_view::npos) return {};
  return value.substr(0, second + 1);
}

}  // namespace

Secret::Secret(std::string value)
    : data_(new char[value.size()]), size_(value.size()) {
  if (size_ > 0) std::memcpy(data_.get(), value.data(), size_);
  OPENSSL_cleanse(value.data(), value.size());
}

Secret::Secret(Secret&& other) noexcept
    : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    Wipe();
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Secret::~Secret() { Wipe(); }

void Secret::Wipe() noexcept {
  if (data_ != nullptr && size_ > 0) OPENSSL_cleanse(data_.get(), size_);
  data_.reset();
  size_ = 0;
}

bool Secret::Equals(const Secret& other) const {
  return size_ == other.size_ &&
         (size_ == 0 ||
          CRYPTO_memcmp(data_.get(), other.data_.get(), size_) == 0);
}

std::string Secret::Fingerprint() const {
  if (empty()) return "<empty>";
  const absl::string_view value = Reveal();
  const std::string hash = HashPrefix(value);
  if (value.size() < kMinLengthForHint) return absl::StrCat("#", hash);
  absl::string_view prefix = Prefix(value);
  if (value.size() < prefix.size() + kSuffixLength + kMinHidden) prefix = {};
  return absl::StrCat(prefix, "\xE2\x80\xA6",
                      value.substr(value.size() - kSuffixLength), "#", hash);
}

std::string Secret::DebugString() const {
  return absl::StrCat("Secret(", Fingerprint(), ")");
}

void WipeBytes(void* data, size_t size) noexcept {
  if (data != nullptr && size > 0) OPENSSL_cleanse(data, size);
}

void WipeString(std::string& value) noexcept {
  // Within the capacity resize() never reallocates, so this zeroes the very
  // buffer that held the value, including anything past its current size.
  value.resize(value.capacity());
  WipeBytes(value.data(), value.size());
  value.clear();
}

void PrintTo(const Secret& secret, std::ostream* os) {
  *os << secret.DebugString();
}

}  // namespace clink_gateway
