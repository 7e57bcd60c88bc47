// idempotency_benchmark: prints what idempotency keys cost a CreatePayment,
// measured in this process with no gRPC and no network to Clink.
//
//   bazel build -c opt //tests/benchmark:idempotency_benchmark
//   bazel-bin/tests/benchmark/idempotency_benchmark [--calls=N]
//       [--concurrency=32] [--redis=false] [--sqlite=false]
//       [--state_dir=DIR] [--gateway=false] [--gateway_calls=N]
//
// clink::IdempotentClinkApi wraps a fake ClinkApi that answers every call
// inline with OK and an order id, so every figure is the decorator and its
// store alone. Scenarios, one after the other, each after a short unmeasured
// warm-up:
//   1. unkeyed CreatePayment: the pass-through baseline;
//   2. a fresh key per call, MemoryIdempotencyStore: validate, copy, hash,
//      claim, complete;
//   3. the same key on every call, memory store: Begin returns the stored
//      result (replay);
//   4-7. scenarios 2 and 3 with RedisIdempotencyStore against a real
//      redis-server on a unix socket (//tests/redis:redis_server), one call at
//      a time (latency) and with --concurrency calls in flight (throughput;
//      the store's worker pipelines what is queued).
//   8-11. scenarios 4-7 with SqliteIdempotencyStore (the gateway's default
//      store) in --state_dir: one call at a time, every claim and every result
//      is a transaction with an fsync (the figures are this disk's); with
//      --concurrency calls in flight the store commits what is queued in one
//      transaction (group commit);
//   12-15. through the gateway (--gateway): a GatewayServer in this process,
//      called over gRPC on loopback, forwarding to the Clink emulator over
//      TLS: unkeyed, then keyed with the memory store, then keyed with the
//      SQLite store, one call at a time, and SQLite with --concurrency
//      callers. What the store adds to a real keyed call.
// For each: calls/s, latency per call (p50/p90/p99, from Call() to the
// callback), CPU per call of this process (getrusage: the caller, the
// decorator and the store's threads) and, for Redis, of redis-server (INFO
// cpu) and the scripts per socket read it saw (INFO commandstats and stats:
// how many commands the worker's pipelining puts in one round trip). A keyed
// scenario's line compares it with the unkeyed baseline.
//
// Exits 0 when every call got the expected answer, 1 otherwise, 2 on setup
// failures.
#include <sched.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/clink/clink_api.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/clink/upstream_observer.h"
#include "adapters/idempotency/idempotency_store.h"
#include "adapters/idempotency/idempotent_clink_api.h"
#include "adapters/idempotency/memory_idempotency_store.h"
#include "adapters/idempotency/redis_idempotency_store.h"
#include "adapters/idempotency/sqlite_idempotency_store.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "clink/gateway/v1/payment.pb.h"
#include "common/logging.h"
#include "grpcpp/grpcpp.h"
#include "server/gateway_server.h"
#include "sqlite3.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/test_ca.h"
#include "tests/redis/redis_server.h"

ABSL_FLAG(int64_t, calls, 0,
          "Measured calls per scenario; 0 means 20000 for the in-memory "
          "scenarios, 5000 for the Redis ones and 1000 for the SQLite ones");
ABSL_FLAG(int, concurrency, 32,
          "Calls in flight in the concurrent Redis scenarios");
ABSL_FLAG(bool, redis, true,
          "Run the Redis scenarios (starts /usr/bin/redis-server on a unix "
          "socket)");
ABSL_FLAG(bool, sqlite, true, "Run the SQLite store scenarios");
ABSL_FLAG(std::string, state_dir, "",
          "Where the SQLite scenarios keep their databases (a new directory "
          "under it per store); empty: a new directory under $TEST_TMPDIR or "
          "/tmp. Its disk's fsync latency is what a claim costs.");
ABSL_FLAG(bool, gateway, true,
          "Run the through-the-gateway scenarios (a GatewayServer in this "
          "process and the Clink emulator on loopback)");
ABSL_FLAG(int64_t, gateway_calls, 1000,
          "Measured calls per through-the-gateway scenario");

namespace clink_gateway::benchmark {
namespace {

namespace v1 = ::clink::gateway::v1;

using SteadyClock = std::chrono::steady_clock;

constexpr int64_t kDefaultMemoryCalls = 20000;
constexpr int64_t kDefaultRedisCalls = 5000;
// Every fresh key is two fsyncs one at a time: milliseconds, not microseconds.
constexpr int64_t kDefaultSqliteCalls = 1000;

// ---------------------------------------------------------------------------
// Machine and process gauges.

// CPUs this process may run on (what nproc prints).
int AvailableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    return static_cast<int>(std::thread::hardware_concurrency());
  }
  return CPU_COUNT(&set);
}

// "1.23 0.98 0.50" (1, 5 and 15 minutes).
std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one.empty() ? "?" : absl::StrCat(one, " ", five, " ", fifteen);
}

// User + system CPU seconds of every thread of this process.
double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// What redis-server reports about itself (INFO), read around a scenario.
struct RedisGauges {
  double cpu_s = 0;  // used_cpu_user + used_cpu_sys
  // Scripts the clients sent (EVALSHA and EVAL calls in commandstats;
  // total_commands_processed would also count the commands the scripts run).
  int64_t scripts = 0;
  int64_t reads = 0;  // total_reads_processed: socket reads of client data
};

