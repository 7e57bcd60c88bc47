// The emulator's webhook delivery, seen from a receiver: a raw-socket HTTP
// server on port 0 that records every POST and checks X-Clink-Signature with
// its own HMAC (OpenSSL's EVP_MAC, not the sender's code).
#include <netinet/in.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "common/testing/http_get.h"
#include "curl/curl.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/pointer.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/webhook_sender.h"

namespace clink_gateway::emulator {
namespace {

constexpr char kApiKey[] = "sk_test_webhooks";
constexpr char kSecret[] = "whsec_emulator_test_secret";
constexpr absl::Duration kWait = absl::Seconds(30);  // A guard, not a sleep.

// Lower-case hex HMAC-SHA256 through OpenSSL 3's EVP_MAC interface.
std::string ExpectedSignature(const std::string& secret,
                              const std::string& message) {
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  char digest_name[] = "SHA256";
  const OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
      OSSL_PARAM_construct_end()};
  unsigned char out[EVP_MAX_MD_SIZE];
  size_t length = 0;
  const bool ok =
      EVP_MAC_init(ctx, reinterpret_cast<const unsigned char*>(secret.data()),
                   secret.size(), params) == 1 &&
      EVP_MAC_update(ctx,
                     reinterpret_cast<const unsigned char*>(message.data()),
                     message.size()) == 1 &&
      EVP_MAC_final(ctx, out, &length, sizeof(out)) == 1;
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  EXPECT_TRUE(ok);
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(out), length));
}

// One POST as the receiver saw it.
struct Received {
  std::string path;
  std::map<std::string, std::string> headers;  // Lower-case names.
  std::string body;

  std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  // X-Clink-Signature matches HMAC-SHA256(secret, timestamp + "." + body).
  bool SignatureVerifies(const std::string& secret = kSecret) const {
    return header("x-clink-signature") ==
           ExpectedSignature(
               secret, absl::StrCat(header("x-clink-timestamp"), ".", body));
  }
};

// A one-connection-at-a-time HTTP server on 127.0.0.1:0 that answers each
// request with the next scripted status (200 once the script is used up) and
// closes the connection.
class Receiver {
 public:
  Receiver() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t size = sizeof(address);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), size), 0);
    EXPECT_EQ(listen(listen_fd_, 16), 0);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&address), &size);
    port_ = ntohs(address.sin_port);
    stop_fd_ = eventfd(0, EFD_CLOEXEC);
    thread_ = std::thread([this] { Loop(); });
  }
  ~Receiver() {
    const uint64_t one = 1;
    EXPECT_EQ(write(stop_fd_, &one, sizeof(one)), 8);
    thread_.join();
    close(listen_fd_);
    close(stop_fd_);
  }

  std::string origin() const { return absl::StrCat("http://127.0.0.1:", port_); }
  std::string url() const { return origin() + "/webhooks/clink"; }
  // A scripted "status": read the request, never answer.
  static constexpr int kNoAnswer = 0;
  // The next requests get these statuses, in order.
  void Script(std::vector<int> statuses) {
    MutexLock lock(&mu_);
    script_.insert(script_.end(), statuses.begin(), statuses.end());
  }
  // Waits until at least `n` requests arrived; false on timeout.
  bool WaitFor(size_t n) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        [&]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return received_.size() >= n; },
        kWait);
  }
  std::vector<Received> received() {
    MutexLock lock(&mu_);
    return received_;
  }

 private:
  void Loop() {
    for (;;) {
      pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      if (poll(fds, 2, -1) < 0 || (fds[1].revents & POLLIN) != 0) return;
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd >= 0) Serve(fd);
    }
  }

  void Serve(int fd) {
    std::string text;
    char buffer[8192];
    size_t head_end = std::string::npos;
    size_t content_length = 0;
    while (head_end == std::string::npos ||
           text.size() < head_end + 4 + content_length) {
      const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
      if (n <= 0) break;
      text.append(buffer, static_cast<size_t>(n));
      if (head_end == std::string::npos &&
          (head_end = text.find("\r\n\r\n")) != std::string::npos) {
        content_length = ParseHead(text.substr(0, head_end)).content_length;
      }
    }
    if (head_end == std::string::npos) {
      close(fd);
      return;
    }
    Head head = ParseHead(text.substr(0, head_end));
    Received request{head.path, std::move(head.headers),
                     text.substr(head_end + 4, content_length)};
    int status = 200;
    {
      MutexLock lock(&mu_);
      if (!script_.empty()) {
        status = script_.front();
        script_.erase(script_.begin());
      }
      received_.push_back(std::move(request));
    }
    if (status == kNoAnswer) {
      // Until the client gives up and closes (or the test ends).
      pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
      poll(fds, 2, -1);
      close(fd);
      return;
    }
    const std::string reply =
        absl::StrCat("HTTP/1.1 ", status, " Scripted\r\nContent-Length: 0\r\n",
                     "Connection: close\r\n\r\n");
    send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
    close(fd);
  }

  struct Head {
    std::string path;
    std::map<std::string, std::string> headers;
    size_t content_length = 0;
  };
  static Head ParseHead(const std::string& text) {
    Head head;
    std::vector<std::string> lines = absl::StrSplit(text, "\r\n");
    if (!lines.empty()) {
      std::vector<std::string> words = absl::StrSplit(lines[0], ' ');
      if (words.size() > 1) head.path = words[1];
    }
    for (size_t i = 1; i < lines.size(); ++i) {
      const size_t colon = lines[i].find(':');
      if (colon == std::string::npos) continue;
      head.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
    absl::SimpleAtoi(head.headers["content-length"], &head.content_length);
    return head;
  }

  int listen_fd_ = -1;
  int stop_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  Mutex mu_;
  std::vector<int> script_ ABSL_GUARDED_BY(mu_);
  std::vector<Received> received_ ABSL_GUARDED_BY(mu_);
};

