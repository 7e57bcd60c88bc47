#include "adapters/clink/rest_codec.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
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

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::EnumValueDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;
using google::protobuf::Reflection;
using google::protobuf::ServiceDescriptor;
using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

namespace {

constexpr absl::string_view kTimestampType = "google.protobuf.Timestamp";
// Numbers arrive as their exact text; iterative parsing keeps the stack
// bounded; no NaN/Inf.
constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseNumbersAsStringsFlag |
                                 rapidjson::kParseValidateEncodingFlag;
constexpr size_t kMaxUnknownExamples = 4;
constexpr char kUnknownEnumValue[] = "is not a value of its enum";
// The deepest JSON value (arrays and objects inside a metadata value) kept as
// JSON text. Clink's metadata values are strings; a little structure is kept
// as is, a pathological nesting is refused (see JsonText).
constexpr int kMaxJsonValueDepth = 32;

const v1::FieldRule& RuleOf(const FieldDescriptor& field) {
  return field.options().GetExtension(v1::field);
}

bool IsTimestamp(const FieldDescriptor& field) {
  return field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
         field.message_type()->full_name() == kTimestampType;
}

bool IsDecimal(const FieldDescriptor& field) {
  return RuleOf(field).encoding() == v1::VALUE_ENCODING_DECIMAL;
}

// A DECIMAL map<string, string>: currency code to amount (Clink's
// fixedAmounts).
bool IsDecimalMap(const FieldDescriptor& field) {
  return field.is_map() && IsDecimal(field) &&
         field.message_type()->map_value()->cpp_type() ==
             FieldDescriptor::CPPTYPE_STRING;
}

// The transport's method for `method`; false for UNSPECIFIED or a number this
// build does not know (never a silent GET: a GET would be retried and skip the
// idempotency layer).
bool ToHttpMethod(v1::HttpMethod method, http::Method* out) {
  switch (method) {
    case v1::HTTP_METHOD_GET:
      *out = http::Method::kGet;
      return true;
    case v1::HTTP_METHOD_POST:
      *out = http::Method::kPost;
      return true;
    case v1::HTTP_METHOD_PUT:
      *out = http::Method::kPut;
      return true;
    case v1::HTTP_METHOD_PATCH:
      *out = http::Method::kPatch;
      return true;
    case v1::HTTP_METHOD_DELETE:
      *out = http::Method::kDelete;
      return true;
    default:
      return false;
  }
}

// RFC 3986 percent-encoding of everything but the unreserved characters.
void AppendPercentEncoded(absl::string_view value, std::string* out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (const unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' ||
        c == '~') {
      out->push_back(static_cast<char>(c));
    } else {
      out->push_back('%');
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xF]);
    }
  }
}

// The longest path parameter accepted: Clink's ids ("sess_abc123xyz",
// "order_def456uvw") are far shorter.
constexpr size_t kMaxPathParameterLength = 255;

// Why `value` cannot be substituted into a path template, or empty when it
// can. A path parameter must name a resource below the template's own path and
// nothing else, whoever decodes or normalises the path on the way: so it may
// only hold RFC 3986 unreserved characters (sent as they are; no '/',
// backslash,
// '%', ';', '?' or '#' that a server could decode or split on) and must not be
// a dot segment ("." or "..", which libcurl and servers resolve to the parent
// path) or any other run of dots.
absl::string_view PathParameterProblem(absl::string_view value) {
  if (value.empty()) return "is required";
  if (value.size() > kMaxPathParameterLength) {
    return "must be at most 255 characters";
  }
  for (const unsigned char c : value) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '.' && c != '_' &&
        c != '~') {
      return "must be an id of letters, digits, '-', '_', '.' and '~' (a "
             "value that could change the request path is refused)";
    }
  }
  if (value.find_first_not_of('.') == absl::string_view::npos) {
    return "must not be a dot segment such as '.' or '..' (it would change "
           "the request path)";
  }
  return {};
}

