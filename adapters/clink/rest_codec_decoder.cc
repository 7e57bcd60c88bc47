// RestCodec's decoder: Clink's envelopes and JSON to proto.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "adapters/clink/currency.h"
#include "adapters/clink/decimal.h"
#include "adapters/clink/file_type.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/clink/rest_codec_internal.h"
#include "adapters/http/multipart.h"
#include "common/errors/error_details.h"
#include "common/status_macros.h"
#include "google/protobuf/descriptor_database.h"
#include "rapidjson/document.h"
#include "rapidjson/encodings.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace clink_gateway::clink {

// (The protobuf and RapidJSON names come from rest_codec_internal.h.)

namespace {

using rest_codec_internal::IsDecimal;
using rest_codec_internal::IsDecimalMap;
using rest_codec_internal::IsTimestamp;
using rest_codec_internal::kTimestampType;
using rest_codec_internal::RuleOf;

// Numbers arrive as their exact text; iterative parsing keeps the stack
// bounded; no NaN/Inf. Encoding: see ParseUtf8Json.
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseNumbersAsStringsFlag;

constexpr size_t kMaxUnknownExamples = 4;

// The deepest JSON value (arrays and objects inside a metadata value) kept as
// JSON text. Clink's metadata values are strings; a little structure is kept
// as is, a pathological nesting is refused (see JsonText).
constexpr int kMaxJsonValueDepth = 32;

void WriteTimestamp(absl::Time t, Message* ts) {
  const Descriptor* d = ts->GetDescriptor();
  const Reflection* r = ts->GetReflection();
  const int64_t seconds = absl::ToUnixSeconds(t);
  r->SetInt64(ts, d->FindFieldByName("seconds"), seconds);
  r->SetInt32(ts, d->FindFieldByName("nanos"),
              static_cast<int32_t>(absl::ToInt64Nanoseconds(
                  t - absl::FromUnixSeconds(seconds))));
}

bool ParseTimestamp(absl::string_view text, v1::ValueEncoding encoding,
                    absl::Time* out) {
  if (encoding == v1::VALUE_ENCODING_UNIX_MILLIS ||
      encoding == v1::VALUE_ENCODING_UNIX_SECONDS) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(text, &value)) return false;
    *out = encoding == v1::VALUE_ENCODING_UNIX_MILLIS
               ? absl::FromUnixMillis(value)
               : absl::FromUnixSeconds(value);
    return true;
  }
  // ISO-8601: with an offset or 'Z', or without one (then UTC), 'T' or ' '
  // between date and time.
  static constexpr const char* kFormats[] = {
      "%Y-%m-%d%ET%H:%M:%E*S%Ez",
      "%Y-%m-%d%ET%H:%M:%E*S",
      "%Y-%m-%d %H:%M:%E*S%Ez",
      "%Y-%m-%d %H:%M:%E*S",
      "%Y-%m-%d",
  };
  const std::string s(text);
  for (const char* format : kFormats) {
    std::string err;
    if (absl::ParseTime(format, s, absl::UTCTimeZone(), out, &err)) return true;
  }
  return false;
}

// Well-formed UTF-8 (no surrogates, overlong forms or code points past
// U+10FFFF). ASCII runs are checked eight bytes at a time; each multi-byte
// sequence by RapidJSON's own validator. The parser checks raw bytes (see
// ParseUtf8Json), but a `\u` escape of a lone surrogate ("\udd00") still
// decodes to ill-formed UTF-8, which a proto3 string field must never hold:
// the caller could not parse the response.
bool IsUtf8(absl::string_view text) {
  struct Discard {
    using Ch = char;
    void Put(Ch) {}
  } out;
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    uint64_t word;
    while (end - p >= 8 &&
           (std::memcpy(&word, p, 8), (word & 0x8080808080808080u) == 0)) {
      p += 8;
    }
    while (p < end && static_cast<unsigned char>(*p) < 0x80) ++p;
    if (p == end) break;
    rapidjson::MemoryStream in(p, static_cast<size_t>(end - p));
    if (!rapidjson::UTF8<>::Validate(in, out)) return false;
    p += in.Tell();
  }
  return true;
}

