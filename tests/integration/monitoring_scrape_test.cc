// The dashboard and alert rules (k8s/monitoring/) against a running gateway:
//
// 1. Starts the real clink_gateway binary (--metrics_listen=127.0.0.1:0) in
//    front of the emulator, sends a little of every kind of traffic (events
//    too: the emulator's signed webhooks, one of them with a bad signature
//    and one a duplicate, and a StreamEvents stream that receives and
//    acknowledges), scrapes /metrics (bounded polling: the oldest-unacked
//    gauge is refreshed every 15 s) and checks that every metric the dashboard and the rules read
//    is exported, with the labels they select or group by and the label values
//    they pin (referenced_metrics.txt, from monitoring_tool.py). Histogram
//    names count through their _bucket/_sum/_count series.
// 2. Starts a real Prometheus (Debian's /usr/bin/prometheus) that scrapes the
//    gateway every second and loads the alert rules and every dashboard query
//    (as recording rules), and polls its HTTP API (bounded) until
//    grpc_server_handled_total shows the calls with the right codes. The
//    target carries the labels prometheus-operator gives a ServiceMonitor's
//    targets; every label the rules read must reach Prometheus unchanged (the
//    operator's `endpoint` would overwrite the gateway's unless dropped). Then
//    every rule must evaluate without error, every dashboard query must
//    return data, and no alert may be pending or firing for this healthy
//    traffic.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "clink/gateway/v1/events.grpc.pb.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "curl/curl.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/test_ca.h"
#include "tests/integration/gateway_process.h"

extern char** environ;

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr char kKey[] = "sk_test_monitoring_0123456789";
constexpr char kWebhookSecret[] = "whsec_monitoring_0123456789";
constexpr char kPrometheus[] = "/usr/bin/prometheus";
constexpr char kAlertRules[] = "k8s/monitoring/alert_rules.yaml";
constexpr char kDashboardRules[] = "k8s/monitoring/dashboard_rules.yaml";
constexpr char kReferenced[] = "k8s/monitoring/referenced_metrics.txt";
constexpr char kJob[] = "clink-gateway";  // What the dashboard queries assume
constexpr char kNamespace[] = "test";     // (monitoring_tool.py GRAFANA_VARS).
constexpr absl::Duration kPollDeadline = absl::Seconds(60);

// gRPC status codes as go-grpc-prometheus spells them in grpc_code.
const std::set<std::string>& GoCodeNames() {
  static const auto* names = new std::set<std::string>{
      "OK",         "Canceled",          "Unknown",
      "InvalidArgument", "DeadlineExceeded", "NotFound",
      "AlreadyExists", "PermissionDenied", "ResourceExhausted",
      "FailedPrecondition", "Aborted",     "OutOfRange",
      "Unimplemented", "Internal",         "Unavailable",
      "DataLoss",   "Unauthenticated"};
  return *names;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---------------------------------------------------------------------------
// HTTP GET with libcurl.

struct HttpReply {
  long status = 0;
  std::string body;
};

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

absl::StatusOr<HttpReply> HttpGet(const std::string& url) {
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init");
  HttpReply reply;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 5000L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply.body);
  const CURLcode rc = curl_easy_perform(curl);
  if (rc == CURLE_OK) {
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  }
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) {
    return absl::UnavailableError(
        absl::StrCat("GET ", url, ": ", curl_easy_strerror(rc)));
  }
  return reply;
}

std::string UrlEncode(const std::string& s) {
  CURL* curl = curl_easy_init();
  char* escaped = curl_easy_escape(curl, s.data(), static_cast<int>(s.size()));
  std::string out = escaped;
  curl_free(escaped);
  curl_easy_cleanup(curl);
  return out;
}

// ---------------------------------------------------------------------------
// The text exposition format (0.0.4), as much as the checks need.

struct Exposition {
  std::map<std::string, std::string> types;  // # TYPE family -> type
  // Sample name -> label name -> the values seen.
  std::map<std::string, std::map<std::string, std::set<std::string>>> samples;
};

