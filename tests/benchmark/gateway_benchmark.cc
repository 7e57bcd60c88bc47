// gateway_benchmark: prints what the gateway costs on top of calling Clink
// directly.
//
//   bazel build -c opt //tests/benchmark:gateway_benchmark
//   bazel-bin/tests/benchmark/gateway_benchmark [--duration=5s]
//       [--concurrency=32]
//
// Everything runs on 127.0.0.1 and the run ends by itself (about 4 x
// --duration plus warm-ups):
//   - the Clink emulator, in this process, over TLS;
//   - the baseline: signed GET /product/prd_emu_basic through a
//     CurlHttpTransport configured as the gateway configures its own (a direct
//     pooled HTTPS call to the same upstream), in this process;
//   - the real clink_gateway binary as a child process, so that its CPU time
//     (/proc/<pid>/stat) is the gateway's alone, called with
//     BillingService.GetProduct through async callback stubs.
// Phases, one path after the other so that no pooled connection sits idle for
// longer than about one phase (the emulator closes connections idle for 10 s):
//   1. via the gateway: a closed-loop warm-up that fills its pool; a closed
//      loop with --concurrency callers for the maximum throughput and the RPS
//      per core of gateway CPU; a short top-up; an open loop (paced) at
//      --load_fraction of that maximum, for latency percentiles;
//   2. direct: the same, with the open loop at the same rate; the closed loop
//      is for reference.
// The gateway's added latency is its open-loop percentile minus the direct
// one.
// The emulator's accepted-connection count is read around every measured
// phase: a steady run should open no new upstream connection.
//
// Exits 0 when every call succeeded (whether or not the targets were met), 1
// on call errors, 2 on setup failures.
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/http/api_key_signer.h"
#include "adapters/http/curl_http_transport.h"
#include "adapters/http/egress_policy.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "common/clock.h"
#include "common/secret.h"
#include "curl/curl.h"
#include "grpcpp/grpcpp.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/test_ca.h"

ABSL_FLAG(absl::Duration, duration, absl::Seconds(5),
          "Length of each measured phase (4 phases).");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1),
          "Closed-loop warm-up of each path before its measured phases.");
ABSL_FLAG(absl::Duration, topup, absl::Milliseconds(300),
          "Closed-loop run just before each open-loop phase, so the pool is at "
          "its steady size whatever the closed loop left.");
ABSL_FLAG(int, concurrency, 32,
          "Closed-loop callers; also the gateway's "
          "--max_upstream_connections and the baseline's pool size.");
ABSL_FLAG(double, load_fraction, 0.5,
          "Open-loop rate as a fraction of the gateway's closed-loop maximum.");
ABSL_FLAG(int64_t, max_requests, 2000000,
          "Most calls recorded per phase (and most sent per open-loop phase).");
ABSL_FLAG(int, emulator_threads, 0,
          "civetweb threads (each holds one keep-alive connection); 0 = "
          "max(64, 2 x concurrency + 8).");
ABSL_FLAG(bool, histogram, false,
          "Also print the open-loop latency distribution (log2 buckets).");
ABSL_FLAG(bool, mtls, false,
          "Serve the gateway's gRPC port with mutual TLS (--grpc_tls_* files "
          "from a throwaway CA) and call it with a client certificate "
          "(spiffe://cluster.local/ns/finance/sa/finance) on one long-lived "
          "connection; otherwise --grpc_insecure.");
ABSL_FLAG(bool, authz, false,
          "With --mtls: also enforce an --authz_policy_file shaped like "
          "k8s/base/authz-policy.json (three callers, a deny rule) that allows "
          "the benchmark's GetProduct.");
ABSL_FLAG(std::string, gateway_binary, "",
          "The clink_gateway binary; default: from runfiles, else "
          "bazel-bin/server/clink_gateway.");

