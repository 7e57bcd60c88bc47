#include "adapters/webhooks/webhook_listener.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "adapters/credentials/testing/secret_volume.h"
#include "adapters/events/event_store.h"
#include "adapters/events/testing/fake_event_store.h"
#include "adapters/webhooks/webhook_payload.h"
#include "adapters/webhooks/webhook_secrets.h"
#include "adapters/webhooks/webhook_signature.h"
#include "common/logging.h"
#include "common/sync.h"
#include "common/testing/http_get.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clink_gateway::webhooks {
namespace {

using credentials::testing::NewTempPath;
using credentials::testing::SecretVolume;
using events::FakeEventStore;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;

constexpr char kApiKey[] = "sk_test_0123456789abcdefghij";
constexpr char kSecret[] = "whsec_default_secret_0123456789";
constexpr char kAcmeSecret[] = "whsec_acme_secret_9876543210";

class RecordingObserver : public WebhookObserver {
 public:
  void OnWebhookReceived(absl::string_view merchant,
                         WebhookResult result) override {
    MutexLock lock(&mu_);
    results_.emplace_back(std::string(merchant),
                          std::string(WebhookResultName(result)));
  }
  void OnWebhookIngested(absl::string_view, absl::Duration) override {
    MutexLock lock(&mu_);
    ++ingested_;
  }
  void OnWebhookEventStored(absl::string_view merchant,
                            absl::string_view type) override {
    MutexLock lock(&mu_);
    stored_.emplace_back(std::string(merchant), std::string(type));
  }
  std::vector<std::pair<std::string, std::string>> results() const {
    MutexLock lock(&mu_);
    return results_;
  }
  std::vector<std::pair<std::string, std::string>> stored() const {
    MutexLock lock(&mu_);
    return stored_;
  }
  int ingested() const {
    MutexLock lock(&mu_);
    return ingested_;
  }

 private:
  mutable Mutex mu_;
  std::vector<std::pair<std::string, std::string>> results_
      ABSL_GUARDED_BY(mu_);
  std::vector<std::pair<std::string, std::string>> stored_
      ABSL_GUARDED_BY(mu_);
  int ingested_ ABSL_GUARDED_BY(mu_) = 0;
};

class RecordingEventListener : public events::EventListener {
 public:
  void OnEventStored(const events::StoredEvent& event) override {
    MutexLock lock(&mu_);
    ids_.push_back(event.event_id);
  }
  std::vector<std::string> ids() const {
    MutexLock lock(&mu_);
    return ids_;
  }

 private:
  mutable Mutex mu_;
  std::vector<std::string> ids_ ABSL_GUARDED_BY(mu_);
};

std::string Event(absl::string_view id, absl::string_view type = "order.succeeded") {
  return absl::StrCat(R"({"id":")", id, R"(","type":")", type,
                      R"(","object":"event","created":1750062041000,)",
                      R"("data":{"object":{"orderId":"ord_marker"}}})");
}

// Headers Clink sends with `body`, signed with `secret` now (+ `skew`).
std::map<std::string, std::string> Signed(
    absl::string_view body, absl::string_view secret = kSecret,
    absl::Duration skew = absl::ZeroDuration()) {
  const std::string ts =
      absl::StrCat(absl::ToUnixMillis(absl::Now() + skew));
  return {{"Content-Type", "application/json"},
          {kTimestampHeader, ts},
          {kSignatureHeader, SignWebhook(secret, ts, body)},
          {kSignTypeHeader, "SHA256"}};
}

class WebhookListenerTest : public ::testing::Test {
 protected:
  WebhookListenerTest()
      : default_volume_(NewTempPath("default")),
        acme_volume_(NewTempPath("acme")),
        bare_volume_(NewTempPath("bare")) {
    default_volume_.Write({{"api-key", kApiKey}, {"webhook-secret", kSecret}});
    acme_volume_.Write({{"api-key", kApiKey}, {"webhook-secret", kAcmeSecret}});
    bare_volume_.Write({{"api-key", kApiKey}});
    secrets_ = std::make_unique<WebhookSecrets>(
        std::vector<WebhookSecrets::Merchant>{
            {"default", default_volume_.dir()},
            {"acme", acme_volume_.dir()},
            {"bare", bare_volume_.dir()}});
    WebhookListener::Options options;
    options.listen = "127.0.0.1:0";
    options.num_threads = 4;
    options.observer = &observer_;
    options.event_listener = &event_listener_;
    absl::StatusOr<std::unique_ptr<WebhookListener>> listener =
        WebhookListener::Start(options, *secrets_, store_);
    EXPECT_TRUE(listener.ok()) << listener.status();
    listener_ = *std::move(listener);
  }