absl::StatusOr<Exposition> ParseExposition(const std::string& text) {
  Exposition e;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<std::string> f = absl::StrSplit(line, ' ');
      if (f.size() >= 4 && f[1] == "TYPE") e.types[f[2]] = f[3];
      continue;
    }
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    const std::string name(line.substr(0, i));
    auto& labels = e.samples[name];
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        if (line[i] == ',' || line[i] == ' ') {
          ++i;
          continue;
        }
        const size_t eq = line.find('=', i);
        if (eq == absl::string_view::npos || eq + 1 >= line.size() ||
            line[eq + 1] != '"') {
          return absl::InvalidArgumentError(absl::StrCat("bad line: ", line));
        }
        const std::string label(line.substr(i, eq - i));
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) {
          return absl::InvalidArgumentError(absl::StrCat("bad line: ", line));
        }
        labels[label].insert(value);
        i = j + 1;
      }
    }
  }
  return e;
}

// ---------------------------------------------------------------------------
// What the dashboard and the rules read (monitoring_tool.py
// referenced-metrics), checked against a scrape. Returns the problems.

std::vector<std::string> CheckReferences(const std::string& referenced,
                                         const Exposition& e) {
  std::vector<std::string> problems;
  auto exists = [&e](const std::string& name) {
    if (e.samples.count(name) || e.types.count(name)) return true;
    for (absl::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (absl::EndsWith(name, suffix)) {
        const std::string base = name.substr(0, name.size() - suffix.size());
        auto it = e.types.find(base);
        if (it != e.types.end() &&
            (it->second == "histogram" || it->second == "summary")) {
          return true;
        }
      }
    }
    return false;
  };
  auto values_of = [&e](const std::string& name,
                        const std::string& label) -> const std::set<std::string>* {
    auto s = e.samples.find(name);
    if (s == e.samples.end()) return nullptr;
    auto l = s->second.find(label);
    return l == s->second.end() ? nullptr : &l->second;
  };
  for (absl::string_view line : absl::StrSplit(referenced, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(' ', 3));
    if (f.empty() || f[0].empty()) continue;
    const std::string& kind = f[0];
    if (kind == "metric" && f.size() == 2) {
      if (!exists(f[1])) problems.push_back(absl::StrCat("metric ", f[1], " is not exported"));
    } else if (kind == "label" && f.size() == 3) {
      if (!exists(f[1])) continue;  // Reported above.
      if (values_of(f[1], f[2]) == nullptr) {
        problems.push_back(absl::StrCat(f[1], " has no label ", f[2]));
      }
    } else if (kind == "anylabel" && f.size() >= 3) {
      std::vector<std::string> names = absl::StrSplit(
          line.substr(kind.size() + f[1].size() + 2), ' ');
      bool found = false;
      for (const auto& n : names) found = found || values_of(n, f[1]) != nullptr;
      if (!found) {
        problems.push_back(absl::StrCat("none of ", absl::StrJoin(names, ", "),
                                        " has label ", f[1]));
      }
    } else if (kind == "value" && f.size() == 4) {
      if (f[2] == "grpc_code" && !GoCodeNames().count(f[3])) {
        problems.push_back(absl::StrCat("grpc_code=\"", f[3],
                                        "\" is not a gRPC code as Go spells it"));
        continue;
      }
      const auto* values = values_of(f[1], f[2]);
      if (values != nullptr && !values->count(f[3])) {
        problems.push_back(absl::StrCat(
            f[1], "{", f[2], "=\"", f[3], "\"} is not exported (", f[2],
            " values: ", absl::StrJoin(*values, ", "), ")"));
      }
    } else if (kind == "match" && f.size() == 4) {
      const auto* values = values_of(f[1], f[2]);
      if (values == nullptr) continue;
      const std::regex re(f[3]);
      bool found = false;
      for (const auto& v : *values) found = found || std::regex_match(v, re);
      if (!found) {
        problems.push_back(absl::StrCat(f[1], "{", f[2], "=~\"", f[3],
                                        "\"} matches no exported series (",
                                        absl::StrJoin(*values, ", "), ")"));
      }
    } else {
      problems.push_back(absl::StrCat("cannot read: ", line));
    }
  }
  // The exported codes follow the same convention the rules assume.
  for (const char* name : {"grpc_server_handled_total"}) {
    auto s = e.samples.find(name);
    if (s == e.samples.end()) continue;
    auto codes = s->second.find("grpc_code");
    if (codes == s->second.end()) continue;
    for (const auto& code : codes->second) {
      if (!GoCodeNames().count(code)) {
        problems.push_back(absl::StrCat("exported grpc_code=\"", code,
                                        "\" is not spelled as in Go"));
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------
// A real Prometheus server as a child process.

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

class PrometheusServer {
 public:
  // Starts Prometheus with `config` on a free port, retrying when the port
  // was taken between choosing it and Prometheus binding it; returns once
  // /-/ready answers 200.
  static absl::StatusOr<std::unique_ptr<PrometheusServer>> Start(
      const std::string& dir, const std::string& config) {
    const std::string config_path = absl::StrCat(dir, "/prometheus.yml");
    std::ofstream(config_path) << config;
    std::string last_log;
    for (int attempt = 0; attempt < 5; ++attempt) {
      std::unique_ptr<PrometheusServer> server(new PrometheusServer());
      server->port_ = FreePort();
      if (server->port_ == 0) return absl::InternalError("no free port");
      server->log_path_ = absl::StrCat(dir, "/prometheus.", attempt, ".log");
      std::vector<std::string> args = {
          kPrometheus,
          absl::StrCat("--config.file=", config_path),
          absl::StrCat("--storage.tsdb.path=", dir, "/tsdb.", attempt),
          absl::StrCat("--web.listen-address=127.0.0.1:", server->port_),
          "--log.level=info",
      };
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO,
                                       server->log_path_.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0644);
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
      const int rc = posix_spawn(&server->pid_, kPrometheus, &actions, nullptr,
                                 argv.data(), environ);
      posix_spawn_file_actions_destroy(&actions);
      if (rc != 0) {
        return absl::FailedPreconditionError(absl::StrCat(
            "cannot run ", kPrometheus,
            " (Debian package prometheus: run tools/install_deps.sh)"));
      }
      const absl::Time deadline = absl::Now() + kPollDeadline;
      while (absl::Now() < deadline) {
        if (waitpid(server->pid_, nullptr, WNOHANG) == server->pid_) {
          server->pid_ = 0;  // Exited: reaped.
          break;
        }
        auto ready = HttpGet(absl::StrCat(server->url(), "/-/ready"));
        if (ready.ok() && ready->status == 200) return server;
        absl::SleepFor(absl::Milliseconds(100));
      }
      last_log = ReadFile(server->log_path_);
      if (server->pid_ != 0 ||
          last_log.find("address already in use") == std::string::npos) {
        return absl::DeadlineExceededError(
            absl::StrCat("Prometheus did not become ready:\n", last_log));
      }
      // The port was taken meanwhile: try another one.
    }
    return absl::UnavailableError(
        absl::StrCat("no port for Prometheus:\n", last_log));
  }

  // Stops Prometheus (SIGTERM, then SIGKILL after 10 s).
  ~PrometheusServer() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      absl::SleepFor(absl::Milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  std::string log() const { return ReadFile(log_path_); }

  // GET <api path> parsed as JSON with "status":"success"; the "data" member.
  absl::StatusOr<std::shared_ptr<rapidjson::Document>> Api(
      const std::string& path_and_query) const {
    auto reply = HttpGet(absl::StrCat(url(), path_and_query));
    if (!reply.ok()) return reply.status();
    auto doc = std::make_shared<rapidjson::Document>();
    doc->Parse(reply->body.c_str());
    if (doc->HasParseError() || !doc->IsObject() || !doc->HasMember("status") ||
        std::string((*doc)["status"].GetString()) != "success" ||
        !doc->HasMember("data")) {
      return absl::InternalError(absl::StrCat(path_and_query, " -> HTTP ",
                                              reply->status, ": ", reply->body));
    }
    return doc;
  }

 private:
  PrometheusServer() = default;
  pid_t pid_ = 0;
  int port_ = 0;
  std::string log_path_;
};

// The first few of `values`, for messages.
std::string Some(const std::set<std::string>& values) {
  std::vector<std::string> some;
  for (const auto& v : values) {
    if (some.size() == 3) {
      some.push_back(absl::StrCat("... (", values.size(), ")"));
      break;
    }
    some.push_back(v);
  }
  return absl::StrJoin(some, ", ");
}

std::string Label(const rapidjson::Value& metric, const char* name) {
  auto it = metric.FindMember(name);
  return it == metric.MemberEnd() || !it->value.IsString()
             ? ""
             : it->value.GetString();
}

// ---------------------------------------------------------------------------

class MonitoringScrapeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  static void TearDownTestSuite() { curl_global_cleanup(); }

  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/monitoringXXXXXX");
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
    auto ca = emulator::GenerateTestCa(dir_);
    ASSERT_TRUE(ca.ok()) << ca.status();
    emulator::ClinkEmulator::Options emulator_options;
    emulator_options.api_keys = {kKey};
    emulator_options.tls_cert_pem_path = ca->server_pem;
    emulator_options.webhooks.base_delay = absl::Milliseconds(10);
    auto emulator = emulator::ClinkEmulator::Start(emulator_options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);

    const std::string key_file = absl::StrCat(dir_, "/api-key");
    std::ofstream(key_file) << kKey << "\n";
    std::ofstream(absl::StrCat(dir_, "/webhook-secret")) << kWebhookSecret;
    auto gateway = GatewayProcess::Start({
        absl::StrCat("--clink_base_url=", emulator_->base_url()),
        "--egress_allow_cidrs=127.0.0.0/8",
        absl::StrCat("--api_key_dir=", dir_),
        absl::StrCat("--ca_bundle=", ca->ca_cert_pem),
        "--metrics_listen=127.0.0.1:0",  // GatewayProcess's default too.
        "--webhook_listen=127.0.0.1:0",
    });
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    gateway_ = *std::move(gateway);
    metrics_port_ = gateway_->metrics_port();  // Its "started" line's metrics_port.
    ASSERT_GT(metrics_port_, 0)
        << "no \"metrics_port\" in the gateway's log:\n" << gateway_->output();
  }

  static std::unique_ptr<grpc::ClientContext> Context(
      const std::string& idempotency_key = "") {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    if (!idempotency_key.empty()) {
      context->AddMetadata("idempotency-key", idempotency_key);
      context->AddMetadata("x-clink-caller", "monitoring-test");
    }
    return context;
  }

  grpc::StatusCode GetProduct(const std::string& id) {
    auto stub = v1::BillingService::NewStub(gateway_->NewChannel());
    v1::GetProductRequest request;
    request.set_product_id(id);
    v1::GetProductResponse response;
    return stub->GetProduct(Context().get(), request, &response).error_code();
  }

  std::string dir_;
  std::unique_ptr<emulator::ClinkEmulator> emulator_;
  std::unique_ptr<GatewayProcess> gateway_;
  int metrics_port_ = 0;
};

TEST_F(MonitoringScrapeTest, DashboardAndRulesMatchWhatTheGatewayExports) {
  // Traffic: reads that succeed (one after a 5xx, one after a 429, both
  // retried), a keyed payment sent twice (claimed, then replayed), and (once
  // Prometheus scrapes) reads of an unknown product.
  constexpr int kProductOk = 5;
  constexpr int kProductNotFound = 2;
  for (int i = 0; i < kProductOk; ++i) {
    ASSERT_EQ(GetProduct(emulator::kSeedProductBasic), grpc::StatusCode::OK);
  }
  emulator::Fault error;
  error.kind = emulator::Fault::Kind::kHttpError;
  error.http_status = 503;
  error.path_prefix = "/api/product";
  emulator_->SetFault(error);
  ASSERT_EQ(GetProduct(emulator::kSeedProductPro), grpc::StatusCode::OK);
  emulator::Fault throttle;
  throttle.kind = emulator::Fault::Kind::kRateLimit;
  throttle.retry_after = "0";
  throttle.path_prefix = "/api/product";
  emulator_->SetFault(throttle);
  ASSERT_EQ(GetProduct(emulator::kSeedProductPro), grpc::StatusCode::OK);
  const int ok_calls = kProductOk + 2;

  auto payments = v1::PaymentService::NewStub(gateway_->NewChannel());
  v1::CreatePaymentRequest payment;
  payment.set_customer_id(emulator::kSeedCustomerId);
  payment.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
  payment.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  payment.set_return_url("https://shop.example/return");
  payment.set_amount("12.50");
  payment.set_currency("USD");
  for (int i = 0; i < 2; ++i) {
    v1::CreatePaymentResponse paid;
    const grpc::Status status = payments->CreatePayment(
        Context("monitoring-pay-1").get(), payment, &paid);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Events: one order.succeeded whose first POST carries a bad signature
  // (its retry is accepted) and which comes twice (a duplicate), all before
  // Prometheus starts (so no alert sees a rate); one stream receives and
  // acknowledges it, and stays open (the subscription's gauges).
  ASSERT_GT(gateway_->webhook_port(), 0) << gateway_->output();
  ASSERT_TRUE(emulator_
                  ->SetWebhookTarget(
                      "default",
                      {absl::StrCat("http://127.0.0.1:", gateway_->webhook_port(),
                                    "/webhooks/clink"),
                       kWebhookSecret})
                  .ok());
  emulator::WebhookFault forged;
  forged.kind = emulator::WebhookFault::Kind::kWrongSignature;
  ASSERT_TRUE(emulator_->SetWebhookFault(forged).ok());
  emulator::WebhookFault twice;
  twice.kind = emulator::WebhookFault::Kind::kDuplicate;
  twice.copies = 2;
  ASSERT_TRUE(emulator_->SetWebhookFault(twice).ok());
  auto event_id = emulator_->EmitWebhookEvent(
      "default", "order.succeeded", R"({"orderId":"ord_monitoring"})");
  ASSERT_TRUE(event_id.ok()) << event_id.status();
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(absl::Seconds(10)));
  ASSERT_EQ(emulator_->webhook_stats().succeeded, 2);
  auto events = v1::EventService::NewStub(gateway_->NewChannel());
  grpc::ClientContext stream_context;
  stream_context.set_deadline(
      absl::ToChronoTime(absl::Now() + 3 * kPollDeadline));
  v1::StreamEventsRequest open;
  open.set_subscription("monitoring");
  *open.mutable_start_time() = google::protobuf::util::TimeUtil::
      SecondsToTimestamp(absl::ToUnixSeconds(absl::Now() - absl::Minutes(1)));
  auto stream = events->StreamEvents(&stream_context, open);
  struct CloseStream {
    grpc::ClientContext& context;
    grpc::ClientReader<v1::StreamEventsResponse>& reader;
    ~CloseStream() {
      context.TryCancel();
      reader.Finish();
    }
  } close_stream{stream_context, *stream};
  v1::StreamEventsResponse delivered;
  ASSERT_TRUE(stream->Read(&delivered));
  ASSERT_EQ(delivered.events_size(), 1);
  ASSERT_EQ(delivered.events(0).event_id(), *event_id);
  v1::AcknowledgeEventsRequest ack;
  ack.set_subscription("monitoring");
  ack.add_event_ids(*event_id);
  v1::AcknowledgeEventsResponse acked;
  ASSERT_TRUE(events->AcknowledgeEvents(Context().get(), ack, &acked).ok());
  ASSERT_EQ(acked.acknowledged_count(), 1);

  // (a) The scrape has every metric, label and pinned value the dashboard and
  // the rules read (polled, bounded: some series appear on a timer).
  const std::string referenced = ReadFile(kReferenced);
  ASSERT_FALSE(referenced.empty()) << kReferenced;
  absl::StatusOr<Exposition> exposition;
  std::vector<std::string> problems;
  for (const absl::Time give_up = absl::Now() + kPollDeadline;;) {
    auto scrape =
        HttpGet(absl::StrCat("http://127.0.0.1:", metrics_port_, "/metrics"));
    ASSERT_TRUE(scrape.ok()) << scrape.status();
    ASSERT_EQ(scrape->status, 200);
    exposition = ParseExposition(scrape->body);
    ASSERT_TRUE(exposition.ok()) << exposition.status();
    problems = CheckReferences(referenced, *exposition);
    if (problems.empty() || absl::Now() > give_up) break;
    absl::SleepFor(absl::Milliseconds(250));
  }
  EXPECT_TRUE(problems.empty())
      << "the dashboard/rules read what the gateway does not export:\n  "
      << absl::StrJoin(problems, "\n  ");

  // (b) A real Prometheus scrapes the gateway and evaluates the rules and the
  // dashboard's queries. The SLO group's 30 s interval becomes 1 s here.
  const std::string alert_rules = absl::StrCat(dir_, "/alert_rules.yaml");
  std::ofstream(alert_rules) << absl::StrReplaceAll(
      ReadFile(kAlertRules), {{"interval: 30s", "interval: 1s"}});
  const std::string dashboard_rules = absl::StrCat(dir_, "/dashboard_rules.yaml");
  std::ofstream(dashboard_rules) << ReadFile(kDashboardRules);
  const std::string config = absl::StrCat(
      "global:\n"
      "  scrape_interval: 1s\n"
      "  scrape_timeout: 1s\n"
      "  evaluation_interval: 1s\n"
      "rule_files:\n"
      "  - ", alert_rules, "\n"
      "  - ", dashboard_rules, "\n"
      "scrape_configs:\n"
      "  - job_name: ", kJob, "\n"
      "    static_configs:\n"
      "      - targets: ['127.0.0.1:", metrics_port_, "']\n"
      "        labels:\n"
      // The target labels prometheus-operator gives a ServiceMonitor's
      // targets (namespace, service, pod, container, and `endpoint`: the
      // Service port's name)...
      "          namespace: ", kNamespace, "\n"
      "          service: clink-gateway\n"
      "          pod: clink-gateway-0\n"
      "          container: clink-gateway\n"
      "          endpoint: http-metrics\n"
      // ... and what the ServiceMonitor must do about `endpoint`, which
      // would otherwise overwrite the gateway's own endpoint label (renamed
      // exported_endpoint): drop the target label.
      "    relabel_configs:\n"
      "      - action: labeldrop\n"
      "        regex: endpoint\n");
  auto prometheus = PrometheusServer::Start(dir_, config);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();

  // Poll (bounded) until Prometheus has the calls with their codes. Once it
  // has the first ones, the NotFound calls go out, so that it also sees
  // counters grow (as a live gateway's do: else ClinkGatewayNoTraffic would
  // rightly go pending).
  const std::string query = absl::StrCat(
      "/api/v1/query?query=", UrlEncode("grpc_server_handled_total"));
  double ok = -1, not_found = -1;
  bool sent_not_found = false;
  std::string last;
  const absl::Time deadline = absl::Now() + kPollDeadline;
  while (absl::Now() < deadline) {
    if (ok == ok_calls && !sent_not_found) {
      for (int i = 0; i < kProductNotFound; ++i) {
        ASSERT_EQ(GetProduct("prd_no_such_product"),
                  grpc::StatusCode::NOT_FOUND);
      }
      sent_not_found = true;
    }
    auto data = (*prometheus)->Api(query);
    if (data.ok()) {
      ok = not_found = -1;
      for (const auto& r : (**data)["data"]["result"].GetArray()) {
        const auto& m = r["metric"];
        if (Label(m, "job") != kJob || Label(m, "namespace") != kNamespace ||
            Label(m, "grpc_service") != "clink.gateway.v1.BillingService" ||
            Label(m, "grpc_method") != "GetProduct" ||
            Label(m, "grpc_type") != "unary") {
          continue;
        }
        double value = 0;
        if (!absl::SimpleAtod(r["value"][1].GetString(), &value)) continue;
        // One series per caller label value: add them up.
        if (Label(m, "grpc_code") == "OK") ok = std::max(ok, 0.0) + value;
        if (Label(m, "grpc_code") == "NotFound") {
          not_found = std::max(not_found, 0.0) + value;
        }
      }
      if (ok == ok_calls && not_found == kProductNotFound) break;
      last = absl::StrCat((**data)["data"]["result"].Size(), " series");
    } else {
      last = std::string(data.status().message());
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
  ASSERT_EQ(ok, ok_calls) << "last: " << last << "\n" << (*prometheus)->log();
  ASSERT_EQ(not_found, kProductNotFound);

  // Every label the dashboard and the rules read reaches Prometheus with the
  // values the gateway exported: no scrape target label overwrote it.
  std::vector<std::string> overwritten;
  for (absl::string_view line : absl::StrSplit(referenced, '\n')) {
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() != 3 || f[0] != "label") continue;
    const auto sample = exposition->samples.find(f[1]);
    if (sample == exposition->samples.end() || !sample->second.count(f[2])) {
      continue;  // Reported by (a).
    }
    const std::set<std::string>& exported = sample->second.at(f[2]);
    auto data = (*prometheus)->Api(absl::StrCat(
        "/api/v1/query?query=",
        UrlEncode(absl::StrCat("group by (", f[2], ", exported_", f[2], ") (",
                               f[1], "{job=\"", kJob, "\"})"))));
    ASSERT_TRUE(data.ok()) << data.status();
    std::set<std::string> seen, renamed;
    for (const auto& r : (**data)["data"]["result"].GetArray()) {
      seen.insert(Label(r["metric"], f[2].c_str()));
      const std::string e = Label(r["metric"], ("exported_" + f[2]).c_str());
      if (!e.empty()) renamed.insert(e);
    }
    if (seen != exported || !renamed.empty()) {
      overwritten.push_back(absl::StrCat(
          f[1], " ", f[2], ": exported {", Some(exported), "}, Prometheus has {",
          Some(seen), "}",
          renamed.empty() ? ""
                          : absl::StrCat(" and exported_", f[2], " {",
                                         Some(renamed), "}")));
    }
  }
  EXPECT_TRUE(overwritten.empty())
      << "labels changed between the gateway and Prometheus (a target label "
         "with the same name?):\n  "
      << absl::StrJoin(overwritten, "\n  ");

  // Every rule group evaluates again after the data arrived: all rules
  // healthy, every dashboard query returns data, no alert pending or firing.
  auto groups_now = [&]() -> std::map<std::string, std::string> {
    std::map<std::string, std::string> at;
    auto data = (*prometheus)->Api("/api/v1/rules");
    if (!data.ok()) return at;
    for (const auto& g : (**data)["data"]["groups"].GetArray()) {
      at[g["name"].GetString()] = g["lastEvaluation"].GetString();
    }
    return at;
  };
  const auto before = groups_now();
  ASSERT_EQ(before.size(), 3u) << "rule groups loaded: " << before.size();
  bool all_again = false;
  while (!all_again && absl::Now() < deadline + kPollDeadline) {
    absl::SleepFor(absl::Milliseconds(250));
    const auto now = groups_now();
    all_again = now.size() == before.size();
    for (const auto& [name, at] : now) {
      all_again = all_again && before.count(name) && before.at(name) != at;
    }
  }
  ASSERT_TRUE(all_again) << "the rule groups were not evaluated again";

  auto rules = (*prometheus)->Api("/api/v1/rules");
  ASSERT_TRUE(rules.ok()) << rules.status();
  int rule_count = 0;
  std::vector<std::string> unhealthy, busy_alerts;
  for (const auto& g : (**rules)["data"]["groups"].GetArray()) {
    for (const auto& r : g["rules"].GetArray()) {
      ++rule_count;
      const std::string name = r["name"].GetString();
      if (std::string(r["health"].GetString()) != "ok") {
        unhealthy.push_back(absl::StrCat(
            name, " (", r["health"].GetString(), "): ",
            r.HasMember("lastError") ? r["lastError"].GetString() : "", "\n    ",
            r["query"].GetString()));
      }
      if (r.HasMember("state") && std::string(r["state"].GetString()) != "inactive") {
        busy_alerts.push_back(absl::StrCat(name, " is ", r["state"].GetString()));
      }
    }
  }
  auto count_rules = [](const std::string& text) {
    int n = 0;
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      line = absl::StripLeadingAsciiWhitespace(line);
      n += absl::StartsWith(line, "- record:") || absl::StartsWith(line, "- alert:");
    }
    return n;
  };
  EXPECT_EQ(rule_count,
            count_rules(ReadFile(alert_rules)) + count_rules(ReadFile(dashboard_rules)));
  EXPECT_TRUE(unhealthy.empty()) << "rules failing in Prometheus:\n  "
                                 << absl::StrJoin(unhealthy, "\n  ");
  EXPECT_TRUE(busy_alerts.empty()) << "alerts on a healthy gateway:\n  "
                                   << absl::StrJoin(busy_alerts, "\n  ");

  // Every dashboard query (recorded as dashboard:query:N) has data.
  const int dashboard_queries = count_rules(ReadFile(dashboard_rules));
  auto recorded = (*prometheus)->Api(absl::StrCat(
      "/api/v1/query?query=",
      UrlEncode("count by (__name__) ({__name__=~\"dashboard:query:.+\"})")));
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  std::set<std::string> with_data;
  for (const auto& r : (**recorded)["data"]["result"].GetArray()) {
    with_data.insert(Label(r["metric"], "__name__"));
  }
  std::vector<std::string> empty;
  for (int i = 0; i < dashboard_queries; ++i) {
    const std::string name = absl::StrCat("dashboard:query:", i);
    if (!with_data.count(name)) empty.push_back(name);
  }
  EXPECT_TRUE(empty.empty())
      << "dashboard queries without data (see the comments in "
      << kDashboardRules << "): " << absl::StrJoin(empty, ", ");
}

}  // namespace
}  // namespace clink_gateway::testing