namespace clink_gateway::benchmark {
namespace {

namespace v1 = ::clink::gateway::v1;

using SteadyClock = std::chrono::steady_clock;
using SteadyTime = SteadyClock::time_point;

constexpr char kApiKey[] = "sk_test_benchmark_0123456789abcdef";
// What the gateway sends (server/gateway_server.cc); the baseline matches it.
constexpr char kUserAgent[] = "clink-gateway/0.1.0";
constexpr absl::Duration kCallTimeout = absl::Seconds(10);
// How long to wait for the calls still in flight when a phase ends.
constexpr absl::Duration kDrainTimeout = absl::Seconds(30);

int64_t Nanos(SteadyClock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// ---------------------------------------------------------------------------
// Measurements from /proc.

// utime + stime from a /proc/.../stat file, in seconds (10 ms resolution).
double CpuSecondsFromStat(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  const size_t paren = line.rfind(')');
  if (paren == std::string::npos) return 0;
  // Fields after "(comm) ": state is field 3, utime 14, stime 15.
  const std::vector<std::string> fields =
      absl::StrSplit(line.substr(paren + 2), ' ');
  int64_t utime = 0;
  int64_t stime = 0;
  if (fields.size() < 13 || !absl::SimpleAtoi(fields[11], &utime) ||
      !absl::SimpleAtoi(fields[12], &stime)) {
    return 0;
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

// Every thread of `pid`.
double ProcessCpuSeconds(pid_t pid) {
  return CpuSecondsFromStat(absl::StrCat("/proc/", pid, "/stat"));
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Busy and total jiffies of the whole machine (all CPUs), from /proc/stat.
struct MachineTicks {
  int64_t busy = 0;
  int64_t total = 0;
};

MachineTicks ReadMachineTicks() {
  std::ifstream in("/proc/stat");
  std::string line;
  std::getline(in, line);  // "cpu  user nice system idle iowait irq ..."
  const std::vector<std::string> fields =
      absl::StrSplit(line, ' ', absl::SkipEmpty());
  MachineTicks ticks;
  for (size_t i = 1; i < fields.size() && i <= 8; ++i) {
    int64_t value = 0;
    if (!absl::SimpleAtoi(fields[i], &value)) continue;
    ticks.total += value;
    if (i != 4 && i != 5) ticks.busy += value;  // not idle, not iowait
  }
  return ticks;
}

// CPU seconds of each thread of `pid`, by thread id.
std::vector<std::pair<int64_t, double>> ThreadCpuSeconds(pid_t pid) {
  std::vector<std::pair<int64_t, double>> threads;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(
           absl::StrCat("/proc/", pid, "/task"), error)) {
    int64_t tid = 0;
    if (absl::SimpleAtoi(entry.path().filename().string(), &tid)) {
      threads.emplace_back(tid, CpuSecondsFromStat(absl::StrCat(
                                    entry.path().string(), "/stat")));
    }
  }
  return threads;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string one;
  in >> one;
  return one.empty() ? "?" : one;
}

// ---------------------------------------------------------------------------
// The two ways of getting the product.

using CallDone = absl::AnyInvocable<void(absl::Status) &&>;

class Target {
 public:
  virtual ~Target() = default;
  // Starts one call and returns at once; `done` runs exactly once, usually on
  // another thread.
  virtual void Start(CallDone done) = 0;
};

// 32 hex digits, as the gateway makes up when the caller sends none.
std::string RandomRequestId() {
  thread_local absl::BitGen gen;
  return absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen),
                         absl::Uniform<uint64_t>(gen));
}

// A signed GET straight to the emulator through the gateway's transport.
class DirectTarget final : public Target {
 public:
  explicit DirectTarget(http::CurlHttpTransport& transport)
      : transport_(transport),
        path_(absl::StrCat("/product/", emulator::kSeedProductBasic)) {}

  void Start(CallDone done) override {
    http::HttpRequest request;
    request.method = http::Method::kGet;
    request.path_and_query = path_;
    request.idempotent = true;
    http::SendOptions options;
    options.deadline = absl::Now() + kCallTimeout;
    options.request_id = RandomRequestId();
    transport_.Send(
        std::move(request), std::move(options),
        [done = std::move(done)](http::HttpResult result) mutable {
          absl::Status status = std::move(result.status);
          if (status.ok() && result.response.status_code != 200) {
            status = absl::InternalError(
                absl::StrCat("HTTP ", result.response.status_code));
          } else if (status.ok() &&
                     result.response.body.find(emulator::kSeedProductBasic) ==
                         std::string::npos) {
            status = absl::InternalError("response without the product id");
          }
          std::move(done)(std::move(status));
        });
  }

 private:
  http::CurlHttpTransport& transport_;
  const std::string path_;
};

// BillingService.GetProduct through the gateway, with the async callback API.
class GatewayTarget final : public Target {
 public:
  explicit GatewayTarget(v1::BillingService::Stub& stub) : stub_(stub) {}

  void Start(CallDone done) override {
    auto* call = new Call;
    call->done = std::move(done);
    call->context.set_deadline(absl::ToChronoTime(absl::Now() + kCallTimeout));
    call->request.set_product_id(emulator::kSeedProductBasic);
    stub_.async()->GetProduct(
        &call->context, &call->request, &call->response,
        [call](grpc::Status status) {
          absl::Status result;
          if (!status.ok()) {
            result =
                absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                             status.error_message());
          } else if (call->response.product().product_id() !=
                     emulator::kSeedProductBasic) {
            result = absl::InternalError("response without the product id");
          }
          CallDone finish = std::move(call->done);
          delete call;
          std::move(finish)(std::move(result));
        });
  }

 private:
  struct Call {
    grpc::ClientContext context;
    v1::GetProductRequest request;
    v1::GetProductResponse response;
    CallDone done;
  };

  v1::BillingService::Stub& stub_;
};

// ---------------------------------------------------------------------------
// Load generation.

// Outcomes and latencies of one phase; Record() is called from any thread.
class Recorder {
 public:
  explicit Recorder(int64_t capacity) : latencies_ns_(capacity) {}

  void Record(int64_t latency_ns, const absl::Status& status) {
    if (!status.ok()) {
      errors_.fetch_add(1, std::memory_order_relaxed);
      absl::MutexLock lock(&mu_);
      if (first_error_.empty()) first_error_ = status.ToString();
      return;
    }
    const int64_t i = ok_.fetch_add(1, std::memory_order_relaxed);
    if (i < static_cast<int64_t>(latencies_ns_.size()))
      latencies_ns_[i] = latency_ns;
  }

