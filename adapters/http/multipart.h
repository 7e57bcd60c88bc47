// multipart/form-data bodies (RFC 7578) for the few Clink endpoints that take a
// file upload (POST /product/image/upload).
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_MULTIPART_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_MULTIPART_H_

#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace clink_gateway::http {

// One part of a form: a text field (no filename, no content type) or a file.
struct FormPart {
  std::string name;          // form-data name; required
  std::string filename;      // a file part's name; empty for a text field
  std::string content_type;  // a file part's media type ("image/png")
  std::string data;          // the bytes, sent as they are (any bytes)
};

struct MultipartBody {
  // "multipart/form-data; boundary=<boundary>": the request's Content-Type.
  std::string content_type;
  // The whole body: each part as `--boundary CRLF headers CRLF CRLF data CRLF`,
  // then `--boundary--` CRLF. Sent with its Content-Length.
  std::string body;
};

// 40 characters from [0-9A-Za-z] (238 random bits) after "clink-" (RFC 2046
// allows up to 70).
std::string RandomBoundary();

// Builds the body. The boundary comes from `boundary_source` and is drawn
// again (up to 8 times) until it occurs in no part's data, name or filename,
// so no byte sequence of the data can end a part early or forge another part;
// a source that keeps colliding fails with kInternal. INVALID_ARGUMENT (the
// message names the part) when a part has no name, or its name, filename or
// content type holds a byte a header cannot carry as it is: a control
// character (CR and LF would inject headers), '"' or '\' in a quoted name, or
// any byte outside printable ASCII in the content type. A filename may be UTF-8
// (sent raw, as RFC 7578 §4.2 allows and browsers do).
absl::StatusOr<MultipartBody> BuildMultipartFormData(
    const std::vector<FormPart>& parts,
    absl::FunctionRef<std::string()> boundary_source = RandomBoundary);

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_MULTIPART_H_
