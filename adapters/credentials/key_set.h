// A merchant's Clink secret keys as the gateway holds them: read from a
// Kubernetes Secret volume, swapped whole when the Secret changes, and used to
// sign each request with one complete key set.
//
// Directory layout (a Secret mounted as a volume, without subPath):
//   <dir>/api-key           the key to sign with (sk_test_… / sk_prod_…),
//                           required
//   <dir>/api-key-previous  the older key Clink still accepts during a key
//                           roll, optional; delete it from the Secret when the
//                           old key expires
// The kubelet writes each Secret version into a fresh hidden directory and
// swaps the `..data` symlink to it (the files above are symlinks into
// `..data`). Reading through one resolution of `..data` is what makes a read
// see one complete version, never the new signing key next to the old
// previous key. A plain directory without `..data` also works; then replace
// files by rename, not in place.
//
// Key values never appear in a Status message, log or metric: keys are named by
// Secret::Fingerprint() (e.g. "sk_test_…a1b2#3f9c1e2a").
#ifndef CLINK_GATEWAY_ADAPTERS_CREDENTIALS_KEY_SET_H_
#define CLINK_GATEWAY_ADAPTERS_CREDENTIALS_KEY_SET_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/http/api_key_signer.h"
#include "adapters/http/request_signer.h"
#include "common/clock.h"
#include "common/secret.h"

namespace clink_gateway::credentials {

inline constexpr absl::string_view kSigningKeyFile = "api-key";
inline constexpr absl::string_view kPreviousKeyFile = "api-key-previous";

// One key set: the signing key (index 0) and, during a roll, the previous key
// (index 1). Immutable, except for which key new calls start with. Thread-safe.
class KeySet {
 public:
  // `keys`: the signing key, then optionally the previous key. Each must be a
  // secret key ("sk_" + mode + "_" + visible ASCII), both of the same mode
  // (sk_test_ vs sk_prod_); a previous key equal to the signing key is
  // dropped. INVALID_ARGUMENT otherwise (the message names keys by position,
  // never by value). `clock` stamps X-Timestamp and must outlive the set.
  static absl::StatusOr<std::shared_ptr<const KeySet>> Create(
      std::vector<Secret> keys, const Clock& clock);

  // 1 or 2.
  size_t size() const { return signers_.size(); }

  // Adds X-API-KEY (key `index`) and X-Timestamp to a request.
  const http::RequestSigner& signer(size_t index) const {
    return *signers_[index];
  }
  // Secret::Fingerprint() of key `index`: safe to log and export.
  const std::string& fingerprint(size_t index) const {
    return fingerprints_[index];
  }

  // The key a new call starts with at `now`: 0 (the signing key) unless
  // Prefer() chose another one until later than `now`. After Clink refused
  // the signing key and accepted the previous one, calls keep using the
  // previous key for a while instead of paying a refused attempt each, then
  // try the signing key again.
  size_t preferred(absl::Time now) const;
  void Prefer(size_t index, absl::Time until) const;

  // Same key values in the same order (compared in constant time).
  bool SameKeys(const KeySet& other) const;

  // The fingerprints, signing key first, comma-separated (for logs).
  std::string Fingerprints() const;

 private:
  KeySet() = default;

  std::vector<std::unique_ptr<http::ApiKeySigner>> signers_;
  std::vector<std::string> fingerprints_;
  // Preference: index and until-when (Unix nanoseconds); read on every call.
  mutable std::atomic<size_t> preferred_index_{0};
  mutable std::atomic<int64_t> preferred_until_ns_{0};
};

// Why a reload did or did not change the keys in use: the outcome label of
// clink_gateway_key_reloads_total.
enum class ReloadOutcome {
  kApplied,     // A different, valid key set is now in use.       "applied"
  kUnchanged,   // The files hold the keys already in use.         "unchanged"
  kMissing,     // The directory or api-key does not exist.        "missing"
  kEmpty,       // A key file is empty (only whitespace).          "empty"
  kInvalid,     // A key file holds something that is not a secret
                // key (or too much, or keys of two modes).        "invalid"
  kUnreadable,  // A key file cannot be read (permissions, I/O).   "unreadable"
};
absl::string_view ReloadOutcomeName(ReloadOutcome outcome);

// Reads `dir`'s key files (layout above) as one consistent version: the
// signing key then, if present, the previous key, each with surrounding
// whitespace (a trailing newline) removed. Errors, by code: NOT_FOUND
// (missing), FAILED_PRECONDITION (empty), INVALID_ARGUMENT (invalid: over
// 4 KiB, or characters a header cannot carry), anything else (unreadable).
// Messages name files, never their contents.
absl::StatusOr<std::vector<Secret>> ReadKeyDirectory(const std::string& dir);

// ReadKeyDirectory for any pair of files: `current_file` (required) then, if
// present, `previous_file`, read through one resolution of `..data` with the
// same errors and limits (e.g. the webhook signing secrets,
// adapters/webhooks/webhook_secrets.h).
absl::StatusOr<std::vector<Secret>> ReadSecretDirectory(
    const std::string& dir, absl::string_view current_file,
    absl::string_view previous_file);

// ReadKeyDirectory, then KeySet::Create.
absl::StatusOr<std::shared_ptr<const KeySet>> LoadKeySet(const std::string& dir,
                                                         const Clock& clock);

// The ReloadOutcome for a LoadKeySet error.
ReloadOutcome FailureOutcome(const absl::Status& status);

// The keys in use for one merchant, following its key directory. Current() is
// what every call signs with; Reload() replaces it as a whole. Thread-safe.
class KeyRing {
 public:
  // Reads `dir` now; fails (with the directory's problem) when it holds no
  // valid key set, since there are no earlier keys to keep. `clock` must
  // outlive the ring.
  static absl::StatusOr<std::unique_ptr<KeyRing>> Load(std::string merchant,
                                                       std::string dir,
                                                       const Clock& clock);

  const std::string& merchant() const { return merchant_; }
  const std::string& dir() const { return dir_; }

  // The key set in use. Cheap (a mutex-guarded shared_ptr copy); hold the
  // pointer for the whole call so every attempt signs from the same set.
  std::shared_ptr<const KeySet> Current() const;

  struct ReloadResult {
    ReloadOutcome outcome = ReloadOutcome::kUnchanged;
    // Why the directory was not used (outcomes other than applied/unchanged).
    absl::Status problem;
    // For kApplied: the set that was in use before.
    std::shared_ptr<const KeySet> replaced;
  };
  // Re-reads the directory. A valid, different key set replaces the current
  // one; anything else (unchanged, or a bad update: missing, empty, invalid,
  // unreadable) keeps the keys in use. Reloads are serialised.
  ReloadResult Reload();

 private:
  KeyRing(std::string merchant, std::string dir, const Clock& clock,
          std::shared_ptr<const KeySet> keys);

  const std::string merchant_;
  const std::string dir_;
  const Clock& clock_;
  // std::mutex rather than absl::Mutex: Debian's Abseil is not built for
  // ThreadSanitizer, which then cannot see absl::Mutex's happens-before and
  // reports false races; this class is what the TSan run of
  // key_watcher_test checks.
  std::mutex reload_mu_;  // Serialises Reload(); never held by Current().
  mutable std::mutex mu_;
  std::shared_ptr<const KeySet> keys_;  // Guarded by mu_.
};

}  // namespace clink_gateway::credentials

#endif  // CLINK_GATEWAY_ADAPTERS_CREDENTIALS_KEY_SET_H_
