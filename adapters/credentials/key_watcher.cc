#include "adapters/credentials/key_watcher.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/logging.h"

namespace clink_gateway::credentials {
namespace {

// Everything the kubelet's update does in a Secret directory (create the new
// version, swap `..data` by rename, delete the old version), and in-place
// edits of a plain directory.
constexpr uint32_t kWatchMask = IN_CREATE | IN_DELETE | IN_MOVED_TO |
                                IN_MOVED_FROM | IN_CLOSE_WRITE | IN_ATTRIB |
                                IN_DELETE_SELF | IN_MOVE_SELF;

}  // namespace

struct KeyWatcher::Watch {
  KeyRing* ring = nullptr;
  int wd = -1;  // inotify watch descriptor; -1 while there is none.
};

absl::StatusOr<std::unique_ptr<KeyWatcher>> KeyWatcher::Start(
    std::vector<KeyRing*> rings, Options options) {
  std::unique_ptr<KeyWatcher> watcher(
      new KeyWatcher(std::move(rings), options));
  watcher->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (watcher->wake_fd_ < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  if (options.use_inotify) {
    watcher->inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (watcher->inotify_fd_ < 0) {
      // E.g. the node's fs.inotify.max_user_instances is used up: keys still
      // follow the directory, through the periodic re-read.
      Log(LogLevel::kWarning, "key_watcher_no_inotify",
          {{"error", std::strerror(errno)},
           {"poll_interval", absl::FormatDuration(options.poll_interval)}});
    }
    watcher->AddMissingWatches();
  }
  if (options.observer != nullptr) {
    for (const Watch& watch : watcher->watches_) {
      options.observer->OnKeysInUse(watch.ring->merchant(),
                                    *watch.ring->Current(), nullptr);
    }
  }
  watcher->thread_ = std::thread([w = watcher.get()] { w->Run(); });
  return watcher;
}

KeyWatcher::KeyWatcher(std::vector<KeyRing*> rings, Options options)
    : options_(options),
      clock_(options.clock != nullptr ? *options.clock : SystemClock()) {
  for (KeyRing* ring : rings) watches_.push_back(Watch{ring, -1});
}

KeyWatcher::~KeyWatcher() {
  if (thread_.joinable()) {
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof(one));
    thread_.join();
  }
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void KeyWatcher::AddMissingWatches() {
  if (inotify_fd_ < 0) return;
  for (Watch& watch : watches_) {
    if (watch.wd >= 0) continue;
    // ONLYDIR: a directory that is (for now) missing or a file is left to the
    // periodic re-read, which also retries the watch.
    watch.wd = inotify_add_watch(inotify_fd_, watch.ring->dir().c_str(),
                                 kWatchMask | IN_ONLYDIR);
  }
}

void KeyWatcher::ReloadNow(KeyRing& ring) {
  KeyRing::ReloadResult result = ring.Reload();
  if (options_.on_directory_reload) {
    options_.on_directory_reload(ring.merchant());
  }
  const absl::Time now = clock_.Now();
  if (options_.observer != nullptr) {
    options_.observer->OnKeyReload(ring.merchant(), result.outcome, now);
  }
  switch (result.outcome) {
    case ReloadOutcome::kUnchanged:
      ForgetProblem(ring);
      return;
    case ReloadOutcome::kApplied: {
      ForgetProblem(ring);
      std::shared_ptr<const KeySet> keys = ring.Current();
      Log(LogLevel::kInfo, "keys_reloaded",
          {{"merchant", ring.merchant()},
           {"dir", ring.dir()},
           {"key_fingerprints", keys->Fingerprints()},
           {"replaced_key_fingerprints", result.replaced->Fingerprints()}});
      if (options_.observer != nullptr) {
        options_.observer->OnKeysInUse(ring.merchant(), *keys,
                                       result.replaced.get());
      }
      return;
    }
    default:
      // One warning per problem, not one per event or re-read while the
      // directory stays broken (the metric counts every reload).
      if (!NewProblem(ring, result.problem)) return;
      Log(LogLevel::kWarning, "keys_reload_failed",
          {{"merchant", ring.merchant()},
           {"dir", ring.dir()},
           {"outcome", ReloadOutcomeName(result.outcome)},
           {"error", result.problem.message()},
           {"kept_key_fingerprints", ring.Current()->Fingerprints()}});
      return;
  }
}

bool KeyWatcher::NewProblem(const KeyRing& ring, const absl::Status& problem) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string& last = last_problem_[&ring];
  const std::string text = problem.ToString();
  if (last == text) return false;
  last = text;
  return true;
}

void KeyWatcher::ForgetProblem(const KeyRing& ring) {
  std::lock_guard<std::mutex> lock(mu_);
  last_problem_.erase(&ring);
}

void KeyWatcher::Run() {
  absl::Time next_poll = absl::Now() + options_.poll_interval;
  // Large enough for a burst of events with names.
  alignas(struct inotify_event) char events[16 * 1024];
  while (true) {
    const int timeout_ms = static_cast<int>(std::clamp<int64_t>(
        absl::ToInt64Milliseconds(
            absl::Ceil(next_poll - absl::Now(), absl::Milliseconds(1))),
        0, 60 * 1000));
    pollfd fds[2] = {{wake_fd_, POLLIN, 0}, {inotify_fd_, POLLIN, 0}};
    const int ready = poll(fds, inotify_fd_ >= 0 ? 2 : 1, timeout_ms);
    if (ready < 0 && errno != EINTR && inotify_fd_ >= 0) {
      // Not expected; carry on with the periodic re-read alone rather than
      // spin on a broken descriptor.
      Log(LogLevel::kError, "key_watcher_poll_failed",
          {{"error", std::strerror(errno)}});
      close(inotify_fd_);
      inotify_fd_ = -1;
      for (Watch& watch : watches_) watch.wd = -1;
      continue;
    }
    if (ready > 0 && (fds[0].revents & POLLIN) != 0) return;
    std::vector<bool> changed(watches_.size(), false);
    if (ready > 0 && inotify_fd_ >= 0 && (fds[1].revents & POLLIN) != 0) {
      ssize_t n;
      while ((n = read(inotify_fd_, events, sizeof(events))) > 0) {
        for (char* p = events; p < events + n;) {
          const auto* event = reinterpret_cast<const inotify_event*>(p);
          for (size_t i = 0; i < watches_.size(); ++i) {
            // Events were lost: re-read everything.
            if ((event->mask & IN_Q_OVERFLOW) != 0) {
              changed[i] = true;
              continue;
            }
            if (watches_[i].wd < 0 || watches_[i].wd != event->wd) continue;
            changed[i] = true;
            // The directory itself was moved or deleted: the watch follows
            // the old inode, so drop it and watch the path again once it
            // exists (the next periodic re-read).
            if ((event->mask & (IN_MOVE_SELF | IN_DELETE_SELF)) != 0) {
              inotify_rm_watch(inotify_fd_, watches_[i].wd);
              watches_[i].wd = -1;
            } else if ((event->mask & IN_IGNORED) != 0) {
              watches_[i].wd = -1;
            }
          }
          p += sizeof(inotify_event) + event->len;
        }
      }
    }
    const bool poll_due = absl::Now() >= next_poll;
    if (poll_due) {
      next_poll = absl::Now() + options_.poll_interval;
      AddMissingWatches();
    }
    for (size_t i = 0; i < watches_.size(); ++i) {
      if (poll_due || changed[i]) ReloadNow(*watches_[i].ring);
    }
  }
}

}  // namespace clink_gateway::credentials