// A parsed event body; numbers stay strings.
class Json {
 public:
  explicit Json(const std::string& text) {
    doc_.Parse<rapidjson::kParseNumbersAsStringsFlag>(text.c_str());
  }
  // The string or number at `pointer`, or "<none>".
  std::string operator[](const char* pointer) const {
    const rapidjson::Value* value = rapidjson::Pointer(pointer).Get(doc_);
    return value != nullptr && value->IsString() ? value->GetString()
                                                 : "<none>";
  }
  bool Has(const char* pointer) const {
    return rapidjson::Pointer(pointer).Get(doc_) != nullptr;
  }

 private:
  rapidjson::Document doc_;
};

struct HttpAnswer {
  long status = 0;  // NOLINT(runtime/int): curl's type.
  std::string body;
};

size_t Append(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// Sends `method` `url` (with `body` unless GET) and the emulator's auth
// headers.
HttpAnswer Call(const std::string& method, const std::string& url,
                const std::string& body = "") {
  HttpAnswer answer;
  CURL* curl = curl_easy_init();
  curl_slist* headers =
      curl_slist_append(nullptr, absl::StrCat("X-API-KEY: ", kApiKey).c_str());
  headers = curl_slist_append(
      headers,
      absl::StrCat("X-Timestamp: ", absl::ToUnixMillis(absl::Now())).c_str());
  headers = curl_slist_append(headers, "Content-Type: application/json");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 20000L);
  if (method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.c_str());
  }
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &Append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer.body);
  EXPECT_EQ(curl_easy_perform(curl), CURLE_OK) << url;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &answer.status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return answer;
}

HttpAnswer Post(const std::string& url, const std::string& body) {
  return Call("POST", url, body);
}

class WebhookTest : public ::testing::Test {
 protected:
  // Starts the emulator with `form` and millisecond retries, delivering the
  // default merchant's events to the receiver.
  void StartEmulator(WebhookPayloadForm form = WebhookPayloadForm::kCurrent) {
    ClinkEmulator::Options options;
    options.api_keys = {kApiKey};
    options.webhooks.base_delay = absl::Milliseconds(1);
    options.webhooks.max_delay = absl::Milliseconds(20);
    options.webhooks.form = form;
    options.webhook_targets["default"] = {receiver_.url(), kSecret};
    absl::StatusOr<std::unique_ptr<ClinkEmulator>> emulator =
        ClinkEmulator::Start(std::move(options));
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
  }