  testing::HttpGetResponse Send(
      absl::string_view method, absl::string_view path,
      const std::map<std::string, std::string>& headers,
      absl::string_view body, bool chunked = false) {
    std::string request = absl::StrCat(method, " ", path,
                                       " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                       "Connection: close\r\n");
    for (const auto& [name, value] : headers) {
      absl::StrAppend(&request, name, ": ", value, "\r\n");
    }
    if (chunked) {
      absl::StrAppend(&request, "Transfer-Encoding: chunked\r\n\r\n");
      constexpr size_t kChunk = 65536;
      for (size_t i = 0; i < body.size(); i += kChunk) {
        const absl::string_view chunk = body.substr(i, kChunk);
        absl::StrAppend(&request, absl::Hex(chunk.size()), "\r\n", chunk,
                        "\r\n");
      }
      absl::StrAppend(&request, "0\r\n\r\n");
    } else {
      if (!headers.count("Content-Length")) {
        absl::StrAppend(&request, "Content-Length: ", body.size(), "\r\n");
      }
      absl::StrAppend(&request, "\r\n", body);
    }
    absl::StatusOr<testing::HttpGetResponse> response =
        testing::HttpExchange(listener_->port(), request);
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : testing::HttpGetResponse{};
  }

  int Post(absl::string_view path,
           const std::map<std::string, std::string>& headers,
           absl::string_view body) {
    return Send("POST", path, headers, body).status_code;
  }

  SecretVolume default_volume_;
  SecretVolume acme_volume_;
  SecretVolume bare_volume_;
  std::unique_ptr<WebhookSecrets> secrets_;
  FakeEventStore store_;
  RecordingObserver observer_;
  RecordingEventListener event_listener_;
  std::unique_ptr<WebhookListener> listener_;
};

TEST_F(WebhookListenerTest, SignedDeliveryIsStoredAsReceived) {
  const std::string body = Event("evt_1");
  EXPECT_EQ(Post("/webhooks/clink", Signed(body), body), 200);
  const std::vector<events::StoredEvent> events = store_.events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].merchant, "default");
  EXPECT_EQ(events[0].event_id, "evt_1");
  EXPECT_EQ(events[0].type, "order.succeeded");
  EXPECT_EQ(events[0].body, body);
  EXPECT_EQ(events[0].create_time, absl::FromUnixMillis(1750062041000));
  EXPECT_LE(absl::AbsDuration(events[0].receive_time - absl::Now()),
            absl::Minutes(1));
  EXPECT_THAT(event_listener_.ids(), ElementsAre("evt_1"));
  EXPECT_THAT(observer_.results(), ElementsAre(Pair("default", "accepted")));
  EXPECT_THAT(observer_.stored(),
              ElementsAre(Pair("default", "order.succeeded")));
  EXPECT_EQ(observer_.ingested(), 1);
}

TEST_F(WebhookListenerTest, NamedMerchantUsesItsOwnSecret) {
  const std::string body = Event("evt_acme");
  EXPECT_EQ(Post("/webhooks/clink/acme", Signed(body, kSecret), body), 401);
  EXPECT_EQ(Post("/webhooks/clink/acme", Signed(body, kAcmeSecret), body), 200);
  EXPECT_EQ(Post("/webhooks/clink/default", Signed(body, kSecret), body), 200);
  const std::vector<events::StoredEvent> events = store_.events();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].merchant, "acme");
  EXPECT_EQ(events[1].merchant, "default");
}

