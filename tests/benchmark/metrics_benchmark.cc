// metrics_benchmark: what the Prometheus metrics add to each RPC on the hot
// path, measured in this process (no gRPC, no network).
//
//   bazel build -c opt //tests/benchmark:metrics_benchmark
//   bazel-bin/tests/benchmark/metrics_benchmark [--rpcs=N] [--threads=2]
//
// Per RPC the gateway makes these observer calls: OnRpcStarted, OnCallStarted,
// OnAttempt, OnCallFinished, OnRpcHandled (a retry adds OnRetry and another
// OnAttempt). Each carries a caller named in the policy. This replays that
// sequence on GatewayMetrics for every RPC of the codec in turn, from --threads
// threads at once (the series are shared, so this includes contention on the
// histograms' mutexes), and prints the CPU time per RPC (getrusage) and the
// wall time per RPC per thread.
#include <sys/resource.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/clink/rest_codec.h"
#include "clink/gateway/v1/billing.pb.h"
#include "clink/gateway/v1/checkout.pb.h"
#include "clink/gateway/v1/payment.pb.h"
#include "server/metrics.h"

ABSL_FLAG(int64_t, rpcs, 2000000, "RPCs per thread.");
ABSL_FLAG(int, threads, 2, "Threads recording at once.");

namespace {

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return absl::ToDoubleSeconds(absl::DurationFromTimeval(usage.ru_utime) +
                               absl::DurationFromTimeval(usage.ru_stime));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using clink_gateway::clink::AttemptInfo;
  using clink_gateway::clink::RestCodec;
  using clink_gateway::clink::RestMethod;
  // Links the services' descriptors into the generated pool.
  (void)::clink::gateway::v1::GetProductRequest::descriptor();
  (void)::clink::gateway::v1::CreatePaymentRequest::descriptor();
  (void)::clink::gateway::v1::CreateCheckoutSessionRequest::descriptor();
  auto codec = RestCodec::CreateForServices(
      clink_gateway::clink::GatewayServiceNames());
  if (!codec.ok()) {
    std::fprintf(stderr, "codec: %s\n", codec.status().ToString().c_str());
    return 2;
  }
  clink_gateway::server::BuildInfo build;
  build.version = "bench";
  // A caller named in the authorization policy (the caller label's costliest
  // case: the whole name is hashed and looked up), among 20 principals.
  const std::string caller = "spiffe://cluster.local/ns/shop/sa/checkout-web";
  std::vector<std::string> principals = {caller};
  for (int i = 0; i < 19; ++i) {
    principals.push_back("spiffe://cluster.local/ns/shop/sa/service-" +
                         std::to_string(i));
  }
  auto metrics = clink_gateway::server::GatewayMetrics::Create(
      (*codec)->methods(), build, {"default"}, {}, principals);
  if (!metrics.ok()) {
    std::fprintf(stderr, "metrics: %s\n", metrics.status().ToString().c_str());
    return 2;
  }
  clink_gateway::server::GatewayMetrics& m = **metrics;
  const std::vector<const RestMethod*> methods = (*codec)->methods();
  const int64_t rpcs = absl::GetFlag(FLAGS_rpcs);
  const int threads = absl::GetFlag(FLAGS_threads);

  const double cpu_before = CpuSeconds();
  const absl::Time start = absl::Now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int64_t i = 0; i < rpcs; ++i) {
        const RestMethod& method = *methods[(i + t) % methods.size()];
        m.OnRpcStarted(method);
        m.OnCallStarted(method);
        AttemptInfo attempt;
        attempt.method = &method;
        attempt.http_status = 200;
        attempt.sent = true;
        attempt.response_bytes = 400;
        attempt.duration = absl::Microseconds(100 + i % 1000);
        attempt.caller = caller;
        m.OnAttempt(attempt);
        m.OnCallFinished(method);
        m.OnRpcHandled(method, absl::StatusCode::kOk,
                       absl::Microseconds(150 + i % 1000), caller);
      }
    });
  }
  for (std::thread& w : workers) w.join();
  const absl::Duration wall = absl::Now() - start;
  const double cpu = CpuSeconds() - cpu_before;
  const double total = static_cast<double>(rpcs) * threads;
  std::printf(
      "metrics hot path: %lld RPCs on %d threads, %zu methods\n"
      "  CPU per RPC:  %.0f ns (all threads)\n"
      "  wall per RPC: %.0f ns per thread\n",
      static_cast<long long>(total), threads, methods.size(),
      cpu / total * 1e9,
      absl::ToDoubleNanoseconds(wall) / static_cast<double>(rpcs));
  return 0;
}
