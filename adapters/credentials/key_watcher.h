// Keeps KeyRings following their key directories: inotify on each directory
// picks up a Secret update (the kubelet's `..data` swap) at once, and a
// periodic re-read catches anything inotify missed (lost events, a directory
// that was replaced, filesystems without inotify).
#ifndef CLINK_GATEWAY_ADAPTERS_CREDENTIALS_KEY_WATCHER_H_
#define CLINK_GATEWAY_ADAPTERS_CREDENTIALS_KEY_WATCHER_H_

#include <functional>
#include <memory>
#include <string>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/credentials/key_set.h"
#include "common/clock.h"

namespace clink_gateway::credentials {

// What the watcher reports, for metrics. Called on the watcher's thread.
class CredentialObserver {
 public:
  virtual ~CredentialObserver() = default;
  // Every reload of `merchant`'s directory, periodic ones included, at `when`
  // (the gateway's clock).
  virtual void OnKeyReload(absl::string_view merchant, ReloadOutcome outcome,
                           absl::Time when) {}
  // `keys` is now in use for `merchant`; `replaced` is the set it replaced,
  // or null for the first set (KeyWatcher::Start reports each ring's).
  virtual void OnKeysInUse(absl::string_view merchant, const KeySet& keys,
                           const KeySet* replaced) {}
};

class KeyWatcher {
 public:
  struct Options {
    // Every directory is re-read at least this often.
    absl::Duration poll_interval = absl::Seconds(10);
    // False: no inotify, only the periodic re-read (tests of the backstop).
    bool use_inotify = true;
    // For reload times; nullptr means the system clock.
    const Clock* clock = nullptr;
    // May be null.
    CredentialObserver* observer = nullptr;
    // Called (on the watcher's thread, or ReloadNow's) after each reload of
    // a ring's directory, periodic ones included, with the ring's merchant:
    // for other files kept in the same Secret directory (the webhook
    // secrets, adapters/webhooks/webhook_secrets.h). May be empty.
    std::function<void(const std::string& merchant)> on_directory_reload;
  };

  // Reports each ring's current keys to the observer, then watches every
  // ring's directory on one thread until destroyed. Each change is logged
  // ("keys_reloaded" with the merchant and the fingerprints before and after;
  // a bad update as "keys_reload_failed", a warning naming the file and the
  // problem, keeping the keys in use, logged once until the problem changes
  // or a good read clears it). The rings must outlive the watcher. Without
  // inotify (none left on the node) it logs a warning and relies on the
  // periodic re-read. Fails only when its wake-up eventfd cannot be made.
  static absl::StatusOr<std::unique_ptr<KeyWatcher>> Start(
      std::vector<KeyRing*> rings, Options options);

  // Stops the thread (within one poll wake-up).
  ~KeyWatcher();
  KeyWatcher(const KeyWatcher&) = delete;
  KeyWatcher& operator=(const KeyWatcher&) = delete;

  // Reloads `ring` now and reports the result like the thread does.
  // Thread-safe.
  void ReloadNow(KeyRing& ring);

 private:
  struct Watch;
  KeyWatcher(std::vector<KeyRing*> rings, Options options);
  void Run();
  // (Re-)adds inotify watches for directories that have none.
  void AddMissingWatches();
  // Whether `problem` differs from the last one logged for `ring` (and
  // remembers it) / forgets it after a good read.
  bool NewProblem(const KeyRing& ring, const absl::Status& problem);
  void ForgetProblem(const KeyRing& ring);

  const Options options_;
  const Clock& clock_;
  std::vector<Watch> watches_;  // Touched only by the thread (after Start).
  int inotify_fd_ = -1;
  int wake_fd_ = -1;  // eventfd: the destructor's stop signal.
  std::thread thread_;
  // ReloadNow may run on any thread. std::mutex for ThreadSanitizer (see
  // KeyRing).
  std::mutex mu_;
  absl::flat_hash_map<const KeyRing*, std::string> last_problem_;  // mu_
};

}  // namespace clink_gateway::credentials

#endif  // CLINK_GATEWAY_ADAPTERS_CREDENTIALS_KEY_WATCHER_H_
