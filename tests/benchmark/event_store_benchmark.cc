// event_store_benchmark: what storing and delivering a webhook event costs,
// for SqliteEventStore and RedisEventStore, in this process.
//
//   bazel build -c opt //tests/benchmark:event_store_benchmark
//   bazel-bin/tests/benchmark/event_store_benchmark [--events=2000]
//       [--body_bytes=2048] [--concurrency=4] [--sqlite=true] [--redis=true]
//       [--state_dir=DIR]
//
// For each store (SQLite in --state_dir, default a new temporary directory:
// the figures are that disk's fsyncs; Redis: a real redis-server on a unix
// socket, //tests/redis:redis_server, persistence off):
//   1. Append rate, one caller: --events appends of distinct events with a
//      --body_bytes body, one at a time (each durable before the next);
//   2. Append rate, --concurrency callers at once;
//   3. Append -> Claim latency: one caller appends --events events one at a
//      time, while a consumer (woken by the store's EventListener, as the
//      event service is) claims and acknowledges them; the latency of each is
//      from just before its Append to the Claim that returned it (p50, p99,
//      max).
// Exits 0 when every event was stored and delivered once, 1 otherwise, 2 on
// setup failures.
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/events/event_store.h"
#include "adapters/events/redis_event_store.h"
#include "adapters/events/sqlite_event_store.h"
#include "common/sync.h"
#include "tests/redis/redis_server.h"

ABSL_FLAG(int, events, 2000, "Events per scenario.");
ABSL_FLAG(int, body_bytes, 2048, "Body size of each event.");
ABSL_FLAG(int, concurrency, 4, "Callers appending at once in scenario 2.");
ABSL_FLAG(bool, sqlite, true, "Measure SqliteEventStore.");
ABSL_FLAG(bool, redis, true, "Measure RedisEventStore.");
ABSL_FLAG(std::string, state_dir, "",
          "SQLite state directory (default: a new temporary directory).");

