#include "adapters/credentials/key_set.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/types/optional.h"

namespace clink_gateway::credentials {
namespace {

constexpr size_t kMaxKeyFileBytes = 4096;
// How often a read is retried when `..data` moved while it was reading.
constexpr int kMaxReadAttempts = 3;

// "sk_test_" for "sk_test_abc…": "sk_", the mode, "_". Empty when `key` is not
// shaped like a secret key.
absl::string_view SecretKeyMode(absl::string_view key) {
  if (!absl::StartsWith(key, "sk_")) return {};
  const size_t end = key.find('_', 3);
  if (end == absl::string_view::npos || end == 3 || end + 1 >= key.size()) {
    return {};
  }
  for (char c : key.substr(3, end - 3)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) return {};
  }
  return key.substr(0, end + 1);
}

absl::Status ErrnoStatus(int error, absl::string_view what) {
  if (error == ENOENT || error == ENOTDIR) {
    return absl::NotFoundError(absl::StrCat(what, " does not exist"));
  }
  return absl::PermissionDeniedError(
      absl::StrCat("cannot read ", what, ": ", std::strerror(error)));
}

// Reads one key file into a Secret (whitespace stripped). `*found` is false
// when the file does not exist.
absl::Status ReadKeyFile(const std::string& path, Secret* key, bool* found) {
  *found = false;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, path);
  }
  *found = true;
  char buffer[kMaxKeyFileBytes + 1];
  size_t size = 0;
  ssize_t n = 0;
  while (size < sizeof(buffer) &&
         (n = read(fd, buffer + size, sizeof(buffer) - size)) > 0) {
    size += static_cast<size_t>(n);
  }
  const int read_errno = errno;
  close(fd);
  absl::Status status;
  if (n < 0) {
    status = ErrnoStatus(read_errno, path);
  } else if (size > kMaxKeyFileBytes) {
    status = absl::InvalidArgumentError(
        absl::StrCat(path, " is larger than 4 KiB: not a key"));
  } else {
    const absl::string_view value =
        absl::StripAsciiWhitespace(absl::string_view(buffer, size));
    if (value.empty()) {
      status = absl::FailedPreconditionError(absl::StrCat(path, " is empty"));
    } else {
      *key = Secret(std::string(value));
    }
  }
  OPENSSL_cleanse(buffer, sizeof(buffer));
  return status;
}

// The directory `..data` points to, resolved against `dir`; nullopt when
// `dir` has no `..data` (a plain directory).
absl::StatusOr<absl::optional<std::string>> ResolveDataDir(
    const std::string& dir) {
  const std::string link = absl::StrCat(dir, "/..data");
  char target[PATH_MAX];
  const ssize_t n = readlink(link.c_str(), target, sizeof(target) - 1);
  if (n < 0) {
    if (errno == ENOENT || errno == EINVAL) {  // Absent, or not a symlink.
      if (access(dir.c_str(), F_OK) != 0) return ErrnoStatus(errno, dir);
      return absl::optional<std::string>();
    }
    return ErrnoStatus(errno, link);
  }
  const std::string resolved(target, static_cast<size_t>(n));
  if (absl::StartsWith(resolved, "/")) return {resolved};
  return {absl::StrCat(dir, "/", resolved)};
}

absl::StatusOr<std::vector<Secret>> ReadVersion(
    const std::string& base, absl::string_view current_file,
    absl::string_view previous_file) {
  std::vector<Secret> keys(1);
  bool found = false;
  const std::string signing = absl::StrCat(base, "/", current_file);
  if (absl::Status s = ReadKeyFile(signing, &keys[0], &found); !s.ok()) {
    return s;
  }
  if (!found) return absl::NotFoundError(absl::StrCat(signing, " is missing"));
  Secret previous;
  if (absl::Status s = ReadKeyFile(absl::StrCat(base, "/", previous_file),
                                   &previous, &found);
      !s.ok()) {
    return s;
  }
  if (found) keys.push_back(std::move(previous));
  return keys;
}

}  // namespace

// ReadKeyDirectory + KeySet::Create.
absl::StatusOr<std::shared_ptr<const KeySet>> LoadKeySet(const std::string& dir,
                                                         const Clock& clock) {
  absl::StatusOr<std::vector<Secret>> keys = ReadKeyDirectory(dir);
  if (!keys.ok()) return keys.status();
  return KeySet::Create(*std::move(keys), clock);
}

absl::StatusOr<std::shared_ptr<const KeySet>> KeySet::Create(
    std::vector<Secret> keys, const Clock& clock) {
  if (keys.empty() || keys.size() > 2) {
    return absl::InvalidArgumentError("a key set holds one or two keys");
  }
  if (keys.size() == 2 && keys[1].Equals(keys[0])) keys.pop_back();
  static constexpr const char* kNames[] = {kSigningKeyFile.data(),
                                           kPreviousKeyFile.data()};
  absl::string_view mode;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (absl::Status s = http::ApiKeySigner::CheckKey(keys[i]); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(kNames[i], ": ", s.message()));
    }
    const absl::string_view key_mode = SecretKeyMode(keys[i].Reveal());
    if (key_mode.empty()) {
      // Not even its fingerprint: for a value of unknown shape, its prefix
      // and tail may be the secret part.
      return absl::InvalidArgumentError(absl::StrCat(
          kNames[i], " is not a Clink secret key (sk_test_… or sk_prod_…)"));
    }
    if (i > 0 && key_mode != mode) {
      return absl::InvalidArgumentError(
          absl::StrCat(kNames[0], " and ", kNames[1],
                       " are keys of different modes (test vs prod)"));
    }
    mode = key_mode;
  }
  std::shared_ptr<KeySet> set(new KeySet());
  for (Secret& key : keys) {
    set->fingerprints_.push_back(key.Fingerprint());
    set->signers_.push_back(
        std::make_unique<http::ApiKeySigner>(std::move(key), clock));
  }
  return std::shared_ptr<const KeySet>(std::move(set));
}