// Parses `text` into `doc` only if all of it is well-formed UTF-8: one IsUtf8
// pass refuses exactly the bodies RapidJSON's kParseValidateEncodingFlag
// would (invalid bytes inside a string; anywhere else they are a syntax error
// anyway) at a fraction of its cost (it validates each character of every
// string through its transcoder: a tenth of a GetOrder's instructions).
template <typename Document>
bool ParseUtf8Json(absl::string_view text, Document& doc) {
  return IsUtf8(text) &&
         !doc.template Parse<kParseFlags>(text.data(), text.size())
              .HasParseError();
}

// The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to
// 9999-12-31T23:59:59.999999999Z.
bool InTimestampRange(absl::Time t) {
  return t >= absl::FromUnixSeconds(-62135596800) &&
         t < absl::FromUnixSeconds(253402300800);
}

// True when `value` nests arrays and objects at most `max_depth` levels deep (a
// scalar is 0, `{"a":[1]}` is 2). Iterative, so the check itself cannot
// overflow the stack whatever the input; it stops at the first value too deep.
bool NestsAtMost(const rapidjson::Value& value, int max_depth) {
  struct Pending {
    const rapidjson::Value* value;
    int depth;  // Of the container `value` is in.
  };
  std::vector<Pending> pending = {{&value, 0}};
  while (!pending.empty()) {
    const Pending next = pending.back();
    pending.pop_back();
    if (next.value->IsObject()) {
      if (next.depth + 1 > max_depth) return false;
      for (auto it = next.value->MemberBegin(); it != next.value->MemberEnd();
           ++it) {
        if (it->value.IsObject() || it->value.IsArray()) {
          pending.push_back({&it->value, next.depth + 1});
        }
      }
    } else if (next.value->IsArray()) {
      if (next.depth + 1 > max_depth) return false;
      for (const rapidjson::Value& item : next.value->GetArray()) {
        if (item.IsObject() || item.IsArray()) {
          pending.push_back({&item, next.depth + 1});
        }
      }
    }
  }
  return true;
}

// A JSON scalar rendered as text (strings as-is, numbers as their digits thanks
// to kParseNumbersAsStringsFlag), or the serialized JSON of anything else.
// False, with `*out` untouched, for a value nested deeper than
// kMaxJsonValueDepth: rapidjson's writer recurses once per level, so an
// unbounded value from Clink could overflow the stack.
bool JsonText(const rapidjson::Value& value, std::string* out) {
  if (value.IsString()) {
    out->assign(value.GetString(), value.GetStringLength());
    return true;
  }
  if (!NestsAtMost(value, kMaxJsonValueDepth)) return false;
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  value.Accept(writer);
  out->assign(buffer.GetString(), buffer.GetSize());
  return true;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reflection walkers: decoding.

void RestCodec::Impl::DecodeObject(const rapidjson::Value& object,
                                   Message* message, const std::string& path,
                                   DecodeStats* stats) const {
  const Descriptor* d = message->GetDescriptor();
  const auto index_it = codec_.fields_.find(d);
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    const absl::string_view key(it->name.GetString(),
                                it->name.GetStringLength());
    const FieldDescriptor* f = nullptr;
    if (index_it != codec_.fields_.end()) {
      const auto found = index_it->second.find(key);  // No key copy.
      if (found != index_it->second.end()) f = found->second;
    }
    // The member's JSON path, only built when needed (drift examples and
    // nested values), so decoding a scalar allocates nothing for it.
    auto member_path = [&path, key] {
      return path.empty() ? std::string(key) : absl::StrCat(path, ".", key);
    };
    if (f == nullptr) {
      Unknown(member_path(), stats);
      continue;
    }
    if (it->value.IsNull()) continue;
    const bool nested =
        f->is_repeated() || f->is_map() ||
        (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && !IsTimestamp(*f));
    const std::string nested_path = nested ? member_path() : std::string();
    if (!DecodeField(it->value, *f, message, nested_path, stats)) {
      Unknown(nested ? nested_path : member_path(), stats);
      if (IsDecimal(*f)) ++stats->unreadable_amounts;
    }
  }
}

