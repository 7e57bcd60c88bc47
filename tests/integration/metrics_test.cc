// The gateway's /metrics after real traffic (in-process gateway, real curl
// transport, the emulator over TLS): the series dashboards and alerts read
// count what happened, no label carries request data, and Debian's promtool
// accepts the exposition without a lint remark.
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/testing/exposition.h"
#include "common/testing/http_get.h"
#include "gtest/gtest.h"
#include "tests/emulator/merchant_api.h"
#include "tests/integration/gateway_fixture.h"
#include "tests/integration/payments.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;
using emulator::Fault;

constexpr char kPromtool[] = "/usr/bin/promtool";
constexpr char kEmail[] = "metrics.buyer@example.com";
constexpr char kIdempotencyKey[] = "idem-7f3c2a91";
constexpr char kRequestId[] = "req-metrics-5e1d";

// Sends fd 1 to a temporary file for its lifetime; Read() returns what was
// written so far without ending the capture. (gtest's CaptureStdout can only
// be read by ending it, and a line the log thread writes before it is
// restarted goes to the real stdout and is lost.)
class StdoutCapture {
 public:
  StdoutCapture() {
    std::string path = absl::StrCat(
        getenv("TEST_TMPDIR") != nullptr ? getenv("TEST_TMPDIR") : "/tmp",
        "/stdout_XXXXXX");
    fd_ = mkstemp(path.data());
    if (fd_ < 0) return;
    unlink(path.c_str());
    std::fflush(stdout);
    saved_ = dup(STDOUT_FILENO);
    dup2(fd_, STDOUT_FILENO);
  }
  ~StdoutCapture() {
    if (fd_ < 0) return;
    std::fflush(stdout);
    dup2(saved_, STDOUT_FILENO);
    close(saved_);
    close(fd_);
  }
  StdoutCapture(const StdoutCapture&) = delete;
  StdoutCapture& operator=(const StdoutCapture&) = delete;

  std::string Read() const {
    std::fflush(stdout);
    std::string out;
    char buf[4096];
    ssize_t n;
    while (fd_ >= 0 && (n = pread(fd_, buf, sizeof(buf),
                                  static_cast<off_t>(out.size()))) > 0) {
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

 private:
  int fd_ = -1;
  int saved_ = -1;
};

const std::map<std::string, std::string> kGetProduct = {
    {"grpc_service", "clink.gateway.v1.BillingService"},
    {"grpc_method", "GetProduct"},
    {"grpc_type", "unary"}};

std::map<std::string, std::string> With(std::map<std::string, std::string> m,
                                        const std::string& key,
                                        const std::string& value) {
  m[key] = value;
  return m;
}

// Runs promtool check metrics on `text`: its exit code and everything it
// printed (lint problems go to stdout).
std::pair<int, std::string> PromtoolCheck(const std::string& text) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/scrape.prom");
  std::ofstream(path) << text;
  const std::string command =
      absl::StrCat(kPromtool, " check metrics < '", path, "' 2>&1");
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return {-1, "popen failed"};
  std::string output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) {
    output.append(buffer, n);
  }
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

class MetricsTest : public GatewayFixture {
 protected:
  static constexpr int kMaxInFlight = 2;

  void Configure(server::GatewayOptions& options) override {
    options.metrics_listen = "127.0.0.1:0";
    options.upstream.max_in_flight = kMaxInFlight;
  }

