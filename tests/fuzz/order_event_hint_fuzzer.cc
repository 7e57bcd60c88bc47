// The outcome reconciler's reading of a stored webhook body
// (adapters/idempotency/order_event_hint.h) on arbitrary bytes. The first
// input byte picks the event type (even: "order.succeeded", odd:
// "refund.succeeded"); the rest is the body.
//
// Properties:
// - Never crashes or exhausts the stack, whatever the nesting or size.
// - A hint is only ever given for an order.* type, with an order id and a
//   reference of 1 to kMaxOrderEventIdBytes bytes, each a substring of the
//   body's bytes when it has no escapes (ids are copied, never invented).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "adapters/idempotency/order_event_hint.h"
#include "tests/fuzz/fuzz_check.h"

using clink_gateway::idempotency::kMaxOrderEventIdBytes;
using clink_gateway::idempotency::OrderEventHint;
using clink_gateway::idempotency::ParseOrderEventHint;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool order = (data[0] & 1) == 0;
  const absl::string_view body(reinterpret_cast<const char*>(data + 1),
                               size - 1);
  const std::optional<OrderEventHint> hint =
      ParseOrderEventHint(order ? "order.succeeded" : "refund.succeeded", body);
  if (!hint.has_value()) return 0;
  FUZZ_CHECK(order, "a hint for a refund event");
  for (const std::string* id : {&hint->order_id, &hint->merchant_reference_id}) {
    FUZZ_CHECK(!id->empty() && id->size() <= kMaxOrderEventIdBytes,
               "id of %zu bytes", id->size());
    if (body.find('\\') == absl::string_view::npos) {
      FUZZ_CHECK(body.find(*id) != absl::string_view::npos,
                 "id \"%s\" is not in the body", id->c_str());
    }
  }
  return 0;
}
