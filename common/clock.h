// An injectable source of the current time, so time-dependent code (request
// signing, deadlines) can be tested with a fake clock.
#ifndef CLINK_GATEWAY_COMMON_CLOCK_H_
#define CLINK_GATEWAY_COMMON_CLOCK_H_

#include "absl/time/time.h"

namespace clink_gateway {

// Implementations must be thread-safe.
class Clock {
 public:
  virtual ~Clock();
  virtual absl::Time Now() const = 0;
};

// The process-wide real-time clock (absl::Now()). Never destroyed.
Clock& SystemClock();

}  // namespace clink_gateway

#endif  // CLINK_GATEWAY_COMMON_CLOCK_H_
