#include "server/event_payload.h"

#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "google/protobuf/reflection.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"
#include "rapidjson/stream.h"

namespace clink_gateway::server {
namespace {

using ::clink::gateway::v1::Event;
using google::protobuf::FieldDescriptor;

// Numbers keep their exact text (money never becomes a double); iterative
// parsing keeps the stack bounded.
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseNumbersAsStringsFlag |
                                 rapidjson::kParseValidateEncodingFlag;

// Finds the byte spans of the body's `data` object and of `data.object` (the
// first of each) while parsing, so `raw_json` is the resource exactly as
// Clink sent it: numbers, escapes and spacing untouched. Also bounds the
// nesting depth. Iterative parse: no recursion per level.
class ResourceSpans
    : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>, ResourceSpans> {
 public:
  explicit ResourceSpans(const rapidjson::MemoryStream& stream)
      : stream_(stream) {}

  bool Default() {
    Value();
    return true;
  }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return Default(); }
  bool String(const char*, rapidjson::SizeType, bool) { return Default(); }
  bool Key(const char* s, rapidjson::SizeType n, bool) {
    key_.assign(s, n);
    return true;
  }
  bool StartObject() { return Start(true); }
  bool StartArray() { return Start(false); }
  bool EndObject(rapidjson::SizeType) { return End(); }
  bool EndArray(rapidjson::SizeType) { return End(); }

  // [begin, end) of `data` and of `data.object`; begin == end when absent.
  size_t data_begin = 0, data_end = 0;
  size_t object_begin = 0, object_end = 0;

 private:
  void Value() { key_.clear(); }
  bool Start(bool object) {
    // The iterative parser calls the handler before it takes the bracket.
    const size_t at = stream_.Tell();  // At the '{' or '['.
    if (object && depth_ == 1 && key_ == "data" && data_end == 0 && !in_data_) {
      data_begin = at;
      in_data_ = true;
      data_depth_ = depth_ + 1;
    } else if (object && in_data_ && depth_ == data_depth_ &&
               key_ == "object" && object_end == 0 && !in_object_) {
      object_begin = at;
      in_object_ = true;
    }
    key_.clear();
    return ++depth_ <= EventPayloadDecoder::kMaxDepth + 2;
  }
  bool End() {
    --depth_;
    const size_t at = stream_.Tell() + 1;  // Just past the '}' or ']'.
    if (in_object_ && depth_ == data_depth_) {
      object_end = at;
      in_object_ = false;
    } else if (in_data_ && depth_ == data_depth_ - 1) {
      data_end = at;
      in_data_ = false;
    }
    key_.clear();
    return true;
  }

  const rapidjson::MemoryStream& stream_;
  std::string key_;
  int depth_ = 0;
  int data_depth_ = 0;
  bool in_data_ = false;
  bool in_object_ = false;
};

void SetTime(absl::Time t, google::protobuf::Timestamp* out) {
  // Only times a Timestamp can hold (0001-01-01 to 9999-12-31).
  static const absl::Time kMin = absl::FromUnixSeconds(-62135596800);
  static const absl::Time kMax = absl::FromUnixSeconds(253402300799);
  if (t < kMin || t > kMax) return;
  const timespec ts = absl::ToTimespec(t);
  out->set_seconds(ts.tv_sec);
  out->set_nanos(static_cast<int32_t>(ts.tv_nsec));
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventPayloadDecoder>>
EventPayloadDecoder::Create() {
  const google::protobuf::OneofDescriptor* oneof =
      Event::descriptor()->FindOneofByName("payload");
  // Event type prefix -> payload field (clink-api.md §13.2).
  const std::vector<std::pair<std::string, std::string>> table = {
      {"order.", "order"},
      {"refund.", "refund"},
      {"session.", "checkout_session"},
      {"subscription.", "subscription"},
      {"invoice.", "invoice"},
      {"dispute.", "dispute"},
      {"customer.verify", "customer_verification"},
  };
  std::vector<Route> routes;
  std::vector<const google::protobuf::Descriptor*> messages;
  for (const auto& [prefix, name] : table) {
    const FieldDescriptor* field = Event::descriptor()->FindFieldByName(name);
    if (field == nullptr || field->containing_oneof() != oneof) {
      return absl::FailedPreconditionError(
          absl::StrCat("Event has no payload field ", name));
    }
    routes.push_back({prefix, !absl::EndsWith(prefix, "."), field});
    messages.push_back(field->message_type());
  }
  absl::StatusOr<std::unique_ptr<clink::RestCodec>> codec =
      clink::RestCodec::Create({}, messages);
  if (!codec.ok()) return codec.status();
  return std::unique_ptr<EventPayloadDecoder>(
      new EventPayloadDecoder(*std::move(codec), std::move(routes)));
}

const FieldDescriptor* EventPayloadDecoder::PayloadField(
    absl::string_view type) const {
  for (const Route& route : routes_) {
    if (route.exact ? type == route.prefix
                    : absl::StartsWith(type, route.prefix)) {
      return route.field;
    }
  }
  return nullptr;
}

void EventPayloadDecoder::Decode(const events::StoredEvent& stored,
                                 int32_t delivery_attempt, Event* out) const {
  out->set_event_id(stored.event_id);
  out->set_type(stored.type);
  out->set_merchant(stored.merchant);
  out->set_delivery_attempt(delivery_attempt);
  SetTime(stored.create_time, out->mutable_create_time());
  SetTime(stored.receive_time, out->mutable_receive_time());
  if (out->create_time().ByteSizeLong() == 0) out->clear_create_time();
  if (out->receive_time().ByteSizeLong() == 0) out->clear_receive_time();

  if (stored.body.size() > kMaxBodyBytes) return;
  // The body came through the listener's checks; it is still parsed as
  // hostile input. A MemoryStream, bounded by the body's size: with a
  // NUL-terminated StringStream, RapidJSON's UTF-8 validation reads a
  // multi-byte sequence's continuation bytes past the terminator (a body
  // ending in a lead byte read out of bounds; found by event_payload_fuzzer).
  const std::string& body = stored.body;
  rapidjson::MemoryStream stream(body.data(), body.size());
  ResourceSpans spans(stream);
  rapidjson::Reader reader;
  if (reader.Parse<kParseFlags>(stream, spans).IsError()) return;
  if (spans.object_end > spans.object_begin) {  // The newest form.
    out->set_raw_json(
        body.substr(spans.object_begin, spans.object_end - spans.object_begin));
  } else if (spans.data_end > spans.data_begin) {  // Legacy: `data` itself.
    out->set_raw_json(
        body.substr(spans.data_begin, spans.data_end - spans.data_begin));
  } else {
    return;
  }

  if (const FieldDescriptor* field = PayloadField(stored.type)) {
    google::protobuf::Message* payload =
        out->GetReflection()->MutableMessage(out, field);
    clink::DecodeStats stats;
    if (codec_->DecodeMessage(out->raw_json(), payload, &stats).ok() &&
        stats.unreadable_amounts == 0 && stats.values_too_deep == 0 &&
        stats.unreadable_strings == 0) {
      return;
    }
    out->GetReflection()->ClearField(out, field);  // Not what Clink sent.
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(out->raw_json(),
                                                   out->mutable_data(), options)
           .ok()) {
    out->clear_data();
  }
}

}  // namespace clink_gateway::server
