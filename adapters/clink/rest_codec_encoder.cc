// RestCodec's encoder: request validation, and requests to HTTP (path,
// query, JSON and multipart bodies).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
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

constexpr char kUnknownEnumValue[] = "is not a value of its enum";

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

absl::string_view StringFormatProblem(v1::StringFormat format,
                                      absl::string_view value) {
  switch (format) {
    case v1::STRING_FORMAT_HTTPS_URL: {
      constexpr absl::string_view kProblem =
          "must be an absolute https:// URL with a host, like "
          "\"https://shop.example.com/webhooks/clink\"";
      if (!absl::StartsWithIgnoreCase(value, "https://")) return kProblem;
      for (const char c : value) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u == 0x7f) return kProblem;
      }
      const absl::string_view rest = value.substr(8);
      const size_t host_end = rest.find_first_of("/?#");
      absl::string_view authority = rest.substr(0, host_end);
      if (const size_t at = authority.rfind('@');
          at != absl::string_view::npos) {
        authority.remove_prefix(at + 1);
      }
      if (authority.empty() || authority.front() == ':') return kProblem;
      return {};
    }
    case v1::STRING_FORMAT_EVENT_NAME: {
      constexpr absl::string_view kProblem =
          "must be a Clink event name, like \"order.succeeded\" (numeric "
          "codes are not accepted)";
      if (value.empty() || value.size() > 64) return kProblem;
      bool segment_start = true;
      for (const char c : value) {
        if (c == '.') {
          if (segment_start) return kProblem;  // Empty segment.
          segment_start = true;
          continue;
        }
        const bool lower = c >= 'a' && c <= 'z';
        if (segment_start ? !lower
                          : !(lower || (c >= '0' && c <= '9') || c == '_')) {
          return kProblem;
        }
        segment_start = false;
      }
      return segment_start ? kProblem : absl::string_view();
    }
    default:
      return {};
  }
}

// ---------------------------------------------------------------------------------------------
// Reflection walkers: validation and encoding.

// `currency` is the currency code of the nearest enclosing message (empty
// for a request, or when no enclosing message names one): it governs this
// message's amounts whose own currency field is empty.
void RestCodec::Impl::ValidateMessage(const Message& message,
                                      const std::string& prefix,
                                      std::vector<errors::FieldViolation>* out,
                                      absl::string_view currency) const {
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
      if (rule.max_items() > 0 && static_cast<uint32_t>(n) > rule.max_items()) {
        out->push_back({path, absl::StrCat("must have at most ",
                                           rule.max_items(), " elements")});
        continue;  // Not one violation per element of a huge list.
      }
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
          ValidateString(r->GetRepeatedString(message, f, k), rule, item, out);
        }
      }
      continue;
    }
    const bool set =
        f->has_presence() ? r->HasField(message, f) : IsNonDefault(message, *f);
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

void RestCodec::Impl::WriteMessage(
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
std::string RestCodec::Impl::ScalarText(const Message& m,
                                        const FieldDescriptor& f,
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

bool RestCodec::Impl::IsNonDefault(const Message& m,
                                   const FieldDescriptor& f) const {
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
std::string RestCodec::Impl::FirstCurrencyCode(const Message& message) {
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
void RestCodec::Impl::ValidateMoney(const Message& message,
                                    const FieldDescriptor& f,
                                    const std::string& value,
                                    const std::string& path,
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
void RestCodec::Impl::ValidateAmountMap(
    const Message& message, const FieldDescriptor& f, const std::string& path,
    std::vector<errors::FieldViolation>* out) {
  const Reflection* r = message.GetReflection();
  const FieldDescriptor* key_field = f.message_type()->map_key();
  const FieldDescriptor* value_field = f.message_type()->map_value();
  for (int k = 0; k < r->FieldSize(message, &f); ++k) {
    const Message& entry = r->GetRepeatedMessage(message, &f, k);
    const std::string key = entry.GetReflection()->GetString(entry, key_field);
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
          {item, MinorUnitDigits(absl::AsciiStrToUpper(key)).has_value()
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

void RestCodec::Impl::ValidateString(const std::string& value,
                                     const v1::FieldRule& rule,
                                     const std::string& path,
                                     std::vector<errors::FieldViolation>* out) {
  if (rule.max_length() > 0 && Utf8Length(value) > rule.max_length()) {
    out->push_back({path, absl::StrCat("must be at most ", rule.max_length(),
                                       " characters")});
  }
  if (rule.format() != v1::STRING_FORMAT_UNSPECIFIED) {
    const absl::string_view problem = StringFormatProblem(rule.format(), value);
    if (!problem.empty()) out->push_back({path, std::string(problem)});
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

std::string RestCodec::Impl::WireValue(const EnumValueDescriptor* value) {
  const std::string& wire = value->options().GetExtension(v1::wire_value);
  return wire.empty() ? value->name() : wire;
}

void RestCodec::Impl::WriteValue(const Message& m, const FieldDescriptor& f,
                                 int index, JsonWriter& w) const {
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
          w.String(text.data(), static_cast<rapidjson::SizeType>(text.size()));
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

void RestCodec::Impl::WriteMap(const Message& m, const FieldDescriptor& f,
                               JsonWriter& w) const {
  const Reflection* r = m.GetReflection();
  const FieldDescriptor* key_field = f.message_type()->map_key();
  const FieldDescriptor* value_field = f.message_type()->map_value();
  w.StartObject();
  for (int k = 0; k < r->FieldSize(m, &f); ++k) {
    const Message& entry = r->GetRepeatedMessage(m, &f, k);
    const std::string key = entry.GetReflection()->GetString(entry, key_field);
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

absl::StatusOr<std::string> RestCodec::MessageToClinkJson(
    const Message& message) const {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  Impl(*this).WriteMessage(message, writer, nullptr);
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace clink_gateway::clink
