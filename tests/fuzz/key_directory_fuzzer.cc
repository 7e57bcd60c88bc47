// The Secret-directory key files (adapters/credentials/key_set.h): the input
// becomes a key directory in a temporary directory, which ReadKeyDirectory and
// LoadKeySet then read. Byte 0 chooses the layout: bit 0 writes api-key, bit 1
// writes api-key-previous, bit 2 lays the files out as the kubelet does (a
// version directory, the `..data` symlink to it, and symlinks to the files
// through `..data`). Byte 1 is api-key's length (bytes 1-2, big-endian, when
// bit 3 is set, to reach the 4 KiB cap); the rest is api-key then
// api-key-previous.
//
// Properties:
// - A directory reads as exactly its files' contents, whitespace stripped,
//   signing key first; otherwise the error is the documented one: NOT_FOUND
//   (no api-key), FAILED_PRECONDITION (a file only whitespace),
//   INVALID_ARGUMENT (over 4 KiB).
// - No error message, fingerprint or debug string contains a key file's
//   contents.
// - A loaded key set has one or two keys and equals itself.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "adapters/credentials/key_set.h"
#include "common/clock.h"
#include "common/secret.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

namespace credentials = clink_gateway::credentials;

void Clean(const std::string& dir);

// A directory of its own for this process, under TEST_TMPDIR when Bazel runs
// the corpus test; removed at exit.
const std::string& ScratchDir() {
  static const std::string* const dir = [] {
    const char* base = std::getenv("TEST_TMPDIR");
    std::string pattern =
        absl::StrCat(base != nullptr ? base : "/tmp", "/key_dir_fuzz.XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("mkdtemp");
      std::abort();
    }
    std::atexit([] {
      Clean(ScratchDir());
      rmdir(ScratchDir().c_str());
    });
    return new std::string(pattern);
  }();
  return *dir;
}

void WriteFile(const std::string& path, absl::string_view contents) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FUZZ_CHECK(fd >= 0, "cannot create %s", path.c_str());
  size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n =
        write(fd, contents.data() + written, contents.size() - written);
    FUZZ_CHECK(n > 0, "cannot write %s", path.c_str());
    written += static_cast<size_t>(n);
  }
  close(fd);
}

// Removes what the previous input left: the files, symlinks and the version
// directory (the layout is fixed, so no recursive walk is needed).
void Clean(const std::string& dir) {
  for (const char* name : {"api-key", "api-key-previous", "..data"}) {
    unlink(absl::StrCat(dir, "/", name).c_str());
  }
  const std::string version = absl::StrCat(dir, "/..2026_12_07_v1");
  for (const char* name : {"api-key", "api-key-previous"}) {
    unlink(absl::StrCat(version, "/", name).c_str());
  }
  rmdir(version.c_str());
}

// Checked for in messages: contents shaped like a real key ("sk_", visible
// ASCII, 12 characters or more). Anything shorter or odder may occur in a
// message by chance: "api-key-previous" in a message naming that file, or
// "sk_test_\u2026" in one quoting the expected shape.
bool KeyShaped(absl::string_view key) {
  return key.size() >= 12 && absl::StartsWith(key, "sk_") &&
         std::all_of(key.begin(), key.end(),
                     [](char c) { return c > 0x20 && c < 0x7f; });
}

void CheckNoLeak(absl::string_view text, absl::string_view key,
                 absl::string_view what) {
  if (!KeyShaped(key)) return;
  FUZZ_CHECK(!absl::StrContains(text, key), "%.*s contains a key file: %.*s",
             static_cast<int>(what.size()), what.data(),
             static_cast<int>(text.size()), text.data());
}

