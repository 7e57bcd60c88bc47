// webhook_benchmark: how fast the gateway ingests Clink webhooks, and how
// long an event takes from its delivery to a StreamEvents stream.
//
//   bazel build -c opt //tests/benchmark:webhook_benchmark
//   bazel-bin/tests/benchmark/webhook_benchmark [--deliveries=2000]
//       [--concurrency=8] [--redis] [--state_dir=DIR]
//
// A GatewayServer in this process with its webhook listener on loopback
// (POST /webhooks/clink, the default merchant's `webhook-secret`) and its
// EventService (insecure gRPC on loopback) over the event store: SQLite in
// --state_dir (default a new temporary directory: the figures are that
// disk's fsyncs), or with --redis a real redis-server on a unix socket
// (//tests/redis:redis_server, persistence off). --concurrency clients
// (libcurl, one keep-alive connection each) POST --deliveries distinct
// order.succeeded events, signed as Clink signs them (X-Clink-Timestamp,
// X-Clink-Signature); one StreamEvents stream (subscription "bench")
// receives and acknowledges them. Prints:
//   - ingestion rate: 2xx answers per second of wall time (first POST to the
//     last answer);
//   - CPU: this process's CPU time / wall time (cores busy; the gateway, the
//     clients and the consumer share the process: an upper bound on the
//     gateway's) and deliveries per core-second;
//   - receipt-to-stream latency p50/p99/max: from just before an event's POST
//     to its arrival on the stream.
// The gateway logs at --log_level (default warning, as tools/bench.sh runs the
// gateway). Exits 0 when every delivery was accepted and streamed once, 1 otherwise, 2
// on setup failures.
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/webhooks/webhook_signature.h"
#include "clink/gateway/v1/events.grpc.pb.h"
#include "clink/gateway/v1/events.pb.h"
#include "common/logging.h"
#include "curl/curl.h"
#include "grpcpp/grpcpp.h"
#include "server/gateway_server.h"
#include "tests/redis/redis_server.h"

ABSL_FLAG(int, deliveries, 2000, "Webhook deliveries (distinct events).");
ABSL_FLAG(int, concurrency, 8, "Clients POSTing at once.");
ABSL_FLAG(bool, redis, false,
          "Store events in a redis-server (unix socket) instead of SQLite.");
ABSL_FLAG(std::string, state_dir, "",
          "SQLite state directory (default: a new temporary directory, "
          "removed at the end).");
ABSL_FLAG(std::string, log_level, "warning",
          "The gateway's log level (debug, info, warning or error); info logs "
          "a line per delivery and per RPC.");

namespace clink_gateway {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr char kSecret[] = "whsec_webhook_benchmark_secret";
constexpr char kEventPrefix[] = "evt_bench_";
constexpr absl::Duration kStreamTimeout = absl::Minutes(2);

int Fail(const char* what, const absl::Status& status) {
  std::fprintf(stderr, "webhook_benchmark: %s: %s\n", what,
               status.ToString().c_str());
  return 2;
}

double ProcessCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

size_t Discard(char*, size_t size, size_t count, void*) { return size * count; }

// POSTs deliveries index, index + step, ... below `count` to `url`, each
// signed; records each send time (ns since the epoch) in `sent` just before
// its POST. Returns the number answered 2xx.
int64_t PostDeliveries(const std::string& url, int index, int step, int count,
                       std::vector<std::atomic<int64_t>>& sent) {
  CURL* curl = curl_easy_init();
  int64_t ok = 0;
  for (int i = index; i < count; i += step) {
    const absl::Time now = absl::Now();
    const std::string body = absl::StrCat(
        R"({"id":")", kEventPrefix, i,
        R"(","type":"order.succeeded","object":"event","created":)",
        absl::ToUnixMillis(now), R"(,"data":{"object":{"orderId":"ord_bench_)",
        i, R"(","status":"success","amountTotal":19.990,"currency":"USD"}}})");
    const std::string timestamp = absl::StrCat(absl::ToUnixMillis(now));
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    headers = curl_slist_append(
        headers, absl::StrCat(webhooks::kTimestampHeader, ": ", timestamp).c_str());
    headers = curl_slist_append(
        headers, absl::StrCat(webhooks::kSignatureHeader, ": ",
                              webhooks::SignWebhook(kSecret, timestamp, body))
                     .c_str());
    headers = curl_slist_append(
        headers, absl::StrCat(webhooks::kSignTypeHeader, ": ",
                              webhooks::kSignTypeSha256).c_str());
    curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Discard);
    sent[i].store(absl::ToUnixNanos(absl::Now()), std::memory_order_release);
    long status = 0;  // NOLINT(runtime/int): curl's type.
    if (curl_easy_perform(curl) == CURLE_OK) {
      curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    }
    if (status >= 200 && status < 300) ++ok;
    curl_slist_free_all(headers);
  }
  curl_easy_cleanup(curl);
  return ok;
}