absl::StatusOr<RedisGauges> ReadRedisGauges(const testing::RedisServer& redis) {
  absl::StatusOr<testing::RespReply> info = redis.Command({"INFO", "all"});
  if (!info.ok()) return info.status();
  if (info->type != testing::RespReply::Type::kString) {
    return absl::InternalError(absl::StrCat("INFO: ", info->text));
  }
  RedisGauges gauges;
  for (absl::string_view line : absl::StrSplit(info->text, "\r\n")) {
    std::pair<absl::string_view, absl::string_view> field =
        absl::StrSplit(line, absl::MaxSplits(':', 1));
    if (field.first == "cmdstat_evalsha" || field.first == "cmdstat_eval") {
      // "calls=10000,usec=...,usec_per_call=...,..."
      absl::string_view calls = field.second;
      int64_t n = 0;
      if (absl::ConsumePrefix(&calls, "calls=") &&
          absl::SimpleAtoi(calls.substr(0, calls.find(',')), &n)) {
        gauges.scripts += n;
      }
      continue;
    }
    double number = 0;
    if (!absl::SimpleAtod(field.second, &number)) continue;
    if (field.first == "used_cpu_user" || field.first == "used_cpu_sys") {
      gauges.cpu_s += number;
    } else if (field.first == "total_reads_processed") {
      gauges.reads = static_cast<int64_t>(number);
    }
  }
  return gauges;
}

std::string RedisVersion(const testing::RedisServer& redis) {
  absl::StatusOr<testing::RespReply> info = redis.Command({"INFO", "server"});
  if (!info.ok()) return "?";
  for (absl::string_view line : absl::StrSplit(info->text, "\r\n")) {
    if (absl::ConsumePrefix(&line, "redis_version:")) return std::string(line);
  }
  return "?";
}

// ---------------------------------------------------------------------------
// The fake Clink.

// Answers every call inline with OK; a CreatePaymentResponse gets an order id.
// Thread-safe (the Redis store calls it from its worker thread).
class InlineClinkApi final : public clink::ClinkApi {
 public:
  void Call(const clink::RestMethod& method,
            const google::protobuf::Message& request,
            const clink::CallOptions& options,
            google::protobuf::Message* response, Callback done) override {
    const int64_t n = calls_.fetch_add(1, std::memory_order_relaxed) + 1;
    if (auto* payment = dynamic_cast<v1::CreatePaymentResponse*>(response)) {
      payment->set_order_id(absl::StrCat("ord_", n));
    }
    clink::CallResult result;
    result.endpoint = "POST /payment";
    result.http_status = 200;
    result.attempts = 1;
    std::move(done)(std::move(result));
  }

  int64_t calls() const { return calls_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> calls_{0};
};

// Counts what the idempotency layer reports that a healthy run never sees
// (the Redis scenarios print them). Thread-safe: the Redis store's worker
// thread reports too.
class TroubleCounter final : public clink::UpstreamObserver {
 public:
  void OnIdempotency(const clink::RestMethod& method,
                     clink::IdempotencyResult result) override {
    switch (result) {
      case clink::IdempotencyResult::kStoreError:
        store_errors.fetch_add(1, std::memory_order_relaxed);
        return;
      case clink::IdempotencyResult::kInUse:
        in_use.fetch_add(1, std::memory_order_relaxed);
        return;
      case clink::IdempotencyResult::kMismatched:
        mismatched.fetch_add(1, std::memory_order_relaxed);
        return;
      case clink::IdempotencyResult::kClaimed:
      case clink::IdempotencyResult::kReplayed:
        return;
    }
  }

  std::atomic<int64_t> store_errors{0};
  std::atomic<int64_t> in_use{0};
  std::atomic<int64_t> mismatched{0};
};

v1::CreatePaymentRequest Payment() {
  v1::CreatePaymentRequest r;
  r.set_customer_id("cus_bench");
  r.set_payment_instrument_id("pi_bench");
  r.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  r.set_return_url("https://shop.example/return");
  r.set_amount("19.99");
  r.set_currency("USD");
  return r;
}

// ---------------------------------------------------------------------------
// Running a scenario.

enum class Keys {
  kNone,   // No idempotency key: pass-through.
  kFresh,  // A new key per call: claim + complete.
  kSame,   // One key for every call, completed before the scenario: replay.
};

struct ScenarioResult {
  int64_t calls = 0;
  int64_t errors = 0;
  std::string first_error;
  double seconds = 0;
  std::vector<int64_t> latencies_ns;  // Sorted.
  double cpu_s = 0;                   // This process.
  std::optional<RedisGauges> redis;   // Deltas over the scenario.

