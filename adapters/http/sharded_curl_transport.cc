// Upstream shards: several CurlHttpTransports behind one HttpTransport.

#include "adapters/http/sharded_curl_transport.h"

#include <sched.h>

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace clink_gateway::http {

int CoresAvailable() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

absl::StatusOr<std::unique_ptr<ShardedCurlTransport>>
ShardedCurlTransport::Create(CurlHttpTransport::Options options, int shards) {
  if (options.max_connections <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_connections must be positive, got ", options.max_connections));
  }
  if (shards <= 0) shards = CoresAvailable();
  shards = std::min(shards, options.max_connections);
  const int total = options.max_connections;
  std::vector<std::unique_ptr<Shard>> list;
  list.reserve(shards);
  for (int i = 0; i < shards; ++i) {
    CurlHttpTransport::Options shard_options = options;
    shard_options.max_connections = total / shards + (i < total % shards);
    auto shard = std::make_unique<Shard>();
    // On failure the shards created so far are destroyed (shut down) here.
    GATEWAY_ASSIGN_OR_RETURN(shard->transport,
                             CurlHttpTransport::Create(std::move(shard_options)));
    list.push_back(std::move(shard));
  }
  return std::unique_ptr<ShardedCurlTransport>(
      new ShardedCurlTransport(std::move(list)));
}

ShardedCurlTransport::~ShardedCurlTransport() { Shutdown(); }

ShardedCurlTransport::Shard& ShardedCurlTransport::Pick() {
  const size_t n = shards_.size();
  if (n == 1) return *shards_[0];
  const size_t start = next_.fetch_add(1, std::memory_order_relaxed) % n;
  Shard* best = shards_[start].get();
  int64_t best_load = best->in_flight.load(std::memory_order_relaxed);
  for (size_t k = 1; k < n && best_load > 0; ++k) {
    Shard* shard = shards_[(start + k) % n].get();
    const int64_t load = shard->in_flight.load(std::memory_order_relaxed);
    if (load < best_load) {
      best = shard;
      best_load = load;
    }
  }
  return *best;
}

void ShardedCurlTransport::Send(HttpRequest request, SendOptions options,
                                DoneCallback done) {
  Shard& shard = Pick();
  if (shards_.size() == 1) {  // nothing to balance: no bookkeeping
    shard.transport->Send(std::move(request), std::move(options),
                          std::move(done));
    return;
  }
  shard.in_flight.fetch_add(1, std::memory_order_relaxed);
  shard.transport->Send(
      std::move(request), std::move(options),
      [&shard, done = std::move(done)](HttpResult result) mutable {
        shard.in_flight.fetch_sub(1, std::memory_order_relaxed);
        std::move(done)(std::move(result));
      });
}

void ShardedCurlTransport::Shutdown() {
  for (const auto& shard : shards_) shard->transport->Shutdown();
}

CurlHttpTransport::Stats ShardedCurlTransport::stats() const {
  CurlHttpTransport::Stats sum;
  for (const auto& shard : shards_) {
    const CurlHttpTransport::Stats s = shard->transport->stats();
    sum.requests_started += s.requests_started;
    sum.connections_opened += s.connections_opened;
    sum.in_flight += s.in_flight;
    sum.waiting += s.waiting;
    sum.stale_connection_retries += s.stale_connection_retries;
    sum.idempotent_resends += s.idempotent_resends;
    sum.resends_refused += s.resends_refused;
  }
  return sum;
}

}  // namespace clink_gateway::http
