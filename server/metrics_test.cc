#include "server/metrics.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/clink/upstream_observer.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_types.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
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
  EXPECT_EQ(Select(samples, "grpc_server_handled_total").size(), rpcs * 17);
  EXPECT_EQ(Select(samples, "grpc_server_handled_total",
                   {{"grpc_code", "InvalidArgument"}})
                .size(),
            rpcs);
  EXPECT_EQ(Sum(samples, "grpc_server_handled_total"), 0);
  EXPECT_EQ(Select(samples, "clink_gateway_upstream_requests_total").size(),
            rpcs * 6);
  EXPECT_EQ(Select(samples, "clink_gateway_upstream_requests_total",
                   {{"endpoint", "/product/{product_id}"},
                    {"method", "GET"},
                    {"status_class", "error"}})
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
                           absl::Microseconds(700));
  }
  metrics_->OnRpcStarted(*get_product_);
  metrics_->OnRpcHandled(*get_product_, absl::StatusCode::kInvalidArgument,
                         absl::Seconds(2));
  metrics_->OnRpcStarted(*create_payment_);
  metrics_->OnRpcHandled(*create_payment_, absl::StatusCode::kUnavailable,
                         absl::Milliseconds(40));

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
  metrics_->OnRpcHandled(stranger, absl::StatusCode::kOk, absl::Seconds(1));
  clink::AttemptInfo attempt = Attempt(200, 0);
  attempt.method = &stranger;
  metrics_->OnAttempt(attempt);
  const std::vector<Sample> samples = Samples();
  EXPECT_EQ(Sum(samples, "grpc_server_started_total"), 0);
  EXPECT_EQ(Sum(samples, "clink_gateway_upstream_requests_total"), 0);
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
                         absl::Milliseconds(1));

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

}  // namespace
}  // namespace clink_gateway::server
