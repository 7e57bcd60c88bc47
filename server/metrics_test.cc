#include "server/metrics.h"

#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/clink/clock_skew_monitor.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/clink/upstream_observer.h"
#include "adapters/credentials/key_set.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_types.h"
#include "adapters/webhooks/webhook_listener.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "common/clock.h"
#include "common/secret.h"
#include "common/testing/exposition.h"
#include "common/testing/http_get.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;
using ::clink_gateway::testing::ParseExposition;
using ::clink_gateway::testing::Sample;
using ::clink_gateway::testing::Select;
using ::clink_gateway::testing::Sum;

const std::map<std::string, std::string> kGetProduct = {
    {"grpc_service", "clink.gateway.v1.BillingService"},
    {"grpc_method", "GetProduct"},
    {"grpc_type", "unary"}};

class GatewayMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto codec = clink::RestCodec::CreateForServices(
        clink::GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    BuildInfo build;
    build.version = "1.2.3";
    build.git_commit = "0123abcd";
    auto metrics = GatewayMetrics::Create(codec_->methods(), build);
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
    get_product_ =
        codec_->FindByRequestType(*v1::GetProductRequest::descriptor());
    create_payment_ =
        codec_->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
    ASSERT_NE(get_product_, nullptr);
    ASSERT_NE(create_payment_, nullptr);
  }

  std::vector<Sample> Samples() const {
    std::vector<Sample> samples = ParseExposition(metrics_->ExpositionText());
    for (const Sample& s : samples) EXPECT_FALSE(s.name.empty());
    return samples;
  }

  clink::AttemptInfo Attempt(int http_status, int connections_opened) const {
    clink::AttemptInfo a;
    a.method = get_product_;
    a.http_status = http_status;
    a.sent = true;
    a.connections_opened = connections_opened;
    a.response_bytes = 300;
    a.duration = absl::Milliseconds(3);
    return a;
  }

  std::unique_ptr<clink::RestCodec> codec_;
  std::unique_ptr<GatewayMetrics> metrics_;
  const clink::RestMethod* get_product_ = nullptr;
  const clink::RestMethod* create_payment_ = nullptr;
};

TEST_F(GatewayMetricsTest, EverySeriesExistsAtZeroBeforeAnyTraffic) {
  const std::vector<Sample> samples = Samples();
  const size_t rpcs = codec_->methods().size();
  // One started/received/sent series per RPC, every gRPC code per RPC.
  EXPECT_EQ(Select(samples, "grpc_server_started_total").size(), rpcs);
  EXPECT_EQ(Select(samples, "grpc_server_msg_received_total").size(), rpcs);
  EXPECT_EQ(Select(samples, "grpc_server_msg_sent_total").size(), rpcs);
  // Without principals, two callers: "anonymous" and "other".
  EXPECT_EQ(Select(samples, "grpc_server_handled_total").size(), rpcs * 17 * 2);
  EXPECT_EQ(Select(samples, "grpc_server_handled_total",
                   {{"grpc_code", "InvalidArgument"}, {"caller", "other"}})
                .size(),
            rpcs);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total"), 0);
  EXPECT_EQ(Select(samples, "clink_gateway_upstream_requests_total").size(),
            rpcs * 6 * 2);
  EXPECT_EQ(Select(samples, "clink_gateway_upstream_requests_total",
                   {{"endpoint", "/product/{product_id}"},
                    {"method", "GET"},
                    {"status_class", "error"},
                    {"caller", "anonymous"}})
                .size(),
            1u);
  for (const char* reason : {"key", "timestamp"}) {
    EXPECT_EQ(Select(samples, "clink_gateway_upstream_auth_failures_total",
                     {{"reason", reason}})
                  .size(),
              1u)
        << reason;
  }
  for (const char* result :
       {"claimed", "replayed", "mismatched", "in_use", "store_error"}) {
    EXPECT_EQ(Select(samples, "clink_gateway_idempotency_requests_total",
                     {{"result", result}})
                  .size(),
              1u)
        << result;
  }
  for (const char* operation : {"complete", "release"}) {
    for (const char* result : {"ok", "not_held", "failed", "gave_up"}) {
      EXPECT_EQ(Select(samples, "clink_gateway_idempotency_store_retries_total",
                       {{"operation", operation}, {"result", result}})
                    .size(),
                1u)
          << operation << " " << result;
    }
  }
  for (const char* reason : {"overloaded", "rate_limited"}) {
    EXPECT_EQ(Select(samples, "clink_gateway_rejections_total",
                     {{"reason", reason}})
                  .size(),
              1u);
  }
  EXPECT_EQ(Select(samples, "clink_gateway_upstream_retries_denied_total")
                .size(),
            5u);
  // One series per http::FailureKind but kNone (FailureKindName says
  // "invalid" past the last), including kinds added to the enum later.
  size_t kinds = 0;
  for (int i = 1;; ++i) {
    const absl::string_view name =
        http::FailureKindName(static_cast<http::FailureKind>(i));
    if (name == "invalid") break;
    ++kinds;
    EXPECT_EQ(Select(samples, "clink_gateway_upstream_transport_errors_total",
                     {{"kind", std::string(name)}})
                  .size(),
              1u)
        << name;
  }
  EXPECT_GE(kinds, 7u);
  EXPECT_EQ(Select(samples, "clink_gateway_upstream_transport_errors_total")
                .size(),
            kinds);
  // Histogram buckets from 100 µs to 30 s, then +Inf.
  const std::vector<Sample> buckets =
      Select(samples, "grpc_server_handling_seconds_bucket", kGetProduct);
  ASSERT_EQ(buckets.size(), LatencyBuckets().size() + 1);
  EXPECT_EQ(buckets.front().labels.at("le"), "0.0001");
  EXPECT_EQ(buckets[buckets.size() - 2].labels.at("le"), "30");
  EXPECT_EQ(buckets.back().labels.at("le"), "+Inf");
  EXPECT_EQ(Select(samples, "clink_gateway_upstream_request_duration_seconds_"
                            "bucket",
                   {{"endpoint", "/payment"}, {"le", "1"}})
                .size(),
            1u);
  // Build info and the process.
  EXPECT_EQ(Sum(samples, "clink_gateway_build_info",
                {{"version", "1.2.3"}, {"git_commit", "0123abcd"}}),
            1);
  EXPECT_GT(Sum(samples, "process_resident_memory_bytes"), 0);
  EXPECT_GT(Sum(samples, "process_open_fds"), 0);
  EXPECT_GT(Sum(samples, "process_start_time_seconds"), 1.6e9);
  EXPECT_EQ(Select(samples, "process_cpu_seconds_total").size(), 1u);
  EXPECT_EQ(Select(samples, "process_virtual_memory_bytes").size(), 1u);
  EXPECT_EQ(Select(samples, "process_threads").size(), 1u);
}

