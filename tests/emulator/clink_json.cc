#include "tests/emulator/clink_json.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "rapidjson/error/en.h"
#include "tests/emulator/decimal.h"

namespace clink_gateway::emulator {
namespace {

constexpr unsigned kParseFlags = rapidjson::kParseIterativeFlag |
                                 rapidjson::kParseNumbersAsStringsFlag |
                                 rapidjson::kParseValidateEncodingFlag;

absl::string_view StringOf(const rapidjson::Value& value) {
  return absl::string_view(value.GetString(), value.GetStringLength());
}

}  // namespace

absl::Status ParseJsonObject(absl::string_view body, rapidjson::Document* doc) {
  doc->Parse<kParseFlags>(body.data(), body.size());
  if (doc->HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("request body is not valid JSON: ",
                     rapidjson::GetParseError_En(doc->GetParseError()),
                     " at offset ", doc->GetErrorOffset()));
  }
  if (!doc->IsObject()) {
    return absl::InvalidArgumentError("request body must be a JSON object");
  }
  return absl::OkStatus();
}

JsonFields::JsonFields(const rapidjson::Value& object, std::string prefix)
    : object_(object), prefix_(std::move(prefix)) {}

std::string JsonFields::FieldName(absl::string_view name) const {
  return absl::StrCat(prefix_, name);
}

const rapidjson::Value* JsonFields::Find(absl::string_view name) const {
  if (!object_.IsObject()) return nullptr;
  for (auto it = object_.MemberBegin(); it != object_.MemberEnd(); ++it) {
    if (StringOf(it->name) == name)
      return it->value.IsNull() ? nullptr : &it->value;
  }
  return nullptr;
}

absl::StatusOr<std::string> JsonFields::OptionalString(
    absl::string_view name) const {
  const rapidjson::Value* value = Find(name);
  if (value == nullptr) return std::string();
  if (!value->IsString()) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldName(name), " must be a string"));
  }
  return std::string(StringOf(*value));
}

absl::StatusOr<std::string> JsonFields::RequiredString(
    absl::string_view name) const {
  absl::StatusOr<std::string> value = OptionalString(name);
  if (value.ok() && value->empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldName(name), " is required"));
  }
  return value;
}

absl::StatusOr<std::string> JsonFields::OptionalAmount(
    absl::string_view name) const {
  const rapidjson::Value* value = Find(name);
  if (value == nullptr) return std::string();
  if (!value->IsString()) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldName(name), " must be a number"));
  }
  const std::string text(StringOf(*value));
  absl::StatusOr<Decimal> amount = Decimal::Parse(text);
  if (!amount.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldName(name),
                     " must be a decimal number: ", amount.status().message()));
  }
  if (!amount->IsPositive()) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldName(name), " must be greater than 0"));
  }
  return text;
}

absl::StatusOr<std::string> JsonFields::RequiredAmount(
    absl::string_view name) const {
  if (Find(name) == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldName(name), " is required"));
  }
  return OptionalAmount(name);
}

absl::StatusOr<std::optional<int64_t>> JsonFields::OptionalInt(
    absl::string_view name) const {
  const rapidjson::Value* value = Find(name);
  if (value == nullptr) return std::optional<int64_t>();
  int64_t result = 0;
  if (!value->IsString() || !absl::SimpleAtoi(StringOf(*value), &result)) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldName(name), " must be an integer"));
  }
  return std::optional<int64_t>(result);
}

absl::StatusOr<std::optional<bool>> JsonFields::OptionalBool(
    absl::string_view name) const {
  const rapidjson::Value* value = Find(name);
  if (value == nullptr) return std::optional<bool>();
  if (value->IsBool()) return std::optional<bool>(value->GetBool());
  if (value->IsString() &&
      (StringOf(*value) == "true" || StringOf(*value) == "false")) {
    return std::optional<bool>(StringOf(*value) == "true");
  }
  return absl::InvalidArgumentError(
      absl::StrCat(FieldName(name), " must be a boolean"));
}

absl::StatusOr<std::map<std::string, std::string>>
JsonFields::OptionalStringMap(absl::string_view name) const {
  std::map<std::string, std::string> result;
  const rapidjson::Value* value = Find(name);
  if (value == nullptr) return result;
  if (!value->IsObject()) {
    return absl::InvalidArgumentError(
        absl::StrCat(FieldName(name), " must be an object"));
  }
  for (auto it = value->MemberBegin(); it != value->MemberEnd(); ++it) {
    std::string text;
    if (it->value.IsString()) {
      text = std::string(StringOf(it->value));
    } else if (it->value.IsBool()) {
      text = it->value.GetBool() ? "true" : "false";
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat(FieldName(name), " values must be strings"));
    }
    result[std::string(StringOf(it->name))] = std::move(text);
  }
  return result;
}

void WriteKey(JsonWriter& writer, absl::string_view key) {
  writer.Key(key.data(), static_cast<rapidjson::SizeType>(key.size()));
}

void WriteString(JsonWriter& writer, absl::string_view key,
                 absl::string_view value) {
  WriteKey(writer, key);
  writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
}

void WriteStringIfSet(JsonWriter& writer, absl::string_view key,
                      absl::string_view value) {
  if (!value.empty()) WriteString(writer, key, value);
}

void WriteInt(JsonWriter& writer, absl::string_view key, int64_t value) {
  WriteKey(writer, key);
  writer.Int64(value);
}

void WriteBool(JsonWriter& writer, absl::string_view key, bool value) {
  WriteKey(writer, key);
  writer.Bool(value);
}

void WriteAmount(JsonWriter& writer, absl::string_view key,
                 absl::string_view exact_text) {
  WriteKey(writer, key);
  writer.RawValue(exact_text.data(), exact_text.size(), rapidjson::kNumberType);
}

void WriteStringMap(JsonWriter& writer, absl::string_view key,
                    const std::map<std::string, std::string>& values) {
  WriteKey(writer, key);
  writer.StartObject();
  for (const auto& [name, value] : values) WriteString(writer, name, value);
  writer.EndObject();
}

std::string JsonObject(absl::FunctionRef<void(JsonWriter&)> write_members) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  write_members(writer);
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string DataEnvelope(absl::FunctionRef<void(JsonWriter&)> write_data) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  WriteInt(writer, "code", 200);
  WriteString(writer, "msg", "success");
  WriteKey(writer, "data");
  writer.StartObject();
  write_data(writer);
  writer.EndObject();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string ListEnvelope(int64_t total,
                         absl::FunctionRef<void(JsonWriter&)> write_rows) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  WriteInt(writer, "total", total);
  WriteKey(writer, "rows");
  writer.StartArray();
  write_rows(writer);
  writer.EndArray();
  WriteInt(writer, "code", 200);
  WriteString(writer, "msg", "success");
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string ErrorEnvelope(int code, absl::string_view msg) {
  rapidjson::StringBuffer buffer;
  JsonWriter writer(buffer);
  writer.StartObject();
  WriteInt(writer, "code", code);
  WriteString(writer, "msg", msg);
  WriteKey(writer, "data");
  writer.Null();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

}  // namespace clink_gateway::emulator
