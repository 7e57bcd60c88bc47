#include "adapters/idempotency/order_event_hint.h"

#include "absl/strings/match.h"
#include "rapidjson/document.h"
#include "rapidjson/error/error.h"

namespace clink_gateway::idempotency {
namespace {

// The string member `name` of `object`, if it is a string of 1 to
// kMaxOrderEventIdBytes bytes.
std::optional<std::string> IdMember(const rapidjson::Value& object,
                                    const char* name) {
  const auto it = object.FindMember(name);
  if (it == object.MemberEnd() || !it->value.IsString()) return std::nullopt;
  const size_t length = it->value.GetStringLength();
  if (length == 0 || length > kMaxOrderEventIdBytes) return std::nullopt;
  return std::string(it->value.GetString(), length);
}

}  // namespace

std::optional<OrderEventHint> ParseOrderEventHint(absl::string_view type,
                                                  absl::string_view body) {
  if (!absl::StartsWith(type, "order.") || body.size() > kMaxOrderEventBytes) {
    return std::nullopt;
  }
  rapidjson::Document doc;
  // Iterative: the stack does not grow with the nesting depth. Numbers as
  // strings: no value passes through a double (none is read anyway).
  doc.Parse<rapidjson::kParseIterativeFlag |
            rapidjson::kParseNumbersAsStringsFlag>(body.data(), body.size());
  if (doc.HasParseError() || !doc.IsObject()) return std::nullopt;
  const auto data = doc.FindMember("data");
  if (data == doc.MemberEnd() || !data->value.IsObject()) return std::nullopt;
  const rapidjson::Value* resource = &data->value;
  if (const auto object = data->value.FindMember("object");
      object != data->value.MemberEnd() && object->value.IsObject()) {
    resource = &object->value;
  }
  std::optional<std::string> order_id = IdMember(*resource, "orderId");
  std::optional<std::string> reference =
      IdMember(*resource, "merchantReferenceId");
  if (!order_id.has_value() || !reference.has_value()) return std::nullopt;
  return OrderEventHint{*std::move(order_id), *std::move(reference)};
}

}  // namespace clink_gateway::idempotency