  double calls_per_s() const { return seconds > 0 ? calls / seconds : 0; }
};

// Nearest-rank percentile of sorted values, in microseconds.
double PercentileUs(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return NAN;
  size_t rank = static_cast<size_t>(std::ceil(p * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1] / 1000.0;
}

// Starts calls through one ClinkApi with at most `concurrency` in flight.
// Completions may arrive inline (memory store) or on the store's worker
// thread (Redis); the caller's thread waits on a condition, never sleeps.
class Driver {
 public:
  Driver(clink::ClinkApi& api, const clink::RestMethod& method)
      : api_(api), method_(method), request_(Payment()) {}

  // Runs `warmup` unmeasured calls, then `calls` measured ones. `key_prefix`
  // makes fresh keys unique across scenarios sharing a store; with
  // Keys::kSame it is the key, claimed by one call before the warm-up.
  ScenarioResult Run(Keys keys, absl::string_view key_prefix, int64_t warmup,
                     int64_t calls, int concurrency,
                     const testing::RedisServer* redis) {
    ScenarioResult result;
    keys_ = keys;
    key_prefix_ = std::string(key_prefix);
    {
      absl::MutexLock lock(&mu_);
      concurrency_ = std::max(1, concurrency);
      errors_ = 0;
      first_error_.clear();
      expected_order_id_.clear();
    }
    if (keys == Keys::kSame) {
      // The first call with the key claims it and stores its result; every
      // later one must replay that order id.
      std::vector<int64_t> unused(1);
      Phase(/*first_index=*/-1, 1, unused, /*expect_replay=*/false);
      absl::MutexLock lock(&mu_);
      expected_order_id_ = last_order_id_;
    }
    std::vector<int64_t> warmup_latencies(warmup);
    Phase(-1 - warmup, warmup, warmup_latencies, keys == Keys::kSame);

    std::optional<RedisGauges> redis_before;
    if (redis != nullptr) {
      absl::StatusOr<RedisGauges> gauges = ReadRedisGauges(*redis);
      if (gauges.ok()) redis_before = *gauges;
    }
    result.latencies_ns.resize(calls);
    const double cpu_before = SelfCpuSeconds();
    const SteadyClock::time_point start = SteadyClock::now();
    Phase(0, calls, result.latencies_ns, keys == Keys::kSame);
    result.seconds =
        std::chrono::duration<double>(SteadyClock::now() - start).count();
    result.cpu_s = SelfCpuSeconds() - cpu_before;
    if (redis_before.has_value()) {
      absl::StatusOr<RedisGauges> after = ReadRedisGauges(*redis);
      if (after.ok()) {
        // The second INFO's own read is counted in `after`.
        result.redis = RedisGauges{after->cpu_s - redis_before->cpu_s,
                                   after->scripts - redis_before->scripts,
                                   after->reads - redis_before->reads - 1};
      }
    }
    std::sort(result.latencies_ns.begin(), result.latencies_ns.end());
    result.calls = calls;
    absl::MutexLock lock(&mu_);
    result.errors = errors_;
    result.first_error = first_error_;
    return result;
  }

 private:
  // One call in flight.
  struct PendingCall {
    v1::CreatePaymentResponse response;
    SteadyClock::time_point start;
  };

  // Runs `count` calls numbered first_index, first_index + 1, ... (negative
  // numbers are unmeasured) and returns when all have completed.
  void Phase(int64_t first_index, int64_t count,
             std::vector<int64_t>& latencies_ns, bool expect_replay) {
    for (int64_t i = 0; i < count; ++i) {
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Driver::HasRoom));
        ++in_flight_;
      }
      StartCall(first_index + i, &latencies_ns[i], expect_replay);
    }
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &Driver::Idle));
  }

  void StartCall(int64_t index, int64_t* latency_ns, bool expect_replay) {
    clink::CallOptions options;
    options.deadline = absl::Now() + absl::Minutes(1);
    options.caller = "bench";
    switch (keys_) {
      case Keys::kNone:
        break;
      case Keys::kFresh:
        options.idempotency_key = absl::StrCat(key_prefix_, "-", index);
        break;
      case Keys::kSame:
        options.idempotency_key = key_prefix_;
        break;
    }
    auto call = std::make_unique<PendingCall>();
    v1::CreatePaymentResponse* response = &call->response;
    call->start = SteadyClock::now();
    api_.Call(method_, request_, options, response,
              [this, call = std::move(call), latency_ns,
               expect_replay](clink::CallResult result) {
                *latency_ns = (SteadyClock::now() - call->start).count();
                Finish(result, call->response, expect_replay);
              });
  }

  void Finish(const clink::CallResult& result,
              const v1::CreatePaymentResponse& response, bool expect_replay) {
    absl::MutexLock lock(&mu_);
    --in_flight_;
    std::string error;
    if (!result.status.ok()) {
      error = result.status.ToString();
    } else if (result.replayed != expect_replay) {
      error = result.replayed ? "replayed, expected a first call"
                              : "not replayed, expected a replay";
    } else if (response.order_id().empty()) {
      error = "no order id";
    } else if (!expected_order_id_.empty() &&
               response.order_id() != expected_order_id_) {
      error = absl::StrCat("replayed order id ", response.order_id(),
                           ", expected ", expected_order_id_);
    }
    last_order_id_ = response.order_id();
    if (!error.empty()) {
      if (errors_++ == 0) first_error_ = std::move(error);
    }
  }

  bool HasRoom() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_flight_ < concurrency_;
  }
  bool Idle() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_flight_ == 0;
  }

  clink::ClinkApi& api_;
  const clink::RestMethod& method_;
  const v1::CreatePaymentRequest request_;
  // Set by Run() before any call starts; read by the calling thread only.
  Keys keys_ = Keys::kNone;
  std::string key_prefix_;

  absl::Mutex mu_;
  // absl::Mutex may evaluate HasRoom() on the thread that unlocks (a store
  // thread), hence under mu_.
  int concurrency_ ABSL_GUARDED_BY(mu_) = 1;
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t errors_ ABSL_GUARDED_BY(mu_) = 0;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
  std::string last_order_id_ ABSL_GUARDED_BY(mu_);
  std::string expected_order_id_ ABSL_GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------
