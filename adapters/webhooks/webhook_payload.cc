#include "adapters/webhooks/webhook_payload.h"

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"

namespace clink_gateway::webhooks {
namespace {

// Iterative parsing keeps the stack bounded whatever the input; no NaN/Inf;
// strict UTF-8.
constexpr unsigned kParseFlags =
    rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;

// Builds the DOM through a handler that refuses nesting past the cap, so a
// hostile body never makes a deep tree (which rapidjson's writer and
// destructor would walk recursively).
class DepthLimitedHandler
    : public rapidjson::BaseReaderHandler<rapidjson::UTF8<>,
                                          DepthLimitedHandler> {
 public:
  explicit DepthLimitedHandler(rapidjson::Document& doc) : doc_(doc) {}

  bool too_deep() const { return too_deep_; }

  bool Null() { return doc_.Null(); }
  bool Bool(bool b) { return doc_.Bool(b); }
  bool Int(int i) { return doc_.Int(i); }
  bool Uint(unsigned u) { return doc_.Uint(u); }
  bool Int64(int64_t i) { return doc_.Int64(i); }
  bool Uint64(uint64_t u) { return doc_.Uint64(u); }
  bool Double(double d) { return doc_.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) {
    return doc_.RawNumber(s, n, copy);
  }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    return doc_.String(s, n, copy);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    return doc_.Key(s, n, copy);
  }
  bool StartObject() { return Enter() && doc_.StartObject(); }
  bool EndObject(rapidjson::SizeType n) {
    --depth_;
    return doc_.EndObject(n);
  }
  bool StartArray() { return Enter() && doc_.StartArray(); }
  bool EndArray(rapidjson::SizeType n) {
    --depth_;
    return doc_.EndArray(n);
  }

 private:
  bool Enter() {
    if (++depth_ > kMaxWebhookJsonDepth) {
      too_deep_ = true;
      return false;
    }
    return true;
  }

  rapidjson::Document& doc_;
  int depth_ = 0;
  bool too_deep_ = false;
};

bool PrintableAscii(absl::string_view text) {
  for (char c : text) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

absl::Status Invalid(absl::string_view field, absl::string_view problem) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", problem));
}

// Reads the required string member `name` (1-255 printable ASCII).
absl::Status ReadName(const rapidjson::Value& envelope, const char* name,
                      std::string* out) {
  const auto it = envelope.FindMember(name);
  if (it == envelope.MemberEnd()) return Invalid(name, "missing");
  if (!it->value.IsString()) return Invalid(name, "not a string");
  const absl::string_view value(it->value.GetString(),
                                it->value.GetStringLength());
  if (value.empty() || value.size() > kMaxEventIdLength ||
      !PrintableAscii(value)) {
    return Invalid(name, "not 1-255 printable ASCII characters");
  }
  *out = std::string(value);
  return absl::OkStatus();
}

absl::Time ReadCreated(const rapidjson::Value& envelope) {
  const auto it = envelope.FindMember("created");
  if (it == envelope.MemberEnd()) return absl::InfinitePast();
  const rapidjson::Value& created = it->value;
  if (created.IsInt64() && created.GetInt64() >= 0) {
    return absl::FromUnixMillis(created.GetInt64());
  }
  if (created.IsString() && created.GetStringLength() <= 64) {
    absl::Time t;
    std::string error;
    if (absl::ParseTime(absl::RFC3339_full,
                        std::string(created.GetString(),
                                    created.GetStringLength()),
                        &t, &error)) {
      return t;
    }
  }
  return absl::InfinitePast();
}

}  // namespace

absl::StatusOr<WebhookPayload> ParseWebhookPayload(absl::string_view body) {
  if (body.size() > kMaxWebhookBodyBytes) {
    return absl::InvalidArgumentError("body: larger than 1 MiB");
  }
  // The DOM is built from the parser's events through the depth check
  // (Document::Populate runs the generator with the document as handler).
  bool too_deep = false;
  rapidjson::ParseResult result;
  auto generate = [body, &too_deep, &result](rapidjson::Document& target) {
    DepthLimitedHandler handler(target);
    rapidjson::MemoryStream stream(body.data(), body.size());
    rapidjson::Reader reader;
    result = reader.Parse<kParseFlags>(stream, handler);
    too_deep = handler.too_deep();
    return !result.IsError();
  };
  rapidjson::Document doc;
  doc.Populate(generate);
  if (too_deep) {
    return absl::InvalidArgumentError(absl::StrCat(
        "body: JSON nested deeper than ", kMaxWebhookJsonDepth, " levels"));
  }
  if (result.IsError()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "body: not JSON (", rapidjson::GetParseError_En(result.Code()),
        " at offset ", result.Offset(), ")"));
  }
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError("body: not a JSON object");
  }
  WebhookPayload payload;
  if (absl::Status s = ReadName(doc, "id", &payload.id); !s.ok()) return s;
  if (absl::Status s = ReadName(doc, "type", &payload.type); !s.ok()) {
    return s;
  }
  payload.create_time = ReadCreated(doc);
  const auto data = doc.FindMember("data");
  if (data != doc.MemberEnd() && !data->value.IsNull()) {
    payload.has_data = true;
    payload.legacy_data = true;
    if (data->value.IsObject()) {
      const auto inner = data->value.FindMember("object");
      payload.legacy_data = inner == data->value.MemberEnd() ||
                            !inner->value.IsObject();
    }
  }
  return payload;
}

}  // namespace clink_gateway::webhooks