  // Call only once every call has completed (InFlight::WaitForZero).
  int64_t ok() const { return ok_.load(); }
  int64_t errors() const { return errors_.load(); }
  std::string first_error() const {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }
  std::vector<int64_t> SortedLatencies() const {
    const int64_t n = std::min<int64_t>(
        ok_.load(), static_cast<int64_t>(latencies_ns_.size()));
    std::vector<int64_t> sorted(latencies_ns_.begin(),
                                latencies_ns_.begin() + n);
    std::sort(sorted.begin(), sorted.end());
    return sorted;
  }

 private:
  std::vector<int64_t> latencies_ns_;
  std::atomic<int64_t> ok_{0};
  std::atomic<int64_t> errors_{0};
  mutable absl::Mutex mu_;
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

// Counts calls in flight; WaitForZero() returns once they have all completed.
class InFlight {
 public:
  void Add(int64_t n) {
    absl::MutexLock lock(&mu_);
    count_ += n;
  }
  void Done() {
    absl::MutexLock lock(&mu_);
    --count_;
  }
  bool WaitForZero(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto zero = [this]()
                    ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return count_ == 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&zero), timeout);
  }

 private:
  absl::Mutex mu_;
  int64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// What the calls of one phase report into. Each callback holds a reference,
// so the state outlives the last one even after the phase has been read.
struct PhaseState {
  explicit PhaseState(int64_t capacity) : recorder(capacity) {}
  Recorder recorder;
  InFlight in_flight;
};

// One closed-loop caller: starts a call, and from its completion the next one,
// until `end` or the first error.
void StartClosedLoopCall(Target& target, std::shared_ptr<PhaseState> state,
                         SteadyTime end) {
  const SteadyTime start = SteadyClock::now();
  target.Start([&target, state = std::move(state), start,
                end](absl::Status status) mutable {
    const SteadyTime now = SteadyClock::now();
    state->recorder.Record(Nanos(now - start), status);
    if (status.ok() && now < end) {
      StartClosedLoopCall(target, std::move(state), end);
    } else {
      state->in_flight.Done();
    }
  });
}

// Nearest-rank percentile of sorted values, in microseconds.
double PercentileUs(const std::vector<int64_t>& sorted, double p) {
  if (sorted.empty()) return NAN;
  size_t rank = static_cast<size_t>(std::ceil(p * sorted.size()));
  rank = std::clamp<size_t>(rank, 1, sorted.size());
  return sorted[rank - 1] / 1000.0;
}

// Gauges read around a phase.
struct Snapshot {
  SteadyTime time;
  double gateway_cpu_s = 0;
  double self_cpu_s = 0;
  MachineTicks machine;
  int64_t connections = 0;
  std::vector<std::pair<int64_t, double>> gateway_threads;
};

struct PhaseResult {
  int64_t ok = 0;
  int64_t errors = 0;
  std::string first_error;
  double seconds = 0;  // from the first call to the last completion
  double rps = 0;
  std::vector<int64_t> latencies_ns;  // sorted, successful calls only
  double gateway_cpu_s = 0;
  double self_cpu_s = 0;
  double machine_busy = 0;          // fraction of all CPUs
  double gateway_top_thread_s = 0;  // CPU of the gateway's busiest thread
  int64_t new_connections = 0;
  // Open loop only.
  double target_rps = 0;
  double pacer_late_p99_us = 0;
};

class Bench {
 public:
  Bench(pid_t gateway_pid, const emulator::ClinkEmulator& emulator)
      : gateway_pid_(gateway_pid), emulator_(emulator) {}

  // `callers` concurrent callers, each starting its next call as soon as the
  // previous one completes, until `duration` has passed. A caller stops at its
  // first error.
  PhaseResult ClosedLoop(Target& target, int callers, absl::Duration duration) {
    auto state =
        std::make_shared<PhaseState>(absl::GetFlag(FLAGS_max_requests));
    const Snapshot before = Take();
    const SteadyTime end = before.time + absl::ToChronoNanoseconds(duration);
    state->in_flight.Add(callers);
    for (int i = 0; i < callers; ++i) StartClosedLoopCall(target, state, end);
    return Finish(*state, before, duration);
  }

  // Starts calls at a fixed rate whatever the responses do, for `duration` or
  // --max_requests calls. Latency runs from the moment each call is started;
  // how late the pacer started them is reported separately.
  PhaseResult OpenLoop(Target& target, double rate, absl::Duration duration) {
    const int64_t max_requests = absl::GetFlag(FLAGS_max_requests);
    const int64_t n = std::min<int64_t>(
        max_requests,
        static_cast<int64_t>(rate * absl::ToDoubleSeconds(duration)));
    auto state = std::make_shared<PhaseState>(max_requests);
    std::vector<int64_t> late_ns;
    late_ns.reserve(n);
    prctl(PR_SET_TIMERSLACK, 1UL);  // wake up on time, not up to 50 us late
    const Snapshot before = Take();
    const SteadyTime t0 = before.time;
    const double interval_ns = 1e9 / rate;
    for (int64_t i = 0; i < n; ++i) {
      const SteadyTime due =
          t0 + std::chrono::nanoseconds(static_cast<int64_t>(i * interval_ns));
      if (SteadyClock::now() < due) std::this_thread::sleep_until(due);
      const SteadyTime start = SteadyClock::now();
      late_ns.push_back(Nanos(start - due));
      state->in_flight.Add(1);
      target.Start([state, start](absl::Status status) {
        state->recorder.Record(Nanos(SteadyClock::now() - start), status);
        state->in_flight.Done();
      });
    }
    PhaseResult result = Finish(*state, before, duration);
    result.target_rps = rate;
    std::sort(late_ns.begin(), late_ns.end());
    result.pacer_late_p99_us = PercentileUs(late_ns, 0.99);
    return result;
  }

