// Request validation and encoding: the input after the first byte (which picks
// the method, tests/fuzz/gateway_methods.h) is parsed as that method's request
// message (protobuf binary, as gRPC delivers it), validated with
// ValidateRequest and, when valid, encoded with EncodeRequest.
//
// Properties:
// - Never a crash, a sanitizer report or a hang.
// - Validation fails only with INVALID_ARGUMENT.
// - A request that passed validation encodes (nothing valid is refused late).
// - The request line is the template's: the HTTP method is the RPC's, the path
//   has the template's literal parts in place, each path parameter is one
//   non-empty segment, and every byte of the path and query is visible ASCII
//   (no space, control character or raw non-ASCII can reach the request line).
// - A JSON body is one JSON object; a multipart body (FilePart) is framed by
//   its Content-Type's boundary, which occurs nowhere in the file, and carries
//   the file verbatim.
// - With kDotSegmentsRefused (issue 11, defect 3): no path parameter is a dot
//   segment ("." or "..", or their percent-encoded forms), which libcurl would
//   remove, changing the endpoint.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/string_view.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/clink/validation.h"
#include "google/protobuf/message.h"
#include "rapidjson/document.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/gateway_methods.h"

namespace {

using clink_gateway::clink::RestMethod;
using google::protobuf::Message;

// Issue 11, defect 3 ("ids can change the endpoint"): set to true once
// Validate refuses dot-segment ids (another branch fixes it); until then the
// fuzzer would stop at the first "..".
constexpr bool kDotSegmentsRefused = true;

bool IsDotSegment(absl::string_view segment) {
  const std::string decoded =
      absl::StrReplaceAll(absl::AsciiStrToLower(segment), {{"%2e", "."}});
  return decoded == "." || decoded == "..";
}

void CheckRequestLine(const RestMethod& method, absl::string_view request) {
  const std::string& name = method.method->full_name();
  for (const char c : request) {
    FUZZ_CHECK(c > 0x20 && c < 0x7f, "%s: byte 0x%02x in the request line %s",
               name.c_str(), static_cast<unsigned char>(c), request.data());
  }
  absl::string_view path = request.substr(0, request.find('?'));
  for (const auto& segment : method.path) {
    if (segment.field == nullptr) {
      FUZZ_CHECK(absl::StartsWith(path, segment.literal),
                 "%s: path %s does not follow the template %s", name.c_str(),
                 request.data(), method.path_template.c_str());
      path.remove_prefix(segment.literal.size());
      continue;
    }
    const absl::string_view value = path.substr(0, path.find('/'));
    FUZZ_CHECK(!value.empty(), "%s: empty path parameter %s in %s",
               name.c_str(), segment.field->name().c_str(), request.data());
    if (kDotSegmentsRefused) {
      FUZZ_CHECK(!IsDotSegment(value), "%s: dot segment %s as %s", name.c_str(),
                 request.data(), segment.field->name().c_str());
    }
    path.remove_prefix(value.size());
  }
  FUZZ_CHECK(path.empty(), "%s: path %s is longer than the template %s",
             name.c_str(), request.data(), method.path_template.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const RestMethod& method = clink_gateway::fuzz::MethodForSelector(data[0]);
  const auto& codec = clink_gateway::fuzz::GatewayCodec();
  std::unique_ptr<Message> request(
      google::protobuf::MessageFactory::generated_factory()
          ->GetPrototype(method.method->input_type())
          ->New());
  if (!request->ParseFromArray(data + 1, static_cast<int>(size - 1))) {
    return 0;  // gRPC would have refused it before the gateway saw it.
  }
  const std::string& name = method.method->full_name();

  const absl::Status valid =
      clink_gateway::clink::ValidateRequest(codec, method, *request);
  if (std::getenv("FUZZ_VERBOSE") != nullptr) {  // Corpus upkeep: what passes.
    std::fprintf(stderr, "%s: %s\n", name.c_str(), valid.ToString().c_str());
  }
  if (!valid.ok()) {
    FUZZ_CHECK(valid.code() == absl::StatusCode::kInvalidArgument, "%s: %s",
               name.c_str(), valid.ToString().c_str());
    return 0;
  }
  const auto encoded = codec.EncodeRequest(method, *request);
  FUZZ_CHECK(encoded.ok(), "%s: valid request not encoded: %s\n%s",
             name.c_str(), encoded.status().ToString().c_str(),
             request->ShortDebugString().c_str());
  FUZZ_CHECK(encoded->method == method.http_method, "%s", name.c_str());
  CheckRequestLine(method, encoded->path_and_query);
  if (method.file_field != nullptr) {
    constexpr absl::string_view kType = "multipart/form-data; boundary=";
    std::string boundary;
    for (const auto& [header, value] : encoded->headers) {
      if (header == "Content-Type" && absl::StartsWith(value, kType)) {
        boundary = value.substr(kType.size());
      }
    }
    FUZZ_CHECK(!boundary.empty(), "%s: no multipart Content-Type",
               name.c_str());
    std::string scratch;
    const std::string& file = request->GetReflection()->GetStringReference(
        *request, method.file_field, &scratch);
    FUZZ_CHECK(!absl::StrContains(file, boundary),
               "%s: boundary %s occurs in the file", name.c_str(),
               boundary.c_str());
    const absl::string_view body = encoded->body;
    FUZZ_CHECK(
        absl::StartsWith(body, absl::StrCat("--", boundary, "\r\n")) &&
            absl::EndsWith(body, absl::StrCat("\r\n--", boundary, "--\r\n")),
        "%s: body not framed by its boundary", name.c_str());
    FUZZ_CHECK(absl::StrContains(
                   body, absl::StrCat("\r\n\r\n", file, "\r\n--", boundary)),
               "%s: file not carried verbatim", name.c_str());
    return 0;
  }
  if (!encoded->body.empty()) {
    rapidjson::Document body;
    body.Parse<rapidjson::kParseIterativeFlag |
               rapidjson::kParseNumbersAsStringsFlag |
               rapidjson::kParseValidateEncodingFlag>(encoded->body.data(),
                                                      encoded->body.size());
    FUZZ_CHECK(!body.HasParseError() && body.IsObject(),
               "%s: body is not a JSON object: %s", name.c_str(),
               encoded->body.c_str());
  }
  return 0;
}
