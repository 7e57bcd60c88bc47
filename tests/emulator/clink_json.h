// JSON helpers for the Clink emulator: request parsing that keeps numbers as
// exact text, field validation with messages that name the field, and Clink's
// response envelopes.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_CLINK_JSON_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_CLINK_JSON_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace clink_gateway::emulator {

using JsonWriter = rapidjson::Writer<rapidjson::StringBuffer>;

// Parses `body` into `doc`, which must be a JSON object. Parsing uses
// kParseNumbersAsStringsFlag, so every number arrives as a string holding its
// exact text ("19.990" stays "19.990"). As a consequence a number and a string
// are indistinguishable afterwards; the getters below accept either, which
// matches Jackson's default scalar coercion on Clink's side.
absl::Status ParseJsonObject(absl::string_view body, rapidjson::Document* doc);

// Typed, validating access to the members of one JSON object. Error statuses
// are InvalidArgument with a message naming the field, prefixed with `prefix`
// for nested objects (e.g. "priceDataList[0].unitAmount is required"). The
// object must outlive this view.
class JsonFields {
 public:
  explicit JsonFields(const rapidjson::Value& object, std::string prefix = "");

  // The member `name`, or null when it is absent or JSON null.
  const rapidjson::Value* Find(absl::string_view name) const;

  // Absent, null or "" -> "<name> is required".
  absl::StatusOr<std::string> RequiredString(absl::string_view name) const;
  // Absent or null -> "".
  absl::StatusOr<std::string> OptionalString(absl::string_view name) const;
  // A decimal amount > 0, returned as the exact text that was sent.
  absl::StatusOr<std::string> RequiredAmount(absl::string_view name) const;
  // Like RequiredAmount, but absent or null -> "".
  absl::StatusOr<std::string> OptionalAmount(absl::string_view name) const;
  absl::StatusOr<std::optional<int64_t>> OptionalInt(
      absl::string_view name) const;
  absl::StatusOr<std::optional<bool>> OptionalBool(
      absl::string_view name) const;
  // A JSON object whose values are strings (numbers and booleans are taken as
  // their text).
  absl::StatusOr<std::map<std::string, std::string>> OptionalStringMap(
      absl::string_view name) const;

  // `prefix` + `name`, as used in error messages.
  std::string FieldName(absl::string_view name) const;

 private:
  const rapidjson::Value& object_;
  std::string prefix_;
};

// Writer helpers; each writes one "key": value member of the object being
// written.
void WriteString(JsonWriter& writer, absl::string_view key,
                 absl::string_view value);
// Writes nothing when `value` is empty.
void WriteStringIfSet(JsonWriter& writer, absl::string_view key,
                      absl::string_view value);
void WriteInt(JsonWriter& writer, absl::string_view key, int64_t value);
void WriteBool(JsonWriter& writer, absl::string_view key, bool value);
// Writes `exact_text` (already validated decimal syntax) as a JSON number,
// digit for digit.
void WriteAmount(JsonWriter& writer, absl::string_view key,
                 absl::string_view exact_text);
void WriteStringMap(JsonWriter& writer, absl::string_view key,
                    const std::map<std::string, std::string>& values);
void WriteKey(JsonWriter& writer, absl::string_view key);

// {...}: a JSON object whose members `write_members` writes.
std::string JsonObject(absl::FunctionRef<void(JsonWriter&)> write_members);
// {"code":200,"msg":"success","data":{...}}; `write_data` writes the members of
// "data".
std::string DataEnvelope(absl::FunctionRef<void(JsonWriter&)> write_data);
// {"total":N,"rows":[...],"code":200,"msg":"success"}; `write_rows` writes the
// array elements.
std::string ListEnvelope(int64_t total,
                         absl::FunctionRef<void(JsonWriter&)> write_rows);
// {"code":code,"msg":msg,"data":null}
std::string ErrorEnvelope(int code, absl::string_view msg);

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_CLINK_JSON_H_