TEST_F(WebhookListenerTest, TenDuplicateDeliveriesStoreOnce) {
  const std::string body = Event("evt_dup");
  for (int i = 0; i < 10; ++i) {
    // Each retry is signed afresh, as Clink does.
    EXPECT_EQ(Post("/webhooks/clink", Signed(body), body), 200) << i;
  }
  EXPECT_EQ(store_.append_calls(), 10);
  EXPECT_EQ(store_.events().size(), 1u);
  EXPECT_THAT(event_listener_.ids(), ElementsAre("evt_dup"));
  int accepted = 0;
  int duplicate = 0;
  for (const auto& [merchant, result] : observer_.results()) {
    accepted += result == "accepted";
    duplicate += result == "duplicate";
  }
  EXPECT_EQ(accepted, 1);
  EXPECT_EQ(duplicate, 9);
}

TEST_F(WebhookListenerTest, EveryRefusalHasItsStatusAndStoresNothing) {
  const std::string body = Event("evt_x");
  std::map<std::string, std::string> text = Signed(body);
  text["Content-Type"] = "text/plain";
  std::map<std::string, std::string> no_type = Signed(body);
  no_type.erase("Content-Type");
  std::map<std::string, std::string> unsigned_json = {
      {"Content-Type", "application/json"}};
  // Refused by its Content-Length, before the body is read.
  const std::string huge_body(kMaxWebhookBodyBytes + 1, 'x');
  std::map<std::string, std::string> huge = Signed(huge_body);
  const std::string junk = "not json at all";
  const std::string no_type_field = R"({"id":"evt_y"})";
  struct Case {
    std::string name;
    std::string method;
    std::string path;
    std::map<std::string, std::string> headers;
    std::string body;
    int status;
    std::string result;
  } cases[] = {
      {"other path", "POST", "/webhooks", Signed(body), body, 404, "not_found"},
      {"trailing slash", "POST", "/webhooks/clink/", Signed(body), body, 404,
       "not_found"},
      {"nested path", "POST", "/webhooks/clink/acme/x", Signed(body), body,
       404, "not_found"},
      {"root", "POST", "/", Signed(body), body, 404, "not_found"},
      {"GET", "GET", "/webhooks/clink", {}, "", 405, "method_not_allowed"},
      {"PUT", "PUT", "/webhooks/clink/acme", Signed(body), body, 405,
       "method_not_allowed"},
      {"unknown merchant", "POST", "/webhooks/clink/nobody", Signed(body),
       body, 404, "unknown_merchant"},
      {"merchant without secret", "POST", "/webhooks/clink/bare",
       Signed(body), body, 404, "unknown_merchant"},
      {"text/plain", "POST", "/webhooks/clink", text, body, 415,
       "unsupported_media_type"},
      {"no Content-Type", "POST", "/webhooks/clink", no_type, body, 415,
       "unsupported_media_type"},
      {"Content-Length over 1 MiB", "POST", "/webhooks/clink", huge,
       huge_body, 413, "too_large"},
      {"unsigned", "POST", "/webhooks/clink", unsigned_json, body, 401,
       "bad_signature"},
      {"wrong secret", "POST", "/webhooks/clink", Signed(body, "whsec_other"),
       body, 401, "bad_signature"},
      {"stale", "POST", "/webhooks/clink",
       Signed(body, kSecret, -absl::Minutes(6)), body, 401,
       "stale_timestamp"},
      {"future", "POST", "/webhooks/clink",
       Signed(body, kSecret, absl::Minutes(6)), body, 401, "stale_timestamp"},
      {"unsigned junk", "POST", "/webhooks/clink", unsigned_json, junk, 401,
       "bad_signature"},
      {"signed junk", "POST", "/webhooks/clink", Signed(junk), junk, 400,
       "malformed"},
      {"signed, no type", "POST", "/webhooks/clink", Signed(no_type_field),
       no_type_field, 400, "malformed"},
  };
  for (const Case& c : cases) {
    const testing::HttpGetResponse response =
        Send(c.method, c.path, c.headers, c.body);
    EXPECT_EQ(response.status_code, c.status) << c.name;
    if (c.status == 405) {
      EXPECT_THAT(response.headers, HasSubstr("Allow: POST")) << c.name;
    }
    ASSERT_FALSE(observer_.results().empty()) << c.name;
    EXPECT_EQ(observer_.results().back().second, c.result) << c.name;
  }
  EXPECT_TRUE(store_.events().empty());
  EXPECT_EQ(store_.append_calls(), 0);
  EXPECT_TRUE(event_listener_.ids().empty());
}

