// The one generic, descriptor-driven translation between gateway RPCs and
// Clink's REST/JSON.
//
// Every RPC declares its Clink endpoint with the options in
// proto/clink/gateway/v1/rest_options.proto (HTTP method, path template,
// envelope shape, field encodings, validation rules, enum wire values).
// RestCodec reads those options once, at startup, checks them, and from then on
// encodes any request and decodes any response by protobuf reflection. There is
// no per-endpoint encode/decode code.
//
// Money: decimal fields are written to Clink as JSON numbers carrying exactly
// the caller's digits, and read back with RapidJSON's numbers-as-strings mode:
// no value ever passes through a double.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_REST_CODEC_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_REST_CODEC_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "adapters/http/http_types.h"
#include "clink/gateway/v1/rest_options.pb.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace clink_gateway::clink {

namespace v1 = ::clink::gateway::v1;

// One compiled path-template segment: literal text, or the request field
// substituted there.
struct PathSegment {
  std::string literal;
  const google::protobuf::FieldDescriptor* field = nullptr;
};

// The compiled REST mapping of one RPC.
struct RestMethod {
  const google::protobuf::MethodDescriptor* method = nullptr;
  http::Method http_method = http::Method::kGet;
  std::vector<PathSegment> path;
  // "GET /checkout/session/{session_id}": a bounded label for logs and metrics.
  std::string endpoint;
  // "/checkout/session/{session_id}": the path template alone (the metrics'
  // `endpoint` label; the HTTP method is a label of its own).
  std::string path_template;
  v1::ResponseShape shape = v1::RESPONSE_SHAPE_OBJECT;
  // Receives the envelope payload (repeated for LIST and ARRAY, singular for
  // OBJECT); nullptr means the payload fills the whole response.
  const google::protobuf::FieldDescriptor* response_body = nullptr;
  // LIST shape only: the response field that receives the envelope's `total`.
  const google::protobuf::FieldDescriptor* total = nullptr;
  // Clink deduplicates this call itself (RestRule.idempotent_upstream).
  bool idempotent_upstream = false;
  // RestRule.unwrapped_response_ok and RestRule.data_optional.
  bool unwrapped_response_ok = false;
  bool data_optional = false;
  // RestRule.body_encoding BODY_ENCODING_MULTIPART only: the `bytes` request
  // field sent as the file part (its FieldRule.file_part says how) and the
  // string field holding its file name. Null for a JSON body (or none).
  const google::protobuf::FieldDescriptor* file_field = nullptr;
  const google::protobuf::FieldDescriptor* filename_field = nullptr;
  // The response (or a message in it) has a FieldRule.sensitive field (a
  // webhook endpoint's plaintext signing secret): whoever keeps or prints a
  // response of this method clears those first (ClearSensitiveFields).
  bool sensitive_response = false;

  // True for methods that may change state at Clink: every method but GET
  // (POST, PUT, PATCH, DELETE). A mutating call goes through the idempotency
  // layer and is never retried once it may have been sent (unless
  // idempotent_upstream); its outcome is unknown when in doubt.
  bool mutating() const { return http_method != http::Method::kGet; }
};

// What decoding found in a successful response besides the fields it filled.
struct DecodeStats {
  // JSON members with no matching proto field, or whose value did not fit the
  // field (type drift, unknown enum string). Tolerated and counted: a sign of
  // Clink API drift.
  int unknown_fields = 0;
  // The first few of those, as JSON paths ("data.newField"), for a debug log
  // line.
  std::vector<std::string> unknown_examples;
  // Money fields whose value could not be read exactly (not a JSON number).
  // Never tolerated: the caller must not see a blank amount as if it were
  // Clink's answer.
  int unreadable_amounts = 0;
  // Map values nested deeper than the codec walks (32 levels of arrays and
  // objects inside one metadata value), left out. Like an unreadable amount,
  // never tolerated: the response is not what Clink sent.
  int values_too_deep = 0;
  // Strings (and map keys) that are not well-formed UTF-8, e.g. from a JSON
  // escape of a lone surrogate ("\udd00"): left out, and never tolerated
  // either, since the field then lacks what Clink sent.
  int unreadable_strings = 0;
};