void RestCodec::Impl::Unknown(const std::string& path, DecodeStats* stats) {
  ++stats->unknown_fields;
  if (stats->unknown_examples.size() < kMaxUnknownExamples) {
    // Logged: a path built from Clink's keys is kept only when it is text.
    stats->unknown_examples.push_back(IsUtf8(path) ? path : "<not UTF-8>");
  }
}

// Decodes one JSON member into field `f` of `message`. False when the value
// does not fit the field (type drift); the caller counts it and carries on.
bool RestCodec::Impl::DecodeField(const rapidjson::Value& value,
                                  const FieldDescriptor& f, Message* message,
                                  const std::string& path,
                                  DecodeStats* stats) const {
  if (f.is_map()) return DecodeMap(value, f, message, path, stats);
  if (!f.is_repeated()) {
    return DecodeValue(value, f, /*add=*/false, message, path, stats);
  }
  if (!value.IsArray()) return false;
  for (rapidjson::SizeType k = 0; k < value.Size(); ++k) {
    const std::string item = absl::StrCat(path, "[", k, "]");
    if (value[k].IsNull() ||
        !DecodeValue(value[k], f, /*add=*/true, message, item, stats)) {
      Unknown(item, stats);
    }
  }
  return true;
}

// Decodes one JSON value into field `f` of `message`: sets it, or appends to
// it when `add`. Nothing is appended when the value does not fit.
bool RestCodec::Impl::DecodeValue(const rapidjson::Value& value,
                                  const FieldDescriptor& f, bool add,
                                  Message* message, const std::string& path,
                                  DecodeStats* stats) const {
  const Reflection* r = message->GetReflection();
  auto target = [&] {
    return add ? r->AddMessage(message, &f) : r->MutableMessage(message, &f);
  };
  if (f.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
    if (IsTimestamp(f)) {
      absl::Time t;
      if (!value.IsString() ||
          !ParseTimestamp(
              absl::string_view(value.GetString(), value.GetStringLength()),
              RuleOf(f).encoding(), &t) ||
          !InTimestampRange(t)) {
        return false;
      }
      WriteTimestamp(t, target());
      return true;
    }
    if (!value.IsObject()) return false;
    DecodeObject(value, target(), path, stats);
    return true;
  }
  std::string text;
  if (!ScalarFromJson(value, f, &text)) return false;
  if (f.cpp_type() == FieldDescriptor::CPPTYPE_STRING && !IsUtf8(text)) {
    ++stats->unreadable_strings;
    return false;
  }
  return SetScalar(text, f, message, add ? 0 : -1);
}

