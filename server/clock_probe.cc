#include "server/clock_probe.h"

#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "adapters/clink/clock_skew_monitor.h"
#include "adapters/http/http_types.h"
#include "adapters/http/request_signer.h"
#include "common/clock.h"

namespace clink_gateway::server {
namespace {

// Signs nothing: the clock probe sends no key.
class NoSigner final : public http::RequestSigner {
 public:
  absl::Status Sign(http::HttpRequest& request) const override {
    return absl::OkStatus();
  }
};

const NoSigner no_signer;

}  // namespace

ClockProbe::ClockProbe(std::vector<Target> targets, const Clock& clock,
                       absl::Duration interval)
    : targets_(std::move(targets)),
      clock_(clock),
      interval_(interval),
      thread_([this] { Run(); }) {}

ClockProbe::~ClockProbe() { Stop(); }

void ClockProbe::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

void ClockProbe::Run() {
  while (!stop_.WaitForNotificationWithTimeout(interval_)) ProbeOnce();
}

void ClockProbe::ProbeOnce() {
  for (const Target& m : targets_) {
    if (m.clock_skew->level() != clink::ClockSkewLevel::kCritical) {
      continue;
    }
    http::HttpRequest request;
    request.method = http::Method::kGet;
    request.path_and_query = "/";
    request.idempotent = true;
    http::SendOptions options;
    const absl::Time sent = clock_.Now();
    options.deadline = sent + absl::Seconds(5);
    options.signer = &no_signer;
    clink::ClockSkewMonitor* monitor = m.clock_skew;
    const Clock* clock = &clock_;
    m.transport->Send(std::move(request), std::move(options),
                      [monitor, clock, sent](http::HttpResult result) {
                        if (!result.status.ok()) return;
                        monitor->OnResponse(result.response.Header("date"),
                                            sent, clock->Now());
                      });
  }
}

}  // namespace clink_gateway::server