TEST_F(GatewayMetricsTest, RpcsAreCountedByMethodAndCodeWithTheirLatency) {
  for (int i = 0; i < 3; ++i) {
    metrics_->OnRpcStarted(*get_product_);
    metrics_->OnRpcHandled(*get_product_, absl::StatusCode::kOk,
                           absl::Microseconds(700), "");
  }
  metrics_->OnRpcStarted(*get_product_);
  metrics_->OnRpcHandled(*get_product_, absl::StatusCode::kInvalidArgument,
                         absl::Seconds(2), "");
  metrics_->OnRpcStarted(*create_payment_);
  metrics_->OnRpcHandled(*create_payment_, absl::StatusCode::kUnavailable,
                         absl::Milliseconds(40), "");

  const std::vector<Sample> samples = Samples();
  auto with = [](std::map<std::string, std::string> labels,
                 const std::string& key, const std::string& value) {
    labels[key] = value;
    return labels;
  };
  EXPECT_EQ(Sum(samples, "grpc_server_started_total", kGetProduct), 4);
  EXPECT_EQ(Sum(samples, "grpc_server_msg_received_total", kGetProduct), 4);
  EXPECT_EQ(Sum(samples, "grpc_server_msg_sent_total", kGetProduct), 3);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total",
                with(kGetProduct, "grpc_code", "OK")),
            3);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total",
                with(kGetProduct, "grpc_code", "InvalidArgument")),
            1);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total",
                {{"grpc_method", "CreatePayment"},
                 {"grpc_service", "clink.gateway.v1.PaymentService"},
                 {"grpc_code", "Unavailable"}}),
            1);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total"), 5);
  EXPECT_EQ(Sum(samples, "grpc_server_handling_seconds_count", kGetProduct),
            4);
  EXPECT_NEAR(Sum(samples, "grpc_server_handling_seconds_sum", kGetProduct),
              2.0021, 1e-9);
  // 700 µs falls in the 1 ms bucket, 2 s in the 2.5 s one.
  EXPECT_EQ(Sum(samples, "grpc_server_handling_seconds_bucket",
                with(kGetProduct, "le", "0.0005")),
            0);
  EXPECT_EQ(Sum(samples, "grpc_server_handling_seconds_bucket",
                with(kGetProduct, "le", "0.001")),
            3);
  EXPECT_EQ(Sum(samples, "grpc_server_handling_seconds_bucket",
                with(kGetProduct, "le", "1")),
            3);
  EXPECT_EQ(Sum(samples, "grpc_server_handling_seconds_bucket",
                with(kGetProduct, "le", "2.5")),
            4);
}

