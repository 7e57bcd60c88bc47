#include "adapters/clink/file_type.h"

#include "absl/strings/match.h"

namespace clink_gateway::clink {
namespace {

constexpr FileType kJpeg = {"JPEG", "image/jpeg"};
constexpr FileType kPng = {"PNG", "image/png"};
constexpr FileType kGif = {"GIF", "image/gif"};
constexpr FileType kWebp = {"WebP", "image/webp"};

}  // namespace

const FileType* FileTypeByExtension(absl::string_view extension) {
  if (extension == "jpg" || extension == "jpeg") return &kJpeg;
  if (extension == "png") return &kPng;
  if (extension == "gif") return &kGif;
  if (extension == "webp") return &kWebp;
  return nullptr;
}

const FileType* SniffFileType(absl::string_view data) {
  if (absl::StartsWith(data, "\xFF\xD8\xFF")) return &kJpeg;
  if (absl::StartsWith(data, absl::string_view("\x89PNG\r\n\x1A\n", 8))) {
    return &kPng;
  }
  if (absl::StartsWith(data, "GIF87a") || absl::StartsWith(data, "GIF89a")) {
    return &kGif;
  }
  if (data.size() >= 12 && absl::StartsWith(data, "RIFF") &&
      data.substr(8, 4) == "WEBP") {
    return &kWebp;
  }
  return nullptr;
}

}  // namespace clink_gateway::clink
