// The file types the gateway accepts for upload (FilePart.types in
// rest_options.proto), recognised by their magic bytes, never by the caller's
// say-so.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_FILE_TYPE_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_FILE_TYPE_H_

#include "absl/strings/string_view.h"

namespace clink_gateway::clink {

struct FileType {
  absl::string_view name;        // "JPEG": for messages
  absl::string_view media_type;  // "image/jpeg": the part's Content-Type
};

// The type a file-name extension names, in lower case without the dot ("jpg"
// and "jpeg" are both JPEG); nullptr for one the gateway does not know.
const FileType* FileTypeByExtension(absl::string_view extension);

// The type `data` is by its leading magic bytes: JPEG (FF D8 FF), PNG (the
// 8-byte PNG signature), GIF ("GIF87a"/"GIF89a"), WebP ("RIFF", 4 bytes,
// "WEBP"); nullptr for anything else.
const FileType* SniffFileType(absl::string_view data);

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_FILE_TYPE_H_