size_t Utf8Length(absl::string_view s) {
  size_t n = 0;
  for (const unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Timestamp <-> absl::Time through reflection, so any generated Timestamp class
// works.
absl::Time ReadTimestamp(const Message& ts) {
  const Descriptor* d = ts.GetDescriptor();
  const Reflection* r = ts.GetReflection();
  return absl::FromUnixSeconds(r->GetInt64(ts, d->FindFieldByName("seconds"))) +
         absl::Nanoseconds(r->GetInt32(ts, d->FindFieldByName("nanos")));
}

void WriteTimestamp(absl::Time t, Message* ts) {
  const Descriptor* d = ts->GetDescriptor();
  const Reflection* r = ts->GetReflection();
  const int64_t seconds = absl::ToUnixSeconds(t);
  r->SetInt64(ts, d->FindFieldByName("seconds"), seconds);
  r->SetInt32(ts, d->FindFieldByName("nanos"),
              static_cast<int32_t>(absl::ToInt64Nanoseconds(
                  t - absl::FromUnixSeconds(seconds))));
}

std::string FormatTimestamp(absl::Time t, v1::ValueEncoding encoding) {
  switch (encoding) {
    case v1::VALUE_ENCODING_UNIX_SECONDS:
      return absl::StrCat(absl::ToUnixSeconds(t));
    case v1::VALUE_ENCODING_ISO8601:
      return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone());
    default:
      return absl::StrCat(absl::ToUnixMillis(t));
  }
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
// U+10FFFF), by RapidJSON's own validator. The parser checks raw bytes, but a
// `\u` escape of a lone surrogate ("\udd00") still decodes to ill-formed
// UTF-8, which a proto3 string field must never hold: the caller could not
// parse the response.
bool IsUtf8(absl::string_view text) {
  rapidjson::MemoryStream in(text.data(), text.size());
  struct Discard {
    using Ch = char;
    void Put(Ch) {}
  } out;
  while (in.Tell() < text.size()) {
    if (!rapidjson::UTF8<>::Validate(in, out)) return false;
  }
  return true;
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

// The message types `d` holds directly: message fields and map values, but not
// Timestamps (decoded as scalars).
std::vector<const Descriptor*> NestedMessageTypes(const Descriptor* d) {
  std::vector<const Descriptor*> out;
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE || IsTimestamp(*f)) {
      continue;
    }
    const Descriptor* nested = f->message_type();
    if (f->is_map()) {
      const FieldDescriptor* value = nested->map_value();
      if (value->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
          IsTimestamp(*value)) {
        continue;
      }
      nested = value->message_type();
    }
    out.push_back(nested);
  }
  return out;
}

// A message type among the keys of `types` that contains itself, directly or
// through other messages; null when there is none. Iterative depth-first
// search.
template <typename Map>
const Descriptor* FindRecursiveType(const Map& types) {
  enum class Mark { kOnPath, kDone };
  absl::flat_hash_map<const Descriptor*, Mark> marks;
  struct Frame {
    const Descriptor* type;
    std::vector<const Descriptor*> children;
    size_t next = 0;
  };
  for (const auto& [root, unused] : types) {
    if (marks.contains(root)) continue;
    std::vector<Frame> path;
    path.push_back({root, NestedMessageTypes(root)});
    marks[root] = Mark::kOnPath;
    while (!path.empty()) {
      Frame& top = path.back();
      if (top.next == top.children.size()) {
        marks[top.type] = Mark::kDone;
        path.pop_back();
        continue;
      }
      const Descriptor* child = top.children[top.next++];
      const auto it = marks.find(child);
      if (it != marks.end()) {
        if (it->second == Mark::kOnPath) return child;
        continue;
      }
      marks[child] = Mark::kOnPath;
      path.push_back({child, NestedMessageTypes(child)});
    }
  }
  return nullptr;
}

// The types a FilePart accepts, for messages: ".jpg, .jpeg, .png".
std::string ExtensionList(const v1::FilePart& part) {
  std::vector<std::string> out;
  for (const std::string& type : part.types()) out.push_back("." + type);
  return absl::StrJoin(out, ", ");
}

// The longest file name accepted, in characters.
constexpr size_t kMaxFileNameLength = 255;

// Checks a multipart method's file and file name (FilePart), appending a
// violation per problem. A field marked `required` that is empty was already
// reported by ValidateMessage.
void CheckFilePart(const RestMethod& method, const Message& request,
                   std::vector<errors::FieldViolation>* out) {
  const Reflection* r = request.GetReflection();
  const FieldDescriptor& file = *method.file_field;
  const FieldDescriptor& name_field = *method.filename_field;
  const v1::FilePart& part = RuleOf(file).file_part();
  std::string scratch;
  const std::string& data = r->GetStringReference(request, &file, &scratch);
  const FileType* content = nullptr;
  if (data.empty()) {
    if (!RuleOf(file).required()) out->push_back({file.name(), "is required"});
  } else if (part.max_bytes() > 0 && data.size() > part.max_bytes()) {
    out->push_back({file.name(), absl::StrCat("must be at most ",
                                              part.max_bytes(), " bytes")});
  } else {
    content = SniffFileType(data);
    bool accepted = false;
    for (const std::string& type : part.types()) {
      accepted |= content != nullptr && FileTypeByExtension(type) == content;
    }
    if (!accepted) {
      out->push_back(
          {file.name(),
           absl::StrCat("must be a file of type ", ExtensionList(part),
                        " by its content (magic bytes)")});
      content = nullptr;
    }
  }

  const std::string& name = r->GetString(request, &name_field);
  if (name.empty()) {
    if (!RuleOf(name_field).required()) {
      out->push_back({name_field.name(), "is required"});
    }
    return;
  }
  if (Utf8Length(name) > kMaxFileNameLength) {
    out->push_back({name_field.name(), "must be at most 255 characters"});
    return;
  }
  for (const unsigned char c : name) {
    if (c < 0x20 || c == 0x7f || c == '"' || c == '/' || c == '\\') {
      out->push_back({name_field.name(),
                      "must not hold control characters, '\"', '/' or "
                      "'\\'"});
      return;
    }
  }
  const size_t dot = name.rfind('.');
  const std::string extension =
      dot == std::string::npos ? ""
                               : absl::AsciiStrToLower(name.substr(dot + 1));
  bool listed = false;
  for (const std::string& type : part.types()) listed |= type == extension;
  const FileType* named = listed ? FileTypeByExtension(extension) : nullptr;
  if (named == nullptr) {
    out->push_back(
        {name_field.name(), absl::StrCat("must end in ", ExtensionList(part))});
  } else if (content != nullptr && named != content) {
    out->push_back({name_field.name(),
                    absl::StrCat("ends in .", extension, " but ", file.name(),
                                 " is a ", content->name, " file")});
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Reflection walkers. A nested class so they can read the codec's indexes.

class RestCodec::Impl {
 public:
  explicit Impl(const RestCodec& codec) : codec_(codec) {}

  // --- validation
  // -----------------------------------------------------------------------------

  // `currency` is the currency code of the nearest enclosing message (empty
  // for a request, or when no enclosing message names one): it governs this
  // message's amounts whose own currency field is empty.
  void ValidateMessage(const Message& message, const std::string& prefix,
                       std::vector<errors::FieldViolation>* out,
                       absl::string_view currency = {}) const {
    const Descriptor* d = message.GetDescriptor();
    const Reflection* r = message.GetReflection();
    const std::string own_currency = FirstCurrencyCode(message);
    if (!own_currency.empty()) currency = own_currency;
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      const v1::FieldRule& rule = RuleOf(*f);
      const std::string path =
          prefix.empty() ? f->name() : absl::StrCat(prefix, ".", f->name());
      if (f->is_repeated()) {
        const int n = r->FieldSize(message, f);
        if (rule.required() && n == 0) out->push_back({path, "is required"});
        if (IsDecimalMap(*f)) ValidateAmountMap(message, *f, path, out);
        if (f->is_map()) continue;
        for (int k = 0; k < n; ++k) {
          const std::string item = absl::StrCat(path, "[", k, "]");
          if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
            ValidateMessage(r->GetRepeatedMessage(message, f, k), item, out,
                            currency);
          } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM &&
                     r->GetRepeatedEnumValue(message, f, k) == 0) {
            out->push_back({item, "must not be UNSPECIFIED"});
          } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM &&
                     f->enum_type()->FindValueByNumber(
                         r->GetRepeatedEnumValue(message, f, k)) == nullptr) {
            out->push_back({item, kUnknownEnumValue});
          } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
            ValidateString(r->GetRepeatedString(message, f, k), rule, item,
                           out);
          }
        }
        continue;
      }
      const bool set = f->has_presence() ? r->HasField(message, f)
                                         : IsNonDefault(message, *f);
      if (!set) {
        if (rule.required()) out->push_back({path, "is required"});
        continue;
      }
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        if (!IsTimestamp(*f))
          ValidateMessage(r->GetMessage(message, f), path, out, currency);
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
        // A proto3 enum keeps numbers its type does not declare; there is no
        // wire value to send for one (a numeric one would not even be JSON).
        if (f->enum_type()->FindValueByNumber(r->GetEnumValue(message, f)) ==
            nullptr) {
          out->push_back({path, kUnknownEnumValue});
        }
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) {
        const std::string& value = r->GetString(message, f);
        ValidateString(value, rule, path, out);
        ValidateMoney(message, *f, value, path, currency, out);
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                 f->cpp_type() == FieldDescriptor::CPPTYPE_INT64) {
        const int64_t v = f->cpp_type() == FieldDescriptor::CPPTYPE_INT32
                              ? r->GetInt32(message, f)
                              : r->GetInt64(message, f);
        if (rule.has_min_int() && v < rule.min_int()) {
          out->push_back(
              {path, absl::StrCat("must be at least ", rule.min_int())});
        }
        if (rule.has_max_int() && v > rule.max_int()) {
          out->push_back(
              {path, absl::StrCat("must be at most ", rule.max_int())});
        }
      }
    }
  }

  // --- encoding
  // -------------------------------------------------------------------------------

  void WriteMessage(
      const Message& message, JsonWriter& w,
      const absl::flat_hash_set<const FieldDescriptor*>* skip) const {
    const Reflection* r = message.GetReflection();
    std::vector<const FieldDescriptor*> fields;
    r->ListFields(message, &fields);
    w.StartObject();
    for (const FieldDescriptor* f : fields) {
      if (skip != nullptr && skip->contains(f)) continue;
      if (!f->is_repeated() && f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM &&
          r->GetEnumValue(message, f) == 0) {
        continue;  // An explicitly set UNSPECIFIED (proto3 optional) still
                   // means "not set".
      }
      w.Key(f->json_name().c_str(),
            static_cast<rapidjson::SizeType>(f->json_name().size()));
      if (f->is_map()) {
        WriteMap(message, *f, w);
      } else if (f->is_repeated()) {
        w.StartArray();
        for (int k = 0; k < r->FieldSize(message, f); ++k)
          WriteValue(message, *f, k, w);
        w.EndArray();
      } else {
        WriteValue(message, *f, -1, w);
      }
    }
    w.EndObject();
  }

  // The text of a scalar field value for a query string or path ("19.99",
  // "CARD", "true").
  std::string ScalarText(const Message& m, const FieldDescriptor& f,
                         int index) const {
    const Reflection* r = m.GetReflection();
    const bool rep = index >= 0;
    switch (f.cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return rep ? r->GetRepeatedString(m, &f, index) : r->GetString(m, &f);
      case FieldDescriptor::CPPTYPE_INT32:
        return absl::StrCat(rep ? r->GetRepeatedInt32(m, &f, index)
                                : r->GetInt32(m, &f));
      case FieldDescriptor::CPPTYPE_INT64:
        return absl::StrCat(rep ? r->GetRepeatedInt64(m, &f, index)
                                : r->GetInt64(m, &f));
      case FieldDescriptor::CPPTYPE_UINT32:
        return absl::StrCat(rep ? r->GetRepeatedUInt32(m, &f, index)
                                : r->GetUInt32(m, &f));
      case FieldDescriptor::CPPTYPE_UINT64:
        return absl::StrCat(rep ? r->GetRepeatedUInt64(m, &f, index)
                                : r->GetUInt64(m, &f));
      case FieldDescriptor::CPPTYPE_BOOL:
        return (rep ? r->GetRepeatedBool(m, &f, index) : r->GetBool(m, &f))
                   ? "true"
                   : "false";
      case FieldDescriptor::CPPTYPE_ENUM:
        return WireValue(rep ? r->GetRepeatedEnum(m, &f, index)
                             : r->GetEnum(m, &f));
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (IsTimestamp(f)) {
          return FormatTimestamp(
              ReadTimestamp(rep ? r->GetRepeatedMessage(m, &f, index)
                                : r->GetMessage(m, &f)),
              RuleOf(f).encoding());
        }
        return std::string();
      default:  // Float and double are rejected by Create().
        return std::string();
    }
  }

  // --- decoding
  // -------------------------------------------------------------------------------

  void DecodeObject(const rapidjson::Value& object, Message* message,
                    const std::string& path, DecodeStats* stats) const {
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
      const bool nested = f->is_repeated() || f->is_map() ||
                          (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
                           !IsTimestamp(*f));
      const std::string nested_path = nested ? member_path() : std::string();
      if (!DecodeField(it->value, *f, message, nested_path, stats)) {
        Unknown(nested ? nested_path : member_path(), stats);
        if (IsDecimal(*f)) ++stats->unreadable_amounts;
      }
    }
  }

 private:
  bool IsNonDefault(const Message& m, const FieldDescriptor& f) const {
    const Reflection* r = m.GetReflection();
    switch (f.cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        return !r->GetString(m, &f).empty();
      case FieldDescriptor::CPPTYPE_INT32:
        return r->GetInt32(m, &f) != 0;
      case FieldDescriptor::CPPTYPE_INT64:
        return r->GetInt64(m, &f) != 0;
      case FieldDescriptor::CPPTYPE_UINT32:
        return r->GetUInt32(m, &f) != 0;
      case FieldDescriptor::CPPTYPE_UINT64:
        return r->GetUInt64(m, &f) != 0;
      case FieldDescriptor::CPPTYPE_BOOL:
        return r->GetBool(m, &f);
      case FieldDescriptor::CPPTYPE_ENUM:
        return r->GetEnumValue(m, &f) != 0;
      default:
        return r->HasField(m, &f);
    }
  }

  // The value of the first currency_code field set in `message`, or empty.
  static std::string FirstCurrencyCode(const Message& message) {
    const Descriptor* d = message.GetDescriptor();
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (!RuleOf(*f).currency_code() || f->is_repeated()) continue;
      std::string value = message.GetReflection()->GetString(message, f);
      if (!value.empty()) return value;
    }
    return std::string();
  }

  // Currency codes must be ones ICU knows, and amounts whole minor units of
  // their currency (FieldRule.currency_code, currency_field, any_currency).
  static void ValidateMoney(const Message& message, const FieldDescriptor& f,
                            const std::string& value, const std::string& path,
                            absl::string_view enclosing_currency,
                            std::vector<errors::FieldViolation>* out) {
    const v1::FieldRule& rule = RuleOf(f);
    if (rule.currency_code() && !MinorUnitDigits(value).has_value()) {
      out->push_back(
          {path, MinorUnitDigits(absl::AsciiStrToUpper(value)).has_value()
                     ? absl::StrCat("must be upper case, like \"",
                                    absl::AsciiStrToUpper(value), "\"")
                     : "must be an ISO 4217 currency code, like \"USD\""});
      return;
    }
    if (rule.encoding() != v1::VALUE_ENCODING_DECIMAL ||
        (rule.currency_field().empty() && !rule.any_currency()) ||
        !IsValidDecimal(value)) {
      return;
    }
    std::string currency;
    if (!rule.currency_field().empty()) {
      const FieldDescriptor* code =
          message.GetDescriptor()->FindFieldByName(rule.currency_field());
      if (code != nullptr)
        currency = message.GetReflection()->GetString(message, code);
      if (currency.empty()) currency = std::string(enclosing_currency);
    }
    const int places = SignificantFractionDigits(value);
    if (currency.empty()) {
      if (places > MaxMinorUnitDigits()) {
        out->push_back(
            {path, absl::StrCat("has more decimal places than any currency "
                                "allows (at most ",
                                MaxMinorUnitDigits(), ")")});
      }
      return;
    }
    const absl::optional<int> digits = MinorUnitDigits(currency);
    if (!digits.has_value()) return;  // The currency field is reported itself.
    if (places > *digits) {
      out->push_back(
          {path, absl::StrCat("has more decimal places than ", currency,
                              " allows (at most ", *digits, ")")});
    }
  }

  // A DECIMAL map: each key a currency code, each value an amount in whole
  // minor units of it. Entries are named `field["KEY"]`.
  static void ValidateAmountMap(const Message& message,
                                const FieldDescriptor& f,
                                const std::string& path,
                                std::vector<errors::FieldViolation>* out) {
    const Reflection* r = message.GetReflection();
    const FieldDescriptor* key_field = f.message_type()->map_key();
    const FieldDescriptor* value_field = f.message_type()->map_value();
    for (int k = 0; k < r->FieldSize(message, &f); ++k) {
      const Message& entry = r->GetRepeatedMessage(message, &f, k);
      const std::string key =
          entry.GetReflection()->GetString(entry, key_field);
      const std::string value =
          entry.GetReflection()->GetString(entry, value_field);
      // Named by its key when that is short plain text ("USD"); by its index
      // otherwise, so no caller-supplied key of any size or content ends up
      // in the error.
      const bool plain_key =
          !key.empty() && key.size() <= 16 &&
          std::all_of(key.begin(), key.end(), [](unsigned char c) {
            return absl::ascii_isalnum(c) || c == '-' || c == '_';
          });
      const std::string item = plain_key ? absl::StrCat(path, "[\"", key, "\"]")
                                         : absl::StrCat(path, "[", k, "]");
      const absl::optional<int> digits = MinorUnitDigits(key);
      if (!digits.has_value()) {
        out->push_back(
            {item,
             MinorUnitDigits(absl::AsciiStrToUpper(key)).has_value()
                 ? absl::StrCat("key must be upper case, like \"",
                                absl::AsciiStrToUpper(key), "\"")
                 : "key must be an ISO 4217 currency code, like \"USD\""});
      }
      const size_t before = out->size();
      ValidateString(value, RuleOf(f), item, out);
      if (out->size() == before && digits.has_value() &&
          SignificantFractionDigits(value) > *digits) {
        out->push_back({item, absl::StrCat("has more decimal places than ", key,
                                           " allows (at most ", *digits, ")")});
      }
    }
  }

  static void ValidateString(const std::string& value,
                             const v1::FieldRule& rule, const std::string& path,
                             std::vector<errors::FieldViolation>* out) {
    if (rule.max_length() > 0 && Utf8Length(value) > rule.max_length()) {
      out->push_back({path, absl::StrCat("must be at most ", rule.max_length(),
                                         " characters")});
    }
    if (rule.encoding() != v1::VALUE_ENCODING_DECIMAL) return;
    if (!IsValidDecimal(value)) {
      out->push_back(
          {path, "must be a decimal amount in major units, like \"19.99\""});
      return;
    }
    if (rule.positive() && !IsPositiveDecimal(value)) {
      out->push_back({path, "must be greater than 0"});
    }
    if (!rule.min_decimal().empty() &&
        CompareDecimals(value, rule.min_decimal()) < 0) {
      out->push_back(
          {path, absl::StrCat("must be at least ", rule.min_decimal())});
    }
  }

  static std::string WireValue(const EnumValueDescriptor* value) {
    const std::string& wire = value->options().GetExtension(v1::wire_value);
    return wire.empty() ? value->name() : wire;
  }

  void WriteValue(const Message& m, const FieldDescriptor& f, int index,
                  JsonWriter& w) const {
    const Reflection* r = m.GetReflection();
    const bool rep = index >= 0;
    switch (f.cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: {
        const std::string& s =
            rep ? r->GetRepeatedString(m, &f, index) : r->GetString(m, &f);
        if (IsDecimal(f) && IsValidSignedDecimal(s)) {
          // Plain digits, so exactly these characters form a JSON number.
          // Checked here too, not only by Validate(): anything else written
          // raw could break the JSON or inject members (`1,"customerId":..`);
          // it goes out as a JSON string instead, which Clink rejects.
          w.RawValue(s.data(), s.size(), rapidjson::kNumberType);
        } else {
          w.String(s.data(), static_cast<rapidjson::SizeType>(s.size()));
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        const std::string digits = ScalarText(m, f, index);
        w.RawValue(digits.data(), digits.size(), rapidjson::kNumberType);
        return;
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        w.Bool(rep ? r->GetRepeatedBool(m, &f, index) : r->GetBool(m, &f));
        return;
      case FieldDescriptor::CPPTYPE_ENUM: {
        const EnumValueDescriptor* v =
            rep ? r->GetRepeatedEnum(m, &f, index) : r->GetEnum(m, &f);
        const std::string wire = WireValue(v);
        if (v->type()->options().GetExtension(v1::numeric_wire)) {
          w.RawValue(wire.data(), wire.size(), rapidjson::kNumberType);
        } else {
          w.String(wire.data(), static_cast<rapidjson::SizeType>(wire.size()));
        }
        return;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        const Message& sub =
            rep ? r->GetRepeatedMessage(m, &f, index) : r->GetMessage(m, &f);
        if (IsTimestamp(f)) {
          const std::string text =
              FormatTimestamp(ReadTimestamp(sub), RuleOf(f).encoding());
          if (RuleOf(f).encoding() == v1::VALUE_ENCODING_ISO8601) {
            w.String(text.data(),
                     static_cast<rapidjson::SizeType>(text.size()));
          } else {
            w.RawValue(text.data(), text.size(), rapidjson::kNumberType);
          }
          return;
        }
        WriteMessage(sub, w, nullptr);
        return;
      }
      default:
        w.Null();  // Unreachable: Create() rejects float and double fields.
        return;
    }
  }

  void WriteMap(const Message& m, const FieldDescriptor& f,
                JsonWriter& w) const {
    const Reflection* r = m.GetReflection();
    const FieldDescriptor* key_field = f.message_type()->map_key();
    const FieldDescriptor* value_field = f.message_type()->map_value();
    w.StartObject();
    for (int k = 0; k < r->FieldSize(m, &f); ++k) {
      const Message& entry = r->GetRepeatedMessage(m, &f, k);
      const std::string key =
          entry.GetReflection()->GetString(entry, key_field);
      w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
      if (IsDecimalMap(f)) {
        // An amount: exactly its digits as a JSON number, as WriteValue does
        // for a DECIMAL string field (anything else goes out as a string).
        const std::string& amount =
            entry.GetReflection()->GetString(entry, value_field);
        if (IsValidSignedDecimal(amount)) {
          w.RawValue(amount.data(), amount.size(), rapidjson::kNumberType);
        } else {
          w.String(amount.data(),
                   static_cast<rapidjson::SizeType>(amount.size()));
        }
        continue;
      }
      WriteValue(entry, *value_field, -1, w);
    }
    w.EndObject();
  }

  static void Unknown(const std::string& path, DecodeStats* stats) {
    ++stats->unknown_fields;
    if (stats->unknown_examples.size() < kMaxUnknownExamples) {
      // Logged: a path built from Clink's keys is kept only when it is text.
      stats->unknown_examples.push_back(IsUtf8(path) ? path : "<not UTF-8>");
    }
  }

  // Decodes one JSON member into field `f` of `message`. False when the value
  // does not fit the field (type drift); the caller counts it and carries on.
  bool DecodeField(const rapidjson::Value& value, const FieldDescriptor& f,
                   Message* message, const std::string& path,
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
  bool DecodeValue(const rapidjson::Value& value, const FieldDescriptor& f,
                   bool add, Message* message, const std::string& path,
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
  bool DecodeMap(const rapidjson::Value& value, const FieldDescriptor& f,
                 Message* message, const std::string& path,
                 DecodeStats* stats) const {
    rapidjson::Document inner;
    const rapidjson::Value* object = &value;
    if (value.IsString()) {
      if (value.GetStringLength() == 0) return true;
      if (inner.Parse<kParseFlags>(value.GetString(), value.GetStringLength())
              .HasParseError() ||
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
      if (!IsUtf8(
              key)) {  // Not even the path names it: it could not be logged.
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
          plain = ToPlainDecimal(absl::string_view(
              it->value.GetString(), it->value.GetStringLength()));
        }
        if (!plain.has_value()) {
          ++stats->unreadable_amounts;
          Unknown(item, stats);
          continue;
        }
        Message* entry = r->AddMessage(message, &f);
        entry->GetReflection()->SetString(entry, key_field, key);
        entry->GetReflection()->SetString(entry, value_field,
                                          *std::move(plain));
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
  static bool ScalarFromJson(const rapidjson::Value& value,
                             const FieldDescriptor& f, std::string* text) {
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
  bool SetScalar(const std::string& text, const FieldDescriptor& f, Message* m,
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

  const RestCodec& codec_;
};

// ---------------------------------------------------------------------------------------------
// Startup: compile and check the annotations.

namespace {

absl::Status ProtoBug(absl::string_view where, absl::string_view what) {
  return absl::FailedPreconditionError(
      absl::StrCat("REST mapping of ", where, ": ", what));
}

// FieldRule.currency_code, currency_field and any_currency are well formed.
absl::Status CheckMoneyRule(const FieldDescriptor& f) {
  const v1::FieldRule& rule = RuleOf(f);
  if (rule.currency_code() &&
      (f.cpp_type() != FieldDescriptor::CPPTYPE_STRING || f.is_repeated())) {
    return ProtoBug(f.full_name(), "currency_code is for singular strings");
  }
  if (rule.currency_field().empty() && !rule.any_currency()) {
    return absl::OkStatus();
  }
  if (f.is_map()) {
    return ProtoBug(f.full_name(),
                    "a DECIMAL map's keys are its currencies: no "
                    "currency_field or any_currency");
  }
  if (rule.encoding() != v1::VALUE_ENCODING_DECIMAL) {
    return ProtoBug(f.full_name(),
                    "currency_field and any_currency are for DECIMAL fields");
  }
  if (!rule.currency_field().empty() && rule.any_currency()) {
    return ProtoBug(f.full_name(), "currency_field or any_currency, not both");
  }
  if (!rule.currency_field().empty()) {
    const FieldDescriptor* code =
        f.containing_type()->FindFieldByName(rule.currency_field());
    if (code == nullptr || !RuleOf(*code).currency_code()) {
      return ProtoBug(f.full_name(),
                      absl::StrCat("currency_field \"", rule.currency_field(),
                                   "\" must name a currency_code field of ",
                                   f.containing_type()->name()));
    }
  }
  return absl::OkStatus();
}

// Every amount a request can carry is checked against a currency: each DECIMAL
// field reachable from a request type declares currency_field or
// any_currency.
absl::Status CheckRequestAmountsHaveCurrencies(
    std::vector<const Descriptor*> pending) {
  absl::flat_hash_set<const Descriptor*> seen;
  while (!pending.empty()) {
    const Descriptor* d = pending.back();
    pending.pop_back();
    if (!seen.insert(d).second || d->full_name() == kTimestampType) continue;
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      const v1::FieldRule& rule = RuleOf(*f);
      if (rule.encoding() == v1::VALUE_ENCODING_DECIMAL && !f->is_map() &&
          rule.currency_field().empty() && !rule.any_currency()) {
        return ProtoBug(f->full_name(),
                        "a request amount needs currency_field (or "
                        "any_currency) so its scale is checked");
      }
      if (f->is_map()) {
        const FieldDescriptor* value = f->message_type()->map_value();
        if (value->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          pending.push_back(value->message_type());
        }
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        pending.push_back(f->message_type());
      }
    }
  }
  return absl::OkStatus();
}

// Compiles RestRule.body_encoding: for BODY_ENCODING_MULTIPART, the file part
// and its file-name field. `file_fields` collects the file_part fields in use
// (any other is an error found when indexing).
absl::Status CompileBody(
    const MethodDescriptor& m, const v1::RestRule& rule, RestMethod* out,
    absl::flat_hash_set<const FieldDescriptor*>* file_fields) {
  switch (rule.body_encoding()) {
    case v1::BODY_ENCODING_UNSPECIFIED:
    case v1::BODY_ENCODING_JSON:
      return absl::OkStatus();
    case v1::BODY_ENCODING_MULTIPART:
      break;
    default:
      return ProtoBug(m.full_name(),
                      absl::StrCat("unknown body_encoding ",
                                   static_cast<int>(rule.body_encoding())));
  }
  if (out->http_method == http::Method::kGet ||
      out->http_method == http::Method::kDelete) {
    return ProtoBug(m.full_name(), "a multipart body needs POST, PUT or PATCH");
  }
  absl::flat_hash_set<const FieldDescriptor*> path_fields;
  for (const PathSegment& segment : out->path)
    path_fields.insert(segment.field);
  const Descriptor* in = m.input_type();
  for (int i = 0; i < in->field_count(); ++i) {
    const FieldDescriptor* f = in->field(i);
    if (!RuleOf(*f).has_file_part()) {
      if (f->is_repeated() ||
          f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        return ProtoBug(f->full_name(),
                        "a multipart request's other fields must be singular "
                        "scalars (text parts)");
      }
      continue;
    }
    if (out->file_field != nullptr) {
      return ProtoBug(m.full_name(), "more than one file_part field");
    }
    const v1::FilePart& part = RuleOf(*f).file_part();
    if (f->type() != FieldDescriptor::TYPE_BYTES || f->is_repeated()) {
      return ProtoBug(f->full_name(), "a file_part must be a singular bytes");
    }
    if (part.part_name().empty()) {
      return ProtoBug(f->full_name(), "file_part needs a part_name");
    }
    const FieldDescriptor* name = in->FindFieldByName(part.filename_field());
    if (name == nullptr || name->is_repeated() ||
        name->type() != FieldDescriptor::TYPE_STRING ||
        path_fields.contains(name)) {
      return ProtoBug(f->full_name(),
                      "file_part.filename_field must name a singular string "
                      "field of the request (not a path parameter)");
    }
    if (part.types().empty()) {
      return ProtoBug(f->full_name(), "file_part needs at least one type");
    }
    for (const std::string& type : part.types()) {
      if (FileTypeByExtension(type) == nullptr) {
        return ProtoBug(
            f->full_name(),
            absl::StrCat("file_part type \"", type,
                         "\" is not one the gateway can recognise"));
      }
    }
    out->file_field = f;
    out->filename_field = name;
    file_fields->insert(f);
  }
  if (out->file_field == nullptr) {
    return ProtoBug(
        m.full_name(),
        "BODY_ENCODING_MULTIPART needs a bytes field with file_part");
  }
  return absl::OkStatus();
}

absl::Status CompilePath(const MethodDescriptor& m, const std::string& path,
                         RestMethod* out) {
  if (path.empty() || path.front() != '/')
    return ProtoBug(m.full_name(), "path must start with /");
  size_t pos = 0;
  while (pos < path.size()) {
    const size_t open = path.find('{', pos);
    if (open == std::string::npos) {
      out->path.push_back({path.substr(pos), nullptr});
      break;
    }
    const size_t close = path.find('}', open);
    if (close == std::string::npos)
      return ProtoBug(m.full_name(), "unclosed { in path");
    if (open > pos)
      out->path.push_back({path.substr(pos, open - pos), nullptr});
    const std::string name = path.substr(open + 1, close - open - 1);
    const FieldDescriptor* f = m.input_type()->FindFieldByName(name);
    if (f == nullptr || f->is_repeated() ||
        f->cpp_type() != FieldDescriptor::CPPTYPE_STRING) {
      return ProtoBug(m.full_name(),
                      absl::StrCat("path variable {", name,
                                   "} must name a singular string field"));
    }
    out->path.push_back({std::string(), f});
    pos = close + 1;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<RestCodec>> RestCodec::Create(
    const std::vector<const ServiceDescriptor*>& services) {
  std::unique_ptr<RestCodec> codec(new RestCodec());
  std::vector<const Descriptor*> pending;
  std::vector<const Descriptor*> requests;  // Every RPC's request type.
  // The file_part fields of multipart methods; file_part anywhere else is a
  // bug.
  absl::flat_hash_set<const FieldDescriptor*> file_fields;

  for (const ServiceDescriptor* service : services) {
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor* m = service->method(i);
      if (!m->options().HasExtension(v1::rest)) {
        return ProtoBug(m->full_name(),
                        "missing (clink.gateway.v1.rest) option");
      }
      const v1::RestRule& rule = m->options().GetExtension(v1::rest);
      auto rest = std::make_unique<RestMethod>();
      rest->method = m;
      if (rule.method() == v1::HTTP_METHOD_UNSPECIFIED) {
        return ProtoBug(m->full_name(), "HTTP method not set");
      }
      if (!ToHttpMethod(rule.method(), &rest->http_method)) {
        return ProtoBug(m->full_name(),
                        absl::StrCat("unknown HTTP method ",
                                     static_cast<int>(rule.method())));
      }
      GATEWAY_RETURN_IF_ERROR(CompilePath(*m, rule.path(), rest.get()));
      GATEWAY_RETURN_IF_ERROR(CompileBody(*m, rule, rest.get(), &file_fields));
      rest->endpoint =
          absl::StrCat(http::MethodName(rest->http_method), " ", rule.path());
      rest->path_template = rule.path();
      rest->shape = rule.response_shape() == v1::RESPONSE_SHAPE_LIST ||
                            rule.response_shape() == v1::RESPONSE_SHAPE_ARRAY
                        ? rule.response_shape()
                        : v1::RESPONSE_SHAPE_OBJECT;
      rest->idempotent_upstream = rule.idempotent_upstream();
      rest->unwrapped_response_ok = rule.unwrapped_response_ok();
      rest->data_optional = rule.data_optional();
      const Descriptor* out = m->output_type();
      if (!rule.response_body().empty()) {
        rest->response_body = out->FindFieldByName(rule.response_body());
        if (rest->response_body == nullptr ||
            rest->response_body->cpp_type() !=
                FieldDescriptor::CPPTYPE_MESSAGE) {
          return ProtoBug(m->full_name(),
                          "response_body must name a message field");
        }
      }
      if (rest->shape == v1::RESPONSE_SHAPE_OBJECT &&
          rest->response_body != nullptr &&
          rest->response_body->is_repeated()) {
        return ProtoBug(m->full_name(),
                        "an OBJECT response_body must name a singular field "
                        "(a `data` array is RESPONSE_SHAPE_ARRAY)");
      }
      if (rest->shape == v1::RESPONSE_SHAPE_ARRAY &&
          (rest->response_body == nullptr ||
           !rest->response_body->is_repeated() ||
           rest->response_body->is_map())) {
        return ProtoBug(m->full_name(),
                        "an ARRAY response_body must name a repeated field");
      }
      if (rest->shape == v1::RESPONSE_SHAPE_LIST) {
        if (rest->response_body == nullptr ||
            !rest->response_body->is_repeated()) {
          return ProtoBug(m->full_name(),
                          "a LIST response_body must name a repeated field");
        }
        rest->total = out->FindFieldByName("total");
        if (rest->total != nullptr &&
            rest->total->cpp_type() != FieldDescriptor::CPPTYPE_INT64) {
          return ProtoBug(m->full_name(), "total must be int64");
        }
      }
      if (rest->http_method == http::Method::kGet ||
          rest->http_method == http::Method::kDelete) {
        // Query parameters: scalars (and Timestamps) only.
        const Descriptor* in = m->input_type();
        for (int k = 0; k < in->field_count(); ++k) {
          const FieldDescriptor* f = in->field(k);
          if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
              !IsTimestamp(*f)) {
            return ProtoBug(m->full_name(),
                            absl::StrCat(f->name(),
                                         ": GET and DELETE fields must be "
                                         "scalars (query parameters)"));
          }
        }
      }
      pending.push_back(m->input_type());
      requests.push_back(m->input_type());
      pending.push_back(out);
      codec->by_request_[m->input_type()] = rest.get();
      codec->by_method_[m] = std::move(rest);
    }
  }

  // Index and check every message and enum reachable from requests and
  // responses.
  while (!pending.empty()) {
    const Descriptor* d = pending.back();
    pending.pop_back();
    if (codec->fields_.contains(d) || d->full_name() == kTimestampType)
      continue;
    FieldIndex& index = codec->fields_[d];
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      const v1::FieldRule& rule = RuleOf(*f);
      index[f->json_name()] = f;
      index.emplace(f->name(),
                    f);  // snake_case spelling, seen in a few Clink examples.
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT ||
          f->cpp_type() == FieldDescriptor::CPPTYPE_DOUBLE) {
        return ProtoBug(
            f->full_name(),
            "floating-point fields are not allowed; use a DECIMAL string");
      }
      const bool time_encoding =
          rule.encoding() == v1::VALUE_ENCODING_UNIX_MILLIS ||
          rule.encoding() == v1::VALUE_ENCODING_UNIX_SECONDS ||
          rule.encoding() == v1::VALUE_ENCODING_ISO8601;
      if (IsTimestamp(*f) != time_encoding) {
        return ProtoBug(f->full_name(),
                        "Timestamp fields need a time encoding, and only they");
      }
      if (rule.encoding() == v1::VALUE_ENCODING_DECIMAL &&
          (f->is_map() ? !IsDecimalMap(*f)
                       : f->cpp_type() != FieldDescriptor::CPPTYPE_STRING)) {
        return ProtoBug(f->full_name(),
                        "DECIMAL is for string fields and map<string, "
                        "string> fields");
      }
      if (!rule.min_decimal().empty() && !IsValidDecimal(rule.min_decimal())) {
        return ProtoBug(f->full_name(), "min_decimal is not a decimal");
      }
      GATEWAY_RETURN_IF_ERROR(CheckMoneyRule(*f));
      if (rule.has_file_part() && !file_fields.contains(f)) {
        return ProtoBug(f->full_name(),
                        "file_part is only for a top-level bytes field of a "
                        "BODY_ENCODING_MULTIPART request");
      }
      if (f->is_map() && f->message_type()->map_key()->cpp_type() !=
                             FieldDescriptor::CPPTYPE_STRING) {
        return ProtoBug(f->full_name(), "map keys must be strings");
      }
      if (f->is_map()) {
        const FieldDescriptor* value = f->message_type()->map_value();
        if (value->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
          pending.push_back(value->message_type());
        }
      } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        pending.push_back(f->message_type());
      }
      if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM &&
          !codec->enums_.contains(f->enum_type())) {
        const EnumDescriptor* e = f->enum_type();
        EnumIndex& values = codec->enums_[e];
        for (int k = 0; k < e->value_count(); ++k) {
          const EnumValueDescriptor* v = e->value(k);
          const std::string& wire = v->options().GetExtension(v1::wire_value);
          if (v->number() == 0) continue;
          if (wire.empty())
            return ProtoBug(v->full_name(), "enum value needs a wire_value");
          if (!values.emplace(wire, v).second) {
            return ProtoBug(v->full_name(), "duplicate wire_value");
          }
        }
      }
    }
  }
  if (const Descriptor* d = FindRecursiveType(codec->fields_); d != nullptr) {
    return ProtoBug(d->full_name(),
                    "contains itself; decoding follows the message schema, "
                    "so a recursive type would let Clink's JSON nest (and the "
                    "decoder recurse) without bound");
  }
  GATEWAY_RETURN_IF_ERROR(CheckRequestAmountsHaveCurrencies(requests));
  return codec;
}

const std::vector<std::string>& GatewayServiceNames() {
  static const std::vector<std::string>* const names = [] {
    const google::protobuf::DescriptorPool* pool =
        google::protobuf::DescriptorPool::generated_pool();
    std::vector<std::string> files;
    // The generated database lists every .proto compiled into the binary
    // (each registers itself at static initialization).
    google::protobuf::DescriptorPool::internal_generated_database()
        ->FindAllFileNames(&files);
    auto* out = new std::vector<std::string>();
    for (const std::string& name : files) {
      const google::protobuf::FileDescriptor* file = pool->FindFileByName(name);
      if (file == nullptr || file->package() != kContractPackage) continue;
      for (int i = 0; i < file->service_count(); ++i) {
        out->push_back(file->service(i)->full_name());
      }
    }
    std::sort(out->begin(), out->end());
    return out;
  }();
  return *names;
}

absl::StatusOr<std::unique_ptr<RestCodec>> RestCodec::CreateForServices(
    const std::vector<std::string>& service_names) {
  std::vector<const ServiceDescriptor*> services;
  for (const std::string& name : service_names) {
    const ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name);
    if (service == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("service ", name, " is not linked in"));
    }
    services.push_back(service);
  }
  return Create(services);
}

const RestMethod* RestCodec::Find(const MethodDescriptor& method) const {
  const auto it = by_method_.find(&method);
  return it == by_method_.end() ? nullptr : it->second.get();
}

const RestMethod* RestCodec::FindByRequestType(
    const Descriptor& request_type) const {
  const auto it = by_request_.find(&request_type);
  return it == by_request_.end() ? nullptr : it->second;
}

std::vector<const RestMethod*> RestCodec::methods() const {
  std::vector<const RestMethod*> out;
  out.reserve(by_method_.size());
  for (const auto& [unused, method] : by_method_) out.push_back(method.get());
  return out;
}

absl::Status RestCodec::Validate(const RestMethod& method,
                                 const Message& request) const {
  std::vector<errors::FieldViolation> violations;
  Impl(*this).ValidateMessage(request, "", &violations);
  if (method.file_field != nullptr) {
    CheckFilePart(method, request, &violations);
  }
  for (const PathSegment& segment : method.path) {
    if (segment.field == nullptr) continue;
    // A path parameter is always required; report it once even when also marked
    // required. Whatever its value, the request goes to the template's path.
    const std::string& value =
        request.GetReflection()->GetString(request, segment.field);
    if (value.empty() && RuleOf(*segment.field).required()) continue;
    const absl::string_view problem = PathParameterProblem(value);
    if (!problem.empty()) {
      violations.push_back({segment.field->name(), std::string(problem)});
    }
  }
  if (violations.empty()) return absl::OkStatus();
  return errors::InvalidArgumentWithViolations(violations);
}

absl::StatusOr<http::HttpRequest> RestCodec::EncodeRequest(
    const RestMethod& method, const Message& request) const {
  const Impl impl(*this);
  http::HttpRequest out;
  out.method = method.http_method;
  out.idempotent = !method.mutating() || method.idempotent_upstream;
  absl::flat_hash_set<const FieldDescriptor*> path_fields;
  for (const PathSegment& segment : method.path) {
    if (segment.field == nullptr) {
      out.path_and_query.append(segment.literal);
      continue;
    }
    const std::string& value =
        request.GetReflection()->GetString(request, segment.field);
    // Checked here too, not only by Validate(): no value may change which
    // endpoint is called.
    const absl::string_view problem = PathParameterProblem(value);
    if (!problem.empty()) {
      return errors::InvalidArgumentWithViolations(
          {{segment.field->name(), std::string(problem)}});
    }
    AppendPercentEncoded(value, &out.path_and_query);  // A no-op for valid ids.
    path_fields.insert(segment.field);
  }

  if (method.http_method == http::Method::kGet ||
      method.http_method == http::Method::kDelete) {
    const Reflection* r = request.GetReflection();
    std::vector<const FieldDescriptor*> fields;
    r->ListFields(request, &fields);
    char separator = '?';
    for (const FieldDescriptor* f : fields) {
      if (path_fields.contains(f)) continue;
      const int n = f->is_repeated() ? r->FieldSize(request, f) : 1;
      for (int k = 0; k < n; ++k) {
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM &&
            (f->is_repeated() ? r->GetRepeatedEnumValue(request, f, k)
                              : r->GetEnumValue(request, f)) == 0) {
          continue;
        }
        out.path_and_query.push_back(separator);
        separator = '&';
        AppendPercentEncoded(f->json_name(), &out.path_and_query);
        out.path_and_query.push_back('=');
        AppendPercentEncoded(
            impl.ScalarText(request, *f, f->is_repeated() ? k : -1),
            &out.path_and_query);
      }
    }
    return out;
  }

  if (method.file_field != nullptr) {
    const Reflection* r = request.GetReflection();
    std::string scratch;
    const std::string& data =
        r->GetStringReference(request, method.file_field, &scratch);
    const FileType* type = SniffFileType(data);
    if (type == nullptr) {
      return errors::InvalidArgumentWithViolations(
          {{method.file_field->name(), "is not a file of an accepted type"}});
    }
    std::vector<http::FormPart> parts;
    parts.push_back({RuleOf(*method.file_field).file_part().part_name(),
                     r->GetString(request, method.filename_field),
                     std::string(type->media_type), data});
    std::vector<const FieldDescriptor*> fields;
    r->ListFields(request, &fields);
    for (const FieldDescriptor* f : fields) {
      if (path_fields.contains(f) || f == method.file_field ||
          f == method.filename_field ||
          (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM &&
           r->GetEnumValue(request, f) == 0)) {
        continue;
      }
      parts.push_back(
          {f->json_name(), "", "", impl.ScalarText(request, *f, -1)});
    }
    absl::StatusOr<http::MultipartBody> form =
        http::BuildMultipartFormData(parts);
    if (!form.ok()) {
      return errors::InvalidArgumentWithViolations(
          {{method.filename_field->name(),
            std::string(form.status().message())}});
    }
    out.body = std::move(form->body);
    out.headers.emplace_back("Content-Type", std::move(form->content_type));
    return out;
  }

  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  impl.WriteMessage(request, writer, &path_fields);
  // A body-less POST (e.g. QR-code refresh) still sends "{}": Clink expects
  // JSON.
  out.body.assign(buffer.GetString(), buffer.GetSize());
  return out;
}

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
  if (doc.Parse<kParseFlags>(body.data(), body.size()).HasParseError() ||
      !doc.IsObject()) {
    return absl::InternalError(
        absl::StrFormat("Clink response for %s is not a JSON object (%d bytes)",
                        method.endpoint, body.size()));
  }
  *envelope = Envelope();
  const auto code_it = doc.FindMember("code");
  if (code_it != doc.MemberEnd()) {
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
    if (method.shape == v1::RESPONSE_SHAPE_LIST && key == "rows") {
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
                          absl::StrCat("rows[", k, "]"), stats);
      }
    } else if (method.shape == v1::RESPONSE_SHAPE_LIST && key == "total") {
      int64_t total = 0;
      if (method.total != nullptr && value.IsString() &&
          absl::SimpleAtoi(
              absl::string_view(value.GetString(), value.GetStringLength()),
              &total)) {
        r->SetInt64(response, method.total, total);
      }
    } else if (method.shape == v1::RESPONSE_SHAPE_ARRAY && key == "data") {
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
                          absl::StrCat("data[", k, "]"), stats);
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

absl::StatusOr<std::string> RestCodec::MessageToClinkJson(
    const Message& message) const {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  Impl(*this).WriteMessage(message, writer, nullptr);
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace clink_gateway::clink
