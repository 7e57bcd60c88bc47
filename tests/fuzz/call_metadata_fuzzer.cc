// Every gRPC metadata value the gateway reads from a caller: idempotency-key,
// x-clink-caller, x-clink-merchant (ReadCallMetadata) and x-request-id
// (RequestIdFrom), server/rpc_forwarder.h, and the idempotency scope they make
// (IdempotencyKey::Digest, adapters/idempotency/idempotency_store.h). The first
// byte's low bit chooses whether the gateway has a default merchant; then
// records of (key selector, length, value bytes) become the call's metadata,
// any header any number of times.
//
// Properties:
// - Accepted values are what the contract says: an idempotency key of 1-255
//   printable ASCII characters (space included), a caller of 1-128 characters
//   from [A-Za-z0-9._:/@-], a configured merchant; the first value of a
//   repeated header is the one read.
// - Refusals are INVALID_ARGUMENT and never echo the merchant name sent (the
//   message is the same for any unknown name).
// - The request id is the caller's when it is 1-128 visible ASCII characters,
//   otherwise 32 fresh hex digits.
// - The scope digest is 64 lower-case hex digits, and differs between two
//   merchants (keys never collide across merchant accounts).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"
#include "adapters/clink/clink_api.h"
#include "adapters/idempotency/idempotency_store.h"
#include "server/rpc_forwarder.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using clink_gateway::server::ClientMetadata;

constexpr const char* kHeaders[] = {
    "idempotency-key", "x-clink-caller", "x-clink-merchant",
    "x-request-id",    "x-other",
};

absl::string_view View(const grpc::string_ref& s) {
  return absl::string_view(s.data(), s.size());
}

// The first value of `key`, as a multimap finds it.
const grpc::string_ref* First(const ClientMetadata& metadata,
                              absl::string_view key) {
  const auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  return it == metadata.end() ? nullptr : &it->second;
}

bool IsHexDigest(absl::string_view s, size_t size) {
  return s.size() == size && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool has_default = (data[0] & 1) != 0;
  // Values live here, with stable addresses, while the multimap refers to them.
  std::deque<std::string> values;
  ClientMetadata metadata;
  for (size_t i = 1; i + 2 <= size;) {
    const char* key =
        kHeaders[data[i] % (sizeof(kHeaders) / sizeof(*kHeaders))];
    const size_t length = std::min<size_t>(data[i + 1], size - i - 2);
    values.emplace_back(reinterpret_cast<const char*>(data) + i + 2, length);
    metadata.emplace(grpc::string_ref(key), grpc::string_ref(values.back()));
    i += 2 + length;
  }

  const absl::flat_hash_set<std::string> merchants = {"default", "acme",
                                                      "globex"};
  clink_gateway::clink::CallOptions options;
  const absl::Status status = clink_gateway::server::ReadCallMetadata(
      metadata, merchants, has_default ? "acme" : "", options);
  const grpc::string_ref* key = First(metadata, "idempotency-key");
  const grpc::string_ref* caller = First(metadata, "x-clink-caller");
  const grpc::string_ref* merchant = First(metadata, "x-clink-merchant");
  if (!status.ok()) {
    FUZZ_CHECK(status.code() == absl::StatusCode::kInvalidArgument, "%s",
               status.ToString().c_str());
    if (merchant != nullptr && !merchants.contains(View(*merchant))) {
      // Not echoed: the refusal reads the same for any unknown name.
      ClientMetadata renamed;
      for (const auto& [name, value] : metadata) {
        renamed.emplace(name, View(name) == "x-clink-merchant"
                                  ? grpc::string_ref("no-such-merchant")
                                  : value);
      }
      clink_gateway::clink::CallOptions ignored;
      const absl::Status other = clink_gateway::server::ReadCallMetadata(
          renamed, merchants, has_default ? "acme" : "", ignored);
      FUZZ_CHECK(other.message() == status.message(),
                 "the merchant name sent shows in the refusal: %s",
                 status.ToString().c_str());
    }
  } else {
    if (key != nullptr) {
      FUZZ_CHECK(options.idempotency_key == View(*key), "key");
      FUZZ_CHECK(!options.idempotency_key.empty() &&
                     options.idempotency_key.size() <= 255,
                 "key of %zu bytes", options.idempotency_key.size());
      for (const char c : options.idempotency_key) {
        FUZZ_CHECK(c >= 0x20 && c <= 0x7e, "key byte 0x%02x",
                   static_cast<unsigned char>(c));
      }
    } else {
      FUZZ_CHECK(options.idempotency_key.empty(), "key from nothing");
    }
    if (caller != nullptr) {
      FUZZ_CHECK(options.caller == View(*caller), "caller");
      FUZZ_CHECK(!options.caller.empty() && options.caller.size() <= 128,
                 "caller of %zu bytes", options.caller.size());
      for (const char c : options.caller) {
        FUZZ_CHECK(
            absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                absl::string_view("._:/@-").find(c) != absl::string_view::npos,
            "caller byte 0x%02x", static_cast<unsigned char>(c));
      }
    } else {
      FUZZ_CHECK(options.caller.empty(), "caller from nothing");
    }
    FUZZ_CHECK(merchants.contains(options.merchant), "merchant %s",
               options.merchant.c_str());
    FUZZ_CHECK(merchant != nullptr ? options.merchant == View(*merchant)
                                   : has_default && options.merchant == "acme",
               "merchant %s", options.merchant.c_str());

    clink_gateway::idempotency::IdempotencyKey scope;
    scope.caller = options.caller;
    scope.rpc = "clink.gateway.v1.PaymentService.CreatePayment";
    scope.key = options.idempotency_key;
    scope.merchant = options.merchant;
    const std::string digest = scope.Digest();
    FUZZ_CHECK(IsHexDigest(digest, 64), "digest %s", digest.c_str());
    scope.merchant = options.merchant == "globex" ? "acme" : "globex";
    FUZZ_CHECK(scope.Digest() != digest, "two merchants share a scope");
  }

  const std::string request_id = clink_gateway::server::RequestIdFrom(metadata);
  const grpc::string_ref* given = First(metadata, "x-request-id");
  bool given_valid =
      given != nullptr && given->size() >= 1 && given->size() <= 128;
  if (given_valid) {
    for (const char c : View(*given)) given_valid &= c > 0x20 && c < 0x7f;
  }
  if (given_valid) {
    FUZZ_CHECK(request_id == View(*given), "request id %s", request_id.c_str());
  } else {
    FUZZ_CHECK(IsHexDigest(request_id, 32), "request id %s",
               request_id.c_str());
  }
  return 0;
}
