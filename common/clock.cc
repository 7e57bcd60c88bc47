#include "common/clock.h"

#include "absl/time/clock.h"

namespace clink_gateway {
namespace {

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
};

}  // namespace

Clock::~Clock() = default;

Clock& SystemClock() {
  static Clock* const clock = new RealClock();
  return *clock;
}

}  // namespace clink_gateway
