#include "adapters/events/event_store_util.h"

#include <algorithm>
#include <limits>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/errors/error_details.h"

namespace clink_gateway::events::internal {
namespace {

using errors::FieldViolation;

constexpr char kTokenPrefix[] = "clink-gateway-events:";

void CheckMerchant(absl::string_view merchant,
                   std::vector<FieldViolation>* violations) {
  if (merchant.empty() || merchant.size() > kMaxMerchantBytes) {
    violations->push_back({"merchant", "must be 1-255 bytes"});
  }
}

void CheckSubscriptionName(absl::string_view name, absl::string_view field,
                           std::vector<FieldViolation>* violations) {
  if (name.empty() || name.size() > kMaxSubscriptionNameBytes) {
    violations->push_back({std::string(field), "must be 1-63 bytes"});
  }
}

void CheckTypes(const std::vector<std::string>& types, absl::string_view field,
                std::vector<FieldViolation>* violations) {
  if (types.size() > kMaxSubscriptionEventTypes) {
    violations->push_back(
        {std::string(field), "at most 100 event types may be named"});
    return;
  }
  for (size_t i = 0; i < types.size(); ++i) {
    if (types[i].empty() || types[i].size() > kMaxEventTypeBytes) {
      violations->push_back({absl::StrCat(field, "[", i, "]"),
                             "an event type is 1-255 bytes"});
    }
  }
}

bool ValidEventId(absl::string_view id) {
  return !id.empty() && id.size() <= kMaxEventIdBytes &&
         std::all_of(id.begin(), id.end(),
                     [](char c) { return c >= 0x21 && c <= 0x7e; });
}

absl::Status Result(const std::vector<FieldViolation>& violations) {
  return violations.empty()
             ? absl::OkStatus()
             : errors::InvalidArgumentWithViolations(violations);
}

}  // namespace

absl::Status ValidateEvent(const StoredEvent& event) {
  std::vector<FieldViolation> violations;
  CheckMerchant(event.merchant, &violations);
  if (!ValidEventId(event.event_id)) {
    violations.push_back(
        {"event_id", "must be 1-255 printable ASCII characters"});
  }
  if (event.type.size() > kMaxEventTypeBytes) {
    violations.push_back({"type", "must be at most 255 bytes"});
  }
  if (event.body.size() > kMaxBodyBytes) {
    violations.push_back({"body", "must be at most 1 MiB (1048576 bytes)"});
  }
  return Result(violations);
}

absl::Status ValidateSubscription(const SubscriptionSpec& spec) {
  std::vector<FieldViolation> violations;
  CheckMerchant(spec.merchant, &violations);
  CheckSubscriptionName(spec.name, "name", &violations);
  CheckTypes(spec.event_types, "event_types", &violations);
  return Result(violations);
}

absl::Status ValidateEventRef(absl::string_view merchant,
                              absl::string_view event_id) {
  std::vector<FieldViolation> violations;
  CheckMerchant(merchant, &violations);
  if (!ValidEventId(event_id)) {
    violations.push_back(
        {"event_id", "must be 1-255 printable ASCII characters"});
  }
  return Result(violations);
}

absl::Status ValidateAcknowledge(absl::string_view merchant,
                                 absl::string_view subscription,
                                 const std::vector<std::string>& event_ids) {
  std::vector<FieldViolation> violations;
  CheckMerchant(merchant, &violations);
  CheckSubscriptionName(subscription, "subscription", &violations);
  if (event_ids.size() > kMaxAcknowledgeIds) {
    violations.push_back({"event_ids", "at most 1000 per call"});
  } else {
    for (size_t i = 0; i < event_ids.size(); ++i) {
      if (!ValidEventId(event_ids[i])) {
        violations.push_back({absl::StrCat("event_ids[", i, "]"),
                              "must be 1-255 printable ASCII characters"});
      }
    }
  }
  return Result(violations);
}

absl::Status ValidateSubscriptionRef(absl::string_view merchant,
                                     absl::string_view subscription) {
  std::vector<FieldViolation> violations;
  CheckMerchant(merchant, &violations);
  CheckSubscriptionName(subscription, "subscription", &violations);
  return Result(violations);
}

absl::Status ValidateClaim(absl::string_view merchant,
                           absl::string_view subscription,
                           absl::string_view consumer, int max_events,
                           absl::Duration ack_deadline) {
  std::vector<FieldViolation> violations;
  CheckMerchant(merchant, &violations);
  CheckSubscriptionName(subscription, "subscription", &violations);
  if (consumer.empty() || consumer.size() > 255) {
    violations.push_back({"consumer", "must be 1-255 bytes"});
  }
  if (max_events < 1 || max_events > kMaxClaimEvents) {
    violations.push_back({"max_events", "must be 1-1000"});
  }
  if (ack_deadline <= absl::ZeroDuration() ||
      ack_deadline > absl::Hours(24)) {
    violations.push_back({"ack_deadline", "must be positive, at most 24h"});
  }
  return Result(violations);
}

absl::Status ValidateListQuery(const ListQuery& query) {
  std::vector<FieldViolation> violations;
  CheckMerchant(query.merchant, &violations);
  if (query.page_size < 1 || query.page_size > kMaxPageSize) {
    violations.push_back({"page_size", "must be 1-100"});
  }
  CheckTypes(query.event_types, "event_types", &violations);
  return Result(violations);
}

absl::Status SubscriptionNotFound(absl::string_view merchant,
                                  absl::string_view name) {
  return absl::NotFoundError(absl::StrCat("no subscription \"", name,
                                          "\" for merchant \"", merchant,
                                          "\""));
}

std::string CanonicalTypes(const std::vector<std::string>& types) {
  const std::set<std::string> sorted(types.begin(), types.end());
  std::string out;
  for (const std::string& type : sorted) {
    absl::StrAppend(&out, type.size(), ":", type);
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ParseCanonicalTypes(
    absl::string_view canonical) {
  std::vector<std::string> types;
  while (!canonical.empty()) {
    const size_t colon = canonical.find(':');
    size_t size = 0;
    if (colon == absl::string_view::npos ||
        !absl::SimpleAtoi(canonical.substr(0, colon), &size) ||
        size > canonical.size() - colon - 1) {
      return absl::DataLossError("a subscription's event types do not parse");
    }
    types.emplace_back(canonical.substr(colon + 1, size));
    canonical.remove_prefix(colon + 1 + size);
  }
  return types;
}

bool TypeSelected(const absl::flat_hash_set<std::string>& types,
                  absl::string_view type) {
  return types.empty() || types.contains(type);
}

std::string EncodePageToken(absl::string_view kind,
                            absl::string_view position) {
  return absl::WebSafeBase64Escape(
      absl::StrCat(kTokenPrefix, kind, ":", position));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view kind,
                                            absl::string_view token) {
  std::string raw;
  const std::string prefix = absl::StrCat(kTokenPrefix, kind, ":");
  if (token.size() > 512 || !absl::WebSafeBase64Unescape(token, &raw) ||
      !absl::StartsWith(raw, prefix)) {
    return errors::InvalidArgumentWithViolations(
        {{"page_token", "not a page token of this list"}});
  }
  return raw.substr(prefix.size());
}

int64_t ToUnixMillisClamped(absl::Time t) {
  if (t == absl::InfinitePast()) return std::numeric_limits<int64_t>::min();
  if (t == absl::InfiniteFuture()) return std::numeric_limits<int64_t>::max();
  return absl::ToUnixMillis(t);
}

int64_t ToUnixMicrosClamped(absl::Time t) {
  if (t == absl::InfinitePast()) return std::numeric_limits<int64_t>::min();
  if (t == absl::InfiniteFuture()) return std::numeric_limits<int64_t>::max();
  return absl::ToUnixMicros(t);
}

}  // namespace clink_gateway::events::internal