  std::string Origin() const {
    return absl::StrCat("http://127.0.0.1:", emulator_->port());
  }

  // Pays 19.990 USD with the seeded card; returns the order id.
  std::string Pay() {
    const HttpAnswer answer = Post(
        emulator_->base_url() + "/payment",
        R"({"customerId":"cus_emu_test","paymentInstrumentId":"pi_emu_card_visa",
            "paymentMethodType":"CARD","returnUrl":"https://shop.example/r",
            "amount":19.990,"currency":"USD"})");
    EXPECT_EQ(answer.status, 200);
    return Json(answer.body)["/data/orderId"];
  }

  // Emits one event through the C++ hook; returns its id.
  std::string Emit(const std::string& type = "dispute.created") {
    absl::StatusOr<std::string> id = emulator_->EmitWebhookEvent(
        "default", type, R"({"chargeBackId":"cb_1","disputeAmount":5.10})");
    EXPECT_TRUE(id.ok()) << id.status();
    return id.value_or("");
  }

  Receiver receiver_;
  std::unique_ptr<ClinkEmulator> emulator_;
};

TEST_F(WebhookTest, PaymentDeliversSignedOrderEventsInTheCurrentForm) {
  StartEmulator();
  const std::string order_id = Pay();
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  const std::vector<Received> received = receiver_.received();
  // order.created, order.succeeded, session.complete.
  ASSERT_EQ(received.size(), 3u);
  std::map<std::string, std::string> by_type;  // Type -> body.
  for (const Received& request : received) {
    EXPECT_EQ(request.path, "/webhooks/clink");
    EXPECT_EQ(request.header("content-type"), "application/json");
    EXPECT_EQ(request.header("x-clink-signtype"), "SHA256");
    EXPECT_TRUE(request.SignatureVerifies()) << request.body;
    EXPECT_FALSE(request.SignatureVerifies("whsec_another_secret"));
    int64_t timestamp_ms = 0;
    ASSERT_TRUE(
        absl::SimpleAtoi(request.header("x-clink-timestamp"), &timestamp_ms));
    EXPECT_LT(
        absl::AbsDuration(absl::FromUnixMillis(timestamp_ms) - absl::Now()),
        absl::Minutes(1));
    by_type.emplace(Json(request.body)["/type"], request.body);
  }
  ASSERT_EQ(by_type.count("order.created"), 1u);
  ASSERT_EQ(by_type.count("order.succeeded"), 1u);
  ASSERT_EQ(by_type.count("session.complete"), 1u);
  const Json succeeded(by_type.at("order.succeeded"));
  EXPECT_TRUE(absl::StartsWith(succeeded["/id"], "evt_"));
  EXPECT_NE(succeeded["/id"], Json(by_type.at("order.created"))["/id"]);
  EXPECT_EQ(succeeded["/object"], "event");
  int64_t created_ms = 0;
  EXPECT_TRUE(absl::SimpleAtoi(succeeded["/created"], &created_ms));
  EXPECT_GT(created_ms, 1000000000000);  // Milliseconds, not seconds.
  EXPECT_EQ(succeeded["/data/object/orderId"], order_id);
  EXPECT_EQ(succeeded["/data/object/status"], "success");
  EXPECT_EQ(succeeded["/data/object/amountTotal"], "19.990");  // Exact.
  EXPECT_EQ(Json(by_type.at("session.complete"))["/data/object/status"],
            "completed");

  // data.object is exactly what GET /order/{id} answers as data.
  const HttpAnswer order =
      Call("GET", emulator_->base_url() + "/order/" + order_id);
  const std::string& body = by_type.at("order.succeeded");
  const size_t object = body.find("\"object\":{");
  ASSERT_NE(object, std::string::npos);
  const std::string object_json =
      body.substr(object + 9, body.size() - (object + 9) - 2);
  EXPECT_EQ(
      absl::StrCat(R"({"code":200,"msg":"success","data":)", object_json, "}"),
      order.body);
}

