// A manually driven Clock for tests.
#ifndef CLINK_GATEWAY_COMMON_TESTING_FAKE_CLOCK_H_
#define CLINK_GATEWAY_COMMON_TESTING_FAKE_CLOCK_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"

namespace clink_gateway {

// Time only moves when the test says so. Thread-safe: the code under test may
// read it from its own threads while the test sets or advances it.
class FakeClock final : public Clock {
 public:
  // 2023-11-14T22:13:20Z: an arbitrary fixed instant with a round Unix time.
  static constexpr int64_t kDefaultStartUnixSeconds = 1700000000;

  FakeClock() : FakeClock(absl::FromUnixSeconds(kDefaultStartUnixSeconds)) {}
  explicit FakeClock(absl::Time start) : now_(start) {}

  FakeClock(const FakeClock&) = delete;
  FakeClock& operator=(const FakeClock&) = delete;

  absl::Time Now() const override ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    return now_;
  }

  void SetTime(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    now_ = now;
  }

  void Advance(absl::Duration delta) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    now_ += delta;
  }

 private:
  mutable Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clink_gateway

#endif  // CLINK_GATEWAY_COMMON_TESTING_FAKE_CLOCK_H_