// Clink's envelope: `{code, msg, data}` or `{total, rows, code, msg}`.
struct Envelope {
  // false: the body was a bare object with no envelope (accepted only for
  // methods with RestRule.unwrapped_response_ok).
  bool has_code = false;
  int64_t code = 0;
  std::string msg;
  // A success envelope carried no usable payload (`data` or `rows` absent,
  // null or of the wrong JSON type) although the method needs one
  // (RestRule.data_optional is false; a wrong type is always flagged).
  bool payload_missing = false;
};

// The protobuf package of the public contract (proto/clink/gateway/v1).
inline constexpr absl::string_view kContractPackage = "clink.gateway.v1";

// The full names of the contract's services that forward to Clink, sorted:
// every service declared in a file of package kContractPackage that is linked
// into the binary (found by walking the generated descriptor pool's files, so a
// new service needs no C++ list to be served), except those the gateway serves
// itself (IsGatewayServedService). Computed once; thread-safe.
const std::vector<std::string>& GatewayServiceNames();

// Whether `service_full_name` is a contract service the gateway implements
// itself, with no REST mapping: "clink.gateway.v1.EventService" (Clink's
// webhooks as a gRPC stream, server/event_service.h).
bool IsGatewayServedService(absl::string_view service_full_name);
// Whether `type` or a message type reachable from it has a field marked
// FieldRule.sensitive (rest_options.proto).
bool HasSensitiveFields(const google::protobuf::Descriptor& type);

// Clears every set field marked FieldRule.sensitive in `message` and in the
// messages nested in it (singular, repeated and map values), so the message
// can be kept or printed without the secret. Returns how many fields it
// cleared.
int ClearSensitiveFields(google::protobuf::Message* message);

// What is wrong with `value` for a string field of FieldRule.format `format`
// ("must be an absolute https:// URL ..."), or empty when it conforms (and for
// STRING_FORMAT_UNSPECIFIED). The rules are in rest_options.proto.
absl::string_view StringFormatProblem(v1::StringFormat format,
                                      absl::string_view value);

class RestCodec {
 public:
  // Compiles the REST mapping of every method of `services`, checking the
  // annotations: every method has a method the codec knows (UNSPECIFIED or an
  // unknown number is an error, never a GET) and a path whose variables name
  // non-repeated string request fields; GET and DELETE requests are scalars (a
  // query string); a multipart body is on a POST, PUT or PATCH with exactly
  // one valid file_part `bytes` field and otherwise singular scalars;
  // response_body names a field (repeated for LIST and ARRAY, singular for
  // OBJECT); no
  // float/double field anywhere; every Timestamp field has a time encoding;
  // DECIMAL only on strings and map<string, string>; every enum value but the
  // zero one has a wire value. An error here is a bug in the protos, reported
  // at startup.
  //
  // `standalone_messages` are further message types decoded on their own with
  // DecodeMessage (e.g. the payloads of webhook events): they and everything
  // they reach are indexed and checked like response messages.
  static absl::StatusOr<std::unique_ptr<RestCodec>> Create(
      const std::vector<const google::protobuf::ServiceDescriptor*>& services,
      const std::vector<const google::protobuf::Descriptor*>&
          standalone_messages = {});

  // As Create, for the services named (full names, e.g.
  // "clink.gateway.v1.CheckoutService") in the generated descriptor pool;
  // NOT_FOUND when one is not linked into the binary.
  static absl::StatusOr<std::unique_ptr<RestCodec>> CreateForServices(
      const std::vector<std::string>& service_names);

  // The mapping of `method`, or nullptr when it is not one of the compiled
  // services.
  const RestMethod* Find(
      const google::protobuf::MethodDescriptor& method) const;
  // The mapping of the RPC whose request type is `request_type` (each RPC has
  // its own).
  const RestMethod* FindByRequestType(
      const google::protobuf::Descriptor& request_type) const;
  // Every compiled method.
  std::vector<const RestMethod*> methods() const;