TEST_F(WebhookTest, RegisteredEndpointsGetTheirEventsSignedWithTheirSecret) {
  ClinkEmulator::Options options;
  options.api_keys = {kApiKey};
  options.webhooks.base_delay = absl::Milliseconds(1);
  options.webhook_endpoint_origins["https://hooks.example.com"] =
      receiver_.origin();
  absl::StatusOr<std::unique_ptr<ClinkEmulator>> emulator =
      ClinkEmulator::Start(std::move(options));
  ASSERT_TRUE(emulator.ok()) << emulator.status();
  emulator_ = *std::move(emulator);
  const auto create = [this](const std::string& path,
                             const std::string& events) {
    const HttpAnswer answer = Post(
        emulator_->base_url() + "/webhook/endpoints",
        absl::StrCat(R"({"url":"https://hooks.example.com)", path,
                     R"(","events":)", events, "}"));
    EXPECT_EQ(answer.status, 200) << answer.body;
    return Json(answer.body)["/data/signingSecret"];
  };
  const std::string orders = create("/orders", R"(["order.succeeded"])");
  const std::string both =
      create("/both", R"(["order.created","order.succeeded"])");
  create("/disputes", R"(["dispute.created"])");
  ASSERT_NE(orders, both);

  Pay();
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  std::multiset<std::string> seen;  // "path type"
  for (const Received& request : receiver_.received()) {
    const std::string type = Json(request.body)["/type"];
    seen.insert(absl::StrCat(request.path, " ", type));
    EXPECT_TRUE(request.SignatureVerifies(request.path == "/orders" ? orders
                                                                    : both))
        << request.path << " " << type;
  }
  EXPECT_EQ(seen, (std::multiset<std::string>{"/both order.created",
                                              "/both order.succeeded",
                                              "/orders order.succeeded"}));
}

// The types of the events received so far, sorted.
std::multiset<std::string> Types(const std::vector<Received>& received) {
  std::multiset<std::string> types;
  for (const Received& request : received) {
    types.insert(Json(request.body)["/type"]);
  }
  return types;
}

TEST_F(WebhookTest, SubscriptionsRefundsAndDeclinesEmitTheirEvents) {
  StartEmulator();
  const HttpAnswer subscription =
      Post(emulator_->base_url() + "/subscription",
           R"({"customerId":"cus_emu_test","productId":"prd_emu_basic",
          "priceId":"price_emu_monthly","paymentMethodType":"CARD",
          "paymentInstrumentId":"pi_emu_card_visa","paymentCurrency":"USD",
          "returnUrl":"https://r.example"})");
  const std::string subscription_id =
      Json(subscription.body)["/data/subscriptionId"];
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  EXPECT_EQ(Types(receiver_.received()),
            (std::multiset<std::string>{
                "subscription.created", "order.created", "order.succeeded",
                "invoice.paid", "subscription.activated", "session.complete"}));
  for (const Received& request : receiver_.received()) {
    const Json event(request.body);
    if (event["/type"] == "invoice.paid") {
      EXPECT_EQ(event["/data/object/subscriptionId"], subscription_id);
      EXPECT_EQ(event["/data/object/status"], "paid");
    }
  }

  const size_t before_cancel = receiver_.received().size();
  Post(emulator_->base_url() + "/subscription/" + subscription_id + "/cancel",
       R"({"reason":"done","cancelImmediately":true})");
  const std::string order_id = Pay();
  const HttpAnswer refund = Post(emulator_->base_url() + "/refund",
                                 R"({"orderId":")" + order_id +
                                     R"(","refundMerchantOrderId":"r-1",)"
                                     R"("refundAmount":5})");
  EXPECT_EQ(refund.status, 200);
  Post(emulator_->base_url() + "/payment",
       R"({"customerId":"cus_emu_test","paymentInstrumentId":
           "pi_emu_card_declined","paymentMethodType":"CARD",
           "returnUrl":"https://shop.example/r","amount":1,"currency":"USD"})");
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  const std::vector<Received> received = receiver_.received();
  EXPECT_EQ(Types(std::vector<Received>(received.begin() + before_cancel,
                                        received.end())),
            (std::multiset<std::string>{
                "subscription.cancelled", "order.created", "order.succeeded",
                "session.complete", "refund.created", "refund.succeeded",
                "order.created", "order.failed"}));
  for (const Received& request : received) {
    const Json event(request.body);
    if (event["/type"] == "refund.succeeded") {
      EXPECT_EQ(event["/data/object/orderId"], order_id);
      EXPECT_EQ(event["/data/object/status"], "success");
    }
    if (event["/type"] == "subscription.cancelled") {
      EXPECT_EQ(event["/data/object/status"], "cancelled");
    }
  }
}

