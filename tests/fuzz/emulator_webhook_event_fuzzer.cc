// The Clink emulator's webhook envelope (tests/emulator/webhook_sender.h) on
// arbitrary resource text, as POST /__emulator/webhooks/events receives it.
//
// Properties:
// - Publish accepts the text exactly when it is one JSON object (no NUL
//   byte, nothing but whitespace before the '{') nesting at most 64 deep, and
//   never crashes on anything else (deeper input is refused before rapidjson's
//   recursive parser sees it).
// - When accepted, the envelope of either form is one JSON object with the
//   fields of clink-api.md §13.2, and its resource (data.object, or data in
//   the legacy form) is the input object, value for value.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "rapidjson/document.h"
#include "rapidjson/pointer.h"
#include "rapidjson/reader.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "tests/emulator/webhook_sender.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

using clink_gateway::emulator::WebhookPayloadForm;
using clink_gateway::emulator::WebhookSender;

constexpr int kMaxDepth = 64;

// Tracks how deep arrays and objects nest; stops the parse beyond kMaxDepth,
// so no recursive rapidjson code (Document's destructor, Accept) ever sees
// deeper input.
struct DepthLimit
    : rapidjson::BaseReaderHandler<rapidjson::UTF8<>, DepthLimit> {
  int depth = 0;
  bool too_deep = false;
  bool Enter() {
    too_deep = too_deep || ++depth > kMaxDepth;
    return !too_deep;
  }
  bool StartObject() { return Enter(); }
  bool StartArray() { return Enter(); }
  bool EndObject(rapidjson::SizeType) { return --depth, true; }
  bool EndArray(rapidjson::SizeType) { return --depth, true; }
};

// Whether `text` (without NUL bytes) is JSON nesting at most kMaxDepth deep;
// parsed iteratively, so any input depth is safe.
bool ShallowJson(const std::string& text) {
  DepthLimit handler;
  rapidjson::Reader reader;
  rapidjson::StringStream stream(text.c_str());
  reader.Parse<rapidjson::kParseNumbersAsStringsFlag |
               rapidjson::kParseIterativeFlag>(stream, handler);
  return !reader.HasParseError() && !handler.too_deep;
}

// Parses `text` with numbers kept as text.
bool ParseObject(absl::string_view text, rapidjson::Document* doc) {
  doc->Parse<rapidjson::kParseNumbersAsStringsFlag>(text.data(), text.size());
  return !doc->HasParseError() && doc->IsObject();
}

// `value` written out again: rapidjson's operator== matches object members by
// name, which is wrong for objects with a repeated name, so values are
// compared as text.
std::string Text(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // One sender for the whole run, without targets: Publish only builds.
  static WebhookSender* const sender =
      WebhookSender::Start(WebhookSender::Options()).value().release();
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  rapidjson::Document input;
  // rapidjson treats a NUL byte as the end of the text and skips a leading
  // 0xEF (a byte-order mark's first byte), so both are checked apart: JSON
  // text has neither.
  const size_t start = text.find_first_not_of(" \t\r\n");
  const bool object = start != absl::string_view::npos && text[start] == '{' &&
                      text.find('\0') == absl::string_view::npos &&
                      ShallowJson(std::string(text)) &&
                      ParseObject(text, &input);
  const auto id = sender->Publish("default", "order.succeeded", text);
  FUZZ_CHECK(id.ok() == object, "Publish %s a %s",
             id.ok() ? "accepted" : "refused",
             object ? "JSON object" : "non-object or one too deep");
  if (!object) return 0;
  for (const WebhookPayloadForm form :
       {WebhookPayloadForm::kCurrent, WebhookPayloadForm::kLegacy}) {
    const std::string body =
        WebhookSender::EventBody(form, *id, "order.succeeded",
                                 absl::FromUnixMillis(1750062041000), text);
    rapidjson::Document envelope;
    FUZZ_CHECK(ParseObject(body, &envelope), "envelope is not a JSON object");
    const bool legacy = form == WebhookPayloadForm::kLegacy;
    const rapidjson::Value* resource =
        rapidjson::Pointer(legacy ? "/data" : "/data/object").Get(envelope);
    FUZZ_CHECK(resource != nullptr && Text(*resource) == Text(input),
               "the resource differs from the input");
    const rapidjson::Value* type = rapidjson::Pointer("/type").Get(envelope);
    FUZZ_CHECK(type != nullptr && type->IsString() &&
                   absl::string_view(type->GetString()) == "order.succeeded",
               "type lost");
    const rapidjson::Value* created =
        rapidjson::Pointer("/created").Get(envelope);
    FUZZ_CHECK(created != nullptr && created->IsString() &&
                   absl::string_view(created->GetString()) ==
                       (legacy ? "2025-06-16T08:20:41Z" : "1750062041000"),
               "created is wrong");
  }
  return 0;
}
