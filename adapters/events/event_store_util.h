// What SqliteEventStore and RedisEventStore share: the bounds on what they
// accept, the canonical form of a subscription's event types, and the page
// token format. Internal to adapters/events.
#ifndef CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_UTIL_H_
#define CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_UTIL_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/events/event_store.h"

namespace clink_gateway::events::internal {

// Bounds on what a store accepts (kInvalidArgument beyond them).
inline constexpr size_t kMaxEventIdBytes = 255;
inline constexpr size_t kMaxEventTypeBytes = 255;
inline constexpr size_t kMaxMerchantBytes = 255;
inline constexpr size_t kMaxBodyBytes = 1 << 20;  // 1 MiB, as the listener.
inline constexpr size_t kMaxSubscriptionNameBytes = 63;
// Event types one subscription may name.
inline constexpr size_t kMaxSubscriptionEventTypes = 100;
// Events one Claim hands out, and one Acknowledge names, at most.
inline constexpr int kMaxClaimEvents = 1000;
inline constexpr size_t kMaxAcknowledgeIds = 1000;
inline constexpr int kMaxPageSize = 100;
// Subscriptions per merchant (kResourceExhausted beyond).
inline constexpr size_t kDefaultMaxSubscriptionsPerMerchant = 100;

// kInvalidArgument naming the field (merchant, event_id, type, body) that is
// out of bounds: merchant 1-255 bytes, event id 1-255 printable ASCII, type at
// most 255 bytes, body at most 1 MiB.
absl::Status ValidateEvent(const StoredEvent& event);
// merchant as above, name 1-63 bytes, at most 100 event types of at most 255
// bytes each.
absl::Status ValidateSubscription(const SubscriptionSpec& spec);
// merchant and subscription name as above, consumer non-empty (at most 255
// bytes), max_events 1-1000, ack_deadline positive.
absl::Status ValidateClaim(absl::string_view merchant,
                           absl::string_view subscription,
                           absl::string_view consumer, int max_events,
                           absl::Duration ack_deadline);
absl::Status ValidateSubscriptionRef(absl::string_view merchant,
                                     absl::string_view subscription);
// merchant as above, event_id as in ValidateEvent (field "event_id").
absl::Status ValidateEventRef(absl::string_view merchant,
                              absl::string_view event_id);
// merchant and subscription name as above, at most 1000 ids, each as in
// ValidateEvent (field "event_ids[i]").
absl::Status ValidateAcknowledge(absl::string_view merchant,
                                 absl::string_view subscription,
                                 const std::vector<std::string>& event_ids);
// merchant, page_size 1-100, at most 100 event types.
absl::Status ValidateListQuery(const ListQuery& query);

// kNotFound: no subscription `name` for `merchant`.
absl::Status SubscriptionNotFound(absl::string_view merchant,
                                  absl::string_view name);

// The set `types` as one string (sorted, duplicates removed, each entry
// length-prefixed): equal sets give equal strings. "" for the empty set.
std::string CanonicalTypes(const std::vector<std::string>& types);
// The inverse of CanonicalTypes; kDataLoss for a string it did not make.
absl::StatusOr<std::vector<std::string>> ParseCanonicalTypes(
    absl::string_view canonical);

// Whether an event of `type` is delivered by a subscription (or listed by a
// query) taking `types` (empty: all).
bool TypeSelected(const absl::flat_hash_set<std::string>& types,
                  absl::string_view type);

// An opaque page token wrapping a store's position (`kind` names the store so
// that one store's token is refused by the other).
std::string EncodePageToken(absl::string_view kind, absl::string_view position);
// The position, or kInvalidArgument (field page_token) for a token that
// EncodePageToken(kind, ...) did not make.
absl::StatusOr<std::string> DecodePageToken(absl::string_view kind,
                                            absl::string_view token);

// An absl::Time as Unix milliseconds / microseconds, with the infinities
// clamped to the int64 range.
int64_t ToUnixMillisClamped(absl::Time t);
int64_t ToUnixMicrosClamped(absl::Time t);

}  // namespace clink_gateway::events::internal

#endif  // CLINK_GATEWAY_ADAPTERS_EVENTS_EVENT_STORE_UTIL_H_