// Through the gateway.

constexpr char kGatewayApiKey[] = "sk_test_idempotency_bench_0123456789";

// `n` sequential calls per caller thread, `callers` threads, each a keyed (new
// key per call, `key_prefix`) or unkeyed CreatePayment through `stub`.
ScenarioResult RunThroughGateway(v1::PaymentService::Stub& stub,
                                 absl::string_view key_prefix, int64_t calls,
                                 int callers) {
  ScenarioResult result;
  result.latencies_ns.resize(calls);
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> errors{0};
  absl::Mutex mu;
  std::string first_error;
  v1::CreatePaymentRequest request;
  request.set_customer_id(emulator::kSeedCustomerId);
  request.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
  request.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  request.set_return_url("https://shop.example/return");
  request.set_amount("19.99");
  request.set_currency("USD");
  auto one = [&](int64_t index, int64_t* latency_ns) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    if (!key_prefix.empty()) {
      context.AddMetadata("idempotency-key",
                          absl::StrCat(key_prefix, "-", index));
    }
    v1::CreatePaymentResponse response;
    const SteadyClock::time_point start = SteadyClock::now();
    const grpc::Status status =
        stub.CreatePayment(&context, request, &response);
    if (latency_ns != nullptr) {
      *latency_ns = (SteadyClock::now() - start).count();
    }
    if (!status.ok() || response.order_id().empty()) {
      if (errors.fetch_add(1) == 0) {
        absl::MutexLock lock(&mu);
        first_error = status.ok() ? "no order id" : status.error_message();
      }
    }
  };
  // Warm-up: connections, the store's first pages.
  for (int64_t i = 0; i < 50; ++i) one(-1 - i, nullptr);
  errors = 0;
  const double cpu_before = SelfCpuSeconds();
  const SteadyClock::time_point start = SteadyClock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&] {
      for (int64_t i = next.fetch_add(1); i < calls; i = next.fetch_add(1)) {
        one(i, &result.latencies_ns[i]);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  result.seconds =
      std::chrono::duration<double>(SteadyClock::now() - start).count();
  result.cpu_s = SelfCpuSeconds() - cpu_before;
  std::sort(result.latencies_ns.begin(), result.latencies_ns.end());
  result.calls = calls;
  result.errors = errors.load();
  absl::MutexLock lock(&mu);
  result.first_error = first_error;
  return result;
}

// "ext4", "tmpfs", ... for the file system holding `dir`.
std::string FileSystemOf(const std::string& dir) {
  struct statfs fs {};
  if (statfs(dir.c_str(), &fs) != 0) return "?";
  switch (static_cast<unsigned long>(fs.f_type)) {
    case 0xEF53:
      return "ext4";
    case 0x01021994:
      return "tmpfs (fsync costs nothing: not a real disk's figures)";
    case 0x58465342:
      return "xfs";
    case 0x9123683E:
      return "btrfs";
    case 0x794C7630:
      return "overlayfs";
    default:
      return absl::StrFormat("type 0x%x", static_cast<unsigned>(fs.f_type));
  }
}

// A new directory under --state_dir (or the test temp dir, or /tmp).
absl::StatusOr<std::string> NewStateDir(absl::string_view name) {
  std::string base = absl::GetFlag(FLAGS_state_dir);
  if (base.empty()) {
    const char* tmp = std::getenv("TEST_TMPDIR");
    base = tmp != nullptr ? tmp : "/tmp";
  }
  std::string dir = absl::StrCat(base, "/", name, "-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot create ", dir));
  }
  return dir;
}

int64_t WarmupFor(int64_t calls) {
  return std::clamp<int64_t>(calls / 10, 100, 2000);
}

// ---------------------------------------------------------------------------
// Report.

// Microseconds, with the precision that matters at their size.
std::string Us(double us) {
  if (std::isnan(us)) return "-";
  if (std::fabs(us) < 10) return absl::StrFormat("%.2f", us);
  if (std::fabs(us) < 100) return absl::StrFormat("%.1f", us);
  return absl::StrFormat("%.0f", us);
}

std::string SignedUs(double us) {
  return absl::StrCat(us < 0 ? "-" : "+", Us(std::fabs(us)));
}

double CpuUsPerCall(const ScenarioResult& r) {
  return r.calls > 0 ? r.cpu_s * 1e6 / r.calls : NAN;
}

void PrintTableHeader() {
  std::printf("%-38s %6s %9s %8s %8s %8s %9s %9s %8s\n", "scenario", "calls",
              "calls/s", "p50 us", "p90 us", "p99 us", "cpu us/c", "redis us/c",
              "scr/read");
}