 private:
  Snapshot Take() const {
    Snapshot s;
    s.time = SteadyClock::now();
    s.gateway_cpu_s = ProcessCpuSeconds(gateway_pid_);
    s.self_cpu_s = SelfCpuSeconds();
    s.machine = ReadMachineTicks();
    s.connections = emulator_.connections_accepted();
    s.gateway_threads = ThreadCpuSeconds(gateway_pid_);
    return s;
  }

  PhaseResult Finish(PhaseState& state, const Snapshot& before,
                     absl::Duration duration) {
    const Recorder& recorder = state.recorder;
    PhaseResult result;
    if (!state.in_flight.WaitForZero(duration + kDrainTimeout)) {
      std::fprintf(stderr,
                   "gateway_benchmark: calls still in flight %s after "
                   "the phase; giving up\n",
                   absl::FormatDuration(kDrainTimeout).c_str());
      std::_Exit(1);
    }
    const Snapshot after = Take();
    result.ok = recorder.ok();
    result.errors = recorder.errors();
    result.first_error = recorder.first_error();
    result.seconds =
        std::chrono::duration<double>(after.time - before.time).count();
    result.rps = result.seconds > 0 ? result.ok / result.seconds : 0;
    result.latencies_ns = recorder.SortedLatencies();
    result.gateway_cpu_s = after.gateway_cpu_s - before.gateway_cpu_s;
    result.self_cpu_s = after.self_cpu_s - before.self_cpu_s;
    const int64_t total = after.machine.total - before.machine.total;
    result.machine_busy =
        total > 0
            ? static_cast<double>(after.machine.busy - before.machine.busy) /
                  total
            : 0;
    result.new_connections = after.connections - before.connections;
    for (const auto& [tid, cpu] : after.gateway_threads) {
      double used = cpu;
      for (const auto& [old_tid, old_cpu] : before.gateway_threads) {
        if (old_tid == tid) used -= old_cpu;
      }
      result.gateway_top_thread_s = std::max(result.gateway_top_thread_s, used);
    }
    return result;
  }

