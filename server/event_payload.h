// Turns a stored webhook event (events::StoredEvent: the raw body as Clink
// sent it) into the EventService's clink.gateway.v1.Event.
#ifndef CLINK_GATEWAY_SERVER_EVENT_PAYLOAD_H_
#define CLINK_GATEWAY_SERVER_EVENT_PAYLOAD_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/events/event_store.h"
#include "clink/gateway/v1/events.pb.h"
#include "google/protobuf/descriptor.h"

namespace clink_gateway::server {

class EventPayloadDecoder {
 public:
  // The largest body decoded (the webhook listener's cap, 1 MiB); a larger
  // one gets only the envelope fields.
  static constexpr size_t kMaxBodyBytes = 1 << 20;
  // The deepest JSON resource decoded or copied into `raw_json` and `data`.
  static constexpr int kMaxDepth = 64;

  // Compiles the REST codec over the payload messages of Event's `payload`
  // oneof. FAILED_PRECONDITION when they do not compile (a proto bug).
  static absl::StatusOr<std::unique_ptr<EventPayloadDecoder>> Create();

  // Fills `out`: event_id, type, merchant, create_time and receive_time from
  // the stored event (unset when unknown), `delivery_attempt`, and from the
  // body's resource (`data.object`, else `data`): `raw_json` always (empty
  // only when the body has no resource object or it nests deeper than
  // kMaxDepth), the `payload` message chosen by the type's prefix (order.,
  // refund., session., subscription., invoice., dispute., customer.verify),
  // decoded with the REST codec's response rules (money as decimal strings);
  // `data` (a Struct) instead for other types and for a resource that does
  // not decode into its message (an unreadable amount, a bad string). Never
  // fails: hostile bodies yield fewer fields.
  void Decode(const events::StoredEvent& stored, int32_t delivery_attempt,
              ::clink::gateway::v1::Event* out) const;

 private:
  struct Route {
    std::string prefix;  // "order." or, exact, "customer.verify".
    bool exact = false;
    const google::protobuf::FieldDescriptor* field = nullptr;
  };
  EventPayloadDecoder(std::unique_ptr<clink::RestCodec> codec,
                      std::vector<Route> routes)
      : codec_(std::move(codec)), routes_(std::move(routes)) {}

  const google::protobuf::FieldDescriptor* PayloadField(
      absl::string_view type) const;

  const std::unique_ptr<clink::RestCodec> codec_;
  const std::vector<Route> routes_;
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_EVENT_PAYLOAD_H_
