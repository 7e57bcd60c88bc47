#include "adapters/http/multipart.h"

#include <algorithm>

#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace clink_gateway::http {
namespace {

constexpr int kMaxBoundaryDraws = 8;

// A quoted Content-Disposition parameter: no control characters, '"' or '\'
// (RFC 7578 leaves escaping undefined, so nothing that would need it is sent).
bool IsQuotable(absl::string_view value) {
  return std::none_of(value.begin(), value.end(), [](char ch) {
    const unsigned char c = static_cast<unsigned char>(ch);
    return c < 0x20 || c == 0x7f || c == '"' || c == '\\';
  });
}

bool IsPrintableAscii(absl::string_view value) {
  return std::all_of(value.begin(), value.end(),
                     [](char c) { return c >= 0x20 && c < 0x7f; });
}

// A valid boundary: 1-70 of RFC 2046's bchars, not ending in a space; only
// the unambiguous subset [0-9A-Za-z'()+_,-./:=?] is accepted.
bool IsValidBoundary(absl::string_view boundary) {
  if (boundary.empty() || boundary.size() > 70) return false;
  return std::all_of(boundary.begin(), boundary.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
           absl::string_view("'()+_,-./:=?").find(c) != absl::string_view::npos;
  });
}

bool OccursIn(const std::vector<FormPart>& parts, absl::string_view boundary) {
  return std::any_of(parts.begin(), parts.end(), [&](const FormPart& part) {
    return absl::StrContains(part.data, boundary) ||
           absl::StrContains(part.name, boundary) ||
           absl::StrContains(part.filename, boundary);
  });
}

}  // namespace

std::string RandomBoundary() {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  thread_local absl::BitGen gen;
  std::string boundary = "clink-";
  for (int i = 0; i < 40; ++i) {
    boundary.push_back(
        kAlphabet[absl::Uniform<size_t>(gen, 0, sizeof(kAlphabet) - 1)]);
  }
  return boundary;
}

absl::StatusOr<MultipartBody> BuildMultipartFormData(
    const std::vector<FormPart>& parts,
    absl::FunctionRef<std::string()> boundary_source) {
  for (size_t i = 0; i < parts.size(); ++i) {
    const FormPart& part = parts[i];
    if (part.name.empty() || !IsQuotable(part.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("form part ", i,
                       ": the name must be non-empty, without control "
                       "characters, '\"' or '\\'"));
    }
    if (!IsQuotable(part.filename)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "form part ", part.name,
          ": the filename must not hold control characters, '\"' or '\\'"));
    }
    if (!IsPrintableAscii(part.content_type)) {
      return absl::InvalidArgumentError(
          absl::StrCat("form part ", part.name,
                       ": the content type must be printable ASCII"));
    }
  }
  std::string boundary;
  for (int draw = 0;; ++draw) {
    if (draw == kMaxBoundaryDraws) {
      return absl::InternalError(
          "no multipart boundary that stays out of the data was found");
    }
    boundary = boundary_source();
    if (IsValidBoundary(boundary) && !OccursIn(parts, boundary)) break;
  }
  size_t size = 0;
  for (const FormPart& part : parts) size += part.data.size() + 256;
  MultipartBody out;
  out.content_type = absl::StrCat("multipart/form-data; boundary=", boundary);
  out.body.reserve(size + boundary.size() + 8);
  for (const FormPart& part : parts) {
    absl::StrAppend(&out.body, "--", boundary,
                    "\r\nContent-Disposition: form-data; name=\"", part.name,
                    "\"");
    if (!part.filename.empty()) {
      absl::StrAppend(&out.body, "; filename=\"", part.filename, "\"");
    }
    out.body.append("\r\n");
    if (!part.content_type.empty()) {
      absl::StrAppend(&out.body, "Content-Type: ", part.content_type, "\r\n");
    }
    absl::StrAppend(&out.body, "\r\n", part.data, "\r\n");
  }
  absl::StrAppend(&out.body, "--", boundary, "--\r\n");
  return out;
}

}  // namespace clink_gateway::http