// Map fields: a JSON object, or (Clink's refund metadata) a string holding a
// JSON object.
bool RestCodec::Impl::DecodeMap(const rapidjson::Value& value,
                                const FieldDescriptor& f, Message* message,
                                const std::string& path,
                                DecodeStats* stats) const {
  rapidjson::Document inner;
  const rapidjson::Value* object = &value;
  if (value.IsString()) {
    if (value.GetStringLength() == 0) return true;
    if (!ParseUtf8Json(
            absl::string_view(value.GetString(), value.GetStringLength()),
            inner) ||
        !inner.IsObject()) {
      return false;
    }
    object = &inner;
  }
  if (!object->IsObject()) return false;
  const Reflection* r = message->GetReflection();
  const FieldDescriptor* key_field = f.message_type()->map_key();
  const FieldDescriptor* value_field = f.message_type()->map_value();
  for (auto it = object->MemberBegin(); it != object->MemberEnd(); ++it) {
    const std::string key(it->name.GetString(), it->name.GetStringLength());
    if (it->value.IsNull()) continue;
    if (!IsUtf8(key)) {  // Not even the path names it: it could not be logged.
      ++stats->unreadable_strings;
      Unknown(absl::StrCat(path, ".<key not UTF-8>"), stats);
      continue;
    }
    const std::string item = absl::StrCat(path, ".", key);
    bool ok;
    if (IsDecimalMap(f)) {
      // An amount (a number, kept as its text): read digit for digit, like
      // a DECIMAL field; anything else is an unreadable amount.
      absl::optional<std::string> plain;
      if (it->value.IsString()) {
        plain = ToPlainDecimal(absl::string_view(it->value.GetString(),
                                                 it->value.GetStringLength()));
      }
      if (!plain.has_value()) {
        ++stats->unreadable_amounts;
        Unknown(item, stats);
        continue;
      }
      Message* entry = r->AddMessage(message, &f);
      entry->GetReflection()->SetString(entry, key_field, key);
      entry->GetReflection()->SetString(entry, value_field, *std::move(plain));
      ok = true;
    } else if (value_field->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
      // Clink says metadata values are strings; keep any other JSON value as
      // its JSON text, unless it is nested too deep to walk safely.
      std::string text;
      if (!JsonText(it->value, &text)) {
        ++stats->values_too_deep;
        Unknown(item, stats);
        continue;
      }
      if (!IsUtf8(text)) {
        ++stats->unreadable_strings;
        Unknown(item, stats);
        continue;
      }
      Message* entry = r->AddMessage(message, &f);
      entry->GetReflection()->SetString(entry, key_field, key);
      entry->GetReflection()->SetString(entry, value_field, std::move(text));
      ok = true;
    } else {
      Message* entry = r->AddMessage(message, &f);
      entry->GetReflection()->SetString(entry, key_field, key);
      ok = DecodeField(it->value, *value_field, entry, item, stats);
    }
    if (!ok) {
      r->RemoveLast(message, &f);
      Unknown(item, stats);
    }
  }
  return true;
}

// The text of a JSON scalar destined for a non-message field; false when the
// JSON type does not fit (an object for a string, a string for a bool, ...).
bool RestCodec::Impl::ScalarFromJson(const rapidjson::Value& value,
                                     const FieldDescriptor& f,
                                     std::string* text) {
  if (f.cpp_type() == FieldDescriptor::CPPTYPE_BOOL) {
    if (value.IsBool()) {
      *text = value.GetBool() ? "true" : "false";
      return true;
    }
    if (!value.IsString()) return false;
    *text = std::string(value.GetString(), value.GetStringLength());
    return *text == "true" || *text == "false";
  }
  if (!value.IsString())
    return false;  // Numbers are strings here (kParseNumbersAsStrings).
  *text = std::string(value.GetString(), value.GetStringLength());
  return true;
}

