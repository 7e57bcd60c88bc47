// The gateway's webhook listener end to end: --webhook_listen on port 0, the
// default merchant's webhook-secret in its key directory, an EventStore passed
// in, and the webhook metrics on /metrics.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "adapters/events/testing/fake_event_store.h"
#include "adapters/webhooks/webhook_signature.h"
#include "common/testing/exposition.h"
#include "common/testing/http_get.h"
#include "gtest/gtest.h"
#include "tests/integration/gateway_fixture.h"

namespace clink_gateway::testing {
namespace {

constexpr char kWebhookSecret[] = "whsec_integration_0123456789";

class WebhookTest : public GatewayFixture {
 protected:
  void Configure(server::GatewayOptions& options) override {
    key_volume_->Write(
        {{"api-key", kTestApiKey}, {"webhook-secret", kWebhookSecret}});
    options.webhook_listen = "127.0.0.1:0";
    options.metrics_listen = "127.0.0.1:0";
    options.event_store = store_;
  }

  int Deliver(const std::string& body, const std::string& secret) {
    const std::string ts = absl::StrCat(absl::ToUnixMillis(absl::Now()));
    const std::string request = absl::StrCat(
        "POST /webhooks/clink HTTP/1.1\r\nHost: gateway\r\n"
        "Connection: close\r\nContent-Type: application/json\r\n"
        "X-Clink-Timestamp: ", ts, "\r\nX-Clink-Signature: ",
        webhooks::SignWebhook(secret, ts, body),
        "\r\nX-Clink-SignType: SHA256\r\nContent-Length: ", body.size(),
        "\r\n\r\n", body);
    const absl::StatusOr<HttpGetResponse> response =
        HttpExchange(gateway_->webhook_port(), request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? response->status_code : 0;
  }

  std::vector<Sample> Scrape() {
    const absl::StatusOr<HttpGetResponse> response =
        HttpGet(gateway_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? ParseExposition(response->body)
                         : std::vector<Sample>{};
  }

  std::shared_ptr<events::FakeEventStore> store_ =
      std::make_shared<events::FakeEventStore>();
};

TEST_F(WebhookTest, SignedEventIsStoredOnceAndCounted) {
  ASSERT_GT(gateway_->webhook_port(), 0);
  const std::string body =
      R"({"id":"evt_int_1","type":"order.succeeded","created":1750062041000,)"
      R"("data":{"object":{"orderId":"ord_1"}}})";
  EXPECT_EQ(Deliver(body, kWebhookSecret), 200);
  EXPECT_EQ(Deliver(body, kWebhookSecret), 200);
  EXPECT_EQ(Deliver(body, "whsec_wrong"), 401);
  ASSERT_EQ(store_->events().size(), 1u);
  EXPECT_EQ(store_->events()[0].merchant, "default");
  EXPECT_EQ(store_->events()[0].body, body);

  // What reached /metrics (the series themselves: server/metrics_test.cc).
  const std::vector<Sample> samples = Scrape();
  for (const char* result : {"accepted", "duplicate", "bad_signature"}) {
    EXPECT_EQ(Sum(samples, "clink_gateway_webhooks_received_total",
                  {{"merchant", "default"}, {"result", result}}),
              1)
        << result;
  }
  EXPECT_EQ(Sum(samples, "clink_gateway_events_stored_total",
                {{"type", "order.succeeded"}}),
            1);
}

}  // namespace
}  // namespace clink_gateway::testing
