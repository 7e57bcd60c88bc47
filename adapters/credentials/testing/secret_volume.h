// Test helper: a directory laid out and updated the way the kubelet writes a
// Secret volume (pkg/volume/util/atomic_writer.go).
#ifndef CLINK_GATEWAY_ADAPTERS_CREDENTIALS_TESTING_SECRET_VOLUME_H_
#define CLINK_GATEWAY_ADAPTERS_CREDENTIALS_TESTING_SECRET_VOLUME_H_

#include <map>
#include <string>

#include "absl/strings/string_view.h"
#include "adapters/http/request_signer.h"

namespace clink_gateway::credentials::testing {

class SecretVolume {
 public:
  // Creates `dir` (which must not exist yet) with no version in it.
  explicit SecretVolume(std::string dir);

  const std::string& dir() const { return dir_; }

  // Publishes a new version holding exactly `files` (name -> contents): writes
  // them into a fresh `..<timestamp>` directory, points `..data_tmp` at it,
  // renames `..data_tmp` over `..data` (the atomic swap), adds the
  // `name -> ..data/name` symlinks of new names and removes those of names no
  // longer present, then deletes the previous version. Aborts the test
  // process on any filesystem error.
  void Write(const std::map<std::string, std::string>& files);

 private:
  std::string dir_;
  std::string version_;  // The current `..<timestamp>` name, or empty.
  std::map<std::string, std::string> files_;
  int generation_ = 0;
};

// A path under the test's temporary directory (TEST_TMPDIR) that no earlier
// call returned: "<tmp>/<name>-<n>". Nothing is created.
std::string NewTempPath(absl::string_view name);

// The X-API-KEY value `signer` adds to a request (empty if none).
std::string SignedApiKey(const http::RequestSigner& signer);

}  // namespace clink_gateway::credentials::testing

#endif  // CLINK_GATEWAY_ADAPTERS_CREDENTIALS_TESTING_SECRET_VOLUME_H_