class UnusedClock final : public clink_gateway::Clock {
 public:
  absl::Time Now() const override { return absl::UnixEpoch(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool signing = (data[0] & 1) != 0;
  const bool previous = (data[0] & 2) != 0;
  const bool kubelet = (data[0] & 4) != 0;
  size_t offset = 2;
  size_t signing_size = data[1];
  if ((data[0] & 8) != 0 && size >= 3) {
    signing_size = (size_t{data[1]} << 8) | data[2];
    offset = 3;
  }
  const absl::string_view rest(reinterpret_cast<const char*>(data) + offset,
                               size - offset);
  const absl::string_view signing_text = rest.substr(0, signing_size);
  const absl::string_view previous_text =
      rest.substr(std::min(signing_size, rest.size()));

  const std::string& dir = ScratchDir();
  Clean(dir);
  std::string files = dir;
  if (kubelet) {
    files = absl::StrCat(dir, "/..2026_12_07_v1");
    FUZZ_CHECK(mkdir(files.c_str(), 0700) == 0, "mkdir %s", files.c_str());
    FUZZ_CHECK(symlink("..2026_12_07_v1", (dir + "/..data").c_str()) == 0,
               "symlink ..data");
  }
  for (const auto& [wanted, name, text] :
       {std::tuple(signing, "api-key", signing_text),
        std::tuple(previous, "api-key-previous", previous_text)}) {
    if (!wanted) continue;
    WriteFile(absl::StrCat(files, "/", name), text);
    if (kubelet) {
      FUZZ_CHECK(symlink(absl::StrCat("..data/", name).c_str(),
                         absl::StrCat(dir, "/", name).c_str()) == 0,
                 "symlink %s", name);
    }
  }

  const absl::string_view signing_key =
      absl::StripAsciiWhitespace(signing_text);
  const absl::string_view previous_key =
      absl::StripAsciiWhitespace(previous_text);
  // What reading must give: files are read signing key first, each checked
  // for size, then for contents.
  absl::StatusCode want = absl::StatusCode::kOk;
  if (!signing) {
    want = absl::StatusCode::kNotFound;
  } else if (signing_text.size() > 4096) {
    want = absl::StatusCode::kInvalidArgument;
  } else if (signing_key.empty()) {
    want = absl::StatusCode::kFailedPrecondition;
  } else if (previous && previous_text.size() > 4096) {
    want = absl::StatusCode::kInvalidArgument;
  } else if (previous && previous_key.empty()) {
    want = absl::StatusCode::kFailedPrecondition;
  }
  auto keys = credentials::ReadKeyDirectory(dir);
  FUZZ_CHECK(keys.status().code() == want, "%s, want code %d",
             keys.status().ToString().c_str(), static_cast<int>(want));
  if (!keys.ok()) {
    CheckNoLeak(keys.status().message(), signing_key,
                "ReadKeyDirectory's error");
    CheckNoLeak(keys.status().message(), previous_key,
                "ReadKeyDirectory's error");
    return 0;
  }
  FUZZ_CHECK(signing, "keys read without an api-key");
  FUZZ_CHECK(keys->size() == (previous ? 2u : 1u), "%zu keys", keys->size());
  FUZZ_CHECK((*keys)[0].Reveal() == signing_key, "api-key read wrongly");
  if (previous) {
    FUZZ_CHECK((*keys)[1].Reveal() == previous_key,
               "api-key-previous read wrongly");
  }
  const UnusedClock clock;
  auto set = credentials::LoadKeySet(dir, clock);
  if (!set.ok()) {
    CheckNoLeak(set.status().message(), signing_key, "LoadKeySet's error");
    CheckNoLeak(set.status().message(), previous_key, "LoadKeySet's error");
    FUZZ_CHECK(credentials::FailureOutcome(set.status()) ==
                   credentials::ReloadOutcome::kInvalid,
               "%s", set.status().ToString().c_str());
    return 0;
  }
  FUZZ_CHECK((*set)->size() == 1 || (*set)->size() == 2, "%zu keys",
             (*set)->size());
  FUZZ_CHECK((*set)->SameKeys(**set), "a key set differs from itself");
  // What logs and metrics show of the keys in use.
  CheckNoLeak((*set)->Fingerprints(), signing_key, "Fingerprints()");
  CheckNoLeak((*set)->Fingerprints(), previous_key, "Fingerprints()");
  for (const auto& key : *keys) {
    CheckNoLeak(key.DebugString(), key.Reveal(), "a debug string");
  }
  return 0;
}
