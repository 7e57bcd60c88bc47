#include "adapters/idempotency/idempotency_store.h"

#include <openssl/rand.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/errors/error_details.h"
#include "common/sha256.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace clink_gateway::idempotency {
namespace {

// Appends `part` preceded by its length as 8 big-endian bytes, so that the
// concatenation of the parts is unambiguous ("ab"+"c" != "a"+"bc").
void AppendLengthPrefixed(absl::string_view part, std::string* out) {
  const uint64_t size = part.size();
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((size >> shift) & 0xff));
  }
  out->append(part.data(), part.size());
}

absl::Status DataLoss(absl::string_view what) {
  return absl::DataLossError(
      absl::StrCat("stored idempotency result is corrupt: ", what));
}

}  // namespace

std::string IdempotencyKey::Digest() const {
  std::string input;
  input.reserve(32 + caller.size() + rpc.size() + key.size() + merchant.size());
  AppendLengthPrefixed(caller, &input);
  AppendLengthPrefixed(rpc, &input);
  AppendLengthPrefixed(key, &input);
  if (!merchant.empty() && merchant != kLegacyMerchant) {
    AppendLengthPrefixed(merchant, &input);
  }
  return Sha256Hex(input);
}

std::string SerializeStoredResult(const StoredResult& result) {
  google::rpc::Status proto;
  proto.set_code(static_cast<int32_t>(result.status.code()));
  proto.set_message(std::string(result.status.message()));
  // ForEachPayload's order is unspecified; sort so equal results serialize to
  // equal bytes.
  std::vector<std::pair<std::string, std::string>> payloads;
  result.status.ForEachPayload(
      [&payloads](absl::string_view type_url, const absl::Cord& payload) {
        payloads.emplace_back(std::string(type_url), std::string(payload));
      });
  std::sort(payloads.begin(), payloads.end());
  for (auto& [type_url, value] : payloads) {
    google::protobuf::Any* detail = proto.add_details();
    detail->set_type_url(std::move(type_url));
    detail->set_value(std::move(value));
  }
  google::protobuf::Any* response = proto.add_details();
  response->set_type_url(std::string(kStoredResponseTypeUrl));
  response->set_value(result.response);
  return proto.SerializeAsString();
}

absl::StatusOr<StoredResult> ParseStoredResult(absl::string_view bytes) {
  google::rpc::Status proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return DataLoss("not a google.rpc.Status");
  }
  if (proto.details_size() == 0 ||
      proto.details(proto.details_size() - 1).type_url() !=
          kStoredResponseTypeUrl) {
    return DataLoss("no response detail");
  }
  if (proto.code() < 0 || proto.code() > 16) {
    return DataLoss("status code out of range");
  }
  const int payload_count = proto.details_size() - 1;
  StoredResult result;
  result.response = proto.details(payload_count).value();
  if (proto.code() == 0) {
    // absl::OkStatus() carries neither message nor payloads.
    if (!proto.message().empty() || payload_count != 0) {
      return DataLoss("OK status with message or details");
    }
    return result;
  }
  result.status = absl::Status(static_cast<absl::StatusCode>(proto.code()),
                               proto.message());
  for (int i = 0; i < payload_count; ++i) {
    const google::protobuf::Any& detail = proto.details(i);
    if (detail.type_url().empty()) return DataLoss("detail without type URL");
    result.status.SetPayload(detail.type_url(), absl::Cord(detail.value()));
  }
  return result;
}

errors::Outcome OutcomeOfStored(const StoredResult& result) {
  if (result.status.ok()) return errors::Outcome::kCommitted;
  const absl::optional<google::rpc::ErrorInfo> info =
      errors::GetErrorInfo(result.status);
  if (info.has_value()) {
    const auto it = info->metadata().find("outcome");
    if (it != info->metadata().end()) {
      for (errors::Outcome o :
           {errors::Outcome::kNotSent, errors::Outcome::kRejected,
            errors::Outcome::kUnknown, errors::Outcome::kCommitted}) {
        if (it->second == errors::OutcomeName(o)) return o;
      }
    }
  }
  return errors::Outcome::kUnknown;
}

StoredResult AbandonedResult() {
  StoredResult result;
  result.status = absl::UnknownError(
      "an earlier call with this idempotency key ended before its outcome "
      "was known (the gateway handling it stopped); reconcile by merchant "
      "reference before retrying with a new key");
  errors::AttachErrorInfo(result.status, errors::kGatewayDomain,
                          kAbandonedReason, errors::Outcome::kUnknown);
  return result;
}

std::string NewLeaseToken() {
  unsigned char bytes[16];
  // RAND_bytes only fails when the CSPRNG cannot be seeded; a predictable or
  // repeated token could let two holders share a key, so do not go on.
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) abort();
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof(bytes)));
}

BeginResult BeginResultOf(BeginResult::Kind kind) {
  BeginResult result;
  result.kind = kind;
  return result;
}

BeginResult ClaimedResult(std::string lease_token) {
  BeginResult result = BeginResultOf(BeginResult::Kind::kClaimed);
  result.lease_token = std::move(lease_token);
  return result;
}

BeginResult CompletedResult(StoredResult stored) {
  BeginResult result = BeginResultOf(BeginResult::Kind::kCompleted);
  result.result = std::move(stored);
  return result;
}

absl::Status LeaseNotHeldError() {
  return absl::FailedPreconditionError(
      "the lease token no longer holds this idempotency key (its lease "
      "expired, or it was completed or released)");
}

absl::Status StoreShuttingDownError() {
  return absl::UnavailableError("idempotency store shutting down");
}

absl::Status CheckSettleableUnknown(const StoredResult& expected) {
  // The outcome must be stated "unknown", not merely missing (which
  // OutcomeOfStored reads as unknown to be safe): a result without one was
  // not written as an unknown outcome and is not the reconciler's to replace.
  bool unknown = false;
  if (!expected.status.ok()) {
    const absl::optional<google::rpc::ErrorInfo> info =
        errors::GetErrorInfo(expected.status);
    if (info.has_value()) {
      const auto it = info->metadata().find("outcome");
      unknown = it != info->metadata().end() &&
                it->second == errors::OutcomeName(errors::Outcome::kUnknown);
    }
  }
  if (!unknown) {
    return absl::InvalidArgumentError(
        "only a result whose outcome is unknown can be settled again");
  }
  return absl::OkStatus();
}

absl::Status NotTheUnknownResultError() {
  return absl::FailedPreconditionError(
      "the idempotency record is not the unknown result expected (absent, in "
      "flight, for another request, or already settled)");
}

void IdempotencyStore::SettleUnknown(const IdempotencyKey& /*key*/,
                                     absl::string_view /*request_hash*/,
                                     const StoredResult& /*expected*/,
                                     StoredResult /*result*/,
                                     DoneCallback done) {
  std::move(done)(absl::UnimplementedError(
      "this idempotency store cannot settle unknown results"));
}

}  // namespace clink_gateway::idempotency