struct StreamResult {
  std::vector<double> latency_us;  // One per distinct event received.
  int64_t repeats = 0;             // Events received more than once.
};

// Reads the "bench" stream until `count` distinct bench events arrived or
// kStreamTimeout passed, acknowledging each batch.
StreamResult Consume(v1::EventService::Stub& stub, grpc::ClientContext& context,
                     int count, const std::vector<std::atomic<int64_t>>& sent) {
  StreamResult result;
  v1::StreamEventsRequest request;
  request.set_subscription("bench");
  request.add_event_types("order.succeeded");
  request.mutable_start_time()->set_seconds(
      absl::ToUnixSeconds(absl::Now() - absl::Minutes(1)));
  request.mutable_ack_deadline()->set_seconds(60);
  std::vector<bool> seen(count, false);
  int distinct = 0;
  auto reader = stub.StreamEvents(&context, request);
  v1::StreamEventsResponse response;
  while (distinct < count && reader->Read(&response)) {
    const int64_t arrived = absl::ToUnixNanos(absl::Now());
    v1::AcknowledgeEventsRequest ack;
    ack.set_subscription("bench");
    for (const v1::Event& event : response.events()) {
      ack.add_event_ids(event.event_id());
      absl::string_view id = event.event_id();
      int index = -1;
      if (!absl::ConsumePrefix(&id, kEventPrefix) ||
          !absl::SimpleAtoi(id, &index) || index < 0 || index >= count) {
        continue;
      }
      if (seen[index]) {
        ++result.repeats;
        continue;
      }
      seen[index] = true;
      ++distinct;
      result.latency_us.push_back(
          (arrived - sent[index].load(std::memory_order_acquire)) / 1e3);
    }
    grpc::ClientContext ack_context;
    ack_context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    v1::AcknowledgeEventsResponse acked;
    stub.AcknowledgeEvents(&ack_context, ack, &acked);
  }
  context.TryCancel();
  reader->Finish();
  return result;
}

double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1,
                         static_cast<size_t>(q * sorted.size()))];
}

