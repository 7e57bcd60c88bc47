// What the REST codec's source files share (rest_codec.cc: the mapping
// compiler; rest_codec_encoder.cc: validation and requests to HTTP;
// rest_codec_decoder.cc: envelopes and JSON to proto): small helpers over
// the annotations, and the reflection walkers (RestCodec::Impl). Internal to
// //adapters/clink:rest_codec; rest_codec.h is the interface.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_REST_CODEC_INTERNAL_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_REST_CODEC_INTERNAL_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/string_view.h"
#include "adapters/clink/rest_codec.h"
#include "common/errors/error_details.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "rapidjson/document.h"
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

namespace rest_codec_internal {

inline constexpr absl::string_view kTimestampType = "google.protobuf.Timestamp";

inline const v1::FieldRule& RuleOf(const FieldDescriptor& field) {
  return field.options().GetExtension(v1::field);
}

inline bool IsTimestamp(const FieldDescriptor& field) {
  return field.cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
         field.message_type()->full_name() == kTimestampType;
}

inline bool IsDecimal(const FieldDescriptor& field) {
  return RuleOf(field).encoding() == v1::VALUE_ENCODING_DECIMAL;
}

// A DECIMAL map<string, string>: currency code to amount (Clink's
// fixedAmounts).
inline bool IsDecimalMap(const FieldDescriptor& field) {
  return field.is_map() && IsDecimal(field) &&
         field.message_type()->map_value()->cpp_type() ==
             FieldDescriptor::CPPTYPE_STRING;
}

}  // namespace rest_codec_internal

// Reflection walkers. A nested class so they can read the codec's indexes.
// Validation and encoding are defined in rest_codec_encoder.cc, decoding in
// rest_codec_decoder.cc.
class RestCodec::Impl {
 public:
  explicit Impl(const RestCodec& codec) : codec_(codec) {}

  // --- validation and encoding (rest_codec_encoder.cc)

  void ValidateMessage(const Message& message, const std::string& prefix,
                       std::vector<errors::FieldViolation>* out,
                       absl::string_view currency = {}) const;
  void WriteMessage(
      const Message& message, JsonWriter& w,
      const absl::flat_hash_set<const FieldDescriptor*>* skip) const;
  std::string ScalarText(const Message& m, const FieldDescriptor& f,
                         int index) const;

  // --- decoding (rest_codec_decoder.cc)

  void DecodeObject(const rapidjson::Value& object, Message* message,
                    const std::string& path, DecodeStats* stats) const;

 private:
  bool IsNonDefault(const Message& m, const FieldDescriptor& f) const;
  static std::string FirstCurrencyCode(const Message& message);
  static void ValidateMoney(const Message& message, const FieldDescriptor& f,
                            const std::string& value, const std::string& path,
                            absl::string_view enclosing_currency,
                            std::vector<errors::FieldViolation>* out);
  static void ValidateAmountMap(const Message& message,
                                const FieldDescriptor& f,
                                const std::string& path,
                                std::vector<errors::FieldViolation>* out);
  static void ValidateString(const std::string& value,
                             const v1::FieldRule& rule, const std::string& path,
                             std::vector<errors::FieldViolation>* out);
  static std::string WireValue(const EnumValueDescriptor* value);
  void WriteValue(const Message& m, const FieldDescriptor& f, int index,
                  JsonWriter& w) const;
  void WriteMap(const Message& m, const FieldDescriptor& f,
                JsonWriter& w) const;

  static void Unknown(const std::string& path, DecodeStats* stats);
  bool DecodeField(const rapidjson::Value& value, const FieldDescriptor& f,
                   Message* message, const std::string& path,
                   DecodeStats* stats) const;
  bool DecodeValue(const rapidjson::Value& value, const FieldDescriptor& f,
                   bool add, Message* message, const std::string& path,
                   DecodeStats* stats) const;
  bool DecodeMap(const rapidjson::Value& value, const FieldDescriptor& f,
                 Message* message, const std::string& path,
                 DecodeStats* stats) const;
  static bool ScalarFromJson(const rapidjson::Value& value,
                             const FieldDescriptor& f, std::string* text);
  bool SetScalar(const std::string& text, const FieldDescriptor& f, Message* m,
                 int index) const;

  const RestCodec& codec_;
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_REST_CODEC_INTERNAL_H_