TEST_F(WebhookTest, TestClockRenewalsAndPeriodEndCancellationEmitEvents) {
  StartEmulator();
  const std::string subscription_id =
      Json(Post(emulator_->base_url() + "/subscription",
                R"({"customerId":"cus_emu_test","productId":"prd_emu_basic",
               "priceId":"price_emu_monthly","paymentMethodType":"CARD",
               "paymentInstrumentId":"pi_emu_card_visa",
               "paymentCurrency":"USD","returnUrl":"https://r.example"})")
               .body)["/data/subscriptionId"];
  const std::string clock_id =
      Json(Post(emulator_->base_url() + "/subscription/test-clocks",
                R"({"name":"r","subscriptionId":")" + subscription_id + "\"}")
               .body)["/data/clockId"];
  int64_t period_end_ms = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      Json(Call("GET",
                emulator_->base_url() + "/subscription/" + subscription_id)
               .body)["/data/currentPeriodEnd"],
      &period_end_ms));
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  size_t seen = receiver_.received().size();
  const auto new_types = [&] {
    EXPECT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
    const std::vector<Received> received = receiver_.received();
    const std::multiset<std::string> types =
        Types(std::vector<Received>(received.begin() + seen, received.end()));
    seen = received.size();
    return types;
  };

  const std::string advance = emulator_->base_url() +
                              "/subscription/test-clocks/" + clock_id +
                              "/advance";
  Post(advance, absl::StrCat(R"({"targetFrozenTime":)", period_end_ms, "}"));
  EXPECT_EQ(new_types(), (std::multiset<std::string>{
                             "order.created", "order.succeeded", "invoice.paid",
                             "subscription.updated.renewed"}));
  Post(emulator_->base_url() + "/subscription/" + subscription_id + "/cancel",
       R"({"reason":"done"})");
  EXPECT_EQ(new_types(), (std::multiset<std::string>{
                             "subscription.updated.cancel_at_period_end_set"}));
  Post(advance, absl::StrCat(R"({"targetFrozenTime":)",
                             period_end_ms + int64_t{40} * 86400 * 1000, "}"));
  EXPECT_EQ(new_types(),
            (std::multiset<std::string>{"subscription.cancelled"}));
}

TEST_F(WebhookTest, LegacyFormPutsTheResourceUnderDataWithAnIsoCreated) {
  StartEmulator(WebhookPayloadForm::kLegacy);
  const std::string order_id = Pay();
  Emit("dispute.created");
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  bool saw_order = false;
  bool saw_dispute = false;
  for (const Received& request : receiver_.received()) {
    EXPECT_TRUE(request.SignatureVerifies());
    const Json event(request.body);
    absl::Time created;
    std::string error;
    EXPECT_TRUE(absl::ParseTime("%Y-%m-%dT%H:%M:%SZ", event["/created"],
                                &created, &error))
        << event["/created"];
    if (event["/type"] == "order.succeeded") {
      saw_order = true;
      EXPECT_EQ(event["/data/orderId"], order_id);
      EXPECT_FALSE(event.Has("/data/object"));
    }
    if (event["/type"] == "dispute.created") {
      saw_dispute = true;  // Disputes were always under data.object.
      EXPECT_EQ(event["/data/object/chargeBackId"], "cb_1");
    }
  }
  EXPECT_TRUE(saw_order);
  EXPECT_TRUE(saw_dispute);
}