  const pid_t gateway_pid_;
  const emulator::ClinkEmulator& emulator_;
};

// ---------------------------------------------------------------------------
// The gateway process.

std::string FindGatewayBinary() {
  std::string flag = absl::GetFlag(FLAGS_gateway_binary);
  if (!flag.empty()) return flag;
  std::vector<std::string> candidates;
  if (const char* dir = std::getenv("RUNFILES_DIR"); dir != nullptr) {
    candidates.push_back(
        absl::StrCat(dir, "/clink_gateway/server/clink_gateway"));
  }
  std::error_code error;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", error);
  if (!error) {
    candidates.push_back(absl::StrCat(
        self.string(), ".runfiles/clink_gateway/server/clink_gateway"));
  }
  candidates.push_back("server/clink_gateway");  // cwd of `bazel run`
  candidates.push_back("bazel-bin/server/clink_gateway");
  for (const std::string& candidate : candidates) {
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return candidates.back();
}

class GatewayProcess {
 public:
  // Starts `binary` with `args`, its stdout and stderr going to files in
  // `dir`, and waits until it prints the port it serves on.
  static absl::StatusOr<std::unique_ptr<GatewayProcess>> Start(
      const std::string& binary, const std::vector<std::string>& args,
      const std::string& dir) {
    std::vector<std::string> all = {binary};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& arg : all) argv.push_back(arg.data());
    argv.push_back(nullptr);
    const std::string out_path = absl::StrCat(dir, "/gateway.stdout");
    const std::string err_path = absl::StrCat(dir, "/gateway.stderr");
    const int out =
        open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const int err =
        open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0 || err < 0) {
      return absl::InternalError(absl::StrCat("cannot create logs in ", dir));
    }
    const pid_t parent = getpid();
    const pid_t pid = fork();
    if (pid == 0) {
      // Only async-signal-safe calls until exec. The gateway dies with us.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) _exit(127);
      dup2(out, STDOUT_FILENO);
      dup2(err, STDERR_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out);
    close(err);
    if (pid < 0) return absl::InternalError("fork failed");
    auto process = std::unique_ptr<GatewayProcess>(
        new GatewayProcess(pid, out_path, err_path));
    const std::string kMarker = "serving gRPC on port ";
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (absl::Now() < give_up) {
      std::ifstream in(err_path);
      std::stringstream text;
      text << in.rdbuf();
      const std::string log = text.str();
      if (const size_t at = log.find(kMarker); at != std::string::npos) {
        const size_t end = log.find('\n', at);
        if (end != std::string::npos &&
            absl::SimpleAtoi(
                log.substr(at + kMarker.size(), end - at - kMarker.size()),
                &process->port_)) {
          return process;
        }
      }
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        process->pid_ = -1;
        return absl::UnavailableError(absl::StrCat(
            binary, " exited before serving: ", log, process->ReadStdout()));
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return absl::DeadlineExceededError(
        absl::StrCat(binary, " did not report its port within 30 s"));
  }

  // SIGTERM, then SIGKILL if it has not exited within 10 s.
  ~GatewayProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    const absl::Time give_up = absl::Now() + absl::Seconds(10);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (absl::Now() > give_up) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  std::string ReadStdout() const {
    std::ifstream in(out_path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  GatewayProcess(pid_t pid, std::string out_path, std::string err_path)
      : pid_(pid),
        out_path_(std::move(out_path)),
        err_path_(std::move(err_path)) {}

  pid_t pid_;
  int port_ = 0;
  const std::string out_path_;
  const std::string err_path_;
};

// ---------------------------------------------------------------------------
// Report.

std::string Us(double us) {
  return std::isnan(us) ? "-" : absl::StrFormat("%.0f", us);
}

void PrintClosedRow(const char* path, const PhaseResult& r, bool gateway) {
  const std::vector<int64_t>& l = r.latencies_ns;
  std::string cores = "-";
  std::string top = "-";
  std::string per_core = "-";
  std::string cpu_per_rpc = "-";
  if (gateway && r.gateway_cpu_s > 0 && r.ok > 0) {
    cores = absl::StrFormat("%.2f", r.gateway_cpu_s / r.seconds);
    top = absl::StrFormat("%.2f", r.gateway_top_thread_s / r.seconds);
    per_core = absl::StrFormat("%.0f", r.ok / r.gateway_cpu_s);
    cpu_per_rpc = absl::StrFormat("%.0f", r.gateway_cpu_s * 1e6 / r.ok);
  }
  std::printf("  %-8s %7.0f %7s %7s %9s %8s %8s %8s %8.2f %6.0f%% %6lld\n",
              path, r.rps, Us(PercentileUs(l, 0.5)).c_str(),
              Us(PercentileUs(l, 0.99)).c_str(), cpu_per_rpc.c_str(),
              cores.c_str(), top.c_str(), per_core.c_str(),
              r.self_cpu_s / r.seconds, 100 * r.machine_busy,
              static_cast<long long>(r.new_connections));
}

void PrintOpenRow(const char* path, const PhaseResult& r, bool gateway) {
  const std::vector<int64_t>& l = r.latencies_ns;
  const std::string cpu_per_rpc =
      gateway && r.ok > 0
          ? absl::StrFormat("%.0f", r.gateway_cpu_s * 1e6 / r.ok)
          : "-";
  std::printf(
      "  %-8s %7.0f %7s %7s %7s %8s %7s %9s %8s %6.0f%% %6lld\n", path, r.rps,
      Us(PercentileUs(l, 0.5)).c_str(), Us(PercentileUs(l, 0.9)).c_str(),
      Us(PercentileUs(l, 0.99)).c_str(), Us(PercentileUs(l, 0.999)).c_str(),
      Us(l.empty() ? NAN : l.back() / 1000.0).c_str(), cpu_per_rpc.c_str(),
      Us(r.pacer_late_p99_us).c_str(), 100 * r.machine_busy,
      static_cast<long long>(r.new_connections));
}

// Calls per latency bucket [2^k, 2^(k+1)) us, for buckets that have any.
void PrintHistogram(const char* path, const PhaseResult& r) {
  std::vector<int64_t> buckets(40, 0);
  for (const int64_t ns : r.latencies_ns) {
    int k = 0;
    for (int64_t us = ns / 1000; us > 1 && k < 39; us >>= 1) ++k;
    ++buckets[k];
  }
  std::printf("  %-8s", path);
  for (int k = 0; k < 40; ++k) {
    if (buckets[k] == 0) continue;
    std::printf(" %lld-%lldus:%lld", 1LL << k, 2LL << k,
                static_cast<long long>(buckets[k]));
  }
  std::printf("\n");
}

void PrintErrors(const char* phase, const PhaseResult& r) {
  if (r.errors == 0) return;
  std::printf("  ERRORS in %s: %lld failed calls; first: %s\n", phase,
              static_cast<long long>(r.errors), r.first_error.c_str());
}

// ---------------------------------------------------------------------------

int Fail(absl::string_view what, const absl::Status& status) {
  std::fprintf(stderr, "gateway_benchmark: %.*s: %s\n",
               static_cast<int>(what.size()), what.data(),
               status.ToString().c_str());
  return 2;
}

int Run() {
  const absl::Duration duration = absl::GetFlag(FLAGS_duration);
  const absl::Duration warmup = absl::GetFlag(FLAGS_warmup);
  const absl::Duration topup = absl::GetFlag(FLAGS_topup);
  const int concurrency = absl::GetFlag(FLAGS_concurrency);
  const double load_fraction = absl::GetFlag(FLAGS_load_fraction);
  if (duration <= absl::ZeroDuration() || duration > absl::Minutes(10) ||
      concurrency < 1 || concurrency > 1024 || load_fraction <= 0 ||
      load_fraction > 1 || absl::GetFlag(FLAGS_max_requests) < 1) {
    return Fail("flags", absl::InvalidArgumentError(
                             "need 0 < --duration <= 10m, 1 <= --concurrency "
                             "<= 1024, 0 < --load_fraction <= 1, "
                             "--max_requests >= 1"));
  }
  const std::string load_at_start = LoadAverage();

  // Scratch directory: CA, key file, gateway logs.
  std::string dir = "/tmp/gateway_benchmark.XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) {
    return Fail("mkdtemp", absl::InternalError("cannot create a temp dir"));
  }
  struct RemoveDir {
    std::string dir;
    ~RemoveDir() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  } remove_dir{dir};

  // The upstream.
  absl::StatusOr<emulator::TestCaFiles> ca = emulator::GenerateTestCa(dir);
  if (!ca.ok()) return Fail("test CA", ca.status());
  emulator::ClinkEmulator::Options emulator_options;
  emulator_options.api_keys = {kApiKey};
  emulator_options.tls_cert_pem_path = ca->server_pem;
  emulator_options.num_threads = absl::GetFlag(FLAGS_emulator_threads) > 0
                                     ? absl::GetFlag(FLAGS_emulator_threads)
                                     : std::max(64, 2 * concurrency + 8);
  emulator_options.max_recorded_requests = 0;  // Counted, not kept.
  // Longer than any phase: one path's pool sits idle while the other path is
  // measured, and a connection the emulator closed meanwhile would be counted
  // as a new connection of the next phase (production load balancers keep
  // idle connections 60 s or more).
  emulator_options.keep_alive_timeout = absl::Seconds(120);
  auto emulator = emulator::ClinkEmulator::Start(emulator_options);
  if (!emulator.ok()) return Fail("emulator", emulator.status());

  // The baseline: the gateway's transport, configured as the gateway does
  // (server/gateway_server.cc), in this process.
  http::ApiKeySigner signer(Secret(kApiKey), SystemClock());
  http::CurlHttpTransport::Options transport_options;
  transport_options.base_url = (*emulator)->base_url();
  transport_options.ca_bundle_path = ca->ca_cert_pem;
  transport_options.user_agent = kUserAgent;
  transport_options.max_connections = concurrency;
  transport_options.signer = &signer;
  // The emulator is on loopback, which the egress policy denies.
  transport_options.egress.allow_cidrs = *http::ParseCidrList("127.0.0.0/8");
  auto transport = http::CurlHttpTransport::Create(transport_options);
  if (!transport.ok()) return Fail("transport", transport.status());

  // The gateway.
  const std::string key_file = absl::StrCat(dir, "/api-key");
  std::ofstream(key_file) << kApiKey << "\n";
  const std::string binary = FindGatewayBinary();
  const std::vector<std::string> gateway_args = {
      "--grpc_listen=127.0.0.1:0",
      // Served (as in production) but on a free port.
      "--metrics_listen=127.0.0.1:0",
      absl::StrCat("--clink_base_url=", (*emulator)->base_url()),
      "--egress_allow_cidrs=127.0.0.0/8",
      absl::StrCat("--api_key_dir=", dir),
      absl::StrCat("--ca_bundle=", ca->ca_cert_pem),
      absl::StrCat("--max_upstream_connections=", concurrency),
      "--log_level=warning",
      "--drain_timeout=2s",
      // Its own state dir, not the default /var/lib/clink-gateway.
      absl::StrCat("--state_dir=", dir, "/state"),
  };
  // Caller authentication on the gRPC port (what --mtls/--authz measure).
  std::shared_ptr<grpc::ChannelCredentials> channel_credentials =
      grpc::InsecureChannelCredentials();
  grpc::ChannelArguments channel_args;
  std::vector<std::string> auth_args = {"--grpc_insecure"};
  std::unique_ptr<emulator::TestCa> mesh;
  if (absl::GetFlag(FLAGS_mtls)) {
    auto created = emulator::TestCa::Create(dir, "mesh");
    if (!created.ok()) return Fail("mesh CA", created.status());
    mesh = *std::move(created);
    auto server = mesh->Issue("gateway", "DNS:localhost,IP:127.0.0.1", true);
    auto client = mesh->Issue(
        "finance", "URI:spiffe://cluster.local/ns/finance/sa/finance", false);
    if (!server.ok() || !client.ok()) {
      return Fail("certificates",
                  server.ok() ? client.status() : server.status());
    }
    auth_args = {absl::StrCat("--grpc_tls_cert_file=", server->cert_path),
                 absl::StrCat("--grpc_tls_key_file=", server->key_path),
                 absl::StrCat("--grpc_client_ca_file=", mesh->cert_path())};
    if (absl::GetFlag(FLAGS_authz)) {
      const std::string policy = absl::StrCat(dir, "/authz-policy.json");
      std::ofstream(policy) << R"({"name": "bench",
  "deny_rules": [{"name": "finance-never-writes",
    "source": {"principals": ["spiffe://cluster.local/ns/finance/sa/finance"]},
    "request": {"paths": ["/clink.gateway.v1.PaymentService/Create*",
                          "/clink.gateway.v1.BillingService/Create*"]}}],
  "allow_rules": [
    {"name": "checkout-web",
     "source": {"principals": ["spiffe://cluster.local/ns/shop/sa/checkout-web"]},
     "request": {"paths": ["/clink.gateway.v1.PaymentService/CreatePayment"],
                 "headers": [{"key": "x-clink-merchant", "values": ["eu"]}]}},
    {"name": "support-tool",
     "source": {"principals": ["spiffe://cluster.local/ns/support/sa/support-tool"]},
     "request": {"paths": ["/clink.gateway.v1.PaymentService/CreateRefund"]}},
    {"name": "finance-reads",
     "source": {"principals": ["spiffe://cluster.local/ns/finance/sa/finance"]},
     "request": {"paths": ["/clink.gateway.v1.PaymentService/Get*",
                           "/clink.gateway.v1.BillingService/Get*",
                           "/clink.gateway.v1.BillingService/List*"]}}]})";
      auth_args.push_back(absl::StrCat("--authz_policy_file=", policy));
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = mesh->cert_pem();
    ssl.pem_private_key = client->key_pem;
    ssl.pem_cert_chain = client->cert_pem;
    channel_credentials = grpc::SslCredentials(ssl);
    channel_args.SetSslTargetNameOverride("localhost");
  } else if (absl::GetFlag(FLAGS_authz)) {
    return Fail("flags", absl::InvalidArgumentError("--authz needs --mtls"));
  }
  std::vector<std::string> all_gateway_args = gateway_args;
  all_gateway_args.insert(all_gateway_args.end(), auth_args.begin(),
                          auth_args.end());
  auto gateway = GatewayProcess::Start(binary, all_gateway_args, dir);
  if (!gateway.ok()) return Fail("gateway", gateway.status());
  auto channel =
      grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", (*gateway)->port()),
                                channel_credentials, channel_args);
  if (!channel->WaitForConnected(
          absl::ToChronoTime(absl::Now() + absl::Seconds(10)))) {
    return Fail("gateway", absl::UnavailableError("gRPC channel not ready"));
  }
  auto stub = v1::BillingService::NewStub(channel);

  DirectTarget direct(**transport);
  GatewayTarget via_gateway(*stub);
  Bench bench((*gateway)->pid(), **emulator);

  std::printf(
      "clink-gateway benchmark: BillingService.GetProduct -> GET "
      "/api/product/%s\n"
      "machine: %u cores (nproc), load average %s at start; the gateway, the "
      "emulator and the load generator share them\n"
      "upstream: in-process Clink emulator over TLS, %s, %d threads\n"
      "gateway:  %s (pid %d), --max_upstream_connections=%d "
      "--log_level=warning %s\n"
      "direct:   CurlHttpTransport in the benchmark process, same options, "
      "pool of %d\n\n",
      emulator::kSeedProductBasic, std::thread::hardware_concurrency(),
      load_at_start.c_str(), (*emulator)->base_url().c_str(),
      emulator_options.num_threads, binary.c_str(),
      static_cast<int>((*gateway)->pid()), concurrency,
      absl::GetFlag(FLAGS_authz)  ? "(mTLS + authz policy)"
      : absl::GetFlag(FLAGS_mtls) ? "(mTLS)"
                                  : "(--grpc_insecure)",
      concurrency);
  if (duration + topup > absl::Seconds(9)) {
    std::printf(
        "note: phases over ~9 s let unused pooled connections pass the "
        "emulator's 10 s idle timeout; expect reconnections\n\n");
  }
  std::fflush(stdout);

  // Each path runs its phases back to back: a warm-up that fills its pool (and
  // the gateway's caches), the closed loop, a short top-up, the open loop. So
  // no pooled connection sits idle for longer than about one phase: the
  // emulator closes connections idle for 10 s. Calls outside the measured
  // phases must succeed too.
  int64_t unmeasured_errors = 0;
  std::string unmeasured_error;
  auto unmeasured = [&](Target& target, absl::Duration length) {
    const PhaseResult r = bench.ClosedLoop(target, concurrency, length);
    unmeasured_errors += r.errors;
    if (unmeasured_error.empty()) unmeasured_error = r.first_error;
  };
  int64_t warmup_connections = 0;
  auto warm_up = [&](Target& target) -> absl::Status {
    const int64_t before = (*emulator)->connections_accepted();
    unmeasured(target, warmup);
    warmup_connections += (*emulator)->connections_accepted() - before;
    if (unmeasured_errors == 0) return absl::OkStatus();
    return absl::InternalError(absl::StrCat(
        unmeasured_errors, " calls failed; first: ", unmeasured_error,
        "\ngateway log: ", (*gateway)->ReadStdout()));
  };

  if (absl::Status s = warm_up(via_gateway); !s.ok()) return Fail("warm-up", s);
  const PhaseResult gw_closed =
      bench.ClosedLoop(via_gateway, concurrency, duration);
  const double rate = gw_closed.rps * load_fraction;
  PhaseResult gw_open;
  if (rate > 0) {
    unmeasured(via_gateway, topup);
    gw_open = bench.OpenLoop(via_gateway, rate, duration);
  }
  if (absl::Status s = warm_up(direct); !s.ok()) return Fail("warm-up", s);
  const PhaseResult direct_closed =
      bench.ClosedLoop(direct, concurrency, duration);
  PhaseResult direct_open;
  if (rate > 0) {
    unmeasured(direct, topup);
    direct_open = bench.OpenLoop(direct, rate, duration);
  }

  // Report.
  std::printf(
      "max throughput: closed loop, %d callers, %s per path\n"
      "  %-8s %7s %7s %7s %9s %8s %8s %8s %8s %7s %6s\n",
      concurrency, absl::FormatDuration(duration).c_str(), "path", "RPS",
      "p50 us", "p99 us", "gw us/RPC", "gw cores", "gw top", "RPS/core",
      "bench", "machine", "conns");
  PrintClosedRow("gateway", gw_closed, true);
  PrintClosedRow("direct", direct_closed, false);
  PrintErrors("the closed loop via the gateway", gw_closed);
  PrintErrors("the closed loop direct", direct_closed);

  std::printf(
      "\nlatency at %.0f%% of the gateway's max: open loop, %.0f RPS, %s per "
      "path\n"
      "  %-8s %7s %7s %7s %7s %8s %7s %9s %8s %7s %6s\n",
      100 * load_fraction, rate, absl::FormatDuration(duration).c_str(), "path",
      "RPS", "p50 us", "p90 us", "p99 us", "p99.9 us", "max us", "gw us/RPC",
      "late p99", "machine", "conns");
  PrintOpenRow("direct", direct_open, false);
  PrintOpenRow("gateway", gw_open, true);
  const auto added = [&](double p) {
    return PercentileUs(gw_open.latencies_ns, p) -
           PercentileUs(direct_open.latencies_ns, p);
  };
  std::printf("  %-8s %7s %7s %7s %7s %8s\n", "added", "",
              Us(added(0.5)).c_str(), Us(added(0.9)).c_str(),
              Us(added(0.99)).c_str(), Us(added(0.999)).c_str());
  if (absl::GetFlag(FLAGS_histogram)) {
    PrintHistogram("direct", direct_open);
    PrintHistogram("gateway", gw_open);
  }
  PrintErrors("the open loop via the gateway", gw_open);
  PrintErrors("the open loop direct", direct_open);
  if (unmeasured_errors > 0) {
    std::printf("  ERRORS in top-ups: %lld failed calls; first: %s\n",
                static_cast<long long>(unmeasured_errors),
                unmeasured_error.c_str());
  }

  const int64_t gw_new = gw_closed.new_connections + gw_open.new_connections;
  const int64_t direct_new =
      direct_closed.new_connections + direct_open.new_connections;
  std::printf(
      "\nnew upstream connections during steady run: %lld (gateway %lld, "
      "direct %lld; %lld opened during warm-up)\n",
      static_cast<long long>(gw_new + direct_new),
      static_cast<long long>(gw_new), static_cast<long long>(direct_new),
      static_cast<long long>(warmup_connections));

  const double per_core =
      gw_closed.gateway_cpu_s > 0 ? gw_closed.ok / gw_closed.gateway_cpu_s : 0;
  auto verdict = [](bool met) { return met ? "met" : "MISSED"; };
  std::printf(
      "\ntargets (project brief)\n"
      "  added latency p50 <= 100 us at half load     %6s us   %s\n"
      "  added latency p99 <= 400 us at half load     %6s us   %s\n"
      "  >= 10000 RPS per core of gateway CPU         %6.0f      %s\n"
      "  no new upstream connections in steady runs   %6lld      %s\n",
      Us(added(0.5)).c_str(), verdict(added(0.5) <= 100),
      Us(added(0.99)).c_str(), verdict(added(0.99) <= 400), per_core,
      verdict(per_core >= 10000), static_cast<long long>(gw_new),
      verdict(gw_new == 0));
  std::printf(
      "\ngw = the gateway process (/proc/<pid>/stat): CPU us per RPC, cores "
      "used, its busiest thread's cores, RPCs per core; bench = cores used by "
      "this process (emulator, load generator, direct transport); machine = "
      "all CPUs busy; late p99 = how late the pacer started calls; conns = "
      "upstream connections opened during the phase\n");
  std::fflush(stdout);

  const int64_t errors = gw_closed.errors + direct_closed.errors +
                         gw_open.errors + direct_open.errors +
                         unmeasured_errors;
  // Stop the callers' side first, then the gateway, then the upstream.
  stub.reset();
  channel.reset();
  gateway->reset();
  (*transport)->Shutdown();
  return errors > 0 ? 1 : 0;
}

}  // namespace
}  // namespace clink_gateway::benchmark

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Measures the gateway's throughput per core, its added latency over a "
      "direct pooled HTTPS call, and upstream connection reuse, against the "
      "in-process Clink emulator.\n"
      "Usage: gateway_benchmark [--duration=5s] [--concurrency=32]");
  absl::ParseCommandLine(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "gateway_benchmark: curl_global_init failed\n");
    return 2;
  }
  const int code = clink_gateway::benchmark::Run();
  curl_global_cleanup();
  return code;
}