void PrintRow(absl::string_view name, const ScenarioResult& r) {
  std::string redis_cpu = "-";
  std::string per_read = "-";
  if (r.redis.has_value() && r.calls > 0) {
    redis_cpu = Us(r.redis->cpu_s * 1e6 / r.calls);
    if (r.redis->reads > 0) {
      per_read = absl::StrFormat(
          "%.1f", static_cast<double>(r.redis->scripts) / r.redis->reads);
    }
  }
  std::printf("%-38s %6lld %9.0f %8s %8s %8s %9s %9s %8s\n",
              std::string(name).c_str(), static_cast<long long>(r.calls),
              r.calls_per_s(), Us(PercentileUs(r.latencies_ns, 0.5)).c_str(),
              Us(PercentileUs(r.latencies_ns, 0.9)).c_str(),
              Us(PercentileUs(r.latencies_ns, 0.99)).c_str(),
              Us(CpuUsPerCall(r)).c_str(), redis_cpu.c_str(), per_read.c_str());
  if (r.errors > 0) {
    std::printf(
        "    ERRORS: %lld calls did not get the expected answer; "
        "first: %s\n",
        static_cast<long long>(r.errors), r.first_error.c_str());
  }
}

void PrintNote(const std::string& text) {
  std::printf("    -> %s\n", text.c_str());
}

// "+X us p50, +Y us p99, +Z CPU us per call over <what>".
std::string Added(const ScenarioResult& r, const ScenarioResult& base,
                  absl::string_view what) {
  return absl::StrCat(SignedUs(PercentileUs(r.latencies_ns, 0.5) -
                               PercentileUs(base.latencies_ns, 0.5)),
                      " us p50, ",
                      SignedUs(PercentileUs(r.latencies_ns, 0.99) -
                               PercentileUs(base.latencies_ns, 0.99)),
                      " us p99, ",
                      SignedUs(CpuUsPerCall(r) - CpuUsPerCall(base)),
                      " CPU us per call (this process) over ", what);
}

// How busy redis-server and this process were: the store's worker sends one
// pipelined batch and runs its callbacks before sending the next, so the two
// take turns rather than overlap.
std::string Busy(const ScenarioResult& r) {
  if (!r.redis.has_value() || r.seconds <= 0) return "redis: no INFO figures";
  return absl::StrFormat(
      "redis-server busy %.0f%% of one core, this process %.0f%% (%d cores); "
      "%.1f scripts per round trip",
      100 * r.redis->cpu_s / r.seconds, 100 * r.cpu_s / r.seconds,
      AvailableCpus(),
      r.redis->reads > 0
          ? static_cast<double>(r.redis->scripts) / r.redis->reads
          : NAN);
}

// ---------------------------------------------------------------------------

int Fail(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "idempotency_benchmark: %s: %s\n",
               std::string(what).c_str(), status.ToString().c_str());
  return 2;
}