TEST_F(WebhookTest, FailedAttemptsAreRetriedUntilA2xx) {
  receiver_.Script({503, 500, 404});
  StartEmulator();
  const std::string id = Emit();
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  const std::vector<Received> received = receiver_.received();
  ASSERT_EQ(received.size(), 4u);
  for (const Received& request : received) {
    EXPECT_EQ(Json(request.body)["/id"], id);
    EXPECT_EQ(request.body, received[0].body);
    EXPECT_TRUE(request.SignatureVerifies());
  }
  const WebhookStats stats = emulator_->webhook_stats();
  EXPECT_EQ(stats.attempts, 4);
  EXPECT_EQ(stats.succeeded, 1);
  EXPECT_EQ(stats.gave_up, 0);
}

TEST_F(WebhookTest, ATimeoutIsAFailedAttempt) {
  receiver_.Script({Receiver::kNoAnswer});
  ClinkEmulator::Options options;
  options.api_keys = {kApiKey};
  options.webhooks.base_delay = absl::Milliseconds(1);
  options.webhooks.timeout = absl::Milliseconds(200);
  options.webhook_targets["default"] = {receiver_.url(), kSecret};
  absl::StatusOr<std::unique_ptr<ClinkEmulator>> started =
      ClinkEmulator::Start(std::move(options));
  ASSERT_TRUE(started.ok()) << started.status();
  emulator_ = *std::move(started);
  Emit();
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  EXPECT_EQ(receiver_.received().size(), 2u);
  EXPECT_EQ(emulator_->webhook_stats().succeeded, 1);
}

TEST_F(WebhookTest, GivesUpAfterTenFailedAttempts) {
  receiver_.Script(std::vector<int>(12, 503));
  StartEmulator();
  Emit();
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  EXPECT_EQ(receiver_.received().size(), 10u);
  const WebhookStats stats = emulator_->webhook_stats();
  EXPECT_EQ(stats.attempts, 10);
  EXPECT_EQ(stats.succeeded, 0);
  EXPECT_EQ(stats.gave_up, 1);
  // The admin endpoint reports the same counters.
  absl::StatusOr<testing::HttpGetResponse> admin =
      testing::HttpGet(emulator_->port(), "/__emulator/stats");
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_TRUE(absl::StrContains(admin->body, "\"webhookDeliveryAttempts\":10"))
      << admin->body;
  EXPECT_TRUE(absl::StrContains(admin->body, "\"webhookDeliveriesGaveUp\":1"));
  EXPECT_TRUE(
      absl::StrContains(admin->body, "\"webhookDeliveriesSucceeded\":0"));
}

TEST_F(WebhookTest, DuplicateFaultDeliversIdenticalCopies) {
  StartEmulator();
  WebhookFault fault;
  fault.kind = WebhookFault::Kind::kDuplicate;
  fault.copies = 3;
  ASSERT_TRUE(emulator_->SetWebhookFault(fault).ok());
  const std::string id = Emit();
  Emit("dispute.updated");  // The fault covered one event only.
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  const std::vector<Received> received = receiver_.received();
  ASSERT_EQ(received.size(), 4u);
  int copies = 0;
  for (const Received& request : received) {
    EXPECT_TRUE(request.SignatureVerifies());
    if (Json(request.body)["/id"] == id) {
      ++copies;
      EXPECT_EQ(request.body, received[0].body);
    }
  }
  EXPECT_EQ(copies, 3);
}

TEST_F(WebhookTest, OutOfOrderFaultReleasesHeldEventsNewestFirst) {
  StartEmulator();
  ASSERT_TRUE(
      emulator_
          ->SetWebhookFault({WebhookFault::Kind::kOutOfOrder, /*count=*/3, 2})
          .ok());
  const std::string first = Emit("dispute.created");
  const std::string second = Emit("dispute.updated");
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  EXPECT_TRUE(receiver_.received().empty());  // Held until the third.
  const std::string third = Emit("dispute.won");
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  const std::vector<Received> received = receiver_.received();
  ASSERT_EQ(received.size(), 3u);
  EXPECT_EQ(Json(received[0].body)["/id"], third);
  EXPECT_EQ(Json(received[1].body)["/id"], second);
  EXPECT_EQ(Json(received[2].body)["/id"], first);
}