  // Checks the declarative rules (required, decimal syntax, positive,
  // min_decimal, max_length, UNSPECIFIED enum values in lists, path parameters
  // that are plain ids and never a dot segment, a multipart file's size, type
  // by magic bytes and file name: see FilePart) on `request` and
  // every message nested in it. Returns INVALID_ARGUMENT naming each offending
  // field ("price_data_list[1].unit_amount") in a google.rpc.BadRequest
  // payload.
  absl::Status Validate(const RestMethod& method,
                        const google::protobuf::Message& request) const;

  // Builds the HTTP request: path parameters substituted as they are; for GET
  // and DELETE the other set fields become the (percent-encoded) query string;
  // for POST, PUT and PATCH a JSON body, or for BODY_ENCODING_MULTIPART a
  // multipart/form-data body (random boundary) with its Content-Type header.
  // Assumes Validate passed (fails with INVALID_ARGUMENT otherwise,
  // e.g. an empty path parameter, or one that is not a plain id: see
  // RestRule.path).
  absl::StatusOr<http::HttpRequest> EncodeRequest(
      const RestMethod& method, const google::protobuf::Message& request) const;

  // Parses a response body into its envelope and, when `envelope.code == 200`
  // (or there is no envelope and the method allows that), fills `response`.
  // INTERNAL for a body that is not a JSON object, or that has no envelope
  // code unless RestRule.unwrapped_response_ok. A JSON member the response has
  // no field for is counted in `stats`, never an error; a money value that
  // cannot be read exactly is counted in stats->unreadable_amounts, and a
  // map value nested deeper than 32 levels in stats->values_too_deep. Never
  // recurses once per level of the body: the parse is iterative and the walk
  // follows the (acyclic, checked by Create) message schema, so no body under
  // the transport's size cap can exhaust the stack.
  absl::Status DecodeResponse(const RestMethod& method, absl::string_view body,
                              google::protobuf::Message* response,
                              Envelope* envelope, DecodeStats* stats) const;

  // Reads only the envelope of a response body (`code` and `msg`, as
  // DecodeResponse does) and never a payload: for an answer whose HTTP status
  // is not a success, where only the error mapping reads the body. INTERNAL
  // for a body that is not a JSON object, a non-integer code, or no code
  // unless RestRule.unwrapped_response_ok. Iterative parse, bounded stack.
  absl::Status DecodeEnvelope(const RestMethod& method, absl::string_view body,
                              Envelope* envelope) const;

  // Decodes one Clink JSON object (`json`, e.g. a webhook event's
  // `data.object`) into `message` with the same rules as a response payload
  // (DecodeResponse: numbers as their exact text, money never through a
  // double, unknown members counted in `stats`). `message`'s type must be
  // reachable from the compiled services or the standalone messages
  // (FAILED_PRECONDITION otherwise); INVALID_ARGUMENT when `json` is not a
  // JSON object. Iterative parse, bounded stack.
  absl::Status DecodeMessage(absl::string_view json,
                             google::protobuf::Message* message,
                             DecodeStats* stats) const;

  // Encodes any message to Clink-style JSON (used by tests and the emulator's
  // goldens).
  absl::StatusOr<std::string> MessageToClinkJson(
      const google::protobuf::Message& message) const;

 private:
  RestCodec() = default;

  class Impl;  // Reflection walkers over the indexes below
               // (rest_codec_internal.h).

  // Every message type reachable from a compiled request or response: Clink
  // JSON key (and the proto field name, accepted too) to field.
  using FieldIndex =
      absl::flat_hash_map<std::string,
                          const google::protobuf::FieldDescriptor*>;
  // Every enum reachable: Clink wire value to enum value.
  using EnumIndex =
      absl::flat_hash_map<std::string,
                          const google::protobuf::EnumValueDescriptor*>;

  absl::flat_hash_map<const google::protobuf::MethodDescriptor*,
                      std::unique_ptr<RestMethod>>
      by_method_;
  absl::flat_hash_map<const google::protobuf::Descriptor*, const RestMethod*>
      by_request_;
  absl::flat_hash_map<const google::protobuf::Descriptor*, FieldIndex> fields_;
  absl::flat_hash_map<const google::protobuf::EnumDescriptor*, EnumIndex>
      enums_;
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_REST_CODEC_H_