int Run() {
  const int64_t calls_flag = absl::GetFlag(FLAGS_calls);
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const bool with_redis = absl::GetFlag(FLAGS_redis);
  if (calls_flag < 0 || concurrency < 1) {
    return Fail("flags", absl::InvalidArgumentError(
                             "--calls must be >= 0, --concurrency >= 1"));
  }
  const int64_t memory_calls =
      calls_flag > 0 ? calls_flag : kDefaultMemoryCalls;
  const int64_t redis_calls = calls_flag > 0 ? calls_flag : kDefaultRedisCalls;
  const int64_t sqlite_calls =
      calls_flag > 0 ? calls_flag : kDefaultSqliteCalls;
  const bool with_sqlite = absl::GetFlag(FLAGS_sqlite);
  const bool with_gateway = absl::GetFlag(FLAGS_gateway);
  const int64_t gateway_calls = absl::GetFlag(FLAGS_gateway_calls);
  if (gateway_calls < 1) {
    return Fail("flags",
                absl::InvalidArgumentError("--gateway_calls must be >= 1"));
  }

  absl::StatusOr<std::unique_ptr<clink::RestCodec>> codec =
      clink::RestCodec::CreateForServices(clink::GatewayServiceNames());
  if (!codec.ok()) return Fail("codec", codec.status());
  const clink::RestMethod* create_payment =
      (*codec)->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  if (create_payment == nullptr) {
    return Fail("codec", absl::NotFoundError("no CreatePayment mapping"));
  }
  const clink::RestMethod& method = *create_payment;

  std::unique_ptr<testing::RedisServer> redis;
  if (with_redis) {
    absl::StatusOr<std::unique_ptr<testing::RedisServer>> started =
        testing::RedisServer::Create();
    if (!started.ok()) {
      return Fail(
          "redis-server (tools/install_deps.sh installs it; "
          "--redis=false skips the Redis scenarios)",
          started.status());
    }
    redis = *std::move(started);
  }

#ifdef NDEBUG
  const char* build = "optimized (NDEBUG)";
#else
  const char* build = "NOT optimized: build with -c opt for real figures";
#endif
  std::printf(
      "clink-gateway idempotency benchmark: PaymentService.CreatePayment "
      "through IdempotentClinkApi, in process\n"
      "machine: %d cores (nproc), load average %s at start; build: %s\n"
      "inner ClinkApi: a fake that answers inline with OK (no gRPC, no "
      "HTTP): the figures are the decorator and its store alone\n"
      "latency: from Call() to its callback, per call; cpu us/c: this "
      "process (getrusage) per call\n",
      AvailableCpus(), LoadAverage().c_str(), build);
  if (redis != nullptr) {
    std::printf(
        "redis: redis-server %s, %s, one connection (the store's worker "
        "thread); redis us/c and scr/read (scripts per socket read: "
        "pipelining) from its INFO\n",
        RedisVersion(*redis).c_str(), redis->address().c_str());
  }
  std::printf("\n");
  PrintTableHeader();

  InlineClinkApi inner;
  bool all_ok = true;
  auto track = [&all_ok](const ScenarioResult& r) {
    if (r.errors > 0) all_ok = false;
  };

  // A memory store per scenario, sized for every key it will see.
  auto memory_store = [memory_calls] {
    idempotency::MemoryIdempotencyStore::Options options;
    options.max_keys =
        static_cast<size_t>(2 * (memory_calls + WarmupFor(memory_calls))) +
        1000;
    return std::make_unique<idempotency::MemoryIdempotencyStore>(options);
  };

  // 1. Unkeyed: the decorator hands the call straight to the fake.
  ScenarioResult unkeyed;
  {
    auto store = memory_store();
    clink::IdempotentClinkApi api(**codec, inner, *store);
    Driver driver(api, method);
    unkeyed = driver.Run(Keys::kNone, "", WarmupFor(memory_calls), memory_calls,
                         1, nullptr);
    PrintRow("1 unkeyed (pass-through)", unkeyed);
    PrintNote("baseline: no hash, no copy, no store");
    track(unkeyed);
  }

  // 2. A fresh key per call, memory store.
  ScenarioResult memory_fresh;
  {
    auto store = memory_store();
    clink::IdempotentClinkApi api(**codec, inner, *store);
    Driver driver(api, method);
    memory_fresh =
        driver.Run(Keys::kFresh, "memory-fresh", WarmupFor(memory_calls),
                   memory_calls, 1, nullptr);
    PrintRow("2 memory, fresh key (claim+complete)", memory_fresh);
    PrintNote(
        absl::StrCat("added by keys: ", Added(memory_fresh, unkeyed, "unkeyed"),
                     " (validate, copy, SHA-256, claim, serialize, complete)"));
    track(memory_fresh);
  }

  // 3. The same key on every call, memory store.
  ScenarioResult memory_replay;
  {
    auto store = memory_store();
    clink::IdempotentClinkApi api(**codec, inner, *store);
    Driver driver(api, method);
    memory_replay =
        driver.Run(Keys::kSame, "memory-replay", WarmupFor(memory_calls),
                   memory_calls, 1, nullptr);
    PrintRow("3 memory, same key (replay)", memory_replay);
    PrintNote(
        absl::StrCat("replay: ", Added(memory_replay, unkeyed, "unkeyed"), "; ",
                     SignedUs(PercentileUs(memory_replay.latencies_ns, 0.5) -
                              PercentileUs(memory_fresh.latencies_ns, 0.5)),
                     " us p50 vs a fresh key"));
    track(memory_replay);
  }

  if (redis != nullptr) {
    idempotency::RedisIdempotencyStore::Options options;
    options.address = redis->address();
    absl::StatusOr<std::unique_ptr<idempotency::RedisIdempotencyStore>> store =
        idempotency::RedisIdempotencyStore::Create(options);
    if (!store.ok()) return Fail("redis store", store.status());
    TroubleCounter trouble;
    clink::IdempotentClinkApi api(**codec, inner, **store, &trouble);
    Driver driver(api, method);
    const int64_t warmup = WarmupFor(redis_calls);

    // 4-5. One call at a time: what a key adds to a call's latency.
    const ScenarioResult seq_fresh = driver.Run(
        Keys::kFresh, "redis-seq-fresh", warmup, redis_calls, 1, redis.get());
    PrintRow("4 redis seq, fresh key", seq_fresh);
    PrintNote(
        absl::StrCat("added by keys: ", Added(seq_fresh, unkeyed, "unkeyed"),
                     " (two round trips: Begin and Complete scripts)"));
    track(seq_fresh);

    const ScenarioResult seq_replay = driver.Run(
        Keys::kSame, "redis-seq-replay", warmup, redis_calls, 1, redis.get());
    PrintRow("5 redis seq, same key (replay)", seq_replay);
    PrintNote(absl::StrCat("replay: ", Added(seq_replay, unkeyed, "unkeyed"),
                           "; ",
                           SignedUs(PercentileUs(seq_replay.latencies_ns, 0.5) -
                                    PercentileUs(seq_fresh.latencies_ns, 0.5)),
                           " us p50 vs a fresh key (one round trip: Begin)"));
    track(seq_replay);

    // 6-7. --concurrency calls in flight: throughput.
    const std::string in_flight = absl::StrCat(concurrency, " in flight");
    const ScenarioResult conc_fresh =
        driver.Run(Keys::kFresh, "redis-conc-fresh", warmup, redis_calls,
                   concurrency, redis.get());
    PrintRow(absl::StrCat("6 redis ", in_flight, ", fresh key"), conc_fresh);
    PrintNote(absl::StrFormat(
        "%.1fx the calls/s of one at a time; latency includes queueing "
        "behind the other calls in flight",
        conc_fresh.calls_per_s() / seq_fresh.calls_per_s()));
    PrintNote(Busy(conc_fresh));
    track(conc_fresh);

    const ScenarioResult conc_replay =
        driver.Run(Keys::kSame, "redis-conc-replay", warmup, redis_calls,
                   concurrency, redis.get());
    PrintRow(absl::StrCat("7 redis ", in_flight, ", same key"), conc_replay);
    PrintNote(absl::StrFormat(
        "%.1fx the calls/s of one at a time (replays of one key)",
        conc_replay.calls_per_s() / seq_replay.calls_per_s()));
    PrintNote(Busy(conc_replay));
    track(conc_replay);

    const int64_t store_errors = trouble.store_errors.load();
    const int64_t in_use = trouble.in_use.load();
    const int64_t mismatched = trouble.mismatched.load();
    if (store_errors > 0 || in_use > 0 || mismatched > 0) {
      std::printf(
          "    redis store: %lld store errors, %lld in use, %lld "
          "mismatched\n",
          static_cast<long long>(store_errors), static_cast<long long>(in_use),
          static_cast<long long>(mismatched));
    }
    // Join the store's worker (whose callbacks may still be unlocking the
    // driver's mutex) before the driver goes away.
    store->reset();
  }

  if (with_sqlite) {
    absl::StatusOr<std::string> dir = NewStateDir("sqlite-store");
    if (!dir.ok()) return Fail("state dir", dir.status());
    std::printf("sqlite: SQLite %s, WAL, synchronous=FULL, in %s (%s)\n",
                sqlite3_libversion(), dir->c_str(), FileSystemOf(*dir).c_str());
    idempotency::SqliteIdempotencyStore::Options options;
    options.state_dir = *dir;
    options.max_keys =
        static_cast<size_t>(4 * (sqlite_calls + WarmupFor(sqlite_calls))) +
        1000;
    absl::StatusOr<std::unique_ptr<idempotency::SqliteIdempotencyStore>> store =
        idempotency::SqliteIdempotencyStore::Open(options);
    if (!store.ok()) return Fail("sqlite store", store.status());
    clink::IdempotentClinkApi api(**codec, inner, **store);
    Driver driver(api, method);
    const int64_t warmup = WarmupFor(sqlite_calls);

    // 8-9. One call at a time: what a durable key adds to a call's latency.
    const ScenarioResult seq_fresh = driver.Run(
        Keys::kFresh, "sqlite-seq-fresh", warmup, sqlite_calls, 1, nullptr);
    PrintRow("8 sqlite seq, fresh key", seq_fresh);
    PrintNote(
        absl::StrCat("added by keys: ", Added(seq_fresh, unkeyed, "unkeyed"),
                     " (two transactions, each one fsync of the WAL: "
                     "the claim before sending, the result after)"));
    track(seq_fresh);

    const ScenarioResult seq_replay = driver.Run(
        Keys::kSame, "sqlite-seq-replay", warmup, sqlite_calls, 1, nullptr);
    PrintRow("9 sqlite seq, same key (replay)", seq_replay);
    PrintNote(absl::StrCat("replay: ", Added(seq_replay, unkeyed, "unkeyed"),
                           " (a read-only transaction, no fsync)"));
    track(seq_replay);

    // 10-11. --concurrency calls in flight: group commit.
    const std::string in_flight = absl::StrCat(concurrency, " in flight");
    const ScenarioResult conc_fresh =
        driver.Run(Keys::kFresh, "sqlite-conc-fresh", warmup, sqlite_calls,
                   concurrency, nullptr);
    PrintRow(absl::StrCat("10 sqlite ", in_flight, ", fresh key"), conc_fresh);
    PrintNote(absl::StrFormat(
        "%.1fx the calls/s of one at a time: the store commits every queued "
        "claim and result in one transaction (one fsync)",
        conc_fresh.calls_per_s() / seq_fresh.calls_per_s()));
    track(conc_fresh);

    const ScenarioResult conc_replay =
        driver.Run(Keys::kSame, "sqlite-conc-replay", warmup, sqlite_calls,
                   concurrency, nullptr);
    PrintRow(absl::StrCat("11 sqlite ", in_flight, ", same key"), conc_replay);
    track(conc_replay);
    // Join the store's thread before the driver goes away.
    store->reset();
  }

  if (with_gateway) {
    absl::StatusOr<std::string> dir = NewStateDir("gateway");
    if (!dir.ok()) return Fail("gateway dir", dir.status());
    absl::StatusOr<emulator::TestCaFiles> ca = emulator::GenerateTestCa(*dir);
    if (!ca.ok()) return Fail("test CA", ca.status());
    emulator::ClinkEmulator::Options emulator_options;
    emulator_options.api_keys = {kGatewayApiKey};
    emulator_options.tls_cert_pem_path = ca->server_pem;
    emulator_options.num_threads = std::max(16, 2 * concurrency + 8);
    emulator_options.max_recorded_requests = 0;
    auto emulator = emulator::ClinkEmulator::Start(emulator_options);
    if (!emulator.ok()) return Fail("emulator", emulator.status());
    const std::string key_dir = absl::StrCat(*dir, "/keys");
    mkdir(key_dir.c_str(), 0700);
    std::ofstream(absl::StrCat(key_dir, "/api-key")) << kGatewayApiKey << "\n";

    auto start_gateway = [&](bool sqlite)
        -> absl::StatusOr<std::unique_ptr<server::GatewayServer>> {
      server::GatewayOptions options;
      options.grpc_listen = "127.0.0.1:0";
      options.grpc_insecure = true;
      options.clink_base_url = (*emulator)->base_url();
      options.ca_bundle = ca->ca_cert_pem;
      options.egress_allow_cidrs = "127.0.0.0/8";
      options.merchants.push_back({"default", key_dir, ""});
      options.max_upstream_connections = std::max(4, concurrency);
      options.upstream.max_in_flight = 0;
      options.idempotency_max_keys = 1000000;
      if (sqlite) {
        options.idempotency_store =
            server::GatewayOptions::IdempotencyStoreKind::kSqlite;
        options.state_dir = absl::StrCat(*dir, "/state");
      }
      return server::GatewayServer::BuildAndStart(std::move(options));
    };
    std::printf(
        "\nthrough the gateway: GatewayServer in this process (gRPC on "
        "loopback) -> Clink emulator (TLS, loopback), CreatePayment; "
        "latency from the gRPC call to its answer; SQLite in %s/state (%s)\n",
        dir->c_str(), FileSystemOf(*dir).c_str());
    PrintTableHeader();
    ScenarioResult gw_unkeyed, gw_memory, gw_sqlite;
    {
      auto gateway = start_gateway(false);
      if (!gateway.ok()) return Fail("gateway (memory)", gateway.status());
      auto stub = v1::PaymentService::NewStub(
          grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*gateway)->port()),
                              grpc::InsecureChannelCredentials()));
      gw_unkeyed = RunThroughGateway(*stub, "", gateway_calls, 1);
      PrintRow("12 gateway unkeyed", gw_unkeyed);
      track(gw_unkeyed);
      gw_memory = RunThroughGateway(*stub, "gw-memory", gateway_calls, 1);
      PrintRow("13 gateway keyed, memory store", gw_memory);
      PrintNote(absl::StrCat("added by keys: ",
                             Added(gw_memory, gw_unkeyed, "unkeyed")));
      track(gw_memory);
      (*gateway)->Shutdown(absl::Seconds(2));
    }
    {
      auto gateway = start_gateway(true);
      if (!gateway.ok()) return Fail("gateway (sqlite)", gateway.status());
      auto stub = v1::PaymentService::NewStub(
          grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*gateway)->port()),
                              grpc::InsecureChannelCredentials()));
      gw_sqlite = RunThroughGateway(*stub, "gw-sqlite", gateway_calls, 1);
      PrintRow("14 gateway keyed, sqlite store", gw_sqlite);
      PrintNote(absl::StrCat(
          "added by keys: ", Added(gw_sqlite, gw_unkeyed, "unkeyed"), "; ",
          SignedUs(PercentileUs(gw_sqlite.latencies_ns, 0.5) -
                   PercentileUs(gw_memory.latencies_ns, 0.5)),
          " us p50, ",
          SignedUs(PercentileUs(gw_sqlite.latencies_ns, 0.99) -
                   PercentileUs(gw_memory.latencies_ns, 0.99)),
          " us p99 over the memory store"));
      track(gw_sqlite);
      const ScenarioResult gw_sqlite_conc = RunThroughGateway(
          *stub, "gw-sqlite-conc", gateway_calls, concurrency);
      PrintRow(
          absl::StrCat("15 gateway keyed, sqlite, ", concurrency, " callers"),
          gw_sqlite_conc);
      PrintNote(absl::StrFormat(
          "%.1fx the calls/s of one caller",
          gw_sqlite_conc.calls_per_s() / gw_sqlite.calls_per_s()));
      track(gw_sqlite_conc);
      (*gateway)->Shutdown(absl::Seconds(2));
    }
  }

  std::printf("\nload average %s at the end; fake Clink answered %lld calls\n",
              LoadAverage().c_str(), static_cast<long long>(inner.calls()));
  return all_ok ? 0 : 1;
}

}  // namespace
}  // namespace clink_gateway::benchmark

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures what idempotency keys cost a CreatePayment: "
      "IdempotentClinkApi over a fake inline Clink, with the in-memory store, "
      "Redis and SQLite, and keyed calls through a real gateway.\n"
      "Usage: idempotency_benchmark [--calls=N] [--concurrency=32] "
      "[--redis=false] [--sqlite=false] [--state_dir=DIR] [--gateway=false] "
      "[--gateway_calls=N]");
  absl::ParseCommandLine(argc, argv);
  // Store warnings (e.g. an unreachable Redis) still show; routine info lines
  // would interleave with the table.
  clink_gateway::SetMinLogLevel(clink_gateway::LogLevel::kWarning);
  const int code = clink_gateway::benchmark::Run();
  clink_gateway::FlushLogs();
  return code;
}
