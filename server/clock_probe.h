// The clock probe: while a merchant's Clink clock is critically far from ours,
// asks Clink for the time (an unsigned GET /, whose Date header answers) every
// GatewayOptions::clock_skew_probe_interval, so readiness recovers once the
// clocks agree again even with no traffic.
#ifndef CLINK_GATEWAY_SERVER_CLOCK_PROBE_H_
#define CLINK_GATEWAY_SERVER_CLOCK_PROBE_H_

#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "adapters/clink/clock_skew_monitor.h"
#include "adapters/http/http_transport.h"
#include "common/clock.h"
#include "common/sync.h"

namespace clink_gateway::server {

// See GatewayOptions::clock_skew_probe_interval. One thread that waits on a
// timer and only ever hands requests to the transports.
class ClockProbe {
 public:
  // One merchant account: its transport toward Clink and its clock-skew
  // monitor. Both must outlive the probe (or its Stop()).
  struct Target {
    http::HttpTransport* transport = nullptr;
    clink::ClockSkewMonitor* clock_skew = nullptr;
  };

  // Starts the thread: every `interval` it runs ProbeOnce(). `clock` must be
  // the one the monitors' samples are read from, and outlive the probe.
  ClockProbe(std::vector<Target> targets, const Clock& clock,
             absl::Duration interval);

  ClockProbe(const ClockProbe&) = delete;
  ClockProbe& operator=(const ClockProbe&) = delete;

  ~ClockProbe();

  // Stops and joins the thread; idempotent. A probe already handed to a
  // transport still reports its answer to its monitor.
  void Stop();

  // One round (what the thread does every interval): for every target whose
  // monitor is at ClockSkewLevel::kCritical, sends GET / (idempotent, a 5 s
  // deadline, unsigned: no API key) and, when it is answered, hands the
  // answer's Date header to the monitor with the clock's readings when it was
  // sent and answered. A failed call is ignored. Never blocks on the network.
  void ProbeOnce();

 private:
  void Run();

  const std::vector<Target> targets_;
  const Clock& clock_;
  const absl::Duration interval_;
  Notification stop_;
  std::thread thread_;  // Last: starts once the rest is set.
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_CLOCK_PROBE_H_