TEST_F(WebhookListenerTest, ChunkedBodiesAreCappedWhileReading) {
  const std::string small = Event("evt_chunked");
  EXPECT_EQ(Send("POST", "/webhooks/clink", Signed(small), small,
                 /*chunked=*/true)
                .status_code,
            200);
  const std::string big =
      absl::StrCat(R"({"id":"evt_big","type":"t","pad":")",
                   std::string(1100000, 'x'), "\"}");
  std::map<std::string, std::string> headers = Signed(big);
  EXPECT_EQ(Send("POST", "/webhooks/clink", headers, big, /*chunked=*/true)
                .status_code,
            413);
  ASSERT_EQ(store_.events().size(), 1u);
  EXPECT_EQ(store_.events()[0].event_id, "evt_chunked");
}

TEST_F(WebhookListenerTest, StoreUnavailableIs503ThenRetrySucceeds) {
  const std::string body = Event("evt_retry");
  store_.SetUnavailable(true);
  EXPECT_EQ(Post("/webhooks/clink", Signed(body), body), 503);
  EXPECT_EQ(observer_.results().back().second, "store_unavailable");
  EXPECT_TRUE(event_listener_.ids().empty());
  store_.SetUnavailable(false);
  EXPECT_EQ(Post("/webhooks/clink", Signed(body), body), 200);
  EXPECT_THAT(event_listener_.ids(), ElementsAre("evt_retry"));
}

TEST_F(WebhookListenerTest, LogsNeitherSecretSignatureNorPayload) {
  const std::string body = Event("evt_logged");
  const std::map<std::string, std::string> good = Signed(body);
  const std::map<std::string, std::string> bad = Signed(body, "whsec_other");
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(Post("/webhooks/clink", good, body), 200);
  EXPECT_EQ(Post("/webhooks/clink", bad, body), 401);
  const std::string junk = R"({"id":"evt_junk","type":7,"secret":"ord_marker"})";
  EXPECT_EQ(Post("/webhooks/clink", Signed(junk), junk), 400);
  FlushLogs();
  const std::string out = ::testing::internal::GetCapturedStdout();
  EXPECT_THAT(out, HasSubstr("evt_logged"));
  EXPECT_THAT(out, HasSubstr("webhook_received"));
  EXPECT_THAT(out, Not(HasSubstr(kSecret)));
  EXPECT_THAT(out, Not(HasSubstr(good.at(kSignatureHeader))));
  EXPECT_THAT(out, Not(HasSubstr(bad.at(kSignatureHeader))));
  EXPECT_THAT(out, Not(HasSubstr("ord_marker")));
}

TEST_F(WebhookListenerTest, StopFinishesAndRefusesNewConnections) {
  const int port = listener_->port();
  listener_->Stop();
  listener_->Stop();  // Idempotent.
  EXPECT_FALSE(testing::HttpGet(port, "/webhooks/clink").ok());
}

// Headers past civetweb's 16 KiB cap never reach the handler: a validly
// signed delivery padded past it is refused, nothing stored.
TEST_F(WebhookListenerTest, OverlongHeadersAreRefused) {
  const std::string body = Event("evt_long");
  std::string request = "POST /webhooks/clink HTTP/1.1\r\nHost: x\r\n";
  for (const auto& [name, value] : Signed(body)) {
    absl::StrAppend(&request, name, ": ", value, "\r\n");
  }
  absl::StrAppend(&request, "X-Pad: ", std::string(20000, 'a'),
                  "\r\nConnection: close\r\nContent-Length: ", body.size(),
                  "\r\n\r\n", body);
  absl::StatusOr<testing::HttpGetResponse> response =
      testing::HttpExchange(listener_->port(), request);
  // civetweb answers an error status or drops the connection.
  if (response.ok()) {
    EXPECT_GE(response->status_code, 400);
  }
  EXPECT_EQ(store_.append_calls(), 0);
}