namespace clink_gateway::events {
namespace {

// Wakes the consumer when an event is stored (the event service's dispatcher
// is woken the same way).
class Wakeup final : public EventListener {
 public:
  void OnEventStored(const StoredEvent&) override {
    MutexLock lock(&mu_);
    ++stored_;
    cv_.Signal();
  }
  // Waits until more events were stored than `seen`, or `timeout`.
  int64_t WaitPast(int64_t seen, absl::Duration timeout) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + timeout;
    while (stored_ <= seen && absl::Now() < deadline) {
      cv_.WaitWithTimeout(&mu_, deadline - absl::Now());
    }
    return stored_;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  int64_t stored_ ABSL_GUARDED_BY(mu_) = 0;
};

StoredEvent MakeEvent(absl::string_view merchant, int64_t n) {
  StoredEvent event;
  event.merchant = std::string(merchant);
  event.event_id = absl::StrCat("evt_", n);
  event.type = "order.succeeded";
  event.receive_time = absl::Now();
  event.body = std::string(absl::GetFlag(FLAGS_body_bytes), 'x');
  return event;
}

double Percentile(std::vector<absl::Duration>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(p * v.size()));
  return absl::ToDoubleMilliseconds(v[i]);
}

// Scenarios 1-3 on `store`; false when an event went missing.
bool Run(const std::string& name, EventStore& store, Wakeup& wakeup) {
  const int n = absl::GetFlag(FLAGS_events);
  bool ok = true;
  // 1. One caller.
  {
    const absl::Time start = absl::Now();
    for (int i = 0; i < n; ++i) {
      if (store.Append(MakeEvent("serial", i)).value_or(AppendResult::kDuplicate) !=
          AppendResult::kStored) {
        ok = false;
      }
    }
    const absl::Duration took = absl::Now() - start;
    std::printf("%-7s append, 1 caller:   %8.0f events/s  (%.3f ms each)\n",
                name.c_str(), n / absl::ToDoubleSeconds(took),
                absl::ToDoubleMilliseconds(took) / n);
  }
  // 2. Several callers.
  {
    const int callers = absl::GetFlag(FLAGS_concurrency);
    std::atomic<int> next{0}, stored{0};
    const absl::Time start = absl::Now();
    std::vector<std::thread> threads;
    for (int t = 0; t < callers; ++t) {
      threads.emplace_back([&] {
        for (int i; (i = next.fetch_add(1)) < n;) {
          if (store.Append(MakeEvent("parallel", i)).value_or(
                  AppendResult::kDuplicate) == AppendResult::kStored) {
            stored.fetch_add(1);
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const absl::Duration took = absl::Now() - start;
    if (stored.load() != n) ok = false;
    std::printf("%-7s append, %d callers:  %8.0f events/s\n", name.c_str(),
                callers, n / absl::ToDoubleSeconds(took));
  }
  // 3. Append -> Claim.
  {
    SubscriptionSpec spec;
    spec.merchant = "latency";
    spec.name = "bench";
    if (!store.EnsureSubscription(spec).ok()) return false;
    Mutex mu;
    absl::flat_hash_map<std::string, absl::Time> started;  // Guarded by mu.
    std::vector<absl::Duration> latencies;
    std::atomic<bool> done{false};
    std::thread consumer([&] {
      int64_t seen = 0;
      size_t delivered = 0;
      while (delivered < static_cast<size_t>(n)) {
        absl::StatusOr<std::vector<Delivery>> got = store.Claim(
            "latency", "bench", "consumer-1", 100, absl::Seconds(60));
        const absl::Time now = absl::Now();
        if (!got.ok()) break;
        if (got->empty()) {
          if (done.load() && delivered >= static_cast<size_t>(n)) break;
          seen = wakeup.WaitPast(seen, absl::Milliseconds(50));
          continue;
        }
        std::vector<std::string> ids;
        {
          MutexLock lock(&mu);
          for (const Delivery& d : *got) {
            auto it = started.find(d.event.event_id);
            if (it != started.end()) latencies.push_back(now - it->second);
            ids.push_back(d.event.event_id);
          }
        }
        delivered += got->size();
        if (!store.Acknowledge("latency", "bench", ids).ok()) break;
      }
    });
    for (int i = 0; i < n; ++i) {
      StoredEvent event = MakeEvent("latency", i);
      {
        MutexLock lock(&mu);
        started[event.event_id] = absl::Now();
      }
      if (!store.Append(event).ok()) ok = false;
    }
    done.store(true);
    consumer.join();
    if (latencies.size() != static_cast<size_t>(n)) ok = false;
    const double p50 = Percentile(latencies, 0.50);
    const double p99 = Percentile(latencies, 0.99);
    const double max = latencies.empty() ? 0 : absl::ToDoubleMilliseconds(latencies.back());
    std::printf(
        "%-7s append->claim latency: p50 %.3f ms  p99 %.3f ms  max %.3f ms  "
        "(%zu delivered)\n",
        name.c_str(), p50, p99, max, latencies.size());
  }
  return ok;
}

int Main() {
  bool ok = true;
  if (absl::GetFlag(FLAGS_sqlite)) {
    std::string dir = absl::GetFlag(FLAGS_state_dir);
    if (dir.empty()) {
      dir = "/tmp/event-bench-XXXXXX";
      if (mkdtemp(dir.data()) == nullptr) return 2;
    }
    Wakeup wakeup;
    SqliteEventStore::Options options;
    options.state_dir = dir;
    options.listener = &wakeup;
    absl::StatusOr<std::unique_ptr<SqliteEventStore>> store =
        SqliteEventStore::Open(options);
    if (!store.ok()) {
      std::fprintf(stderr, "sqlite: %s\n", store.status().ToString().c_str());
      return 2;
    }
    std::printf("SQLite store: %s\n", (*store)->path().c_str());
    ok = Run("sqlite", **store, wakeup) && ok;
  }
  if (absl::GetFlag(FLAGS_redis)) {
    absl::StatusOr<std::unique_ptr<testing::RedisServer>> server =
        testing::RedisServer::Create();
    if (!server.ok()) {
      std::fprintf(stderr, "redis: %s\n", server.status().ToString().c_str());
      return 2;
    }
    Wakeup wakeup;
    RedisEventStore::Options options;
    options.address = (*server)->address();
    options.listener = &wakeup;
    options.max_connections =
        static_cast<size_t>(std::max(2, absl::GetFlag(FLAGS_concurrency) + 1));
    absl::StatusOr<std::unique_ptr<RedisEventStore>> store =
        RedisEventStore::Create(options);
    if (!store.ok()) return 2;
    std::printf("Redis store: %s\n", (*server)->address().c_str());
    ok = Run("redis", **store, wakeup) && ok;
  }
  std::printf(ok ? "OK\n" : "FAILED: events missing or duplicated\n");
  return ok ? 0 : 1;
}

}  // namespace
}  // namespace clink_gateway::events

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return clink_gateway::events::Main();
}
