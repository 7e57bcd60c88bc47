// The event stores' handling of caller bytes (adapters/events/event_store_util.h):
// page tokens (ListEvents' page_token, from any caller), the stored canonical
// form of a subscription's event types, and the bounds on an event. The input
// is split at the first '\n' into a and b (b empty without one).
//
// Properties:
// - Page tokens: DecodePageToken never crashes; what it accepts re-encodes to
//   a token that decodes to the same position; a position always round-trips
//   and one store's token is refused by the other.
// - Event types: ParseCanonicalTypes(a) never crashes; what it accepts
//   canonicalizes to a string that parses back to the same set, in order.
// - Bounds: ValidateEvent with id a and type b accepts exactly ids of 1-255
//   printable ASCII characters (types of at most 255 bytes).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "adapters/events/event_store_util.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace internal = clink_gateway::events::internal;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const absl::string_view a = input.substr(0, newline);
  const absl::string_view b =
      newline == absl::string_view::npos ? absl::string_view()
                                         : input.substr(newline + 1);

  for (const char* kind : {"sqlite", "redis"}) {
    absl::StatusOr<std::string> position = internal::DecodePageToken(kind, a);
    if (position.ok()) {
      const std::string again = internal::EncodePageToken(kind, *position);
      absl::StatusOr<std::string> decoded =
          internal::DecodePageToken(kind, again);
      FUZZ_CHECK(decoded.ok() && *decoded == *position,
                 "an accepted token does not re-encode");
    }
  }
  const std::string token = internal::EncodePageToken("sqlite", a);
  if (token.size() <= 512) {
    absl::StatusOr<std::string> back = internal::DecodePageToken("sqlite", token);
    FUZZ_CHECK(back.ok() && *back == a, "a position does not round-trip");
    FUZZ_CHECK(!internal::DecodePageToken("redis", token).ok(),
               "a SQLite token is accepted by the Redis store");
  }

  absl::StatusOr<std::vector<std::string>> types =
      internal::ParseCanonicalTypes(a);
  if (types.ok()) {
    const std::string canonical = internal::CanonicalTypes(*types);
    absl::StatusOr<std::vector<std::string>> reparsed =
        internal::ParseCanonicalTypes(canonical);
    const std::set<std::string> set(types->begin(), types->end());
    FUZZ_CHECK(reparsed.ok() &&
                   *reparsed == std::vector<std::string>(set.begin(), set.end()),
               "canonical types do not parse back to the same set");
  }

  clink_gateway::events::StoredEvent event;
  event.merchant = "m";
  event.event_id = std::string(a);
  event.type = std::string(b.substr(0, 300));
  const bool id_ok = !a.empty() && a.size() <= 255 &&
                     std::all_of(a.begin(), a.end(), [](char c) {
                       return c >= 0x21 && c <= 0x7e;
                     });
  const bool type_ok = event.type.size() <= 255;
  FUZZ_CHECK(internal::ValidateEvent(event).ok() == (id_ok && type_ok),
             "ValidateEvent disagrees with the bounds");
  return 0;
}