size_t KeySet::preferred(absl::Time now) const {
  const size_t index = preferred_index_.load(std::memory_order_acquire);
  if (index == 0) return 0;
  return absl::ToUnixNanos(now) <
                 preferred_until_ns_.load(std::memory_order_relaxed)
             ? index
             : 0;
}

void KeySet::Prefer(size_t index, absl::Time until) const {
  if (index >= size()) return;
  // Until first, then the index with release: a reader that sees the new
  // index also sees its window.
  preferred_until_ns_.store(absl::ToUnixNanos(until),
                            std::memory_order_relaxed);
  preferred_index_.store(index, std::memory_order_release);
}

std::string KeySet::Fingerprints() const {
  return absl::StrJoin(fingerprints_, ",");
}

bool KeySet::SameKeys(const KeySet& other) const {
  if (size() != other.size()) return false;
  for (size_t i = 0; i < size(); ++i) {
    if (!signers_[i]->SameKey(*other.signers_[i])) return false;
  }
  return true;
}

absl::string_view ReloadOutcomeName(ReloadOutcome outcome) {
  switch (outcome) {
    case ReloadOutcome::kApplied:
      return "applied";
    case ReloadOutcome::kUnchanged:
      return "unchanged";
    case ReloadOutcome::kMissing:
      return "missing";
    case ReloadOutcome::kEmpty:
      return "empty";
    case ReloadOutcome::kInvalid:
      return "invalid";
    case ReloadOutcome::kUnreadable:
      return "unreadable";
  }
  return "unreadable";
}

ReloadOutcome FailureOutcome(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return ReloadOutcome::kMissing;
    case absl::StatusCode::kFailedPrecondition:
      return ReloadOutcome::kEmpty;
    case absl::StatusCode::kInvalidArgument:
      return ReloadOutcome::kInvalid;
    default:
      return ReloadOutcome::kUnreadable;
  }
}

absl::StatusOr<std::vector<Secret>> ReadKeyDirectory(const std::string& dir) {
  return ReadSecretDirectory(dir, kSigningKeyFile, kPreviousKeyFile);
}

absl::StatusOr<std::vector<Secret>> ReadSecretDirectory(
    const std::string& dir, absl::string_view current_file,
    absl::string_view previous_file) {
  for (int attempt = 0; attempt < kMaxReadAttempts; ++attempt) {
    absl::StatusOr<absl::optional<std::string>> data = ResolveDataDir(dir);
    if (!data.ok()) return data.status();
    if (!data->has_value()) {
      return ReadVersion(dir, current_file, previous_file);
    }
    absl::StatusOr<std::vector<Secret>> keys =
        ReadVersion(**data, current_file, previous_file);
    // The kubelet may have swapped `..data` (and deleted the version read)
    // meanwhile: read again so the result is one whole, current version.
    absl::StatusOr<absl::optional<std::string>> after = ResolveDataDir(dir);
    if (after.ok() && *after == *data) return keys;
  }
  // Never a possibly torn read: the next reload (an event or the periodic
  // re-read) tries again.
  return absl::UnavailableError(
      absl::StrCat(dir, "/..data kept changing while it was read"));
}

absl::StatusOr<std::unique_ptr<KeyRing>> KeyRing::Load(std::string merchant,
                                                       std::string dir,
                                                       const Clock& clock) {
  absl::StatusOr<std::shared_ptr<const KeySet>> set = LoadKeySet(dir, clock);
  if (!set.ok()) {
    return absl::Status(
        set.status().code(),
        absl::StrCat("merchant ", merchant, ": no usable key in ", dir, ": ",
                     set.status().message()));
  }
  return std::unique_ptr<KeyRing>(
      new KeyRing(std::move(merchant), std::move(dir), clock, *std::move(set)));
}

KeyRing::KeyRing(std::string merchant, std::string dir, const Clock& clock,
                 std::shared_ptr<const KeySet> keys)
    : merchant_(std::move(merchant)),
      dir_(std::move(dir)),
      clock_(clock),
      keys_(std::move(keys)) {}

std::shared_ptr<const KeySet> KeyRing::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_;
}

KeyRing::ReloadResult KeyRing::Reload() {
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  ReloadResult result;
  absl::StatusOr<std::shared_ptr<const KeySet>> set = LoadKeySet(dir_, clock_);
  if (!set.ok()) {
    result.outcome = FailureOutcome(set.status());
    result.problem = set.status();
    return result;
  }
  std::shared_ptr<const KeySet> current = Current();
  if ((*set)->SameKeys(*current)) return result;  // kUnchanged.
  {
    std::lock_guard<std::mutex> lock(mu_);
    keys_ = *std::move(set);
  }
  result.outcome = ReloadOutcome::kApplied;
  result.replaced = std::move(current);
  return result;
}

}  // namespace clink_gateway::credentials