int Run() {
  const int count = std::max(1, absl::GetFlag(FLAGS_deliveries));
  const int concurrency = std::max(1, absl::GetFlag(FLAGS_concurrency));
  LogLevel level = LogLevel::kWarning;
  if (!ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    return Fail("--log_level", absl::InvalidArgumentError("unknown level"));
  }
  SetMinLogLevel(level);
  std::string dir = absl::GetFlag(FLAGS_state_dir);
  const bool temporary = dir.empty();
  if (temporary) {
    std::string pattern = "/tmp/webhook_benchmark.XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      return Fail("state dir", absl::InternalError("mkdtemp failed"));
    }
    dir = pattern;
  }
  const std::string key_dir = absl::StrCat(dir, "/keys");
  mkdir(key_dir.c_str(), 0700);
  std::ofstream(absl::StrCat(key_dir, "/api-key")) << "sk_test_bench\n";
  std::ofstream(absl::StrCat(key_dir, "/webhook-secret")) << kSecret << "\n";

  std::unique_ptr<testing::RedisServer> redis;
  server::GatewayOptions options;
  options.grpc_listen = "127.0.0.1:0";
  options.grpc_insecure = true;
  // Clink is never called: no upstream needed.
  options.clink_base_url = "http://127.0.0.1:9/api";
  options.allow_plaintext_upstream = true;
  options.egress_allow_cidrs = "127.0.0.0/8";
  options.merchants.push_back({"default", key_dir, ""});
  options.state_dir = absl::StrCat(dir, "/state");
  options.webhook_listen = "127.0.0.1:0";
  if (absl::GetFlag(FLAGS_redis)) {
    auto server = testing::RedisServer::Create();
    if (!server.ok()) return Fail("redis-server", server.status());
    redis = *std::move(server);
    options.event_redis = redis->address();
  }
  auto gateway = server::GatewayServer::BuildAndStart(std::move(options));
  if (!gateway.ok()) return Fail("gateway", gateway.status());
  const std::string url =
      absl::StrCat("http://127.0.0.1:", (*gateway)->webhook_port(),
                   "/webhooks/clink");
  auto stub = v1::EventService::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", (*gateway)->port()),
                          grpc::InsecureChannelCredentials()));

  std::vector<std::atomic<int64_t>> sent(count);
  grpc::ClientContext stream_context;
  stream_context.set_deadline(absl::ToChronoTime(absl::Now() + kStreamTimeout));
  StreamResult streamed;
  std::thread consumer(
      [&] { streamed = Consume(*stub, stream_context, count, sent); });

  const double cpu_before = ProcessCpuSeconds();
  const absl::Time start = absl::Now();
  std::vector<int64_t> accepted(concurrency, 0);
  std::vector<std::thread> clients;
  for (int t = 0; t < concurrency; ++t) {
    clients.emplace_back([&, t] {
      accepted[t] = PostDeliveries(url, t, concurrency, count, sent);
    });
  }
  for (std::thread& client : clients) client.join();
  const double wall_s = absl::ToDoubleSeconds(absl::Now() - start);
  const double cpu_s = ProcessCpuSeconds() - cpu_before;
  consumer.join();
  int64_t ok = 0;
  for (int64_t a : accepted) ok += a;

  std::sort(streamed.latency_us.begin(), streamed.latency_us.end());
  const double rate = ok / wall_s;
  std::printf(
      "webhook_benchmark: %d deliveries, %d clients, store %s (%s)\n"
      "  accepted (2xx)      %lld of %d in %.2f s\n"
      "  ingestion rate      %.0f deliveries/s\n"
      "  cpu                 %.2f cores (process CPU %.2f s / wall %.2f s; "
      "gateway + clients + consumer)\n"
      "  per core            %.0f deliveries/s per core\n"
      "  receipt-to-stream   p50 %.1f ms  p99 %.1f ms  max %.1f ms  "
      "(%zu streamed, %lld repeats)\n",
      count, concurrency, redis ? "redis" : "sqlite",
      redis ? redis->address().c_str() : dir.c_str(),
      static_cast<long long>(ok), count, wall_s, rate,  // NOLINT
      cpu_s / wall_s, cpu_s, wall_s, cpu_s > 0 ? ok / cpu_s : 0.0,
      Percentile(streamed.latency_us, 0.50) / 1e3,
      Percentile(streamed.latency_us, 0.99) / 1e3,
      streamed.latency_us.empty() ? 0.0 : streamed.latency_us.back() / 1e3,
      streamed.latency_us.size(),
      static_cast<long long>(streamed.repeats));  // NOLINT
  (*gateway).reset();
  if (temporary) {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
  return ok == count && streamed.latency_us.size() == static_cast<size_t>(count)
             ? 0
             : 1;
}

}  // namespace
}  // namespace clink_gateway

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  return clink_gateway::Run();
}