// Opens a connection to 127.0.0.1:port and sends `bytes`; -1 on failure.
int SendPartial(int port, absl::string_view bytes) {
  const int fd = testing::ConnectToLoopback(port);
  if (fd < 0) return -1;
  if (send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(bytes.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

// Whether the server closes `fd` within `timeout` (reading whatever it says).
bool ClosedByServerWithin(int fd, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  char buffer[4096];
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    const int ready = poll(
        &p, 1,
        static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now())) +
            1);
    if (ready <= 0) continue;
    if (recv(fd, buffer, sizeof(buffer), 0) <= 0) return true;
  }
  return false;
}

// A client that sends its headers slowly (slowloris) holds a worker only for
// the request timeout; then the next delivery is served.
TEST_F(WebhookListenerTest, SlowClientsAreCutOffAtTheRequestTimeout) {
  WebhookListener::Options options;
  options.listen = "127.0.0.1:0";
  options.num_threads = 1;
  options.request_timeout = absl::Milliseconds(300);
  absl::StatusOr<std::unique_ptr<WebhookListener>> slow_listener =
      WebhookListener::Start(options, *secrets_, store_);
  ASSERT_TRUE(slow_listener.ok()) << slow_listener.status();
  const int port = (*slow_listener)->port();
  const int headers_only =
      SendPartial(port, "POST /webhooks/clink HTTP/1.1\r\nHost: x\r\n");
  ASSERT_GE(headers_only, 0);
  EXPECT_TRUE(ClosedByServerWithin(headers_only, absl::Seconds(10)));
  close(headers_only);
  const std::string body = Event("evt_after_slow");
  std::map<std::string, std::string> headers = Signed(body);
  std::string request = "POST /webhooks/clink HTTP/1.1\r\nHost: x\r\n";
  for (const auto& [name, value] : headers) {
    absl::StrAppend(&request, name, ": ", value, "\r\n");
  }
  // Headers complete, body promised but never sent.
  const int body_missing = SendPartial(
      port, absl::StrCat(request, "Content-Length: ", body.size(), "\r\n\r\n"));
  ASSERT_GE(body_missing, 0);
  EXPECT_TRUE(ClosedByServerWithin(body_missing, absl::Seconds(10)));
  close(body_missing);
  absl::StatusOr<testing::HttpGetResponse> response = testing::HttpExchange(
      port, absl::StrCat(request, "Connection: close\r\nContent-Length: ",
                         body.size(), "\r\n\r\n", body));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 200);
  EXPECT_EQ(store_.events().size(), 1u);
}

// Holds each Append until released.
class BlockingStore : public FakeEventStore {
 public:
  absl::StatusOr<events::AppendResult> Append(
      const events::StoredEvent& event) override {
    entered.Notify();
    release.WaitForNotification();
    return FakeEventStore::Append(event);
  }
  Notification entered;
  Notification release;
};

// Stop (the gateway's drain) answers the delivery in progress before it
// returns.
TEST_F(WebhookListenerTest, StopAnswersTheDeliveryInProgress) {
  BlockingStore blocking;
  WebhookListener::Options options;
  options.listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<WebhookListener>> listener =
      WebhookListener::Start(options, *secrets_, blocking);
  ASSERT_TRUE(listener.ok()) << listener.status();
  const int port = (*listener)->port();
  const std::string body = Event("evt_in_flight");
  std::string request =
      "POST /webhooks/clink HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
  for (const auto& [name, value] : Signed(body)) {
    absl::StrAppend(&request, name, ": ", value, "\r\n");
  }
  absl::StrAppend(&request, "Content-Length: ", body.size(), "\r\n\r\n",
                  body);
  absl::StatusOr<testing::HttpGetResponse> response;
  std::thread client(
      [&] { response = testing::HttpExchange(port, request); });
  blocking.entered.WaitForNotification();
  std::thread stopper([&] { (*listener)->Stop(); });
  blocking.release.Notify();
  stopper.join();
  client.join();
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->status_code, 200);
  EXPECT_EQ(blocking.events().size(), 1u);
  EXPECT_FALSE(testing::HttpGet(port, "/webhooks/clink").ok());
}

TEST(WebhookListenerStartTest, RefusesBadListenAddress) {
  WebhookSecrets secrets({});
  FakeEventStore store;
  WebhookListener::Options options;
  options.listen = "localhost";
  EXPECT_EQ(WebhookListener::Start(options, secrets, store).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace clink_gateway::webhooks
