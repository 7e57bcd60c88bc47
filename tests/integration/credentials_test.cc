// Key rotation, several merchants and the clock-skew guard, end to end: an
// in-process gateway whose keys live in a Secret volume laid out the way the
// kubelet writes it, in front of the Clink emulator.
#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/credentials/testing/secret_volume.h"
#include "common/logging.h"
#include "common/secret.h"
#include "common/testing/exposition.h"
#include "common/testing/http_get.h"
#include "gtest/gtest.h"
#include "tests/emulator/merchant_api.h"
#include "tests/integration/gateway_fixture.h"

namespace clink_gateway::testing {
namespace {

// An sk_prod_-shaped fixture that is obviously not a key (two literals, so
// secret scanners do not take it for a committed production key).
constexpr char kFakeProdKey[] = "sk_prod_" "FAKE0test0fixture";

namespace v1 = ::clink::gateway::v1;

constexpr char kNewKey[] = "sk_test_rotated_new_0123456789abcdef";

// The old key is the fixture's kTestApiKey.
class CredentialsTest : public GatewayFixture {
 protected:
  void Configure(server::GatewayOptions& options) override {
    options.metrics_listen = "127.0.0.1:0";
    options.key_reload_interval = kReloadInterval;
    // One sample per response, the latest one counts: the test controls the
    // emulator's clock directly.
    options.clock_skew.min_sample_interval = absl::ZeroDuration();
    options.clock_skew.window = 1;
    options.clock_skew_probe_interval = absl::Milliseconds(20);
  }

  // A read of the seeded catalog, as `merchant` (or the default).
  grpc::Status GetProduct(const std::string& merchant = "") {
    auto context = Context();
    if (!merchant.empty()) context->AddMetadata("x-clink-merchant", merchant);
    v1::GetProductRequest request;
    request.set_product_id(emulator::kSeedProductBasic);
    v1::GetProductResponse response;
    return billing_->GetProduct(context.get(), request, &response);
  }

