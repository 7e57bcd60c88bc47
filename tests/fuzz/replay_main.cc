// main() for the fuzz targets outside the fuzz build: feeds every file named on
// the command line, or found (recursively, in name order) under a directory
// named there, to LLVMFuzzerTestOneInput once. The corpus replay tests
// (bazel/fuzz.bzl) run it over tests/tests/fuzz/corpus/<fuzzer>/; it also
// reproduces a crash without clang: bazel run //tests/fuzz:<fuzzer> --
// /path/to/crash-file. Fails when an argument cannot be read or names no input
// at all (a corpus that went missing must not pass as an empty success).
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

bool ReadFile(const std::filesystem::path& path, std::string* contents) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  contents->assign(std::istreambuf_iterator<char>(in),
                   std::istreambuf_iterator<char>());
  return !in.bad();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE_OR_DIR...\n", argv[0]);
    return 2;
  }
  std::vector<std::filesystem::path> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::filesystem::path arg(argv[i]);
    std::error_code error;
    if (std::filesystem::is_directory(arg, error)) {
      std::vector<std::filesystem::path> found;
      for (const auto& entry :
           std::filesystem::recursive_directory_iterator(arg, error)) {
        if (entry.is_regular_file()) found.push_back(entry.path());
      }
      if (error) {
        std::fprintf(stderr, "cannot list %s: %s\n", argv[i],
                     error.message().c_str());
        return 2;
      }
      std::sort(found.begin(), found.end());
      inputs.insert(inputs.end(), found.begin(), found.end());
    } else {
      inputs.push_back(arg);
    }
  }
  if (inputs.empty()) {
    std::fprintf(stderr, "no inputs under %s\n", argv[1]);
    return 2;
  }
  for (const auto& path : inputs) {
    std::string contents;
    if (!ReadFile(path, &contents)) {
      std::fprintf(stderr, "cannot read %s\n", path.c_str());
      return 2;
    }
    // Printed before the call, so a crash names its input.
    std::fprintf(stderr, "replaying %s (%zu bytes)\n", path.c_str(),
                 contents.size());
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(contents.data()),
                           contents.size());
  }
  std::fprintf(stderr, "replayed %zu inputs\n", inputs.size());
  return 0;
}