TEST_F(WebhookTest, WrongSignatureFaultSignsWithAnotherKey) {
  receiver_.Script({401});  // What a verifying receiver answers.
  StartEmulator();
  ASSERT_TRUE(
      emulator_->SetWebhookFault({WebhookFault::Kind::kWrongSignature, 1, 2})
          .ok());
  Emit();
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  const std::vector<Received> received = receiver_.received();
  ASSERT_EQ(received.size(), 2u);
  EXPECT_FALSE(received[0].SignatureVerifies());
  EXPECT_EQ(received[0].header("x-clink-signature").size(), 64u);
  EXPECT_TRUE(received[1].SignatureVerifies());  // The retry is genuine.
  EXPECT_EQ(received[0].body, received[1].body);
}

TEST_F(WebhookTest, AdminEndpointsConfigureTargetsFaultsAndEvents) {
  ClinkEmulator::Options options;
  options.api_keys = {kApiKey};
  options.webhooks.base_delay = absl::Milliseconds(1);
  absl::StatusOr<std::unique_ptr<ClinkEmulator>> started =
      ClinkEmulator::Start(std::move(options));
  ASSERT_TRUE(started.ok()) << started.status();
  emulator_ = *std::move(started);
  Emit();  // No target yet: counted, not delivered.
  // Hostile resources are refused before anything is queued.
  const std::string deep =
      absl::StrCat(R"({"a":)", std::string(64, '['), std::string(64, ']'), "}");
  EXPECT_EQ(emulator_->EmitWebhookEvent("default", "x", deep).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(emulator_->EmitWebhookEvent("default", "x", "[1]").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      emulator_
          ->EmitWebhookEvent("default", "x", absl::string_view("{}\0junk", 7))
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);  // rapidjson stops at NUL.
  EXPECT_EQ(emulator_->EmitWebhookEvent("nobody", "x", "{}").status().code(),
            absl::StatusCode::kNotFound);

  EXPECT_EQ(Post(Origin() + "/__emulator/webhooks",
                 R"({"merchant":"default","url":")" + receiver_.url() +
                     R"(","secret":"not-a-whsec"})")
                .status,
            400);
  EXPECT_EQ(Post(Origin() + "/__emulator/webhooks",
                 R"({"merchant":"nobody","url":")" + receiver_.url() +
                     R"(","secret":"whsec_x"})")
                .status,
            404);
  ASSERT_EQ(Post(Origin() + "/__emulator/webhooks",
                 R"({"merchant":"default","url":")" + receiver_.url() +
                     R"(","secret":")" + kSecret + R"("})")
                .status,
            200);
  ASSERT_EQ(Post(Origin() + "/__emulator/webhooks/faults",
                 R"({"kind":"duplicate","copies":2})")
                .status,
            200);
  EXPECT_EQ(Post(Origin() + "/__emulator/webhooks/faults",
                 R"({"kind":"out_of_order","count":1})")
                .status,
            400);
  EXPECT_EQ(
      Post(Origin() + "/__emulator/webhooks/events?type=dispute.lost", "[1,2]")
          .status,
      400);
  const HttpAnswer emitted =
      Post(Origin() + "/__emulator/webhooks/events?type=dispute.lost",
           R"({"chargeBackId":"cb_9","disputeAmount":12.340})");
  ASSERT_EQ(emitted.status, 200) << emitted.body;
  const std::string id = Json(emitted.body)["/data/eventId"];
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(kWait));
  const std::vector<Received> received = receiver_.received();
  ASSERT_EQ(received.size(), 2u);
  for (const Received& request : received) {
    EXPECT_TRUE(request.SignatureVerifies());
    EXPECT_EQ(request.body, received[0].body);
  }
  const Json event(received[0].body);
  EXPECT_EQ(event["/id"], id);
  EXPECT_EQ(event["/type"], "dispute.lost");
  EXPECT_TRUE(absl::StrContains(
      received[0].body,
      R"("data":{"object":{"chargeBackId":"cb_9","disputeAmount":12.340}})"));
  EXPECT_EQ(emulator_->webhook_stats().events, 2);  // Refusals not counted.
}

}  // namespace
}  // namespace clink_gateway::emulator