// Sets (index < 0) or appends (index >= 0) a scalar parsed from its text.
bool RestCodec::Impl::SetScalar(const std::string& text,
                                const FieldDescriptor& f, Message* m,
                                int index) const {
  const Reflection* r = m->GetReflection();
  const bool add = index >= 0;
  switch (f.cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING: {
      if (!IsDecimal(f)) {
        add ? r->AddString(m, &f, text) : r->SetString(m, &f, text);
        return true;
      }
      // Exponent forms ("1E+3", "0E-8") are rewritten exactly as plain
      // digits; anything else is not an amount.
      absl::optional<std::string> plain = ToPlainDecimal(text);
      if (!plain.has_value()) return false;
      add ? r->AddString(m, &f, *plain) : r->SetString(m, &f, *plain);
      return true;
    }
    case FieldDescriptor::CPPTYPE_INT32: {
      int32_t v;
      if (!absl::SimpleAtoi(text, &v)) return false;
      add ? r->AddInt32(m, &f, v) : r->SetInt32(m, &f, v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      int64_t v;
      if (!absl::SimpleAtoi(text, &v)) return false;
      add ? r->AddInt64(m, &f, v) : r->SetInt64(m, &f, v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t v;
      if (!absl::SimpleAtoi(text, &v)) return false;
      add ? r->AddUInt32(m, &f, v) : r->SetUInt32(m, &f, v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      uint64_t v;
      if (!absl::SimpleAtoi(text, &v)) return false;
      add ? r->AddUInt64(m, &f, v) : r->SetUInt64(m, &f, v);
      return true;
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      add ? r->AddBool(m, &f, text == "true")
          : r->SetBool(m, &f, text == "true");
      return true;
    case FieldDescriptor::CPPTYPE_ENUM: {
      const auto enum_it = codec_.enums_.find(f.enum_type());
      if (enum_it == codec_.enums_.end()) return false;
      const auto value_it = enum_it->second.find(text);
      if (value_it == enum_it->second.end())
        return false;  // Unknown to this gateway version.
      add ? r->AddEnum(m, &f, value_it->second)
          : r->SetEnum(m, &f, value_it->second);
      return true;
    }
    default:
      return false;
  }
}

namespace {

// The envelope's `code` and `msg` (not its payload) from a parsed answer, for
// DecodeResponse and DecodeEnvelope alike.
template <typename Document>
absl::Status ReadEnvelope(const RestMethod& method, const Document& doc,
                          Envelope* envelope) {
  *envelope = Envelope();
  const auto code_it = doc.FindMember("code");
  if (code_it == doc.MemberEnd()) return absl::OkStatus();
  envelope->has_code = true;
  if (!code_it->value.IsString() ||
      !absl::SimpleAtoi(absl::string_view(code_it->value.GetString(),
                                          code_it->value.GetStringLength()),
                        &envelope->code)) {
    return absl::InternalError(absl::StrCat(
        "Clink response for ", method.endpoint, " has a non-integer code"));
  }
  const auto msg_it = doc.FindMember("msg");
  if (msg_it != doc.MemberEnd() && msg_it->value.IsString()) {
    envelope->msg.assign(msg_it->value.GetString(),
                         msg_it->value.GetStringLength());
    // It reaches the caller's status message: text only.
    if (!IsUtf8(envelope->msg)) envelope->msg = "(not UTF-8)";
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RestCodec::DecodeResponse(const RestMethod& method,
                                       absl::string_view body,
                                       Message* response, Envelope* envelope,
                                       DecodeStats* stats) const {
  // The parsed tree and the parser's stack live in stack buffers that a
  // typical response fits in, so decoding does not malloc (and free) a 64 KiB
  // chunk per response; larger responses spill over into heap chunks.
  alignas(std::max_align_t) char value_buffer[12 * 1024];
  alignas(std::max_align_t) char parse_buffer[4 * 1024];
  rapidjson::MemoryPoolAllocator<> value_allocator(value_buffer,
                                                   sizeof(value_buffer));
  rapidjson::MemoryPoolAllocator<> parse_allocator(parse_buffer,
                                                   sizeof(parse_buffer));
  rapidjson::GenericDocument<rapidjson::UTF8<>,
                             rapidjson::MemoryPoolAllocator<>,
                             rapidjson::MemoryPoolAllocator<>>
      doc(&value_allocator, /*stackCapacity=*/1024, &parse_allocator);
  if (!ParseUtf8Json(body, doc) ||
      !doc.IsObject()) {
    return absl::InternalError(
        absl::StrFormat("Clink response for %s is not a JSON object (%d bytes)",
                        method.endpoint, body.size()));
  }
  if (absl::Status read = ReadEnvelope(method, doc, envelope); !read.ok()) {
    return read;
  }
  if (envelope->has_code) {
    if (envelope->code != 200)
      return absl::OkStatus();  // The caller maps the error.
    const char* payload_key =
        method.shape == v1::RESPONSE_SHAPE_LIST ? "rows" : "data";
    const auto payload_it = doc.FindMember(payload_key);
    envelope->payload_missing =
        !method.data_optional &&
        (payload_it == doc.MemberEnd() || payload_it->value.IsNull());
  }

  const Impl impl(*this);
  const Reflection* r = response->GetReflection();
  if (!envelope->has_code && !method.unwrapped_response_ok) {
    return absl::InternalError(absl::StrCat(
        "Clink response for ", method.endpoint, " has no envelope code"));
  }
  if (!envelope->has_code) {
    // A bare resource with no envelope (seen in Clink's GET /product/{id}
    // examples).
    Message* target =
        method.response_body == nullptr || method.response_body->is_repeated()
            ? response
            : r->MutableMessage(response, method.response_body);
    impl.DecodeObject(doc, target, "", stats);
    if (target->ByteSizeLong() == 0) {  // e.g. {"error": "..."}: no resource.
      return absl::InternalError(
          absl::StrCat("Clink response for ", method.endpoint,
                       " is neither an envelope nor the resource"));
    }
    return absl::OkStatus();
  }

  for (auto it = doc.MemberBegin(); it != doc.MemberEnd(); ++it) {
    const absl::string_view key(it->name.GetString(),
                                it->name.GetStringLength());
    if (key == "code" || key == "msg") continue;
    const rapidjson::Value& value = it->value;
    if ((method.shape == v1::RESPONSE_SHAPE_LIST && key == "rows") ||
        (method.shape == v1::RESPONSE_SHAPE_ARRAY && key == "data")) {
      // The payload array: each object is one element of response_body.
      if (value.IsNull()) continue;
      if (!value.IsArray()) {  // Clink said 200 but the payload is wrong.
        envelope->payload_missing = true;
        continue;
      }
      for (rapidjson::SizeType k = 0; k < value.Size(); ++k) {
        if (!value[k].IsObject()) {
          ++stats->unknown_fields;
          continue;
        }
        impl.DecodeObject(value[k],
                          r->AddMessage(response, method.response_body),
                          absl::StrCat(key, "[", k, "]"), stats);
      }
    } else if (method.shape == v1::RESPONSE_SHAPE_LIST && key == "total") {
      int64_t total = 0;
      if (method.total != nullptr && value.IsString() &&
          absl::SimpleAtoi(
              absl::string_view(value.GetString(), value.GetStringLength()),
              &total)) {
        r->SetInt64(response, method.total, total);
      }
    } else if (method.shape == v1::RESPONSE_SHAPE_OBJECT && key == "data") {
      if (value.IsNull()) continue;
      if (!value.IsObject()) {  // Clink said 200 but the payload is wrong.
        envelope->payload_missing = true;
        continue;
      }
      Message* target = method.response_body == nullptr
                            ? response
                            : r->MutableMessage(response, method.response_body);
      impl.DecodeObject(value, target, "data", stats);
    } else {
      ++stats->unknown_fields;  // e.g. a requestId Clink may add to envelopes.
      if (stats->unknown_examples.size() < kMaxUnknownExamples)
        stats->unknown_examples.emplace_back(IsUtf8(key) ? std::string(key)
                                                         : "<not UTF-8>");
    }
  }
  return absl::OkStatus();
}

absl::Status RestCodec::DecodeMessage(absl::string_view json, Message* message,
                                      DecodeStats* stats) const {
  if (!fields_.contains(message->GetDescriptor())) {
    return absl::FailedPreconditionError(
        absl::StrCat(message->GetTypeName(),
                     " is not a message this codec was compiled for"));
  }
  rapidjson::Document doc;
  if (doc.Parse<kParseFlags>(json.data(), json.size()).HasParseError() ||
      !doc.IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("not a JSON object (%d bytes) for %s", json.size(),
                        message->GetTypeName()));
  }
  Impl(*this).DecodeObject(doc, message, "", stats);
  return absl::OkStatus();
}

absl::Status RestCodec::DecodeEnvelope(const RestMethod& method,
                                       absl::string_view body,
                                       Envelope* envelope) const {
  *envelope = Envelope();
  rapidjson::Document doc;
  if (!ParseUtf8Json(body, doc) ||
      !doc.IsObject()) {
    return absl::InternalError(
        absl::StrFormat("Clink response for %s is not a JSON object (%d bytes)",
                        method.endpoint, body.size()));
  }
  if (absl::Status read = ReadEnvelope(method, doc, envelope); !read.ok()) {
    return read;
  }
  if (!envelope->has_code && !method.unwrapped_response_ok) {
    return absl::InternalError(absl::StrCat(
        "Clink response for ", method.endpoint, " has no envelope code"));
  }
  return absl::OkStatus();
}

}  // namespace clink_gateway::clink
