#include "adapters/credentials/testing/secret_volume.h"

#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace clink_gateway::credentials::testing {
namespace {

void Check(bool ok, const std::string& what) {
  if (ok) return;
  perror(what.c_str());
  std::abort();
}

}  // namespace

SecretVolume::SecretVolume(std::string dir) : dir_(std::move(dir)) {
  Check(mkdir(dir_.c_str(), 0755) == 0, dir_);
}

void SecretVolume::Write(const std::map<std::string, std::string>& files) {
  // The kubelet names versions by time; the generation keeps rapid writes
  // distinct.
  const std::string version = absl::StrCat(
      "..",
      absl::FormatTime("%Y_%m_%d_%H_%M_%S", absl::Now(), absl::UTCTimeZone()),
      absl::StrFormat(".%09d", ++generation_));
  const std::string version_path = absl::StrCat(dir_, "/", version);
  Check(mkdir(version_path.c_str(), 0755) == 0, version_path);
  for (const auto& [name, contents] : files) {
    const std::string path = absl::StrCat(version_path, "/", name);
    std::ofstream(path, std::ios::binary) << contents;
    Check(chmod(path.c_str(), 0444) == 0, path);
  }
  const std::string tmp = absl::StrCat(dir_, "/..data_tmp");
  Check(symlink(version.c_str(), tmp.c_str()) == 0, tmp);
  const std::string data = absl::StrCat(dir_, "/..data");
  Check(rename(tmp.c_str(), data.c_str()) == 0, data);
  for (const auto& [name, contents] : files) {
    if (files_.count(name) > 0) continue;
    const std::string link = absl::StrCat(dir_, "/", name);
    Check(symlink(absl::StrCat("..data/", name).c_str(), link.c_str()) == 0,
          link);
  }
  for (const auto& [name, contents] : files_) {
    if (files.count(name) > 0) continue;
    const std::string link = absl::StrCat(dir_, "/", name);
    Check(unlink(link.c_str()) == 0, link);
  }
  if (!version_.empty()) {
    std::filesystem::remove_all(absl::StrCat(dir_, "/", version_));
  }
  version_ = version;
  files_ = files;
}

std::string NewTempPath(absl::string_view name) {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/", name, "-",
                      ++counter);
}

std::string SignedApiKey(const http::RequestSigner& signer) {
  http::HttpRequest request;
  if (!signer.Sign(request).ok()) return "";
  for (const auto& [name, value] : request.headers) {
    if (name == "X-API-KEY") return value;
  }
  return "";
}

}  // namespace clink_gateway::credentials::testing