TEST_F(GatewayMetricsTest, UpstreamAttemptsConnectionsAndRefusals) {
  metrics_->OnCallStarted(*get_product_);
  metrics_->OnAttempt(Attempt(503, /*connections_opened=*/1));
  metrics_->OnRetry(*get_product_);
  metrics_->OnAttempt(Attempt(200, 0));
  metrics_->OnCallFinished(*get_product_);
  metrics_->OnCallStarted(*get_product_);  // Still in flight.
  clink::AttemptInfo lost = Attempt(0, 0);
  lost.failure = http::FailureKind::kConnectionLost;
  lost.response_bytes = 0;
  metrics_->OnAttempt(lost);
  clink::AttemptInfo unsent = Attempt(0, 0);
  unsent.failure = http::FailureKind::kConnect;
  unsent.sent = false;
  unsent.response_bytes = 0;
  metrics_->OnAttempt(unsent);
  clink::AttemptInfo throttled = Attempt(429, 0);
  throttled.throttled = true;
  metrics_->OnAttempt(throttled);
  metrics_->OnUnknownFields(*get_product_, 2);
  metrics_->OnRetryDenied(*get_product_, clink::RetryDenial::kBudget);
  metrics_->OnRejected(*get_product_, clink::RejectReason::kOverloaded);
  metrics_->OnAuthFailure(*get_product_, clink::AuthFailure::kTimestamp);
  metrics_->OnIdempotency(*create_payment_, clink::IdempotencyResult::kReplayed);

  const std::vector<Sample> samples = Samples();
  const std::map<std::string, std::string> endpoint = {
      {"endpoint", "/product/{product_id}"}};
  auto requests = [&](const std::string& status_class) {
    return Sum(samples, "clink_gateway_upstream_requests_total",
               {{"endpoint", "/product/{product_id}"},
                {"method", "GET"},
                {"status_class", status_class}});
  };
  EXPECT_EQ(requests("5xx"), 1);
  EXPECT_EQ(requests("2xx"), 1);
  EXPECT_EQ(requests("4xx"), 1);
  EXPECT_EQ(requests("error"), 2);
  // The unsent attempt has no upstream latency.
  EXPECT_EQ(Sum(samples,
                "clink_gateway_upstream_request_duration_seconds_count",
                endpoint),
            4);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_response_bytes_total",
                endpoint),
            900);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_connections_opened_total"),
            1);
  // The 200, the lost connection and the 429 went out on pooled
  // connections; the connect failure was never sent.
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_connections_reused_total"),
            3);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_in_flight_requests"), 1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_transport_errors_total",
                {{"kind", "connection_lost"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_transport_errors_total",
                {{"kind", "connect"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_throttled_total", endpoint),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_retries_total", endpoint), 1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_unknown_fields_total",
                endpoint),
            2);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_retries_denied_total",
                {{"reason", "budget"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_rejections_total",
                {{"reason", "overloaded"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_auth_failures_total",
                {{"reason", "timestamp"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_auth_failures_total",
                {{"reason", "key"}}),
            0);
  EXPECT_EQ(Sum(samples, "clink_gateway_idempotency_requests_total",
                {{"result", "replayed"}}),
            1);
}

TEST_F(GatewayMetricsTest, EventDeliveriesAcksAndStoreErrors) {
  EventObserver& events = *metrics_;
  events.OnStreamOpened("default", "fulfilment");
  events.OnStreamOpened("default", "fulfilment");
  events.OnStreamClosed("default", "fulfilment");
  events.OnStreamOpened("unconfigured", "fulfilment");  // Ignored.
  events.OnDelivered("default", "fulfilment", 1);
  events.OnDelivered("default", "fulfilment", 1);
  events.OnDelivered("default", "fulfilment", 3);
  events.OnAcknowledged("default", "fulfilment", 2);
  events.OnOldestUnacknowledgedAge("default", "fulfilment",
                                   absl::Milliseconds(1500));
  events.OnStoreError("claim");
  const std::vector<Sample> samples = Samples();
  const std::map<std::string, std::string> sub = {
      {"merchant", "default"}, {"subscription", "fulfilment"}};
  EXPECT_EQ(Sum(samples, "clink_gateway_event_stream_subscribers", sub), 1);
  EXPECT_EQ(Select(samples, "clink_gateway_event_stream_subscribers").size(),
            1u);
  auto with = [&sub](const char* key, const char* value) {
    auto labels = sub;
    labels[key] = value;
    return labels;
  };
  EXPECT_EQ(Sum(samples, "clink_gateway_event_deliveries_total",
                with("delivery", "first")),
            2);
  EXPECT_EQ(Sum(samples, "clink_gateway_event_deliveries_total",
                with("delivery", "redelivery")),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_event_acknowledged_total", sub), 2);
  EXPECT_EQ(Sum(samples, "clink_gateway_event_oldest_unacked_age_seconds", sub),
            1.5);
  EXPECT_EQ(Sum(samples, "clink_gateway_event_store_errors_total",
                {{"operation", "claim"}}),
            1);
  // Every operation's series exists from the start.
  EXPECT_EQ(Select(samples, "clink_gateway_event_store_errors_total").size(),
            6u);
}

TEST_F(GatewayMetricsTest, StoreWriteRetriesAreCountedByOperationAndResult) {
  metrics_->OnIdempotencyStoreRetry(clink::StoreWrite::kRelease,
                                    clink::StoreRetryResult::kFailed);
  metrics_->OnIdempotencyStoreRetry(clink::StoreWrite::kRelease,
                                    clink::StoreRetryResult::kOk);
  metrics_->OnIdempotencyStoreRetry(clink::StoreWrite::kComplete,
                                    clink::StoreRetryResult::kGaveUp);
  std::vector<Sample> samples = Samples();
  const char* kName = "clink_gateway_idempotency_store_retries_total";
  EXPECT_EQ(Sum(samples, kName, {{"operation", "release"}, {"result", "ok"}}),
            1);
  EXPECT_EQ(
      Sum(samples, kName, {{"operation", "release"}, {"result", "failed"}}), 1);
  EXPECT_EQ(
      Sum(samples, kName, {{"operation", "complete"}, {"result", "gave_up"}}),
      1);
  EXPECT_EQ(Sum(samples, kName, {{"operation", "complete"}, {"result", "ok"}}),
            0);
}

TEST_F(GatewayMetricsTest, EgressDecisionsAreCountedByReasonFromZero) {
  std::vector<Sample> samples = Samples();
  // Every reason but "none" exists at 0 in both families.
  for (const char* family : {"clink_gateway_egress_denied_total",
                             "clink_gateway_egress_would_deny_total"}) {
    EXPECT_EQ(Select(samples, family).size(), 11u) << family;
    for (const char* reason :
         {"unspecified", "loopback", "private", "link_local",
          "carrier_grade_nat", "multicast", "broadcast", "reserved",
          "documentation", "unique_local", "not_allowed_host"}) {
      EXPECT_EQ(Select(samples, family, {{"reason", reason}}).size(), 1u)
          << family << " " << reason;
    }
    EXPECT_EQ(Sum(samples, family), 0) << family;
  }
  metrics_->OnEgressDenied(http::AddressClass::kLoopback);
  metrics_->OnEgressDenied(http::AddressClass::kLoopback);
  metrics_->OnEgressDenied(http::AddressClass::kLinkLocal);
  metrics_->OnEgressWouldDeny(http::AddressClass::kPrivate);
  samples = Samples();
  EXPECT_EQ(Sum(samples, "clink_gateway_egress_denied_total",
                {{"reason", "loopback"}}),
            2);
  EXPECT_EQ(Sum(samples, "clink_gateway_egress_denied_total",
                {{"reason", "link_local"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_egress_would_deny_total",
                {{"reason", "private"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_egress_would_deny_total"), 1);
}

TEST_F(GatewayMetricsTest, MethodsItWasNotBuiltForAreIgnored) {
  clink::RestMethod stranger;
  stranger.method = v1::GetProductRequest::descriptor()->file()->service(0)
                        ->method(0);
  metrics_->OnRpcStarted(stranger);
  metrics_->OnRpcHandled(stranger, absl::StatusCode::kOk, absl::Seconds(1), "");
  clink::AttemptInfo attempt = Attempt(200, 0);
  attempt.method = &stranger;
  metrics_->OnAttempt(attempt);
  const std::vector<Sample> samples = Samples();
  EXPECT_EQ(Sum(samples, "grpc_server_started_total"), 0);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total"), 0);
}

TEST(GatewayMetricsCallerTest, CallerLabelIsAPolicyPrincipalOtherOrAnonymous) {
  auto codec =
      clink::RestCodec::CreateForServices(clink::GatewayServiceNames());
  ASSERT_TRUE(codec.ok()) << codec.status();
  const clink::RestMethod* create_payment =
      (*codec)->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  ASSERT_NE(create_payment, nullptr);
  const std::string checkout = "spiffe://cluster.local/ns/shop/sa/checkout-web";
  auto metrics = GatewayMetrics::Create((*codec)->methods(), BuildInfo(),
                                        {"default"}, {}, {checkout});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  GatewayMetrics& m = **metrics;
  m.OnRpcHandled(*create_payment, absl::StatusCode::kOk, absl::Seconds(1),
                 checkout);
  m.OnRpcHandled(*create_payment, absl::StatusCode::kOk, absl::Seconds(1),
                 "spiffe://cluster.local/ns/evil/sa/made-up-1");
  m.OnRpcHandled(*create_payment, absl::StatusCode::kOk, absl::Seconds(1),
                 "spiffe://cluster.local/ns/evil/sa/made-up-2");
  m.OnRpcHandled(*create_payment, absl::StatusCode::kOk, absl::Seconds(1), "");
  clink::AttemptInfo attempt;
  attempt.method = create_payment;
  attempt.http_status = 200;
  attempt.sent = true;
  attempt.caller = "unknown-service";
  m.OnAttempt(attempt);
  attempt.caller = checkout;
  m.OnAttempt(attempt);

  const std::vector<Sample> samples = ParseExposition(m.ExpositionText());
  auto handled = [&](const std::string& caller) {
    return Sum(samples, "grpc_server_handled_total",
               {{"grpc_method", "CreatePayment"},
                {"grpc_code", "OK"},
                {"caller", caller}});
  };
  EXPECT_EQ(handled(checkout), 1);
  EXPECT_EQ(handled("other"), 2);
  EXPECT_EQ(handled("anonymous"), 1);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total"), 4);
  // No series for a caller the policy does not name: the label stays bounded.
  std::set<std::string> callers;
  for (const Sample& s : Select(samples, "grpc_server_handled_total")) {
    callers.insert(s.labels.at("caller"));
  }
  EXPECT_EQ(callers, (std::set<std::string>{"anonymous", "other", checkout}));
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total",
                {{"caller", "other"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total",
                {{"caller", checkout}}),
            1);
}

TEST_F(GatewayMetricsTest, GrpcCodeLabelsAreGoSpellings) {
  EXPECT_EQ(GrpcCodeLabel(absl::StatusCode::kOk), "OK");
  EXPECT_EQ(GrpcCodeLabel(absl::StatusCode::kCancelled), "Canceled");
  EXPECT_EQ(GrpcCodeLabel(absl::StatusCode::kDeadlineExceeded),
            "DeadlineExceeded");
  EXPECT_EQ(GrpcCodeLabel(absl::StatusCode::kUnauthenticated),
            "Unauthenticated");
  EXPECT_EQ(GrpcCodeLabel(static_cast<absl::StatusCode>(99)), "Unknown");
}

TEST_F(GatewayMetricsTest, ServesTheTextFormatOverHttpAndReportsATakenPort) {
  const absl::StatusOr<int> port = metrics_->Serve("127.0.0.1:0");
  ASSERT_TRUE(port.ok()) << port.status();
  ASSERT_GT(*port, 0);
  metrics_->OnRpcStarted(*get_product_);
  metrics_->OnRpcHandled(*get_product_, absl::StatusCode::kOk,
                         absl::Milliseconds(1), "");

  const auto response = ::clink_gateway::testing::HttpGet(*port, "/metrics");
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 200);
  EXPECT_TRUE(absl::StrContains(response->headers, "text/plain"))
      << response->headers;
  const std::vector<Sample> samples = ParseExposition(response->body);
  EXPECT_EQ(Sum(samples, "grpc_server_started_total", kGetProduct), 1);
  EXPECT_GT(Sum(samples, "process_resident_memory_bytes"), 0);
  // The Exposer's own scrape counter.
  EXPECT_FALSE(Select(samples, "exposer_scrapes_total").empty());

  // A second server on the same port: a Status, not an exception.
  auto other = GatewayMetrics::Create(codec_->methods(), BuildInfo{});
  ASSERT_TRUE(other.ok());
  const absl::StatusOr<int> taken =
      (*other)->Serve(absl::StrCat("127.0.0.1:", *port));
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kUnavailable)
      << taken.status();
  EXPECT_TRUE(absl::StrContains(taken.status().message(), "cannot serve"));
  // Serving twice is refused too.
  EXPECT_EQ(metrics_->Serve("127.0.0.1:0").status().code(),
            absl::StatusCode::kFailedPrecondition);

  // Stopping is prompt (civetweb alone would take up to 2 s) and frees the
  // port.
  const absl::Time before = absl::Now();
  metrics_->StopServing();
  EXPECT_LT(absl::Now() - before, absl::Milliseconds(500));
  EXPECT_FALSE(::clink_gateway::testing::HttpGet(*port, "/metrics").ok());
}

// --- Credentials and clock, per merchant --------------------------------------

constexpr char kKeyA[] = "sk_test_alpha_0123456789abcdef";
constexpr char kKeyB[] = "sk_test_bravo_0123456789abcdef";
constexpr char kKeyC[] = "sk_test_charlie_0123456789abcdef";

// A key set: the signing key, then optionally the previous key.
std::shared_ptr<const credentials::KeySet> Keys(
    std::vector<std::string> values) {
  std::vector<Secret> keys;
  for (std::string& value : values) keys.emplace_back(std::move(value));
  auto set = credentials::KeySet::Create(std::move(keys), SystemClock());
  EXPECT_TRUE(set.ok()) << set.status();
  return set.ok() ? *std::move(set) : nullptr;
}

std::string FingerprintOf(const char* key) { return Secret(key).Fingerprint(); }

class MerchantMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto codec = clink::RestCodec::CreateForServices(
        clink::GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    auto metrics = GatewayMetrics::Create(codec_->methods(), BuildInfo{},
                                          {"acme", "globex"});
    ASSERT_TRUE(metrics.ok()) << metrics.status();
    metrics_ = *std::move(metrics);
  }

  std::vector<Sample> Samples() const {
    std::vector<Sample> samples = ParseExposition(metrics_->ExpositionText());
    for (const Sample& s : samples) EXPECT_FALSE(s.name.empty());
    return samples;
  }

  // The key_info series of `merchant` as slot -> fingerprint (value 1 each).
  std::multimap<std::string, std::string> KeyInfo(
      const std::string& merchant) const {
    std::multimap<std::string, std::string> info;
    for (const Sample& s :
         Select(Samples(), "clink_gateway_key_info", {{"merchant", merchant}})) {
      EXPECT_EQ(s.value, 1);
      info.emplace(s.labels.at("slot"), s.labels.at("key_fingerprint"));
    }
    return info;
  }

  // key_fingerprint -> refusals of `merchant`.
  std::map<std::string, double> Refusals(const std::string& merchant) const {
    std::map<std::string, double> refusals;
    for (const Sample& s :
         Select(Samples(), "clink_gateway_upstream_key_refusals_total",
                {{"merchant", merchant}})) {
      refusals[s.labels.at("key_fingerprint")] = s.value;
    }
    return refusals;
  }

  std::unique_ptr<clink::RestCodec> codec_;
  std::unique_ptr<GatewayMetrics> metrics_;
};

TEST_F(MerchantMetricsTest, FixedSeriesExistAtZeroPerMerchantFromTheStart) {
  const std::vector<Sample> samples = Samples();
  for (const char* merchant : {"acme", "globex"}) {
    for (const char* outcome : {"applied", "unchanged", "missing", "empty",
                                "invalid", "unreadable"}) {
      EXPECT_EQ(Select(samples, "clink_gateway_key_reloads_total",
                       {{"merchant", merchant}, {"outcome", outcome}})
                    .size(),
                1u)
          << merchant << " " << outcome;
    }
    for (const char* result : {"recovered", "refused"}) {
      EXPECT_EQ(Select(samples, "clink_gateway_key_fallbacks_total",
                       {{"merchant", merchant}, {"result", result}})
                    .size(),
                1u)
          << merchant << " " << result;
    }
    EXPECT_EQ(Select(samples, "clink_gateway_clock_skew_critical",
                     {{"merchant", merchant}})
                  .size(),
              1u);
  }
  EXPECT_EQ(Select(samples, "clink_gateway_key_reloads_total").size(), 12u);
  EXPECT_EQ(Sum(samples, "clink_gateway_key_reloads_total"), 0);
  EXPECT_EQ(Select(samples, "clink_gateway_key_fallbacks_total").size(), 4u);
  EXPECT_EQ(Sum(samples, "clink_gateway_key_fallbacks_total"), 0);
  EXPECT_EQ(Sum(samples, "clink_gateway_clock_skew_critical"), 0);
  // Nothing measured or loaded yet: no made-up offset, timestamp or keys.
  EXPECT_TRUE(Select(samples, "clink_gateway_clock_offset_seconds").empty());
  EXPECT_TRUE(
      Select(samples, "clink_gateway_key_last_reload_success_timestamp_seconds")
          .empty());
  EXPECT_TRUE(Select(samples, "clink_gateway_key_info").empty());
  EXPECT_TRUE(
      Select(samples, "clink_gateway_upstream_key_refusals_total").empty());
}

TEST_F(MerchantMetricsTest, WithoutMerchantsThereIsOneNamedDefault) {
  auto metrics = GatewayMetrics::Create(codec_->methods(), BuildInfo{});
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  const std::vector<Sample> samples =
      ParseExposition((*metrics)->ExpositionText());
  EXPECT_EQ(Select(samples, "clink_gateway_key_reloads_total",
                   {{"merchant", "default"}})
                .size(),
            6u);
  EXPECT_EQ(Select(samples, "clink_gateway_key_reloads_total").size(), 6u);
}

TEST_F(MerchantMetricsTest, EmptyOrRepeatedMerchantNamesAreRefused) {
  EXPECT_EQ(GatewayMetrics::Create(codec_->methods(), BuildInfo{},
                                   {"acme", "acme"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      GatewayMetrics::Create(codec_->methods(), BuildInfo{}, {"acme", ""})
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
}

TEST_F(MerchantMetricsTest, ReloadsAreCountedByOutcomeAndStampOnlySuccesses) {
  const absl::Time t1 = absl::FromUnixSeconds(1700000000);
  const absl::Time t2 = t1 + absl::Seconds(10);
  const absl::Time t3 = t1 + absl::Milliseconds(20500);
  const std::map<std::string, std::string> acme = {{"merchant", "acme"}};
  auto stamp = [&](const std::string& merchant) {
    return Select(Samples(),
                  "clink_gateway_key_last_reload_success_timestamp_seconds",
                  {{"merchant", merchant}});
  };

  metrics_->OnKeyReload("acme", credentials::ReloadOutcome::kApplied, t1);
  ASSERT_EQ(stamp("acme").size(), 1u);
  EXPECT_EQ(stamp("acme")[0].value, 1700000000);
  // A rejected update counts but is not a successful read.
  metrics_->OnKeyReload("acme", credentials::ReloadOutcome::kInvalid, t2);
  metrics_->OnKeyReload("acme", credentials::ReloadOutcome::kMissing, t2);
  EXPECT_EQ(stamp("acme")[0].value, 1700000000);
  metrics_->OnKeyReload("acme", credentials::ReloadOutcome::kUnchanged, t3);
  EXPECT_EQ(stamp("acme")[0].value, 1700000020.5);
  // Another merchant's own series; unknown merchants are ignored.
  metrics_->OnKeyReload("globex", credentials::ReloadOutcome::kUnreadable, t3);
  metrics_->OnKeyReload("initech", credentials::ReloadOutcome::kApplied, t3);

  const std::vector<Sample> samples = Samples();
  auto reloads = [&](const std::string& merchant, const std::string& outcome) {
    return Sum(samples, "clink_gateway_key_reloads_total",
               {{"merchant", merchant}, {"outcome", outcome}});
  };
  EXPECT_EQ(reloads("acme", "applied"), 1);
  EXPECT_EQ(reloads("acme", "invalid"), 1);
  EXPECT_EQ(reloads("acme", "missing"), 1);
  EXPECT_EQ(reloads("acme", "unchanged"), 1);
  EXPECT_EQ(reloads("globex", "unreadable"), 1);
  EXPECT_EQ(Sum(samples, "clink_gateway_key_reloads_total"), 5);
  EXPECT_TRUE(stamp("globex").empty());
  for (const Sample& s : samples) {
    auto it = s.labels.find("merchant");
    EXPECT_TRUE(it == s.labels.end() || it->second != "initech") << s.name;
  }
}

TEST_F(MerchantMetricsTest, FirstKeySetStampsTheStartupRead) {
  const double before = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  metrics_->OnKeysInUse("acme", *Keys({kKeyA}), nullptr);
  const double after = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  const std::vector<Sample> stamp =
      Select(Samples(), "clink_gateway_key_last_reload_success_timestamp_seconds",
             {{"merchant", "acme"}});
  ASSERT_EQ(stamp.size(), 1u);
  EXPECT_GE(stamp[0].value, before - 0.001);
  EXPECT_LE(stamp[0].value, after + 0.001);
  // Later key sets come with their own OnKeyReload(kApplied, when): a set
  // reported again does not make an old read look fresh.
  metrics_->OnKeyReload("acme", credentials::ReloadOutcome::kApplied,
                        absl::FromUnixSeconds(1000));
  metrics_->OnKeysInUse("acme", *Keys({kKeyB}), nullptr);
  EXPECT_EQ(Sum(Samples(),
                "clink_gateway_key_last_reload_success_timestamp_seconds",
                {{"merchant", "acme"}}),
            1000);
}

TEST_F(MerchantMetricsTest, KeyRotationReplacesTheFingerprintSeries) {
  const std::string a = FingerprintOf(kKeyA);
  const std::string b = FingerprintOf(kKeyB);
  const std::string c = FingerprintOf(kKeyC);
  using Info = std::multimap<std::string, std::string>;

  // Startup: A signs.
  auto first = Keys({kKeyA});
  metrics_->OnKeysInUse("acme", *first, nullptr);
  EXPECT_EQ(KeyInfo("acme"), (Info{{"signing", a}}));
  EXPECT_EQ(Refusals("acme"), (std::map<std::string, double>{{a, 0}}));
  metrics_->OnKeyRefused("acme", a);
  metrics_->OnKeyRefused("acme", a);

  // The roll: B signs, A is the previous key. A keeps its refusals.
  auto rolled = Keys({kKeyB, kKeyA});
  metrics_->OnKeysInUse("acme", *rolled, first.get());
  EXPECT_EQ(KeyInfo("acme"), (Info{{"previous", a}, {"signing", b}}));
  EXPECT_EQ(Refusals("acme"), (std::map<std::string, double>{{a, 2}, {b, 0}}));
  metrics_->OnKeyRefused("acme", b);

  // A expired and was removed from the Secret: its series go.
  auto done = Keys({kKeyB});
  metrics_->OnKeysInUse("acme", *done, rolled.get());
  EXPECT_EQ(KeyInfo("acme"), (Info{{"signing", b}}));
  EXPECT_EQ(Refusals("acme"), (std::map<std::string, double>{{b, 1}}));

  // A straight replacement (no previous key): B's series go, C's come.
  metrics_->OnKeysInUse("acme", *Keys({kKeyC}), done.get());
  EXPECT_EQ(KeyInfo("acme"), (Info{{"signing", c}}));
  EXPECT_EQ(Refusals("acme"), (std::map<std::string, double>{{c, 0}}));
  // The other merchant is untouched.
  EXPECT_TRUE(KeyInfo("globex").empty());
  // No key value in the exposition, only fingerprints.
  const std::string text = metrics_->ExpositionText();
  for (const char* key : {kKeyA, kKeyB, kKeyC}) {
    EXPECT_FALSE(absl::StrContains(text, key)) << key;
  }
}

TEST_F(MerchantMetricsTest, SeriesFollowTheLastSetEvenWithoutReplaced) {
  // Two reports that both claim to be the first (e.g. a watcher restarted):
  // the first set's series still go.
  metrics_->OnKeysInUse("acme", *Keys({kKeyA}), nullptr);
  metrics_->OnKeysInUse("acme", *Keys({kKeyB}), nullptr);
  EXPECT_EQ(KeyInfo("acme"),
            (std::multimap<std::string, std::string>{
                {"signing", FingerprintOf(kKeyB)}}));
  EXPECT_EQ(Refusals("acme").size(), 1u);
}

TEST_F(MerchantMetricsTest, RefusalsOfKeysNotInUseAddNoSeries) {
  metrics_->OnKeysInUse("acme", *Keys({kKeyA}), nullptr);
  // A key rolled out while a call signed with it was in flight, a made-up
  // fingerprint, a merchant not configured, a merchant without keys yet.
  metrics_->OnKeyRefused("acme", FingerprintOf(kKeyB));
  metrics_->OnKeyRefused("acme", "sk_test_…ffff#00000000");
  metrics_->OnKeyRefused("initech", FingerprintOf(kKeyA));
  metrics_->OnKeyRefused("globex", FingerprintOf(kKeyA));
  const std::vector<Sample> samples = Samples();
  const std::vector<Sample> refusals =
      Select(samples, "clink_gateway_upstream_key_refusals_total");
  ASSERT_EQ(refusals.size(), 1u);
  EXPECT_EQ(refusals[0].labels.at("key_fingerprint"), FingerprintOf(kKeyA));
  EXPECT_EQ(refusals[0].value, 0);
}

TEST_F(MerchantMetricsTest, FallbacksAreCountedByResult) {
  metrics_->OnKeyFallback("acme", /*recovered=*/true);
  metrics_->OnKeyFallback("acme", /*recovered=*/true);
  metrics_->OnKeyFallback("acme", /*recovered=*/false);
  metrics_->OnKeyFallback("globex", /*recovered=*/false);
  metrics_->OnKeyFallback("initech", /*recovered=*/true);
  const std::vector<Sample> samples = Samples();
  auto fallbacks = [&](const std::string& merchant, const std::string& result) {
    return Sum(samples, "clink_gateway_key_fallbacks_total",
               {{"merchant", merchant}, {"result", result}});
  };
  EXPECT_EQ(fallbacks("acme", "recovered"), 2);
  EXPECT_EQ(fallbacks("acme", "refused"), 1);
  EXPECT_EQ(fallbacks("globex", "recovered"), 0);
  EXPECT_EQ(fallbacks("globex", "refused"), 1);
  EXPECT_EQ(Select(samples, "clink_gateway_key_fallbacks_total").size(), 4u);
}

TEST_F(MerchantMetricsTest, ReconciliationsAreCountedByMerchantAndResult) {
  auto reconciled = [&](const std::vector<Sample>& samples,
                        const std::string& merchant,
                        const std::string& result) {
    return Sum(samples, "clink_gateway_outcome_reconciliations_total",
               {{"merchant", merchant}, {"result", result}});
  };
  std::vector<Sample> samples = Samples();
  // Every series from the start, at 0.
  EXPECT_EQ(
      Select(samples, "clink_gateway_outcome_reconciliations_total").size(),
      4u);
  EXPECT_EQ(reconciled(samples, "acme", "resolved"), 0);
  EXPECT_EQ(Sum(samples, "clink_gateway_outcome_reconciliations_pending", {}),
            0);

  metrics_->OnReconciliation("acme", clink::ReconciliationResult::kResolved);
  metrics_->OnReconciliation("acme", clink::ReconciliationResult::kResolved);
  metrics_->OnReconciliation("globex",
                             clink::ReconciliationResult::kUnresolved);
  metrics_->OnReconciliation("initech",
                             clink::ReconciliationResult::kResolved);
  metrics_->OnReconciliationsPending(3);
  samples = Samples();
  EXPECT_EQ(reconciled(samples, "acme", "resolved"), 2);
  EXPECT_EQ(reconciled(samples, "acme", "unresolved"), 0);
  EXPECT_EQ(reconciled(samples, "globex", "unresolved"), 1);
  EXPECT_EQ(
      Select(samples, "clink_gateway_outcome_reconciliations_total").size(),
      4u);
  EXPECT_EQ(Sum(samples, "clink_gateway_outcome_reconciliations_pending", {}),
            3);
}

TEST_F(MerchantMetricsTest, ClockOffsetAppearsWithTheFirstMeasurement) {
  using clink::ClockSkewLevel;
  auto offset = [&](const std::string& merchant) {
    return Select(Samples(), "clink_gateway_clock_offset_seconds",
                  {{"merchant", merchant}});
  };
  auto critical = [&](const std::string& merchant) {
    return Sum(Samples(), "clink_gateway_clock_skew_critical",
               {{"merchant", merchant}});
  };
  metrics_->OnClockOffset("acme", absl::Milliseconds(-42500),
                          ClockSkewLevel::kWarning);
  ASSERT_EQ(offset("acme").size(), 1u);
  EXPECT_EQ(offset("acme")[0].value, -42.5);
  EXPECT_EQ(critical("acme"), 0);
  EXPECT_TRUE(offset("globex").empty());

  metrics_->OnClockOffset("acme", absl::Seconds(95), ClockSkewLevel::kCritical);
  EXPECT_EQ(offset("acme")[0].value, 95);
  EXPECT_EQ(critical("acme"), 1);
  EXPECT_EQ(critical("globex"), 0);

  metrics_->OnClockOffset("acme", absl::Milliseconds(250), ClockSkewLevel::kOk);
  EXPECT_EQ(offset("acme")[0].value, 0.25);
  EXPECT_EQ(critical("acme"), 0);

  metrics_->OnClockOffset("initech", absl::Seconds(200),
                          ClockSkewLevel::kCritical);
  EXPECT_EQ(Select(Samples(), "clink_gateway_clock_offset_seconds").size(), 1u);
  EXPECT_EQ(Sum(Samples(), "clink_gateway_clock_skew_critical"), 0);
}

// Rolls key sets back and forth while other threads report refusals and
// scrape: the key that stays in every set keeps one counter that sees every
// refusal, and the exported key series always match one set.
TEST_F(MerchantMetricsTest, ConcurrentRollsRefusalsAndScrapes) {
  const std::string a = FingerprintOf(kKeyA);
  const std::string b = FingerprintOf(kKeyB);
  const std::string c = FingerprintOf(kKeyC);
  auto ab = Keys({kKeyA, kKeyB});
  auto ca = Keys({kKeyC, kKeyA});
  metrics_->OnKeysInUse("acme", *ab, nullptr);
  constexpr int kRolls = 300;
  constexpr int kRefusers = 3;
  constexpr int kRefusalsEach = 2000;
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (int i = 0; i < kRolls; ++i) {
      metrics_->OnKeysInUse("acme", i % 2 == 0 ? *ca : *ab,
                            i % 2 == 0 ? ab.get() : ca.get());
    }
  });
  for (int t = 0; t < kRefusers; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRefusalsEach; ++i) {
        metrics_->OnKeyRefused("acme", a);
        metrics_->OnKeyRefused("acme", b);
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) {
      const std::vector<Sample> samples =
          ParseExposition(metrics_->ExpositionText());
      // Old series go before new ones come: never more than two slots.
      const std::vector<Sample> info =
          Select(samples, "clink_gateway_key_info");
      EXPECT_LE(info.size(), 2u);
      for (const Sample& s : info) {
        EXPECT_TRUE(s.labels.at("key_fingerprint") == a ||
                    s.labels.at("key_fingerprint") == b ||
                    s.labels.at("key_fingerprint") == c);
      }
    }
  });
  for (std::thread& t : threads) t.join();
  // kRolls is even: the last set is {A, B} again.
  EXPECT_EQ(KeyInfo("acme"),
            (std::multimap<std::string, std::string>{{"previous", b},
                                                      {"signing", a}}));
  EXPECT_EQ(Refusals("acme").at(a), kRefusers * kRefusalsEach);
}

TEST_F(GatewayMetricsTest, WebhooksAreCountedByMerchantResultAndType) {
  using webhooks::WebhookResult;
  std::vector<Sample> samples = Samples();
  // Every result of every merchant, and of "unknown", exists at 0.
  EXPECT_EQ(Select(samples, "clink_gateway_webhooks_received_total").size(),
            2u * webhooks::kWebhookResults);
  EXPECT_EQ(Select(samples, "clink_gateway_events_stored_total",
                   {{"merchant", "default"}})
                .size(),
            45u);  // 44 §13.1 names and "other".

  metrics_->OnWebhookReceived("default", WebhookResult::kAccepted);
  metrics_->OnWebhookReceived("default", WebhookResult::kDuplicate);
  metrics_->OnWebhookReceived("unknown", WebhookResult::kNotFound);
  // Not a configured merchant: counted as "unknown", no new label value.
  metrics_->OnWebhookReceived("nobody", WebhookResult::kUnknownMerchant);
  metrics_->OnWebhookIngested("default", absl::Milliseconds(3));
  metrics_->OnWebhookEventStored("default", "invoice.paid");
  metrics_->OnWebhookEventStored("default", "something.new");
  samples = Samples();
  EXPECT_EQ(Sum(samples, "clink_gateway_webhooks_received_total",
                {{"merchant", "default"}, {"result", "accepted"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_webhooks_received_total",
                {{"merchant", "default"}, {"result", "duplicate"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_webhooks_received_total",
                {{"merchant", "unknown"}}),
            2);
  EXPECT_TRUE(Select(samples, "clink_gateway_webhooks_received_total",
                     {{"merchant", "nobody"}})
                  .empty());
  EXPECT_EQ(Sum(samples, "clink_gateway_webhook_ingest_duration_seconds_count",
                {{"merchant", "default"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_events_stored_total",
                {{"type", "invoice.paid"}}),
            1);
  EXPECT_EQ(Sum(samples, "clink_gateway_events_stored_total",
                {{"type", "other"}}),
            1);
}

}  // namespace
}  // namespace clink_gateway::server
