// RestCodec::DecodeEnvelope: the envelope of an error answer, without its
// payload (the response message is decoded only for a success: see
// ClinkClient::OnAttemptDone).

#include <string>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "adapters/clink/rest_codec.h"
#include "rapidjson/document.h"
#include "rapidjson/encodings.h"
#include "rapidjson/memorystream.h"

namespace clink_gateway::clink {
namespace {

// As DecodeResponse: iterative (bounded stack), numbers kept as text, input
// bytes checked as UTF-8.
constexpr unsigned kEnvelopeParseFlags = rapidjson::kParseIterativeFlag |
                                         rapidjson::kParseNumbersAsStringsFlag |
                                         rapidjson::kParseValidateEncodingFlag;

// Well-formed UTF-8 after unescaping (a `\udd00` escape decodes to a lone
// surrogate): the message reaches the caller's status, text only.
bool IsWellFormedUtf8(absl::string_view text) {
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

}  // namespace

absl::Status RestCodec::DecodeEnvelope(const RestMethod& method,
                                       absl::string_view body,
                                       Envelope* envelope) const {
  *envelope = Envelope();
  rapidjson::Document doc;
  if (doc.Parse<kEnvelopeParseFlags>(body.data(), body.size())
          .HasParseError() ||
      !doc.IsObject()) {
    return absl::InternalError(
        absl::StrFormat("Clink response for %s is not a JSON object (%d bytes)",
                        method.endpoint, body.size()));
  }
  const auto code_it = doc.FindMember("code");
  if (code_it == doc.MemberEnd()) {
    if (method.unwrapped_response_ok) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(
        "Clink response for ", method.endpoint, " has no envelope code"));
  }
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
    if (!IsWellFormedUtf8(envelope->msg)) envelope->msg = "(not UTF-8)";
  }
  return absl::OkStatus();
}

}  // namespace clink_gateway::clink