  std::vector<Sample> Scrape() {
    absl::StatusOr<HttpGetResponse> response =
        HttpGet(gateway_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    scraped_ += response.ok() ? response->body : "";
    return ParseExposition(response.ok() ? response->body : "");
  }

  static constexpr absl::Duration kReloadInterval = absl::Seconds(2);
  std::string scraped_;  // Every metrics page read, for the no-key check.
};

// Calls `call` from `threads` threads until stopped; counts failures.
class SteadyLoad {
 public:
  SteadyLoad(std::function<grpc::Status()> call, int threads) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, call] {
        while (!stop_.load()) {
          const grpc::Status status = call();
          calls_.fetch_add(1);
          if (!status.ok()) {
            failures_.fetch_add(1);
            absl::MutexLock lock(&mu_);
            first_failure_ =
                absl::StrCat(status.error_code(), " ", status.error_message());
          }
        }
      });
    }
  }
  ~SteadyLoad() { Stop(); }
  void Stop() {
    stop_.store(true);
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }
  int64_t calls() const { return calls_.load(); }
  int64_t failures() const { return failures_.load(); }
  std::string first_failure() {
    absl::MutexLock lock(&mu_);
    return first_failure_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> calls_{0};
  std::atomic<int64_t> failures_{0};
  absl::Mutex mu_;
  std::string first_failure_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

// Waits, request by request, until the emulator has seen `key` at least
// `n` times; false at `deadline`.
bool WaitForKey(const emulator::ClinkEmulator& emulator, const char* key,
                int64_t n, absl::Time deadline) {
  while (emulator.requests_with_key(key) < n) {
    const int64_t seen = emulator.requests().size();
    if (absl::Now() >= deadline ||
        !emulator.WaitForRequests(seen + 1, deadline - absl::Now())) {
      return emulator.requests_with_key(key) >= n;
    }
  }
  return true;
}

TEST_F(CredentialsTest, RotationUnderSteadyLoadFailsNoCall) {
  ::testing::internal::CaptureStdout();
  // Clink has rolled the key: both are valid until the old one expires.
  ASSERT_TRUE(emulator_->SetApiKeys("default", {kTestApiKey, kNewKey}).ok());
  // Some calls are in flight across the swap.
  emulator::Fault slow;
  slow.kind = emulator::Fault::Kind::kLatency;
  slow.latency = absl::Milliseconds(300);
  slow.count = 8;
  emulator_->SetFault(slow);
  SteadyLoad load([this] { return GetProduct(); }, 4);
  ASSERT_TRUE(
      WaitForKey(*emulator_, kTestApiKey, 50, absl::Now() + absl::Seconds(10)));

  // The kubelet publishes the new Secret version.
  const absl::Time swapped = absl::Now();
  key_volume_->Write({{"api-key", kNewKey}, {"api-key-previous", kTestApiKey}});
  ASSERT_TRUE(WaitForKey(*emulator_, kNewKey, 1,
                         swapped + kReloadInterval + absl::Seconds(1)))
      << "the new key did not reach Clink within the reload interval + 1 s";
  const absl::Duration pickup = absl::Now() - swapped;

  // The old key expires at Clink; the gateway no longer needs it.
  ASSERT_TRUE(
      WaitForKey(*emulator_, kNewKey, 200, absl::Now() + absl::Seconds(10)));
  ASSERT_TRUE(emulator_->SetApiKeys("default", {kNewKey}).ok());
  const int64_t before = emulator_->requests_with_key(kNewKey);
  ASSERT_TRUE(WaitForKey(*emulator_, kNewKey, before + 200,
                         absl::Now() + absl::Seconds(10)));
  load.Stop();

  FlushLogs();
  const std::string logs = ::testing::internal::GetCapturedStdout();
  EXPECT_EQ(load.failures(), 0) << load.first_failure();
  std::printf(
      "key rotation: %lld calls, 0 failed, new key seen at Clink %s "
      "after the Secret swap\n",
      static_cast<long long>(load.calls()),
      absl::FormatDuration(pickup).c_str());
  const std::vector<Sample> metrics = Scrape();
  EXPECT_EQ(Sum(metrics, "clink_gateway_key_reloads_total",
                {{"merchant", "default"}, {"outcome", "applied"}}),
            1);
  EXPECT_EQ(Sum(metrics, "clink_gateway_key_info",
                {{"merchant", "default"},
                 {"slot", "signing"},
                 {"key_fingerprint", Secret(kNewKey).Fingerprint()}}),
            1);
  EXPECT_TRUE(absl::StrContains(logs, "keys_reloaded"));
  for (const char* key : {kTestApiKey, kNewKey}) {
    EXPECT_FALSE(absl::StrContains(logs, key)) << key;
    EXPECT_FALSE(absl::StrContains(scraped_, key)) << key;
  }
}

TEST_F(CredentialsTest, FallbackRecoversInBothDirectionsWithoutAFailedCall) {
  ::testing::internal::CaptureStdout();
  key_volume_->Write({{"api-key", kNewKey}, {"api-key-previous", kTestApiKey}});
  // Both keys valid at Clink until the gateway signs from the new set.
  ASSERT_TRUE(emulator_->SetApiKeys("default", {kTestApiKey, kNewKey}).ok());
  const absl::Time deadline = absl::Now() + kReloadInterval + absl::Seconds(1);
  while (emulator_->requests_with_key(kNewKey) == 0) {
    ASSERT_LT(absl::Now(), deadline);
    ASSERT_TRUE(GetProduct().ok());
  }

  // The new key is not active at Clink yet: the gateway signs with it, is
  // refused, and sends the same request again with the previous key.
  ASSERT_TRUE(emulator_->SetApiKeys("default", {kTestApiKey}).ok());
  for (int i = 0; i < 20; ++i) {
    const grpc::Status status = GetProduct();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }
  // The reverse: Clink revokes the old key while the gateway (having learnt
  // that the old key works) still signs with it.
  ASSERT_TRUE(emulator_->SetApiKeys("default", {kNewKey}).ok());
  for (int i = 0; i < 20; ++i) {
    const grpc::Status status = GetProduct();
    ASSERT_TRUE(status.ok()) << status.error_message();
  }

  const std::vector<Sample> metrics = Scrape();
  // One refusal each way, then the key that works is used directly.
  EXPECT_EQ(Sum(metrics, "clink_gateway_key_fallbacks_total",
                {{"merchant", "default"}, {"result", "recovered"}}),
            2);
  EXPECT_EQ(Sum(metrics, "clink_gateway_key_fallbacks_total",
                {{"merchant", "default"}, {"result", "refused"}}),
            0);
  EXPECT_EQ(Sum(metrics, "clink_gateway_upstream_key_refusals_total",
                {{"key_fingerprint", Secret(kNewKey).Fingerprint()}}),
            1);
  EXPECT_EQ(Sum(metrics, "clink_gateway_upstream_key_refusals_total",
                {{"key_fingerprint", Secret(kTestApiKey).Fingerprint()}}),
            1);
  FlushLogs();
  const std::string logs = ::testing::internal::GetCapturedStdout();
  for (const char* key : {kTestApiKey, kNewKey}) {
    EXPECT_FALSE(absl::StrContains(logs, key)) << key;
    EXPECT_FALSE(absl::StrContains(scraped_, key)) << key;
  }
  EXPECT_TRUE(absl::StrContains(logs, Secret(kNewKey).Fingerprint()));
}

TEST_F(CredentialsTest, BrokenUpdatesKeepTheKeyInUseAndReadiness) {
  ::testing::internal::CaptureStdout();
  const std::vector<std::pair<std::map<std::string, std::string>, std::string>>
      broken = {
          {{{"api-key", ""}}, "empty"},
          {{{"api-key", "pk_test_publishable_0123456789"}}, "invalid"},
          {{{"other-key", kNewKey}}, "missing"},
          {{{"api-key", kNewKey},
            {"api-key-previous", kFakeProdKey}},
           "invalid"},
      };
  auto count = [&](const std::string& outcome) {
    return Sum(Scrape(), "clink_gateway_key_reloads_total",
               {{"merchant", "default"}, {"outcome", outcome}});
  };
  for (const auto& [files, outcome] : broken) {
    const double before = count(outcome);
    key_volume_->Write(files);
    // Until the watcher has judged this version, calls keep working on the
    // old key.
    const absl::Time deadline =
        absl::Now() + kReloadInterval + absl::Seconds(1);
    while (count(outcome) == before) {
      ASSERT_LT(absl::Now(), deadline) << outcome << " was never reported";
      const grpc::Status status = GetProduct();
      ASSERT_TRUE(status.ok()) << status.error_message();
    }
    const grpc::Status status = GetProduct();
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(HealthStatus(), 1);
  }
  EXPECT_EQ(count("applied"), 0);
  EXPECT_EQ(emulator_->requests_with_key(kNewKey), 0);
  FlushLogs();
  const std::string logs = ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(absl::StrContains(logs, "keys_reload_failed"));
  for (const char* secret :
       {kTestApiKey, kNewKey, "pk_test_publishable", kFakeProdKey}) {
    EXPECT_FALSE(absl::StrContains(logs, secret)) << secret;
    EXPECT_FALSE(absl::StrContains(scraped_, secret)) << secret;
  }
}

TEST_F(CredentialsTest, ClockSkewDrivesTheMetricAndReadiness) {
  ::testing::internal::CaptureStdout();
  auto offset_after_call = [&](absl::Duration skew) {
    emulator_->SetClockOffset(skew);
    const grpc::Status status = GetProduct();
    EXPECT_TRUE(status.ok()) << status.error_message();
    return Sum(Scrape(), "clink_gateway_clock_offset_seconds",
               {{"merchant", "default"}});
  };
  EXPECT_NEAR(offset_after_call(absl::ZeroDuration()), 0, 1.5);
  EXPECT_EQ(HealthStatus(), 1);

  EXPECT_NEAR(offset_after_call(absl::Seconds(45)), 45, 1.5);
  EXPECT_EQ(HealthStatus(), 1);  // A warning only.

  // Past 90 s: not ready (Clink refuses at 120 s), but alive, and calls still
  // work.
  EXPECT_NEAR(offset_after_call(absl::Seconds(-100)), -100, 1.5);
  EXPECT_EQ(HealthStatus(), 2);
  EXPECT_EQ(HealthStatus(server::GatewayServer::kLivenessService), 1);
  EXPECT_EQ(Sum(Scrape(), "clink_gateway_clock_skew_critical",
                {{"merchant", "default"}}),
            1);

  // The clock is fixed. A NOT_SERVING pod gets no calls; the gateway asks
  // Clink for the time itself (an unsigned request) and becomes ready again.
  const int64_t unsigned_before = emulator_->requests_with_key("");
  emulator_->SetClockOffset(absl::Seconds(2));
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (HealthStatus() != 1) {
    ASSERT_LT(absl::Now(), deadline) << "readiness did not come back";
    emulator_->WaitForRequests(emulator_->requests().size() + 1,
                               absl::Milliseconds(100));
  }
  EXPECT_GT(emulator_->requests_with_key(""), unsigned_before);
  const std::vector<Sample> metrics = Scrape();
  EXPECT_NEAR(Sum(metrics, "clink_gateway_clock_offset_seconds",
                  {{"merchant", "default"}}),
              2, 1.5);
  EXPECT_EQ(Sum(metrics, "clink_gateway_clock_skew_critical",
                {{"merchant", "default"}}),
            0);
  FlushLogs();
  const std::string logs = ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(absl::StrContains(logs, "\"skew_level\":\"warning\"")) << logs;
  EXPECT_TRUE(absl::StrContains(logs, "\"skew_level\":\"critical\"")) << logs;
}

// Two merchant accounts, the second on its own Clink base URL.
class TwoMerchantsTest : public CredentialsTest {
 protected:
  static constexpr char kGlobexKey[] = "sk_test_globex_0123456789abcdef";

  void Configure(server::GatewayOptions& options) override {
    CredentialsTest::Configure(options);
    emulator::ClinkEmulator::Options globex_options;
    globex_options.merchants = {{"globex", {kGlobexKey}}};
    globex_options.tls_cert_pem_path = ca_.server_pem;
    auto globex = emulator::ClinkEmulator::Start(globex_options);
    ASSERT_TRUE(globex.ok()) << globex.status();
    globex_ = *std::move(globex);
    globex_keys_ = std::make_unique<credentials::testing::SecretVolume>(
        absl::StrCat(temp_dir_, "/globex-key"));
    globex_keys_->Write({{"api-key", kGlobexKey}});
    options.merchants[0].name = "acme";
    options.merchants.push_back(
        {"globex", globex_keys_->dir(), globex_->base_url()});
    options.default_merchant = "acme";
  }

  std::unique_ptr<emulator::ClinkEmulator> globex_;
  std::unique_ptr<credentials::testing::SecretVolume> globex_keys_;
};

TEST_F(TwoMerchantsTest, EachCallReachesClinkWithItsMerchantsKey) {
  ASSERT_TRUE(GetProduct("globex").ok());
  ASSERT_TRUE(GetProduct().ok());  // The default merchant.
  ASSERT_TRUE(GetProduct("acme").ok());
  std::vector<emulator::RecordedRequest> acme = emulator_->requests();
  std::vector<emulator::RecordedRequest> globex = globex_->requests();
  ASSERT_EQ(acme.size(), 2u);
  ASSERT_EQ(globex.size(), 1u);
  EXPECT_EQ(globex[0].api_key, kGlobexKey);
  for (const auto& r : acme) EXPECT_EQ(r.api_key, kTestApiKey);

  // Unknown: refused before anything is sent, naming the metadata key.
  const grpc::Status unknown = GetProduct("initech");
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const google::rpc::BadRequest bad = BadRequestOf(unknown);
  ASSERT_EQ(bad.field_violations_size(), 1);
  EXPECT_EQ(bad.field_violations(0).field(), "x-clink-merchant");
  EXPECT_EQ(emulator_->requests().size(), 2u);
  EXPECT_EQ(globex_->requests().size(), 1u);

  const std::vector<Sample> metrics = Scrape();
  for (const auto& [merchant, key] : std::map<std::string, std::string>{
           {"acme", kTestApiKey}, {"globex", kGlobexKey}}) {
    EXPECT_EQ(Sum(metrics, "clink_gateway_key_info",
                  {{"merchant", merchant},
                   {"key_fingerprint", Secret(key).Fingerprint()}}),
              1)
        << merchant;
  }
}

TEST_F(TwoMerchantsTest, IdempotencyKeysAreScopedByMerchant) {
  auto create = [&](const std::string& merchant) {
    auto context = Context();
    context->AddMetadata("x-clink-merchant", merchant);
    context->AddMetadata("idempotency-key", "order-42");
    v1::CreatePaymentRequest request;
    request.set_customer_id(emulator::kSeedCustomerId);
    request.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
    request.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
    request.set_return_url("https://shop.example/return");
    request.set_amount("10.00");
    request.set_currency("USD");
    v1::CreatePaymentResponse response;
    return payment_->CreatePayment(context.get(), request, &response);
  };
  ASSERT_TRUE(create("acme").ok());
  ASSERT_TRUE(create("globex").ok());
  ASSERT_TRUE(create("acme").ok());  // Replayed.
  EXPECT_EQ(emulator_->requests().size(), 1u);
  EXPECT_EQ(globex_->requests().size(), 1u);
}

}  // namespace
}  // namespace clink_gateway::testing