  std::string Scrape() {
    const absl::StatusOr<HttpGetResponse> response =
        HttpGet(gateway_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return "";
    EXPECT_EQ(response->status_code, 200);
    return response->body;
  }

  grpc::Status GetBasicProduct() {
    v1::GetProductRequest get;
    get.set_product_id(emulator::kSeedProductBasic);
    v1::GetProductResponse product;
    auto context = Context();
    context->AddMetadata("x-request-id", kRequestId);
    return billing_->GetProduct(context.get(), get, &product);
  }
};

TEST_F(MetricsTest, ScrapeAfterRealTrafficCountsItAndPassesPromtool) {
  ASSERT_GT(gateway_->metrics_port(), 0);
  auto capture = std::make_unique<StdoutCapture>();

  // 5 reads that succeed at once.
  constexpr int kReads = 5;
  for (int i = 0; i < kReads; ++i) ASSERT_TRUE(GetBasicProduct().ok()) << i;

  // A read whose first attempt gets a 503: retried, then OK.
  Fault busy;
  busy.kind = Fault::Kind::kHttpError;
  busy.http_status = 503;
  busy.count = 1;
  busy.path_prefix = "/api/product";
  emulator_->SetFault(busy);
  ASSERT_TRUE(GetBasicProduct().ok());

  // A request that fails validation (nothing sent), carrying an email and an
  // amount that must not show up anywhere.
  {
    v1::CreateCheckoutSessionRequest create;
    create.set_customer_email(kEmail);
    create.set_original_amount("1e3");
    create.set_original_currency("USD");
    create.set_ui_mode(v1::UI_MODE_HOSTED_PAGE);
    v1::CreateCheckoutSessionResponse session;
    EXPECT_EQ(
        checkout_->CreateCheckoutSession(Context().get(), create, &session)
            .error_code(),
        grpc::StatusCode::INVALID_ARGUMENT);
  }

  // A keyed payment and its replay.
  for (int i = 0; i < 2; ++i) {
    auto context = Context();
    context->AddMetadata("idempotency-key", kIdempotencyKey);
    v1::CreatePaymentResponse paid;
    const grpc::Status status = payment_->CreatePayment(
        context.get(), CardPayment("19.99", "order-metrics-42"), &paid);
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  // Overload: two slow reads hold the in-flight cap, the third is refused at
  // once.
  Fault slow;
  slow.kind = Fault::Kind::kLatency;
  slow.latency = absl::Milliseconds(800);
  slow.count = kMaxInFlight;
  slow.path_prefix = "/api/product";
  emulator_->SetFault(slow);
  emulator_->ClearRequests();
  std::vector<std::thread> held;
  std::vector<grpc::Status> held_status(kMaxInFlight);
  for (int i = 0; i < kMaxInFlight; ++i) {
    held.emplace_back(
        [this, &held_status, i] { held_status[i] = GetBasicProduct(); });
  }
  ASSERT_TRUE(emulator_->WaitForRequests(kMaxInFlight, absl::Seconds(10)));
  const std::vector<Sample> during = ParseExposition(Scrape());
  EXPECT_EQ(Sum(during, "clink_gateway_upstream_in_flight_requests"),
            kMaxInFlight);
  const grpc::Status refused = GetBasicProduct();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  for (std::thread& t : held) t.join();
  for (const grpc::Status& s : held_status) EXPECT_TRUE(s.ok());

  // The gateway's timestamp refused (the emulator answers a plain 401).
  emulator_clock_offset_ms_ = absl::ToInt64Milliseconds(absl::Minutes(5));
  EXPECT_EQ(GetBasicProduct().error_code(), grpc::StatusCode::INTERNAL);
  emulator_clock_offset_ms_ = 0;

  // Each RPC's line is queued just after its status is sent, so the last one
  // may still be on its way: collect the output until every line is in
  // (bounded).
  constexpr int kProductOk = kReads + 1 + kMaxInFlight;
  // GetProduct (+ the refused one and the 401), CreateCheckoutSession, two
  // CreatePayment.
  constexpr int kRpcs = kProductOk + 2 + 1 + 2;
  auto rpc_lines = [](const std::string& logs) {
    int n = 0;
    for (absl::string_view line : absl::StrSplit(logs, '\n')) {
      n += absl::StrContains(line, "\"event\":\"rpc\"");
    }
    return n;
  };
  std::string logs;
  const absl::Time logs_deadline = absl::Now() + absl::Seconds(5);
  for (;;) {
    FlushLogs();
    logs = capture->Read();
    if (rpc_lines(logs) >= kRpcs || absl::Now() > logs_deadline) break;
    absl::SleepFor(absl::Milliseconds(2));
  }
  capture.reset();  // gtest reports failures on stdout.
  const std::string text = Scrape();
  const std::vector<Sample> samples = ParseExposition(text);
  for (const Sample& s : samples) ASSERT_FALSE(s.name.empty()) << text;

  // gRPC server metrics: every RPC counted once, with its final code.
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total",
                With(kGetProduct, "grpc_code", "OK")),
            kProductOk);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total",
                With(kGetProduct, "grpc_code", "ResourceExhausted")),
            1);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total",
                With(kGetProduct, "grpc_code", "Internal")),
            1);
  EXPECT_EQ(Sum(samples, "grpc_server_started_total", kGetProduct),
            kProductOk + 2);
  EXPECT_EQ(Sum(samples, "grpc_server_msg_received_total", kGetProduct),
            kProductOk + 2);
  EXPECT_EQ(Sum(samples, "grpc_server_msg_sent_total", kGetProduct),
            kProductOk);
  EXPECT_EQ(Sum(samples, "grpc_server_handling_seconds_count", kGetProduct),
            kProductOk + 2);
  EXPECT_EQ(Sum(samples, "grpc_server_handling_seconds_bucket",
                With(kGetProduct, "le", "+Inf")),
            kProductOk + 2);
  // The held reads took 800 ms or more.
  EXPECT_LE(Sum(samples, "grpc_server_handling_seconds_bucket",
                With(kGetProduct, "le", "0.5")),
            kProductOk + 2 - kMaxInFlight);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total",
                {{"grpc_method", "CreateCheckoutSession"},
                 {"grpc_code", "InvalidArgument"}}),
            1);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total",
                {{"grpc_method", "CreatePayment"}, {"grpc_code", "OK"}}),
            2);  // The first call and its replay.
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total"), kRpcs);

  // Upstream, per HTTP attempt.
  const std::map<std::string, std::string> product = {
      {"endpoint", "/product/{product_id}"}};
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total",
                With(With(product, "method", "GET"), "status_class", "2xx")),
            kProductOk);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total",
                With(product, "status_class", "5xx")),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total",
                With(product, "status_class", "4xx")),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total",
                {{"endpoint", "/payment"}, {"status_class", "2xx"}}),
            1);  // The replay never reached Clink.
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total",
                {{"endpoint", "/checkout/session"}}),
            0);  // Validation failed before sending.
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_retries_total", product), 1);
  EXPECT_EQ(
      Sum(samples, "clink_gateway_upstream_request_duration_seconds_count",
          product),
      kProductOk + 2);
  EXPECT_GT(
      Sum(samples, "clink_gateway_upstream_response_bytes_total", product), 0);
  EXPECT_EQ(Sum(samples, "clink_gateway_rejections_total",
                {{"reason", "overloaded"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_auth_failures_total",
                {{"reason", "key"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_idempotency_requests_total",
                {{"result", "claimed"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_idempotency_requests_total",
                {{"result", "replayed"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_in_flight_requests"), 0);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_transport_errors_total"), 0);
  // Pooled connections: a few opened (at most the pool, plus one for each
  // connection the emulator closed), the rest of the attempts reused them.
  const double opened =
      Sum(samples, "clink_gateway_upstream_connections_opened_total");
  const double reused =
      Sum(samples, "clink_gateway_upstream_connections_reused_total");
  EXPECT_GE(opened, 1);
  EXPECT_LE(opened, kPoolSize + 2);
  EXPECT_GT(reused, 0);
  EXPECT_EQ(opened + reused, kProductOk + 2 + 1);  // Every attempt sent.

  // Build and process.
  EXPECT_EQ(Sum(samples, "clink_gateway_build_info", {{"version", "0.1.0"}}),
            1);
  for (const char* name :
       {"process_cpu_seconds_total", "process_resident_memory_bytes",
        "process_open_fds", "process_max_fds", "process_start_time_seconds"}) {
    EXPECT_EQ(Select(samples, name).size(), 1u) << name;
  }

  // Label values come from bounded sets: nothing from the requests.
  const std::vector<std::string> request_data = {
      emulator::kSeedProductBasic,
      emulator::kSeedCustomerId,
      emulator::kSeedCardInstrumentId,
      kEmail,
      "example.com",
      "19.99",
      "1e3",
      "order-metrics-42",
      kIdempotencyKey,
      kRequestId};
  for (const Sample& s : samples) {
    for (const auto& [label, value] : s.labels) {
      for (const std::string& secret : request_data) {
        EXPECT_FALSE(absl::StrContains(value, secret))
            << s.name << "{" << label << "=\"" << value << "\"}";
      }
    }
  }

  // One log line per RPC, with the merchant, the fingerprint of the key that
  // signed its last attempt ("none" when nothing was sent) and the request
  // id, and never the email, the key or the idempotency key.
  EXPECT_EQ(rpc_lines(logs), kRpcs);
  for (absl::string_view line : absl::StrSplit(logs, '\n')) {
    if (!absl::StrContains(line, "\"event\":\"rpc\"")) continue;
    EXPECT_TRUE(absl::StrContains(line, "\"merchant\":\"default\"")) << line;
    EXPECT_TRUE(absl::StrContains(line, "\"attempts\":\"0\"")
                    ? absl::StrContains(line, "\"key_fingerprint\":\"none\"")
                    : absl::StrContains(line, "\"key_fingerprint\":\"sk_test_"))
        << line;
  }
  EXPECT_TRUE(absl::StrContains(
      logs, absl::StrCat("\"request_id\":\"", kRequestId, "\"")));
  EXPECT_FALSE(absl::StrContains(logs, kEmail));
  EXPECT_FALSE(absl::StrContains(logs, kTestApiKey));
  EXPECT_FALSE(absl::StrContains(logs, kIdempotencyKey));

  // promtool: exit 0 and not a single lint remark.
  const auto [exit_code, output] = PromtoolCheck(text);
  EXPECT_EQ(exit_code, 0) << output;
  EXPECT_EQ(output, "");
}

}  // namespace
}  // namespace clink_gateway::testing
