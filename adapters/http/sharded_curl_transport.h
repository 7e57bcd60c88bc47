// HttpTransport over several CurlHttpTransports ("upstream shards"), so one
// merchant's calls can use more than one core.
#ifndef CLINK_GATEWAY_ADAPTERS_HTTP_SHARDED_CURL_TRANSPORT_H_
#define CLINK_GATEWAY_ADAPTERS_HTTP_SHARDED_CURL_TRANSPORT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "adapters/http/curl_http_transport.h"
#include "adapters/http/http_transport.h"
#include "adapters/http/http_types.h"

namespace clink_gateway::http {

// The cores this process may run on: the size of its CPU affinity mask
// (sched_getaffinity, so `taskset -c 0` or a cgroup cpuset counts as 1), else
// std::thread::hardware_concurrency(), at least 1. The default shard count.
int CoresAvailable();

// Spreads calls over `shards` CurlHttpTransports toward the same origin: each
// shard is one curl multi handle driven by its own loop thread, with its own
// connection pool, DNS cache and TLS session cache. One shard's loop (curl,
// TLS, and the `done` callbacks, which decode the answer) runs on one core, so
// a single merchant's throughput scales with the shard count up to the cores
// the process has.
//
// Options::max_connections is split among the shards (the first
// max_connections % shards shards get one more), so the process as a whole
// keeps at most max_connections connections open; there are never more
// shards than connections. Each Send() goes to the shard with the fewest calls
// in flight (ties: round-robin), so a slow shard does not collect a queue.
// Every other property (egress checks on every connection, the stale
// connection check, outcomes, re-send rules, cancellation, not_before) is the
// CurlHttpTransport's, per shard: see curl_http_transport.h.
//
// Thread-safe. curl_global_init() must have been called before Create().
class ShardedCurlTransport final : public HttpTransport {
 public:
  // `shards` <= 0 means CoresAvailable(). Fails like CurlHttpTransport::Create
  // (kInvalidArgument / kFailedPrecondition / kInternal); nothing is left
  // running on failure.
  static absl::StatusOr<std::unique_ptr<ShardedCurlTransport>> Create(
      CurlHttpTransport::Options options, int shards);

  ShardedCurlTransport(const ShardedCurlTransport&) = delete;
  ShardedCurlTransport& operator=(const ShardedCurlTransport&) = delete;

  // Shuts every shard down (see CurlHttpTransport::~CurlHttpTransport).
  ~ShardedCurlTransport() override;

  // See HttpTransport and CurlHttpTransport::Send: `done` runs on the chosen
  // shard's loop thread, or inline for the failures that never reach it.
  void Send(HttpRequest request, SendOptions options,
            DoneCallback done) override;

  // CurlHttpTransport::Shutdown on every shard, in order.
  void Shutdown();

  // The shards' CurlHttpTransport::Stats, summed.
  CurlHttpTransport::Stats stats() const;

  // How many shards there are (after the clamp to max_connections).
  int shard_count() const { return static_cast<int>(shards_.size()); }

 private:
  struct Shard {
    std::unique_ptr<CurlHttpTransport> transport;
    // Sent through this shard and `done` not yet run.
    std::atomic<int64_t> in_flight{0};
  };

  explicit ShardedCurlTransport(std::vector<std::unique_ptr<Shard>> shards)
      : shards_(std::move(shards)) {}

  // The shard with the fewest calls in flight, starting the scan at a
  // rotating index so ties go round-robin.
  Shard& Pick();

  const std::vector<std::unique_ptr<Shard>> shards_;
  std::atomic<uint64_t> next_{0};
};

}  // namespace clink_gateway::http

#endif  // CLINK_GATEWAY_ADAPTERS_HTTP_SHARDED_CURL_TRANSPORT_H_
