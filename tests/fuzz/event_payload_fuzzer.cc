// The EventService's decoding of a stored webhook body
// (server/event_payload.h) on arbitrary bytes. The input is split at the
// first '\n' into the event type and the body.
//
// Properties:
// - Never crashes, whatever the nesting or encoding.
// - The envelope fields come from the stored event untouched.
// - `raw_json`, when set, is a byte range of the body that is a JSON object
//   ('{' ... '}').
// - At most one of the typed payload and `data` is set, and neither without
//   `raw_json`.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "adapters/events/event_store.h"
#include "server/event_payload.h"
#include "tests/fuzz/fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const clink_gateway::server::EventPayloadDecoder* const decoder =
      clink_gateway::server::EventPayloadDecoder::Create()->release();
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  clink_gateway::events::StoredEvent stored;
  stored.merchant = "default";
  stored.event_id = "evt_fuzz";
  stored.type = std::string(input.substr(0, newline));
  stored.body = newline == absl::string_view::npos
                    ? std::string()
                    : std::string(input.substr(newline + 1));
  ::clink::gateway::v1::Event event;
  decoder->Decode(stored, 1, &event);
  FUZZ_CHECK(event.event_id() == "evt_fuzz", "event_id %s",
             event.event_id().c_str());
  FUZZ_CHECK(event.type() == stored.type, "type changed");
  FUZZ_CHECK(event.delivery_attempt() == 1, "delivery_attempt %d",
             event.delivery_attempt());
  const std::string& raw = event.raw_json();
  if (!raw.empty()) {
    FUZZ_CHECK(stored.body.find(raw) != std::string::npos,
               "raw_json is not a range of the body");
    FUZZ_CHECK(raw.front() == '{' && raw.back() == '}',
               "raw_json is not an object: %s", raw.c_str());
  }
  const bool typed =
      event.payload_case() != ::clink::gateway::v1::Event::PAYLOAD_NOT_SET;
  FUZZ_CHECK(!(typed && event.has_data()),
             "both the typed payload and data are set");
  FUZZ_CHECK(raw.empty() ? !typed && !event.has_data() : true,
             "a payload without raw_json");
  return 0;
}
