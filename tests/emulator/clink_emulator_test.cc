#include "tests/emulator/clink_emulator.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/testing/fake_clock.h"
#include "curl/curl.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/pointer.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/test_ca.h"

namespace clink_gateway::emulator {
namespace {

constexpr char kApiKey[] = "sk_test_emulator_key";
// Keys of the merchant accounts in the multi-merchant tests.
constexpr char kAcmeKey1[] = "sk_test_acme_1";
constexpr char kAcmeKey2[] = "sk_test_acme_2";
constexpr char kGlobexKey[] = "sk_test_globex";

class CurlEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { curl_global_init(CURL_GLOBAL_DEFAULT); }
  void TearDown() override { curl_global_cleanup(); }
};
::testing::Environment* const kCurlEnvironment =
    ::testing::AddGlobalTestEnvironment(new CurlEnvironment);

struct HttpResult {
  CURLcode curl_code = CURLE_OK;
  long status = 0;  // NOLINT(runtime/int): curl's type.
  std::string body;
  std::map<std::string, std::string> headers;  // Lower-case names.

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// A blocking libcurl client. One easy handle, so consecutive requests reuse the
// connection.
class HttpClient {
 public:
  explicit HttpClient(std::string origin, std::string ca_file = "")
      : origin_(std::move(origin)),
        ca_file_(std::move(ca_file)),
        handle_(curl_easy_init()) {}
  ~HttpClient() { curl_easy_cleanup(handle_); }

  HttpResult Send(const std::string& method, const std::string& path,
                  const std::string& body,
                  const std::vector<std::string>& headers,
                  bool fresh_connection = false) {
    HttpResult result;
    curl_easy_reset(handle_);  // Keeps the connection cache.
    const std::string url = origin_ + path;
    curl_easy_setopt(handle_, CURLOPT_URL, url.c_str());
    curl_easy_setopt(handle_, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle_, CURLOPT_TIMEOUT_MS, 20000L);
    if (!ca_file_.empty())
      curl_easy_setopt(handle_, CURLOPT_CAINFO, ca_file_.c_str());
    if (method == "GET") {
      curl_easy_setopt(handle_, CURLOPT_HTTPGET, 1L);
    } else {
      curl_easy_setopt(handle_, CURLOPT_CUSTOMREQUEST, method.c_str());
      curl_easy_setopt(handle_, CURLOPT_POSTFIELDS, body.c_str());
      curl_easy_setopt(handle_, CURLOPT_POSTFIELDSIZE,
                       static_cast<long>(body.size()));  // NOLINT
    }
    if (fresh_connection) {
      curl_easy_setopt(handle_, CURLOPT_FRESH_CONNECT, 1L);
      curl_easy_setopt(handle_, CURLOPT_FORBID_REUSE, 1L);
    }
    curl_slist* header_list = nullptr;
    for (const std::string& header : headers) {
      header_list = curl_slist_append(header_list, header.c_str());
    }
    curl_easy_setopt(handle_, CURLOPT_HTTPHEADER, header_list);
    curl_easy_setopt(handle_, CURLOPT_WRITEFUNCTION, &WriteBody);
    curl_easy_setopt(handle_, CURLOPT_WRITEDATA, &result.body);
    curl_easy_setopt(handle_, CURLOPT_HEADERFUNCTION, &WriteHeader);
    curl_easy_setopt(handle_, CURLOPT_HEADERDATA, &result.headers);
    result.curl_code = curl_easy_perform(handle_);
    curl_easy_getinfo(handle_, CURLINFO_RESPONSE_CODE, &result.status);
    curl_slist_free_all(header_list);
    return result;
  }

 private:
  static size_t WriteBody(char* data, size_t size, size_t count, void* out) {
    static_cast<std::string*>(out)->append(data, size * count);
    return size * count;
  }

  static size_t WriteHeader(char* data, size_t size, size_t count, void* out) {
    const absl::string_view line(data, size * count);
    const size_t colon = line.find(':');
    if (colon != absl::string_view::npos) {
      (*static_cast<std::map<std::string, std::string>*>(
          out))[absl::AsciiStrToLower(line.substr(0, colon))] =
          std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
    }
    return size * count;
  }

  const std::string origin_;
  const std::string ca_file_;
  CURL* const handle_;
};

// Parses a response body; numbers stay strings holding their exact text.
class Json {
 public:
  explicit Json(const std::string& text) {
    doc_.Parse<rapidjson::kParseNumbersAsStringsFlag>(text.c_str());
  }
  bool ok() const { return !doc_.HasParseError(); }
  // The value at JSON pointer `pointer` as text: strings and numbers as is,
  // booleans as "true"/"false", anything else or a missing value as "<none>".
  std::string operator[](const char* pointer) const {
    const rapidjson::Value* value = rapidjson::Pointer(pointer).Get(doc_);
    if (value == nullptr) return "<none>";
    if (value->IsString()) return value->GetString();
    if (value->IsBool()) return value->GetBool() ? "true" : "false";
    return "<none>";
  }
  bool Has(const char* pointer) const {
    return rapidjson::Pointer(pointer).Get(doc_) != nullptr;
  }
  size_t Size(const char* pointer) const {
    const rapidjson::Value* value = rapidjson::Pointer(pointer).Get(doc_);
    return value != nullptr && value->IsArray() ? value->Size() : 0;
  }

 private:
  rapidjson::Document doc_;
};

int64_t Int(const std::string& text) {
  int64_t value = 0;
  EXPECT_TRUE(absl::SimpleAtoi(text, &value)) << text;
  return value;
}

// A response read off a raw socket, so repeated headers stay visible.
struct RawResponse {
  std::string status_line;
  std::vector<std::string> dates;  // Values of every Date header.
  std::string body;
};

// Sends `request` over a new TCP connection to 127.0.0.1:`port` and parses
// everything the server writes until it closes the connection.
RawResponse RawExchange(int port, const std::string& request) {
  RawResponse response;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    ADD_FAILURE() << "socket() failed";
    return response;
  }
  timeval timeout{20, 0};  // A guard against a hang, not synchronisation.
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string text;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address),
              sizeof(address)) != 0 ||
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
          static_cast<ssize_t>(request.size())) {
    ADD_FAILURE() << "cannot send the request to port " << port;
  } else {
    char buffer[4096];
    for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) {
      text.append(buffer, static_cast<size_t>(n));
    }
  }
  close(fd);
  const size_t head_end = text.find("\r\n\r\n");
  EXPECT_NE(head_end, std::string::npos) << text;
  if (head_end == std::string::npos) return response;
  response.body = text.substr(head_end + 4);
  const std::vector<std::string> lines =
      absl::StrSplit(text.substr(0, head_end), "\r\n");
  response.status_line = lines[0];
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon != std::string::npos &&
        absl::EqualsIgnoreCase(lines[i].substr(0, colon), "date")) {
      response.dates.emplace_back(
          absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
    }
  }
  return response;
}

// Parses an RFC 7231 IMF-fixdate such as "Sun, 06 Nov 1994 08:49:37 GMT".
absl::Time ParseHttpDate(const std::string& text) {
  absl::Time time = absl::InfinitePast();
  std::string error;
  EXPECT_EQ(text.size(), 29u) << text;
  EXPECT_TRUE(absl::ParseTime("%a, %d %b %Y %H:%M:%S GMT", text,
                              absl::UTCTimeZone(), &time, &error))
      << text << ": " << error;
  return time;
}

std::string TempDir() {
  const char* base = getenv("TEST_TMPDIR");
  std::string path =
      absl::StrCat(base != nullptr ? base : "/tmp", "/clink_emulator_XXXXXX");
  EXPECT_NE(mkdtemp(path.data()), nullptr);
  return path;
}

class ClinkEmulatorTest : public ::testing::Test {
 protected:
  void SetUp() override { StartEmulator(ClinkEmulator::Options()); }

  void StartEmulator(ClinkEmulator::Options options,
                     const std::string& ca_file = "") {
    client_.reset();
    emulator_.reset();
    if (options.api_keys.empty() && options.merchants.empty()) {
      options.api_keys = {"sk_test_other", kApiKey};
    }
    options.clock = [this] { return clock_.Now(); };
    absl::StatusOr<std::unique_ptr<ClinkEmulator>> emulator =
        ClinkEmulator::Start(options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    client_ = std::make_unique<HttpClient>(Origin(), ca_file);
  }

  // "http://127.0.0.1:PORT" (base_url() without "/api").
  std::string Origin() const {
    const std::string base = emulator_->base_url();
    return base.substr(0, base.size() - 4);
  }

  std::vector<std::string> AuthHeaders(
      absl::Duration skew = absl::ZeroDuration(),
      const std::string& api_key = kApiKey) const {
    return {
        absl::StrCat("X-API-KEY: ", api_key),
        absl::StrCat("X-Timestamp: ", absl::ToUnixMillis(clock_.Now() + skew)),
        "Content-Type: application/json", "User-Agent: emulator-test/1.0",
        "X-Request-Id: req-123"};
  }

  HttpResult Call(const std::string& method, const std::string& path,
                  const std::string& body = "", bool fresh_connection = false) {
    return client_->Send(method, absl::StrCat("/api", path), body,
                         AuthHeaders(), fresh_connection);
  }

  // Call() with `api_key` as X-API-KEY.
  HttpResult CallAs(const std::string& api_key, const std::string& method,
                    const std::string& path, const std::string& body = "") {
    return client_->Send(method, absl::StrCat("/api", path), body,
                         AuthHeaders(absl::ZeroDuration(), api_key));
  }

  // Calls the API and expects HTTP 200 with envelope code 200.
  Json Ok(const std::string& method, const std::string& path,
          const std::string& body = "") {
    return OkAs(kApiKey, method, path, body);
  }

  Json OkAs(const std::string& api_key, const std::string& method,
            const std::string& path, const std::string& body = "") {
    const HttpResult result = CallAs(api_key, method, path, body);
    EXPECT_EQ(result.curl_code, CURLE_OK);
    EXPECT_EQ(result.status, 200) << result.body;
    Json json(result.body);
    EXPECT_TRUE(json.ok()) << result.body;
    EXPECT_EQ(json["/code"], "200")
        << method << " " << path << ": " << result.body;
    return json;
  }

  // Pays `amount` USD with the seeded card; returns the order id.
  std::string Pay(const std::string& amount,
                  const std::string& api_key = kApiKey) {
    const Json payment = OkAs(api_key, "POST", "/payment",
                              absl::StrCat(R"({"customerId":"cus_emu_test",
                                             "paymentInstrumentId":"pi_emu_card_visa",
                                             "paymentMethodType":"CARD",
                                             "returnUrl":"https://shop.example/return",
                                             "amount":)",
                                           amount, R"(,"currency":"USD"})"));
    EXPECT_EQ(payment["/data/status"], "1");
    return payment["/data/orderId"];
  }

  Json Refund(const std::string& order_id, const std::string& merchant_id,
              const std::string& amount) {
    const HttpResult result =
        Call("POST", "/refund",
             absl::StrCat(R"({"orderId":")", order_id,
                          R"(","refundMerchantOrderId":")", merchant_id,
                          R"(","refundAmount":)", amount,
                          R"(,"refundReasonType":2})"));
    EXPECT_EQ(result.status, 200);
    return Json(result.body);
  }

  // GET `path` over a new plain-HTTP connection with `headers` (lines
  // without CRLF), read off the raw socket.
  RawResponse RawGet(const std::string& path,
                     const std::vector<std::string>& headers) const {
    std::string request =
        absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n",
                     "Connection: close\r\n");
    for (const std::string& header : headers) {
      absl::StrAppend(&request, header, "\r\n");
    }
    absl::StrAppend(&request, "\r\n");
    return RawExchange(emulator_->port(), request);
  }

  // Starts the emulator with the accounts acme (two keys) and globex.
  void StartMultiMerchant(ClinkEmulator::Options options = {}) {
    options.merchants = {{"acme", {kAcmeKey1, kAcmeKey2}},
                         {"globex", {kGlobexKey}}};
    StartEmulator(options);
  }

  FakeClock clock_;
  std::unique_ptr<ClinkEmulator> emulator_;
  std::unique_ptr<HttpClient> client_;
};

// --- Authentication
// --------------------------------------------------------------------------

TEST_F(ClinkEmulatorTest, MissingApiKeyIs401WithTextBody) {
  const HttpResult result = client_->Send(
      "GET", "/api/product", "",
      {absl::StrCat("X-Timestamp: ", absl::ToUnixMillis(clock_.Now()))});
  EXPECT_EQ(result.status, 401);
  EXPECT_TRUE(absl::StartsWith(result.header("content-type"), "text/plain"));
  EXPECT_TRUE(absl::StrContains(result.body, "X-API-KEY")) << result.body;
}

TEST_F(ClinkEmulatorTest, UnknownApiKeyIs401AndKeyHeaderIsCaseInsensitive) {
  HttpResult result = client_->Send(
      "GET", "/api/product", "",
      {"X-API-KEY: sk_test_wrong",
       absl::StrCat("X-Timestamp: ", absl::ToUnixMillis(clock_.Now()))});
  EXPECT_EQ(result.status, 401);
  EXPECT_FALSE(
      absl::StrContains(result.body, "sk_test_wrong"));  // Never echo keys.
  result = client_->Send(
      "GET", "/api/product", "",
      {absl::StrCat("x-api-key: ", kApiKey),
       absl::StrCat("x-timestamp: ", absl::ToUnixMillis(clock_.Now()))});
  EXPECT_EQ(result.status, 200);
}

TEST_F(ClinkEmulatorTest, TimestampMustBeWithinTolerance) {
  const auto call_with_skew = [&](absl::Duration skew) {
    return client_->Send("GET", "/api/product", "", AuthHeaders(skew)).status;
  };
  EXPECT_EQ(call_with_skew(-absl::Seconds(121)), 401);  // Stale.
  EXPECT_EQ(call_with_skew(absl::Seconds(121)), 401);   // From the future.
  EXPECT_EQ(call_with_skew(-absl::Seconds(119)), 200);
  EXPECT_EQ(call_with_skew(absl::Seconds(119)), 200);
  EXPECT_EQ(
      client_
          ->Send("GET", "/api/product", "",
                 {absl::StrCat("X-API-KEY: ", kApiKey), "X-Timestamp: soon"})
          .status,
      401);
  EXPECT_EQ(client_
                ->Send("GET", "/api/product", "",
                       {absl::StrCat("X-API-KEY: ", kApiKey)})
                .status,
            401);
}

// --- Checkout sessions
// ----------------------------------------------------------------------

TEST_F(ClinkEmulatorTest, CreatesAndGetsCheckoutSession) {
  const HttpResult created =
      Call("POST", "/checkout/session",
           R"({"originalAmount":19.990,"originalCurrency":"USD",
                                      "customerEmail":"buyer@example.com",
                                      "merchantReferenceId":"cart-42",
                                      "successUrl":"https://shop.example/ok",
                                      "priceDataList":[{"name":"Mug","quantity":2,
                                                        "unitAmount":9.995}]})");
  ASSERT_EQ(created.status, 200);
  EXPECT_TRUE(absl::StrContains(created.body, R"("originalAmount":19.990)"))
      << created.body;
  const Json session(created.body);
  const std::string id = session["/data/sessionId"];
  EXPECT_TRUE(absl::StartsWith(id, "sess_")) << id;
  EXPECT_TRUE(absl::StartsWith(session["/data/customerId"], "cus_"));
  EXPECT_TRUE(absl::StrContains(session["/data/url"], id));
  EXPECT_EQ(session["/data/merchantReferenceId"], "cart-42");

  const HttpResult fetched = Call("GET", "/checkout/session/" + id);
  const Json got(fetched.body);
  EXPECT_EQ(got["/data/sessionId"], id);
  EXPECT_EQ(got["/data/status"], "open");
  EXPECT_EQ(got["/data/paymentStatus"], "unpaid");
  EXPECT_EQ(got["/data/created"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(got["/data/expire"], "2023-11-14T23:13:20Z");
  EXPECT_EQ(got["/data/customer/email"], "buyer@example.com");
  EXPECT_TRUE(absl::StrContains(fetched.body, R"("amountTotal":19.990)"))
      << fetched.body;
  EXPECT_TRUE(absl::StrContains(fetched.body, R"("unitAmount":9.995)"))
      << fetched.body;

  clock_.Advance(absl::Hours(2));
  EXPECT_EQ(Ok("GET", "/checkout/session/" + id)["/data/status"], "expired");
}

TEST_F(ClinkEmulatorTest, ValidationErrorsNameTheField) {
  const auto error = [&](const std::string& body) {
    const HttpResult result = Call("POST", "/checkout/session", body);
    EXPECT_EQ(result.status, 200);
    const Json json(result.body);
    EXPECT_EQ(json["/code"], "400") << result.body;
    return json["/msg"];
  };
  EXPECT_EQ(error(R"({"originalCurrency":"USD","customerId":"cus_emu_test"})"),
            "originalAmount is required");
  EXPECT_EQ(
      error(
          R"({"originalAmount":0,"originalCurrency":"USD","customerId":"cus_emu_test"})"),
      "originalAmount must be greater than 0");
  EXPECT_EQ(
      error(
          R"({"originalAmount":-5,"originalCurrency":"USD","customerId":"c"})"),
      "originalAmount must be greater than 0");
  EXPECT_EQ(error(R"({"originalAmount":5,"originalCurrency":"USD"})"),
            "CUSTOMER_NOT_FOUND");
  EXPECT_EQ(
      error(
          R"({"originalAmount":5,"originalCurrency":"USD","customerId":"cus_nope"})"),
      "CUSTOMER_NOT_FOUND");
  EXPECT_EQ(
      error(
          R"({"originalAmount":5,"originalCurrency":"USD","customerId":"cus_emu_test",
                      "customerEmail":"someone-else@example.com"})"),
      "CUSTOMER_IDENTIFIER_NOT_MATCHED");
  EXPECT_EQ(
      error(
          R"({"originalAmount":5,"originalCurrency":"USD","customerId":"cus_emu_test",
                      "priceId":"price_emu_monthly"})"),
      "productId is required when priceId is provided");
  EXPECT_TRUE(absl::StrContains(
      error(
          R"({"originalAmount":5,"originalCurrency":"usd","customerId":"cus_emu_test"})"),
      "originalCurrency"));
  EXPECT_TRUE(absl::StrContains(error("{not json"), "not valid JSON"));
}

// --- Errors
// ------------------------------------------------------------------------------------

TEST_F(ClinkEmulatorTest, UnknownIdsAreCode404InHttp200) {
  for (const char* path :
       {"/order/ord_missing", "/refund/rfd_missing", "/checkout/session/x",
        "/subscription/sub_missing", "/subscription/invoice/inv_missing",
        "/product/prd_missing", "/price/price_missing",
        "/order/payment-session/sess_missing"}) {
    const HttpResult result = Call("GET", path);
    EXPECT_EQ(result.status, 200) << path;
    const Json json(result.body);
    EXPECT_EQ(json["/code"], "404") << path;
    EXPECT_TRUE(absl::EndsWith(json["/msg"], "not found")) << json["/msg"];
  }
}

TEST_F(ClinkEmulatorTest, HttpStatusErrorsOptionUsesHttp404And400) {
  ClinkEmulator::Options options;
  options.http_status_errors = true;
  StartEmulator(options);
  HttpResult result = Call("GET", "/order/ord_missing");
  EXPECT_EQ(result.status, 404);
  EXPECT_EQ(Json(result.body)["/code"], "404");
  result = Call("POST", "/refund", R"({"orderId":"x"})");
  EXPECT_EQ(result.status, 400);
  EXPECT_EQ(Json(result.body)["/msg"], "refundMerchantOrderId is required");
}

TEST_F(ClinkEmulatorTest, UnknownRouteIs404AndWrongMethodIs405) {
  EXPECT_EQ(Call("GET", "/nothing/here").status, 404);
  EXPECT_EQ(Call("DELETE", "/refund").status, 405);
  EXPECT_EQ(client_->Send("GET", "/elsewhere", "", AuthHeaders()).status, 404);
}

// --- Payments, orders, refunds
// ---------------------------------------------------------------

TEST_F(ClinkEmulatorTest, PaymentCreatesOrderThatCanBeRefundedUpToItsAmount) {
  const std::string order_id = Pay("10.50");
  EXPECT_TRUE(absl::StartsWith(order_id, "ord_"));

  const HttpResult order = Call("GET", "/order/" + order_id);
  EXPECT_TRUE(absl::StrContains(order.body, R"("amountTotal":10.50)"))
      << order.body;
  Json json(order.body);
  EXPECT_EQ(json["/data/status"], "success");
  EXPECT_EQ(json["/data/type"], "onetime");
  EXPECT_EQ(Int(json["/data/createTime"]), absl::ToUnixMillis(clock_.Now()));
  EXPECT_EQ(json["/data/paymentMethod/paymentInstrumentId"],
            "pi_emu_card_visa");
  EXPECT_EQ(json["/data/customerEmail"], "test@example.com");

  json = Refund(order_id, "refund-1", "4.25");
  EXPECT_EQ(json["/code"], "200");
  EXPECT_TRUE(absl::StartsWith(json["/data/refundId"], "rfd_"));
  EXPECT_EQ(json["/data/refundAmount"], "4.25");
  EXPECT_EQ(json["/data/status"], "success");
  EXPECT_EQ(json["/data/refundReason"], "Customer Initiated Refund");
  EXPECT_EQ(json["/data/metadata/merchantReferenceId"], "refund-1");
  EXPECT_EQ(Ok("GET", "/refund/" + json["/data/refundId"])["/data/orderId"],
            order_id);
  EXPECT_EQ(Ok("GET", "/order/" + order_id)["/data/status"],
            "partial_refunded");

  json = Refund(order_id, "refund-2", "6.26");  // 0.01 more than what is left.
  EXPECT_EQ(json["/code"], "90101401") << json["/msg"];
  EXPECT_TRUE(absl::StrContains(json["/msg"], "6.25")) << json["/msg"];

  json = Refund(order_id, "refund-3", "6.250");
  EXPECT_EQ(json["/code"], "200");
  EXPECT_EQ(Ok("GET", "/order/" + order_id)["/data/status"], "refunded");

  json = Refund(order_id, "refund-4", "0.01");
  EXPECT_EQ(json["/code"], "90101402") << json["/msg"];
}

TEST_F(ClinkEmulatorTest, OverRefundIsABusinessError) {
  const std::string order_id = Pay("5");
  const Json json = Refund(order_id, "too-much", "5.000001");
  EXPECT_EQ(json["/code"], "90101401");
  EXPECT_EQ(Ok("GET", "/order/" + order_id)["/data/status"], "success");
}

TEST_F(ClinkEmulatorTest, RefundMerchantOrderIdMakesRefundIdempotent) {
  const std::string order_id = Pay("20");
  const Json first = Refund(order_id, "same-id", "15");
  const Json second = Refund(order_id, "same-id", "15");
  EXPECT_EQ(first["/code"], "200");
  EXPECT_EQ(second["/code"], "200");
  EXPECT_EQ(first["/data/refundId"], second["/data/refundId"]);
  // Only one refund happened: 5 is still refundable, 5.01 is not.
  EXPECT_EQ(Refund(order_id, "other", "5.01")["/code"], "90101401");
  EXPECT_EQ(Refund(order_id, "other", "5")["/code"], "200");
}

TEST_F(ClinkEmulatorTest, AmountsAreEchoedDigitForDigit) {
  for (const char* amount :
       {"19.990", "0.10", "1e3", "12345678901234567890.1234567890"}) {
    const HttpResult payment = Call(
        "POST", "/payment",
        absl::StrCat(
            R"({"customerId":"cus_emu_test","paymentInstrumentId":"pi_emu_card_visa",
                         "paymentMethodType":"CARD","returnUrl":"https://r.example",
                         "currency":"USD","amount":)",
            amount, "}"));
    EXPECT_TRUE(absl::StrContains(payment.body,
                                  absl::StrCat(R"("amount":)", amount, ",")))
        << payment.body;
    const std::string order_id = Json(payment.body)["/data/orderId"];
    EXPECT_TRUE(
        absl::StrContains(Call("GET", "/order/" + order_id).body,
                          absl::StrCat(R"("amountTotal":)", amount, ",")));
  }
  // Seeded catalog amounts too.
  EXPECT_TRUE(absl::StrContains(Call("GET", "/price/price_emu_onetime").body,
                                R"("unitAmount":19.990,)"));
  const HttpResult by_price = Call(
      "POST", "/payment",
      R"({"customerId":"cus_emu_test","paymentInstrumentId":"pi_emu_card_visa",
                                   "paymentMethodType":"CARD","returnUrl":"https://r.example",
                                   "productId":"prd_emu_ebook","priceId":"price_emu_onetime"})");
  EXPECT_TRUE(absl::StrContains(by_price.body, R"("amount":19.990,)"))
      << by_price.body;
}

TEST_F(ClinkEmulatorTest, PaymentValidation) {
  const auto message = [&](const std::string& body) {
    const Json json(Call("POST", "/payment", body).body);
    EXPECT_NE(json["/code"], "200");
    return json["/msg"];
  };
  EXPECT_EQ(message(R"({"customerId":"cus_emu_test","paymentMethodType":"CARD",
                        "returnUrl":"r","amount":1,"currency":"USD"})"),
            "paymentInstrumentId is required");
  EXPECT_EQ(
      message(
          R"({"customerId":"cus_emu_test","paymentInstrumentId":"pi_emu_card_visa",
                        "paymentMethodType":"CARD","returnUrl":"r","currency":"USD"})"),
      "amount is required when priceId is not provided");
  EXPECT_EQ(
      message(
          R"({"customerId":"cus_emu_test","paymentInstrumentId":"pi_emu_card_visa",
                        "paymentMethodType":"CARD","returnUrl":"r",
                        "priceId":"price_emu_onetime"})"),
      "productId is required when priceId is provided");
  EXPECT_TRUE(absl::StartsWith(
      message(
          R"({"customerId":"cus_emu_test","paymentInstrumentId":"pi_emu_card_visa",
                  "paymentMethodType":"CARD","returnUrl":"r","amount":"abc","currency":"USD"})"),
      "amount must be a decimal number"));
  EXPECT_EQ(
      message(R"({"customerId":"cus_emu_test","paymentInstrumentId":"pi_nope",
                        "paymentMethodType":"CARD","returnUrl":"r","amount":1,
                        "currency":"USD"})"),
      "payment instrument pi_nope not found");
}

TEST_F(ClinkEmulatorTest, DeclinedCardFailsTheOrder) {
  const Json payment = Ok(
      "POST", "/payment",
      R"({"customerId":"cus_emu_test","paymentInstrumentId":"pi_emu_card_declined",
                              "paymentMethodType":"CARD","returnUrl":"https://r.example",
                              "amount":3,"currency":"USD"})");
  EXPECT_EQ(payment["/data/status"], "3");
  const Json order = Ok("GET", "/order/" + payment["/data/orderId"]);
  EXPECT_EQ(order["/data/status"], "failed");
  EXPECT_EQ(order["/data/paymentExecutionDetails/0/originalFailureCode"],
            "card_declined");
  EXPECT_EQ(Refund(payment["/data/orderId"], "r", "1")["/code"], "90101402");
}

TEST_F(ClinkEmulatorTest, WalletPaymentNeedsActionAndQrCodeCanBeRefreshed) {
  const Json instrument = Ok("POST", "/payment-instrument",
                             R"({"paymentInstrumentType":"CASHAPP",
                                 "customerEmail":"wallet@example.com"})");
  const std::string instrument_id = instrument["/data/id"];
  const std::string customer_id = instrument["/data/customerId"];
  EXPECT_TRUE(absl::StartsWith(instrument_id, "pi_"));
  EXPECT_TRUE(absl::StartsWith(customer_id, "cus_"));
  EXPECT_EQ(instrument["/data/type"], "CASHAPP");

  const Json payment =
      Ok("POST", "/payment",
         absl::StrCat(R"({"customerEmail":"wallet@example.com",
                                           "paymentInstrumentId":")",
                      instrument_id, R"(","paymentMethodType":"CASHAPP",
                                           "returnUrl":"https://r.example",
                                           "amount":7.5,"currency":"USD"})"));
  EXPECT_EQ(payment["/data/status"], "5");
  EXPECT_EQ(payment["/data/action/type"], "CASHAPP");
  const std::string first_png =
      payment["/data/action/walletHandleRedirectOrDisplayQrCode/imageUrlPng"];
  EXPECT_EQ(
      Int(payment
              ["/data/action/walletHandleRedirectOrDisplayQrCode/expiresAt"]),
      absl::ToUnixSeconds(clock_.Now() + absl::Minutes(5)));
  const std::string order_id = payment["/data/orderId"];
  EXPECT_EQ(Ok("GET", "/order/" + order_id)["/data/status"], "requires_action");
  EXPECT_EQ(Ok("GET", "/checkout/session/" +
                          payment["/data/sessionId"])["/data/paymentStatus"],
            "processing");

  clock_.Advance(absl::Minutes(4));
  const Json refreshed = Ok("POST", "/payment/" + order_id + "/qrcode/refresh");
  EXPECT_EQ(refreshed["/data/orderId"], order_id);
  EXPECT_EQ(refreshed["/data/action/type"], "CASHAPP");
  EXPECT_NE(
      refreshed["/data/action/walletHandleRedirectOrDisplayQrCode/imageUrlPng"],
      first_png);
  EXPECT_EQ(
      Int(refreshed
              ["/data/action/walletHandleRedirectOrDisplayQrCode/expiresAt"]),
      absl::ToUnixSeconds(clock_.Now() + absl::Minutes(5)));

  // The instrument belongs to the new customer only.
  EXPECT_EQ(
      Json(Call("POST", "/payment",
                absl::StrCat(
                    R"({"customerId":"cus_emu_test","paymentInstrumentId":")",
                    instrument_id, R"(","paymentMethodType":"CASHAPP",
                                   "returnUrl":"r","amount":1,"currency":"USD"})"))
               .body)["/code"],
      "400");
  // Cards cannot be created through the API; only CASHAPP QR codes refresh.
  EXPECT_EQ(
      Json(
          Call(
              "POST", "/payment-instrument",
              R"({"paymentInstrumentType":"CARD","customerId":"cus_emu_test"})")
              .body)["/code"],
      "400");
  EXPECT_EQ(Json(Call("POST", "/payment/" + Pay("1") + "/qrcode/refresh")
                     .body)["/code"],
            "400");
}

TEST_F(ClinkEmulatorTest, ListsOrdersNewestFirstWithFiltersAndPages) {
  const std::string first = Pay("1");
  clock_.Advance(absl::Seconds(1));
  const std::string second = Pay("2");
  clock_.Advance(absl::Seconds(1));
  const std::string third = Pay("3");

  const HttpResult page1 =
      Call("GET", "/order?pageNum=1&pageSize=2&customerId=cus_emu_test");
  EXPECT_TRUE(absl::StartsWith(page1.body, R"({"total":3,"rows":[)"))
      << page1.body;
  EXPECT_TRUE(absl::EndsWith(page1.body, R"(],"code":200,"msg":"success"})"))
      << page1.body;
  const Json json(page1.body);
  EXPECT_FALSE(json.Has("/data"));
  EXPECT_EQ(json.Size("/rows"), 2u);
  EXPECT_EQ(json["/rows/0/orderId"], third);
  EXPECT_EQ(json["/rows/1/orderId"], second);
  const Json page2 = Ok("GET", "/order?pageNum=2&pageSize=2");
  EXPECT_EQ(page2.Size("/rows"), 1u);
  EXPECT_EQ(page2["/rows/0/orderId"], first);
  EXPECT_EQ(Ok("GET", "/order?pageSize=500")["/total"],
            "3");  // Capped, not rejected.
  EXPECT_EQ(Ok("GET", "/order?customerId=cus_other")["/total"], "0");
  EXPECT_EQ(Json(Call("GET", "/order?pageNum=0").body)["/code"], "400");
}

// --- Subscriptions
// -------------------------------------------------------------------------

TEST_F(ClinkEmulatorTest, SubscriptionLifecycle) {
  const Json created =
      Ok("POST", "/subscription",
         R"({"customerId":"cus_emu_test","productId":"prd_emu_basic",
                              "priceId":"price_emu_monthly","paymentMethodType":"CARD",
                              "paymentInstrumentId":"pi_emu_card_visa","paymentCurrency":"usd",
                              "returnUrl":"https://r.example","merchantReferenceId":"plan-7"})");
  EXPECT_EQ(created["/data/status"], "1");
  EXPECT_EQ(created["/data/amount"], "9.99");
  EXPECT_EQ(created["/data/currency"], "USD");
  const std::string subscription_id = created["/data/subscriptionId"];
  const std::string order_id = created["/data/orderId"];
  const std::string invoice_id = created["/data/invoiceId"];
  EXPECT_TRUE(absl::StartsWith(subscription_id, "sub_"));
  EXPECT_TRUE(absl::StartsWith(invoice_id, "inv_"));

  Json subscription = Ok("GET", "/subscription/" + subscription_id);
  EXPECT_EQ(subscription["/data/status"], "active");
  EXPECT_EQ(subscription["/data/merchantReference"], "plan-7");
  EXPECT_EQ(subscription["/data/priceSnapshotId"], "pss_emu_monthly");
  EXPECT_EQ(subscription["/data/cancelAtPeriodEnd"], "false");
  // 2023-11-14T22:13:20Z + 1 month.
  EXPECT_EQ(Int(subscription["/data/currentPeriodEnd"]),
            absl::ToUnixMillis(absl::FromUnixSeconds(1700000000 + 30 * 86400)));

  const Json invoice = Ok("GET", "/subscription/invoice/" + invoice_id);
  EXPECT_EQ(invoice["/data/status"], "paid");
  EXPECT_EQ(invoice["/data/orderId"], order_id);
  EXPECT_EQ(invoice["/data/items/0/price/priceId"], "price_emu_monthly");
  const Json orders = Ok("GET", "/order?subscriptionId=" + subscription_id);
  EXPECT_EQ(orders["/total"], "1");
  EXPECT_EQ(orders["/rows/0/type"], "recurring");
  EXPECT_EQ(orders["/rows/0/invoiceId"], invoice_id);

  clock_.Advance(absl::Hours(1));
  subscription =
      Ok("POST", "/subscription/" + subscription_id + "/cancel",
         R"({"reason":"switching","cancelReasonCode":"too_expensive"})");
  EXPECT_EQ(subscription["/data/status"], "active");
  EXPECT_EQ(subscription["/data/cancelAtPeriodEnd"], "true");
  EXPECT_EQ(subscription["/data/cancelAt"],
            subscription["/data/currentPeriodEnd"]);
  EXPECT_EQ(subscription["/data/cancelReason"], "switching");

  subscription = Ok("POST", "/subscription/" + subscription_id + "/cancel",
                    R"({"reason":"now","cancelImmediately":true})");
  EXPECT_EQ(subscription["/data/status"], "cancelled");
  EXPECT_EQ(Int(subscription["/data/canceledAt"]),
            absl::ToUnixMillis(clock_.Now()));
  EXPECT_EQ(Ok("GET", "/subscription/" + subscription_id)["/data/status"],
            "cancelled");

  const Json again =
      Json(Call("POST", "/subscription/" + subscription_id + "/cancel",
                R"({"reason":"again","cancelImmediately":true})")
               .body);
  EXPECT_EQ(again["/code"], "90101402");
  EXPECT_EQ(
      Json(Call("POST", "/subscription/" + subscription_id + "/cancel", "{}")
               .body)["/msg"],
      "reason is required");
}

TEST_F(ClinkEmulatorTest, SubscriptionNeedingActionIsIncomplete) {
  const Json created =
      Ok("POST", "/subscription",
         R"({"customerEmail":"test@example.com","productId":"prd_emu_pro",
                              "priceId":"price_emu_pro_monthly","paymentMethodType":"CARD",
                              "paymentInstrumentId":"pi_emu_card_3ds","paymentCurrency":"USD",
                              "returnUrl":"https://r.example"})");
  EXPECT_EQ(created["/data/status"], "5");
  EXPECT_EQ(created["/data/action/type"], "CARD");
  EXPECT_FALSE(created.Has("/data/action/walletHandleRedirectOrDisplayQrCode"));
  EXPECT_EQ(Ok("GET", "/subscription/" +
                          created["/data/subscriptionId"])["/data/status"],
            "incomplete");
  EXPECT_EQ(Ok("GET", "/subscription/invoice/" +
                          created["/data/invoiceId"])["/data/status"],
            "open");
  EXPECT_EQ(Ok("GET", "/order/" + created["/data/orderId"])["/data/status"],
            "requires_action");
}

TEST_F(ClinkEmulatorTest, SubscriptionValidation) {
  const auto message = [&](const std::string& price,
                           const std::string& product) {
    return Json(
        Call("POST", "/subscription",
             absl::StrCat(R"({"customerId":"cus_emu_test","productId":")",
                          product, R"(","priceId":")", price,
                          R"(","paymentMethodType":"CARD",
                                  "paymentInstrumentId":"pi_emu_card_visa",
                                  "paymentCurrency":"USD","returnUrl":"r"})"))
            .body)["/msg"];
  };
  EXPECT_EQ(message("price_emu_onetime", "prd_emu_ebook"),
            "priceId must be a recurring price");
  EXPECT_EQ(message("price_emu_monthly", "prd_emu_pro"),
            "priceId does not belong to productId");
  EXPECT_EQ(message("price_emu_monthly_legacy", "prd_emu_basic"),
            "priceId is not active");
  EXPECT_EQ(message("price_emu_pro_monthly_eur", "prd_emu_pro"),
            "paymentCurrency USD is not supported by price "
            "price_emu_pro_monthly_eur");
  EXPECT_EQ(message("price_nope", "prd_emu_basic"),
            "price price_nope not found");
}

// --- Catalog, portal, agent sessions
// ---------------------------------------------------------

TEST_F(ClinkEmulatorTest, CatalogListsUseTheListEnvelope) {
  const HttpResult products = Call("GET", "/product?pageNum=1&pageSize=10");
  EXPECT_TRUE(absl::StartsWith(products.body, R"({"total":3,"rows":[)"))
      << products.body;
  const Json json(products.body);
  EXPECT_EQ(json["/code"], "200");
  EXPECT_EQ(json["/msg"], "success");
  EXPECT_EQ(json["/rows/0/productId"], "prd_emu_basic");
  EXPECT_EQ(json.Size("/rows/0/priceList"), 3u);

  const Json prices =
      Ok("GET",
         "/price?productId=prd_emu_basic&active=true&pageNum=1&pageSize=10");
  EXPECT_EQ(prices["/total"], "2");
  EXPECT_EQ(prices["/rows/0/priceId"], "price_emu_monthly");
  EXPECT_EQ(prices["/rows/0/recurring/interval"], "month");
  EXPECT_EQ(Ok("GET", "/price?active=false")["/rows/0/priceId"],
            "price_emu_monthly_legacy");
  EXPECT_EQ(Ok("GET", "/price?pageNum=2&pageSize=4").Size("/rows"), 2u);
  EXPECT_EQ(Json(Call("GET", "/price?pageSize=101").body)["/code"], "400");

  EXPECT_EQ(Ok("GET", "/product/prd_emu_pro")["/data/defaultPrice"],
            "price_emu_pro_monthly");
  EXPECT_EQ(Ok("GET", "/price/price_emu_pro_monthly_eur")["/data/currency"],
            "EUR");
}

// Catalog writes keep one consistent state: an uploaded image is a URL and an
// ossId that CreateProduct takes; a product and price created are listed and
// read back; an update reads back updated, as a new snapshot.
TEST_F(ClinkEmulatorTest, CatalogWritesAreListedAndReadBack) {
  const auto upload = [&](const std::string& filename,
                          const std::string& data) {
    std::vector<std::string> headers = AuthHeaders();
    headers.erase(std::remove(headers.begin(), headers.end(),
                              "Content-Type: application/json"),
                  headers.end());
    headers.push_back("Content-Type: multipart/form-data; boundary=XyZ");
    const std::string body = absl::StrCat(
        "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"",
        filename, "\"\r\nContent-Type: image/png\r\n\r\n", data,
        "\r\n--XyZ--\r\n");
    return client_->Send("POST", "/api/product/image/upload", body, headers);
  };
  const HttpResult uploaded =
      upload("logo.png", std::string("\x89PNG\r\n\x1a\n\0\r\n", 11));
  ASSERT_EQ(uploaded.status, 200);
  const Json image(uploaded.body);
  ASSERT_EQ(image["/code"], "200") << uploaded.body;
  const std::string oss_id = image["/data/ossId"];
  EXPECT_TRUE(absl::StartsWith(oss_id, "oss_")) << oss_id;
  EXPECT_EQ(image["/data/fileName"], "logo.png");
  EXPECT_TRUE(absl::StartsWith(image["/data/url"], "https://"))
      << uploaded.body;
  EXPECT_EQ(Json(upload("logo.bmp", "BM").body)["/code"], "400");
  EXPECT_EQ(
      Json(upload("big.png", std::string((5 << 20) + 1, 'x')).body)["/code"],
      "400");

  EXPECT_EQ(Json(Call("POST", "/product",
                      R"({"name":"X","image":"oss_unknown",
                          "taxCategory":"ebook"})")
                     .body)["/code"],
            "400");
  const Json product = Ok("POST", "/product",
                          absl::StrCat(R"({
      "name": "Team Plan", "image": ")",
                                       oss_id, R"(",
      "taxCategory": "software_service",
      "localizedNames": {"en-US": "Team Plan"},
      "priceList": [{"currency": "USD", "unitAmount": 49.90,
                     "priceType": "recurring",
                     "recurringDetails": {"interval": "month",
                                          "trial_period_days": 7},
                     "isDefaultPrice": true}]})"));
  const std::string product_id = product["/data/productId"];
  const std::string first_price = product["/data/priceList/0/priceId"];
  EXPECT_EQ(product["/data/image"], image["/data/url"]);
  EXPECT_EQ(product["/data/defaultPrice"], first_price);
  EXPECT_EQ(product["/data/priceList/0/unitAmount"], "49.90");
  EXPECT_EQ(product["/data/priceList/0/recurring/trialPeriodDays"], "7");
  const Json products = Ok("GET", "/product?pageNum=1&pageSize=100");
  EXPECT_EQ(products["/total"], "4");
  EXPECT_EQ(products["/rows/3/productId"], product_id);

  const Json price =
      Ok("POST", "/price", absl::StrCat(R"({"productId":")", product_id, R"(",
      "currency":"EUR","unitAmount":45,"priceType":"one_time"})"));
  const std::string price_id = price["/data/priceId"];
  EXPECT_EQ(price["/data/unitAmount"], "45");
  const Json listed = Ok("GET", absl::StrCat("/price?productId=", product_id,
                                             "&pageNum=1&pageSize=10"));
  EXPECT_EQ(listed["/total"], "2");
  EXPECT_EQ(listed["/rows/1/priceId"], price_id);
  EXPECT_EQ(Json(Call("POST", "/price",
                      R"({"productId":"prd_missing","currency":"USD",
                          "unitAmount":1,"priceType":"one_time"})")
                     .body)["/code"],
            "404");

  const Json updated = Ok("PUT", absl::StrCat("/price/", price_id),
                          R"({"unitAmount":39.5,"isActive":"false",
                              "isDefaultPrice":true})");
  EXPECT_NE(updated["/data/priceSnapshotId"], price["/data/priceSnapshotId"]);
  const Json read = Ok("GET", absl::StrCat("/price/", price_id));
  EXPECT_EQ(read["/data/unitAmount"], "39.5");
  EXPECT_EQ(read["/data/active"], "false");
  EXPECT_EQ(read["/data/currency"], "EUR");
  EXPECT_EQ(
      Ok("GET", absl::StrCat("/product/", product_id))["/data/defaultPrice"],
      price_id);
  EXPECT_EQ(Json(Call("PUT", "/price/price_missing", "{}").body)["/code"],
            "404");
}

TEST_F(ClinkEmulatorTest, BillingPortalSession) {
  const Json portal =
      Ok("POST", "/billing/session",
         R"({"customerId":"cus_emu_test","returnUrl":"https://shop.example"})");
  EXPECT_TRUE(absl::StrContains(portal["/data/url"], "/session/"));
  EXPECT_EQ(Int(portal["/data/expiresAt"]),
            absl::ToUnixMillis(clock_.Now() + absl::Minutes(30)));
  EXPECT_EQ(
      Json(Call("POST", "/billing/session", R"({"customerId":"cus_nope"})")
               .body)["/msg"],
      "CUSTOMER_NOT_FOUND");
}

TEST_F(ClinkEmulatorTest, AgentPaymentSession) {
  const Json created = Ok("POST", "/order/payment-session",
                          R"({"customerEmail":"agent@example.com","amount":0.50,
                              "currency":"USD"})");
  const std::string id = created["/data/sessionId"];
  EXPECT_EQ(created["/data/expireTime"], "2023-11-14T22:43:20Z");
  const HttpResult fetched = Call("GET", "/order/payment-session/" + id);
  EXPECT_TRUE(absl::StrContains(fetched.body, R"("amount":0.50,)"))
      << fetched.body;
  const Json session(fetched.body);
  EXPECT_EQ(session["/data/customerEmail"], "agent@example.com");
  EXPECT_TRUE(absl::StartsWith(session["/data/customerId"], "cus_"));
  EXPECT_EQ(session["/data/createTime"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(
      Json(
          Call(
              "POST", "/order/payment-session",
              R"({"customerEmail":"a@example.com","amount":0.49,"currency":"USD"})")
              .body)["/msg"],
      "amount must be at least 0.5");
}

// --- Faults
// -----------------------------------------------------------------------------------

// --- Coupons and promotion codes
// --------------------------------------------------------------

TEST_F(ClinkEmulatorTest, CouponIsListedGettableAndRenamed) {
  const Json created =
      Ok("POST", "/coupon",
         R"({"couponName":"Summer sale","discountType":"percentage",
                              "percentage":12.50,"applyType":"product",
                              "applicableProducts":["prd_emu_pro"],
                              "durationType":"repeating","durationMonths":3,
                              "promotionCodes":[{"code":"SUMMER25","firstOrderOnly":true}]})");
  const std::string coupon_id = created["/data/couponId"];
  EXPECT_TRUE(absl::StartsWith(coupon_id, "coupon_")) << coupon_id;
  EXPECT_EQ(created["/data/percentage"], "12.50");  // Digit for digit.
  EXPECT_EQ(created["/data/terms"], "12.50% off for 3 months");
  Ok("POST", "/coupon",
     R"({"couponName":"Loyalty","discountType":"fixed_amount",
         "fixedAmounts":{"USD":5,"JPY":700},"applyType":"none","durationType":"forever"})");

  Json list = Ok("GET", "/coupon");
  EXPECT_EQ(list["/total"], "2");
  EXPECT_EQ(list["/rows/0/couponId"], coupon_id);
  list = Ok("GET", "/coupon?discountType=fixed_amount&pageSize=500");
  EXPECT_EQ(list["/total"], "1");
  EXPECT_EQ(list["/rows/0/fixedAmounts/JPY"], "700");
  EXPECT_EQ(list["/rows/0/terms"], "USD 5 off forever");

  Json coupon = Ok("GET", "/coupon/" + coupon_id);
  EXPECT_EQ(coupon["/data/couponName"], "Summer sale");
  EXPECT_EQ(coupon["/data/valid"], "true");
  EXPECT_EQ(coupon["/data/applyType"], "product");
  EXPECT_EQ(coupon["/data/applicableProducts/0"], "prd_emu_pro");
  EXPECT_EQ(coupon["/data/promotionCodeList/0/code"], "SUMMER25");
  EXPECT_EQ(coupon["/data/promotionCodeList/0/status"], "active");

  const Json renamed = Ok("PUT", "/coupon/" + coupon_id + "/name",
                          R"({"newName":"Late summer sale"})");
  EXPECT_FALSE(renamed.Has("/data"));  // Clink's RVoid: {code, msg} only.
  EXPECT_EQ(Ok("GET", "/coupon/" + coupon_id)["/data/couponName"],
            "Late summer sale");
  EXPECT_EQ(Ok("GET", "/coupon")["/rows/0/couponName"], "Late summer sale");

  EXPECT_EQ(Json(Call("GET", "/coupon/coupon_missing").body)["/code"], "404");
  EXPECT_EQ(
      Json(Call("PUT", "/coupon/" + coupon_id + "/name", "{}").body)["/msg"],
      "newName is required");
}

TEST_F(ClinkEmulatorTest, CouponValidation) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"discountType":"percentage","percentage":5,"applyType":"none","durationType":"once"})",
       "couponName is required"},
      {R"({"couponName":"x","discountType":"percentage","applyType":"none","durationType":"once"})",
       "percentage is required"},
      {R"({"couponName":"x","discountType":"percentage","percentage":101,"applyType":"none","durationType":"once"})",
       "percentage must be at most 100"},
      {R"({"couponName":"x","discountType":"fixed_amount","fixedAmounts":{"usd":5},"applyType":"none","durationType":"once"})",
       "fixedAmounts.usd must be a three-letter upper-case ISO 4217 code"},
      {R"({"couponName":"x","discountType":"percentage","percentage":5,"applyType":"none","durationType":"repeating"})",
       "durationMonths must be at least 1 for a repeating coupon"},
  };
  for (const auto& [body, message] : cases) {
    const Json json(Call("POST", "/coupon", body).body);
    EXPECT_EQ(json["/code"], "400") << body;
    EXPECT_EQ(json["/msg"], message) << body;
  }
  EXPECT_EQ(Ok("GET", "/coupon")["/total"], "0");  // Nothing was created.
}

TEST_F(ClinkEmulatorTest,
       PromotionCodesAreListedUnderTheirCouponAndChangeState) {
  const std::string coupon_id =
      Ok("POST", "/coupon",
         R"({"couponName":"Launch","discountType":"percentage","percentage":10,
             "applyType":"none","durationType":"once"})")["/data/couponId"];
  EXPECT_EQ(Ok("GET", "/promotion-code/coupon/" + coupon_id).Size("/data"), 0u);

  // POST /promotion-code/{id} takes the coupon's id.
  const Json created =
      Ok("POST", "/promotion-code/" + coupon_id,
         R"({"code":"LAUNCH10","restrictedCustomerIds":["cus_emu_test"],
                              "minimumSpend":{"USD":10.00},"perCustomerRedemptionLimit":1})");
  const std::string code_id = created["/data/promotionCodeId"];
  EXPECT_TRUE(absl::StartsWith(code_id, "promo_")) << code_id;
  EXPECT_EQ(created["/data/couponId"], coupon_id);
  EXPECT_EQ(created["/data/status"], "active");
  const Json generated = Ok("POST", "/promotion-code/" + coupon_id, "{}");
  EXPECT_FALSE(generated["/data/code"].empty());

  const Json list = Ok("GET", "/promotion-code/coupon/" + coupon_id);
  ASSERT_EQ(list.Size("/data"), 2u);
  EXPECT_EQ(list["/data/0/promotionCodeId"], code_id);
  EXPECT_EQ(list["/data/1/promotionCodeId"],
            generated["/data/promotionCodeId"]);

  Json code = Ok("GET", "/promotion-code/" + code_id);
  EXPECT_EQ(code["/data/code"], "LAUNCH10");
  EXPECT_EQ(code["/data/customers/0/customerId"], "cus_emu_test");
  EXPECT_EQ(code["/data/minimumSpend/USD"], "10.00");
  EXPECT_EQ(code["/data/amount"], "10.00");

  EXPECT_FALSE(
      Ok("PUT", "/promotion-code/" + code_id + "/deactivate").Has("/data"));
  EXPECT_EQ(Ok("GET", "/promotion-code/" + code_id)["/data/status"],
            "inactive");
  EXPECT_EQ(Ok("GET", "/promotion-code/coupon/" + coupon_id)["/data/0/status"],
            "inactive");
  Ok("PUT", "/promotion-code/" + code_id + "/active");
  EXPECT_EQ(Ok("GET", "/promotion-code/" + code_id)["/data/status"], "active");

  EXPECT_EQ(Json(Call("POST", "/promotion-code/" + coupon_id,
                      R"({"code":"LAUNCH10"})")
                     .body)["/msg"],
            "promotion code LAUNCH10 already exists");
  EXPECT_EQ(
      Json(Call("POST", "/promotion-code/coupon_missing", "{}").body)["/code"],
      "404");
  EXPECT_EQ(
      Json(Call("PUT", "/promotion-code/promo_missing/active").body)["/code"],
      "404");
}

// --- Test clocks
// ------------------------------------------------------------------------------

TEST_F(ClinkEmulatorTest, AdvancingATestClockRenewsItsSubscription) {
  const Json subscription =
      Ok("POST", "/subscription",
         R"({"customerId":"cus_emu_test","productId":"prd_emu_basic",
             "priceId":"price_emu_monthly","paymentMethodType":"CARD",
             "paymentInstrumentId":"pi_emu_card_visa","paymentCurrency":"USD",
             "returnUrl":"https://r.example"})");
  const std::string subscription_id = subscription["/data/subscriptionId"];
  const int64_t created_ms = absl::ToUnixMillis(clock_.Now());
  const int64_t first_end_ms = Int(
      Ok("GET", "/subscription/" + subscription_id)["/data/currentPeriodEnd"]);

  const Json clock =
      Ok("POST", "/subscription/test-clocks",
         absl::StrCat(R"({"name":"Renewals","subscriptionId":")",
                      subscription_id, R"(","metadata":"{\"suite\":\"r\"}"})"));
  const std::string clock_id = clock["/data/clockId"];
  EXPECT_TRUE(absl::StartsWith(clock_id, "clock_")) << clock_id;
  EXPECT_EQ(clock["/data/status"], "READY");
  EXPECT_EQ(Int(clock["/data/frozenTime"]), created_ms);
  EXPECT_EQ(clock["/data/metadata"], R"({"suite":"r"})");
  const Json list = Ok("GET", "/subscription/test-clocks/list");
  ASSERT_EQ(list.Size("/data"), 1u);
  EXPECT_EQ(list["/data/0/clockId"], clock_id);

  // Past two period ends (one month each): two renewals, each a paid order.
  const int64_t target_ms = first_end_ms + 40LL * 86400 * 1000;
  const Json task =
      Ok("POST", "/subscription/test-clocks/" + clock_id + "/advance",
         absl::StrCat(R"({"targetFrozenTime":)", target_ms, "}"));
  EXPECT_EQ(task["/data/status"], "SUCCEEDED");
  EXPECT_EQ(Int(task["/data/fromTime"]), created_ms);
  EXPECT_EQ(Int(task["/data/toTime"]), target_ms);
  EXPECT_EQ(task["/data/summary"], "2 renewals");

  const Json advanced = Ok("GET", "/subscription/test-clocks/" + clock_id);
  EXPECT_EQ(Int(advanced["/data/frozenTime"]), target_ms);
  EXPECT_EQ(Int(advanced["/data/lastAdvancedTo"]), target_ms);
  EXPECT_EQ(advanced["/data/eventCount"], "2");
  const Json renewed = Ok("GET", "/subscription/" + subscription_id);
  EXPECT_EQ(renewed["/data/status"], "active");
  EXPECT_EQ(renewed["/data/elapsedCycles"], "2");
  EXPECT_LE(Int(renewed["/data/currentPeriodStart"]), target_ms);
  EXPECT_GT(Int(renewed["/data/currentPeriodEnd"]), target_ms);
  const Json orders = Ok("GET", "/order?subscriptionId=" + subscription_id);
  EXPECT_EQ(orders["/total"], "3");  // The first charge and two renewals.

  // Cancel at period end, then advance past it: the subscription ends.
  Ok("POST", "/subscription/" + subscription_id + "/cancel",
     R"({"reason":"done"})");
  const int64_t end_ms = Int(renewed["/data/currentPeriodEnd"]);
  const Json last =
      Ok("POST", "/subscription/test-clocks/" + clock_id + "/advance",
         absl::StrCat(R"({"targetFrozenTime":)", end_ms + 1, "}"));
  EXPECT_EQ(last["/data/summary"], "0 renewals, cancelled at period end");
  EXPECT_EQ(Ok("GET", "/subscription/" + subscription_id)["/data/status"],
            "cancelled");

  // Backwards is refused; a completed clock cannot advance.
  EXPECT_EQ(
      Json(Call("POST", "/subscription/test-clocks/" + clock_id + "/advance",
                absl::StrCat(R"({"targetFrozenTime":)", created_ms, "}"))
               .body)["/code"],
      "400");
  const Json completed =
      Ok("POST", "/subscription/test-clocks/" + clock_id + "/complete",
         R"({"reason":"suite finished"})");
  EXPECT_EQ(completed["/data/status"], "COMPLETED");
  EXPECT_EQ(Ok("GET", "/subscription/test-clocks/list")["/data/0/status"],
            "COMPLETED");
  EXPECT_EQ(
      Json(Call("POST", "/subscription/test-clocks/" + clock_id + "/advance",
                absl::StrCat(R"({"targetFrozenTime":)", end_ms + 2, "}"))
               .body)["/code"],
      "90101402");
  EXPECT_EQ(Json(Call("POST",
                      "/subscription/test-clocks/" + clock_id + "/complete", "")
                     .body)["/code"],
            "90101402");
}

TEST_F(ClinkEmulatorTest, TestClockValidation) {
  EXPECT_EQ(Json(Call("POST", "/subscription/test-clocks",
                      R"({"name":"x","subscriptionId":"sub_missing"})")
                     .body)["/code"],
            "404");
  EXPECT_EQ(Json(Call("POST", "/subscription/test-clocks",
                      R"({"subscriptionId":"sub_missing"})")
                     .body)["/msg"],
            "name is required");
  EXPECT_EQ(
      Json(
          Call("GET", "/subscription/test-clocks/clock_missing").body)["/code"],
      "404");
  EXPECT_EQ(
      Json(Call("POST", "/subscription/test-clocks/clock_missing/advance", "{}")
               .body)["/msg"],
      "targetFrozenTime is required");
}

TEST_F(ClinkEmulatorTest, HttpErrorFaultAppliesToTheNextNRequests) {
  Fault fault;
  fault.kind = Fault::Kind::kHttpError;
  fault.http_status = 502;
  fault.count = 2;
  emulator_->SetFault(fault);
  EXPECT_EQ(Call("GET", "/product").status, 502);
  EXPECT_EQ(Call("GET", "/product").status, 502);
  EXPECT_EQ(Call("GET", "/product").status, 200);
}

TEST_F(ClinkEmulatorTest, FaultWithNegativeCountAppliesUntilCleared) {
  Fault fault;
  fault.kind = Fault::Kind::kHttpError;
  fault.http_status = 500;
  fault.count = -1;
  emulator_->SetFault(fault);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Call("GET", "/product").status, 500);
  emulator_->ClearFaults();
  EXPECT_EQ(Call("GET", "/product").status, 200);
}

TEST_F(ClinkEmulatorTest, FaultPathPrefixLimitsWhereItApplies) {
  Fault fault;
  fault.kind = Fault::Kind::kHttpError;
  fault.path_prefix = "/api/refund";
  emulator_->SetFault(fault);
  EXPECT_EQ(Call("GET", "/product").status, 200);
  EXPECT_EQ(Call("GET", "/refund/rfd_x").status, 503);
  EXPECT_EQ(Call("GET", "/refund/rfd_x").status, 200);
}

TEST_F(ClinkEmulatorTest, RateLimitFaultSendsRetryAfter) {
  Fault fault;
  fault.kind = Fault::Kind::kRateLimit;
  fault.retry_after = "7";
  emulator_->SetFault(fault);
  const HttpResult result = Call("GET", "/product");
  EXPECT_EQ(result.status, 429);
  EXPECT_EQ(result.header("retry-after"), "7");
}

TEST_F(ClinkEmulatorTest, MalformedJsonFaultIsHttp200WithBrokenBody) {
  Fault fault;
  fault.kind = Fault::Kind::kMalformedJson;
  emulator_->SetFault(fault);
  const HttpResult result = Call("GET", "/product");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.header("content-type"), "application/json");
  EXPECT_FALSE(Json(result.body).ok()) << result.body;
}

TEST_F(ClinkEmulatorTest, LatencyFaultDelaysTheResponse) {
  Fault fault;
  fault.kind = Fault::Kind::kLatency;
  fault.latency = absl::Milliseconds(300);
  emulator_->SetFault(fault);
  const absl::Time start = absl::Now();
  EXPECT_EQ(Call("GET", "/product").status, 200);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
}

TEST_F(ClinkEmulatorTest, DropConnectionFaultClosesWithoutResponse) {
  Fault fault;
  fault.kind = Fault::Kind::kDropConnection;
  emulator_->SetFault(fault);
  // A fresh connection: on a reused one curl would silently retry the request
  // once.
  const HttpResult result = Call("POST", "/refund", R"({"orderId":"o"})", true);
  EXPECT_EQ(result.curl_code, CURLE_GOT_NOTHING)
      << curl_easy_strerror(result.curl_code);
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(emulator_->requests().back().path,
            "/api/refund");  // The request was read.
  EXPECT_EQ(Call("GET", "/product").status, 200);
}

TEST_F(ClinkEmulatorTest, ProcessThenDropFaultCommitsButLosesTheAnswer) {
  Fault fault;
  fault.kind = Fault::Kind::kProcessThenDrop;
  fault.path_prefix = "/api/payment";
  emulator_->SetFault(fault);
  // A fresh connection: on a reused one curl would silently retry the request
  // once (and pay twice).
  const HttpResult result = Call("POST", "/payment", R"({"customerId":"cus_emu_test",
                                   "paymentInstrumentId":"pi_emu_card_visa",
                                   "paymentMethodType":"CARD",
                                   "returnUrl":"https://shop.example/return",
                                   "merchantReferenceId":"lost-1",
                                   "amount":5.00,"currency":"USD"})",
                                 true);
  EXPECT_EQ(result.curl_code, CURLE_GOT_NOTHING)
      << curl_easy_strerror(result.curl_code);
  EXPECT_EQ(result.status, 0);
  // The payment happened: its order is there.
  const Json orders = Ok("GET", "/order?customerId=cus_emu_test");
  EXPECT_EQ(orders["/total"], "1");
  EXPECT_EQ(orders["/rows/0/merchantReferenceId"], "lost-1");
  EXPECT_EQ(orders["/rows/0/status"], "success");
}

TEST_F(ClinkEmulatorTest, ResetConnectionFaultSendsRst) {
  Fault fault;
  fault.kind = Fault::Kind::kResetConnection;
  emulator_->SetFault(fault);
  const HttpResult result = Call("POST", "/refund", R"({"orderId":"o"})", true);
  EXPECT_EQ(result.curl_code, CURLE_RECV_ERROR)
      << curl_easy_strerror(result.curl_code);
  EXPECT_EQ(result.status, 0);
  EXPECT_EQ(Call("GET", "/product").status, 200);
}

TEST_F(ClinkEmulatorTest, AdminEndpointsSetAndClearFaultsAndReportStats) {
  HttpResult result = client_->Send(
      "POST", "/__emulator/faults",
      R"({"kind":"http_error","httpStatus":504,"count":-1,"pathPrefix":"/api/order"})",
      {});
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(Call("GET", "/order/x").status, 504);
  EXPECT_EQ(Call("GET", "/product").status, 200);
  EXPECT_EQ(client_->Send("DELETE", "/__emulator/faults", "", {}).status, 200);
  EXPECT_EQ(Call("GET", "/order/x").status, 200);
  EXPECT_EQ(
      client_->Send("POST", "/__emulator/faults", R"({"kind":"boom"})", {})
          .status,
      400);

  result = client_->Send("GET", "/__emulator/stats", "", {});
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.body,
            R"({"connectionsAccepted":1,"requests":3,"webhookEvents":0,)"
            R"("webhookDeliveryAttempts":0,"webhookDeliveriesSucceeded":0,)"
            R"("webhookDeliveriesGaveUp":0,"webhookDeliveriesDropped":0})");
}

// --- Connections and recorded requests
// -------------------------------------------------------

TEST_F(ClinkEmulatorTest, CountsConnectionsNotRequests) {
  EXPECT_EQ(emulator_->connections_accepted(), 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Call("GET", "/product").status, 200);
  EXPECT_EQ(emulator_->connections_accepted(),
            1);  // Keep-alive reused one connection.
  HttpClient other(Origin());
  EXPECT_EQ(other.Send("GET", "/api/product", "", AuthHeaders()).status, 200);
  EXPECT_EQ(emulator_->connections_accepted(), 2);
}

TEST_F(ClinkEmulatorTest, RecordsRequests) {
  Call("POST", "/refund?x=1&y=%20", R"({"orderId":"o"})");
  client_->Send("GET", "/api/product", "",
                {});  // Rejected by auth, still recorded.
  const std::vector<RecordedRequest> requests = emulator_->requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].method, "POST");
  EXPECT_EQ(requests[0].path, "/api/refund");
  EXPECT_EQ(requests[0].query_string, "x=1&y=%20");
  EXPECT_EQ(requests[0].body, R"({"orderId":"o"})");
  EXPECT_EQ(requests[0].api_key, kApiKey);
  EXPECT_EQ(requests[0].timestamp,
            absl::StrCat(absl::ToUnixMillis(clock_.Now())));
  EXPECT_EQ(requests[0].content_type, "application/json");
  EXPECT_EQ(requests[0].user_agent, "emulator-test/1.0");
  EXPECT_EQ(requests[0].request_id, "req-123");
  EXPECT_EQ(requests[1].api_key, "");
  emulator_->ClearRequests();
  EXPECT_TRUE(emulator_->requests().empty());
}

// --- Merchant accounts and keys
// -------------------------------------------------------------

TEST_F(ClinkEmulatorTest, MerchantAccountsHaveSeparateObjects) {
  StartMultiMerchant();
  const std::string order_id = Pay("10.00", kAcmeKey1);

  // Another merchant's key does not see acme's order...
  const HttpResult other = CallAs(kGlobexKey, "GET", "/order/" + order_id);
  EXPECT_EQ(other.status, 200);
  const Json not_found(other.body);
  EXPECT_EQ(not_found["/code"], "404") << other.body;
  EXPECT_EQ(not_found["/msg"], absl::StrCat("order ", order_id, " not found"));
  // ... nor can it refund it.
  EXPECT_EQ(
      Json(CallAs(kGlobexKey, "POST", "/refund",
                  absl::StrCat(R"({"orderId":")", order_id,
                               R"(","refundMerchantOrderId":"r1",)",
                               R"("refundAmount":1,"refundReasonType":2})"))
               .body)["/code"],
      "404");
  // acme's second key is the same account.
  EXPECT_EQ(OkAs(kAcmeKey2, "GET", "/order/" + order_id)["/data/orderId"],
            order_id);

  // Checkout sessions too, in the other direction.
  const std::string session_id =
      OkAs(kGlobexKey, "POST", "/checkout/session",
           R"({"originalAmount":5,"originalCurrency":"USD",
               "customerId":"cus_emu_test"})")["/data/sessionId"];
  EXPECT_EQ(Json(CallAs(kAcmeKey1, "GET", "/checkout/session/" + session_id)
                     .body)["/code"],
            "404");
  EXPECT_EQ(OkAs(kGlobexKey, "GET",
                 "/checkout/session/" + session_id)["/data/sessionId"],
            session_id);

  // Every account has the seeded catalog and fixtures.
  for (const char* key : {kAcmeKey1, kGlobexKey}) {
    EXPECT_EQ(OkAs(key, "GET", "/product/prd_emu_basic")["/data/productId"],
              "prd_emu_basic");
  }
  EXPECT_FALSE(Pay("1.00", kGlobexKey).empty());
}

TEST_F(ClinkEmulatorTest, ApiKeysAreTheDefaultAccountNextToMerchants) {
  ClinkEmulator::Options options;
  options.api_keys = {kApiKey};
  StartMultiMerchant(options);
  const std::string order_id = Pay("3.00");  // With kApiKey.
  EXPECT_EQ(Ok("GET", "/order/" + order_id)["/data/orderId"], order_id);
  EXPECT_EQ(Json(CallAs(kAcmeKey1, "GET", "/order/" + order_id).body)["/code"],
            "404");
  ASSERT_FALSE(emulator_->requests().empty());
  EXPECT_EQ(emulator_->requests().front().merchant, "default");
}

TEST_F(ClinkEmulatorTest, SetApiKeysRotatesAndRevokesKeys) {
  ClinkEmulator::Options options;
  options.merchants = {{"acme", {kAcmeKey1}}, {"globex", {kGlobexKey}}};
  StartEmulator(options);
  const std::string order_id = Pay("7.00", kAcmeKey1);
  EXPECT_EQ(CallAs(kAcmeKey2, "GET", "/product").status, 401);

  // Roll: the new key works at once and sees the account's objects; the old
  // key is revoked.
  ASSERT_TRUE(emulator_->SetApiKeys("acme", {kAcmeKey2}).ok());
  EXPECT_EQ(OkAs(kAcmeKey2, "GET", "/order/" + order_id)["/data/orderId"],
            order_id);
  const HttpResult revoked = CallAs(kAcmeKey1, "GET", "/order/" + order_id);
  EXPECT_EQ(revoked.status, 401);
  EXPECT_EQ(revoked.body, "Unauthorized: invalid API key");
  EXPECT_EQ(emulator_->requests().back().merchant, "");
  EXPECT_EQ(CallAs(kGlobexKey, "GET", "/product").status, 200);  // Untouched.

  // Both keys during a roll.
  ASSERT_TRUE(emulator_->SetApiKeys("acme", {kAcmeKey1, kAcmeKey2}).ok());
  EXPECT_EQ(CallAs(kAcmeKey1, "GET", "/product").status, 200);
  EXPECT_EQ(CallAs(kAcmeKey2, "GET", "/product").status, 200);

  // Rejected changes change nothing.
  const absl::Status stolen = emulator_->SetApiKeys("acme", {kGlobexKey});
  EXPECT_EQ(stolen.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(absl::StrContains(stolen.message(), kGlobexKey));
  EXPECT_EQ(emulator_->SetApiKeys("acme", {kAcmeKey1, ""}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(emulator_->SetApiKeys("initech", {"sk_test_new"}).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(CallAs(kAcmeKey1, "GET", "/product").status, 200);
  EXPECT_EQ(CallAs(kGlobexKey, "GET", "/product").status, 200);
  EXPECT_EQ(CallAs("sk_test_new", "GET", "/product").status, 401);

  // Revoking every key of an account.
  ASSERT_TRUE(emulator_->SetApiKeys("acme", {}).ok());
  EXPECT_EQ(CallAs(kAcmeKey1, "GET", "/product").status, 401);
  EXPECT_EQ(CallAs(kAcmeKey2, "GET", "/product").status, 401);
  // A key freed by one account can be given to another.
  ASSERT_TRUE(emulator_->SetApiKeys("globex", {kGlobexKey, kAcmeKey1}).ok());
  EXPECT_EQ(Json(CallAs(kAcmeKey1, "GET", "/order/" + order_id).body)["/code"],
            "404");  // Now globex's, which has no such order.
  EXPECT_EQ(emulator_->requests().back().merchant, "globex");
}

TEST_F(ClinkEmulatorTest, RecordsMerchantAndCountsRequestsPerKey) {
  ClinkEmulator::Options options;
  options.max_recorded_requests = 2;  // The counters are not limited by it.
  StartMultiMerchant(options);
  CallAs(kAcmeKey1, "GET", "/product");
  CallAs(kAcmeKey2, "GET", "/product");
  CallAs(kGlobexKey, "GET", "/product");
  CallAs(kAcmeKey2, "GET", "/product");
  CallAs("sk_test_unknown", "GET", "/product");
  client_->Send("GET", "/api/product", "", {});       // No key.
  client_->Send("GET", "/__emulator/stats", "", {});  // Not an /api request.

  EXPECT_EQ(emulator_->requests_with_key(kAcmeKey1), 1);
  EXPECT_EQ(emulator_->requests_with_key(kAcmeKey2), 2);
  EXPECT_EQ(emulator_->requests_with_key(kGlobexKey), 1);
  EXPECT_EQ(emulator_->requests_with_key("sk_test_unknown"), 1);
  EXPECT_EQ(emulator_->requests_with_key(""), 1);
  EXPECT_EQ(emulator_->requests_with_key("sk_test_acme"), 0);  // Exact match.
  const std::vector<RecordedRequest> recorded = emulator_->requests();
  ASSERT_EQ(recorded.size(), 2u);
  EXPECT_EQ(recorded[0].api_key, "sk_test_unknown");
  EXPECT_EQ(recorded[0].merchant, "");
  EXPECT_EQ(recorded[1].merchant, "");

  emulator_->ClearRequests();
  EXPECT_EQ(emulator_->requests_with_key(kAcmeKey2), 0);
  CallAs(kAcmeKey2, "GET", "/product");
  CallAs(kGlobexKey, "GET", "/product");
  EXPECT_EQ(emulator_->requests_with_key(kAcmeKey2), 1);
  ASSERT_EQ(emulator_->requests().size(), 2u);
  EXPECT_EQ(emulator_->requests()[0].merchant, "acme");
  EXPECT_EQ(emulator_->requests()[0].api_key, kAcmeKey2);
  EXPECT_EQ(emulator_->requests()[1].merchant, "globex");
}

TEST_F(ClinkEmulatorTest, RequestsAreCountedPerKeyEvenWhenAFaultAnswers) {
  Fault fault;
  fault.kind = Fault::Kind::kHttpError;
  emulator_->SetFault(fault);
  EXPECT_EQ(Call("GET", "/product").status, 503);
  EXPECT_EQ(emulator_->requests_with_key(kApiKey), 1);
  EXPECT_EQ(emulator_->requests().back().merchant, "default");
}

// --- Date header and clock offset
// -------------------------------------------------------------

TEST_F(ClinkEmulatorTest, EveryResponseHasExactlyOneDateFromTheEmulatorClock) {
  // RFC 7231's own example instant: a Sunday, a day below 10.
  clock_.SetTime(absl::FromUnixSeconds(784111777));
  constexpr char kDate[] = "Sun, 06 Nov 1994 08:49:37 GMT";
  const auto expect_date = [&](const RawResponse& response,
                               absl::string_view status) {
    EXPECT_TRUE(absl::StartsWith(response.status_line,
                                 absl::StrCat("HTTP/1.1 ", status)))
        << response.status_line;
    // One Date, the emulator's: civetweb adds its own (from the system clock)
    // only to responses that lack one.
    ASSERT_EQ(response.dates.size(), 1u)
        << absl::StrJoin(response.dates, " | ");
    EXPECT_EQ(response.dates[0], kDate);
    EXPECT_EQ(ParseHttpDate(response.dates[0]), clock_.Now());
  };
  expect_date(RawGet("/api/product", AuthHeaders()), "200");
  expect_date(RawGet("/api/order/ord_missing", AuthHeaders()), "200");
  expect_date(RawGet("/api/product", {"X-API-KEY: sk_test_wrong"}), "401");
  expect_date(RawGet("/api/product", {}), "401");
  expect_date(RawGet("/api/product", AuthHeaders(absl::Minutes(5))), "401");
  expect_date(RawGet("/elsewhere", {}), "404");
  expect_date(RawGet("/__emulator/stats", {}), "200");

  Fault fault;
  fault.kind = Fault::Kind::kHttpError;
  emulator_->SetFault(fault);
  expect_date(RawGet("/api/product", AuthHeaders()), "503");
  fault.kind = Fault::Kind::kRateLimit;
  emulator_->SetFault(fault);
  expect_date(RawGet("/api/product", AuthHeaders()), "429");
  fault.kind = Fault::Kind::kMalformedJson;
  emulator_->SetFault(fault);
  expect_date(RawGet("/api/product", AuthHeaders()), "200");
}

TEST_F(ClinkEmulatorTest, ClockOffsetMovesDateAndTheTimestampWindow) {
  const absl::Time gateway_now = clock_.Now();  // 2023-11-14T22:13:20Z.
  // Clink's clock 100 s ahead of the gateway's: the gateway's timestamps are
  // 100 s stale, within the 120 s tolerance.
  emulator_->SetClockOffset(absl::Seconds(100));
  EXPECT_EQ(emulator_->Now(), gateway_now + absl::Seconds(100));
  HttpResult result = Call("GET", "/product");
  EXPECT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(result.header("date"), "Tue, 14 Nov 2023 22:15:00 GMT");
  EXPECT_EQ(ParseHttpDate(result.header("date")) - gateway_now,
            absl::Seconds(100));
  // Entity times follow the emulator's clock too (expiry = now + 30 min).
  EXPECT_EQ(Ok("POST", "/order/payment-session",
               R"({"customerEmail":"a@example.com","amount":1,
                   "currency":"USD"})")["/data/expireTime"],
            "2023-11-14T22:45:00Z");
  // A gateway that corrects for the skew is accepted too.
  EXPECT_EQ(
      client_->Send("GET", "/api/product", "", AuthHeaders(absl::Seconds(100)))
          .status,
      200);

  // 130 s is beyond the tolerance, whichever way.
  emulator_->SetClockOffset(absl::Seconds(130));
  result = Call("GET", "/product");
  EXPECT_EQ(result.status, 401);
  EXPECT_TRUE(absl::StrContains(result.body, "X-Timestamp")) << result.body;
  EXPECT_EQ(ParseHttpDate(result.header("date")) - gateway_now,
            absl::Seconds(130));
  emulator_->SetClockOffset(-absl::Seconds(130));
  result = Call("GET", "/product");
  EXPECT_EQ(result.status, 401);
  EXPECT_EQ(ParseHttpDate(result.header("date")) - gateway_now,
            -absl::Seconds(130));

  // Offsets replace each other rather than add up.
  emulator_->SetClockOffset(absl::ZeroDuration());
  result = Call("GET", "/product");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(ParseHttpDate(result.header("date")), gateway_now);
}

// --- HTTPS
// -----------------------------------------------------------------------------------

class ClinkEmulatorTlsTest : public ClinkEmulatorTest {
 protected:
  void SetUp() override {
    absl::StatusOr<TestCaFiles> ca = GenerateTestCa(TempDir());
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *ca;
    ClinkEmulator::Options options;
    options.tls_cert_pem_path = ca_.server_pem;
    StartEmulator(options, ca_.ca_cert_pem);
  }

  TestCaFiles ca_;
};

TEST_F(ClinkEmulatorTlsTest, ServesHttpsWithAVerifiedCertificate) {
  EXPECT_TRUE(absl::StartsWith(emulator_->base_url(), "https://127.0.0.1:"));
  const std::string order_id = Pay("12.30");
  EXPECT_EQ(Refund(order_id, "tls-refund", "12.3")["/code"], "200");
  EXPECT_EQ(Ok("GET", "/order/" + order_id)["/data/status"], "refunded");
  EXPECT_EQ(emulator_->connections_accepted(),
            1);  // Keep-alive through the TLS frontend.

  // Verification is real: without the test CA the handshake fails.
  HttpClient untrusting(Origin());
  EXPECT_EQ(untrusting.Send("GET", "/api/product", "", AuthHeaders()).curl_code,
            CURLE_PEER_FAILED_VERIFICATION);
}

TEST_F(ClinkEmulatorTlsTest, ConnectionFaultsWorkOverTls) {
  Fault fault;
  fault.kind = Fault::Kind::kDropConnection;
  emulator_->SetFault(fault);
  HttpResult result = Call("GET", "/product", "", true);
  EXPECT_EQ(result.curl_code, CURLE_GOT_NOTHING)
      << curl_easy_strerror(result.curl_code);
  fault.kind = Fault::Kind::kResetConnection;
  emulator_->SetFault(fault);
  result = Call("GET", "/product", "", true);
  EXPECT_EQ(result.curl_code, CURLE_RECV_ERROR)
      << curl_easy_strerror(result.curl_code);
  EXPECT_EQ(Call("GET", "/product").status, 200);
}

TEST_F(ClinkEmulatorTlsTest, DateHeaderOverTls) {
  emulator_->SetClockOffset(absl::Seconds(100));
  const HttpResult result = Call("GET", "/product");
  EXPECT_EQ(result.status, 200);
  EXPECT_EQ(result.header("date"), "Tue, 14 Nov 2023 22:15:00 GMT");
}

// With the default clock, Date is the real time.
TEST(ClinkEmulatorClockTest, DateHeaderFollowsTheRealClockByDefault) {
  ClinkEmulator::Options options;
  options.api_keys = {kApiKey};
  absl::StatusOr<std::unique_ptr<ClinkEmulator>> emulator =
      ClinkEmulator::Start(options);
  ASSERT_TRUE(emulator.ok()) << emulator.status();
  const RawResponse response = RawExchange(
      (*emulator)->port(),
      absl::StrCat("GET /api/product HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "Connection: close\r\nX-API-KEY: ",
                   kApiKey, "\r\nX-Timestamp: ",
                   absl::ToUnixMillis(absl::Now()), "\r\n\r\n"));
  EXPECT_TRUE(absl::StartsWith(response.status_line, "HTTP/1.1 200"))
      << response.status_line;
  ASSERT_EQ(response.dates.size(), 1u);
  EXPECT_LT(absl::AbsDuration(ParseHttpDate(response.dates[0]) - absl::Now()),
            absl::Seconds(5));
}

TEST(ClinkEmulatorStartTest, RejectsInvalidOptions) {
  ClinkEmulator::Options options;
  EXPECT_EQ(ClinkEmulator::Start(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.api_keys = {"k"};
  options.tls_cert_pem_path = "/nonexistent/server.pem";
  EXPECT_FALSE(ClinkEmulator::Start(options).ok());
}

TEST(ClinkEmulatorStartTest, ValidatesMerchantAccounts) {
  const auto start = [](std::vector<std::string> api_keys,
                        std::vector<MerchantAccount> merchants) {
    ClinkEmulator::Options options;
    options.api_keys = std::move(api_keys);
    options.merchants = std::move(merchants);
    return ClinkEmulator::Start(options).status();
  };
  constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;
  // No key at all.
  EXPECT_EQ(start({}, {{"acme", {}}}).code(), kInvalid);
  // Empty keys and names.
  EXPECT_EQ(start({""}, {}).code(), kInvalid);
  EXPECT_EQ(start({}, {{"acme", {"a", ""}}}).code(), kInvalid);
  EXPECT_EQ(start({}, {{"", {"a"}}}).code(), kInvalid);
  // Names are unique, and api_keys is the account "default".
  EXPECT_EQ(start({}, {{"acme", {"a"}}, {"acme", {"b"}}}).code(), kInvalid);
  EXPECT_EQ(start({"k"}, {{"default", {"a"}}}).code(), kInvalid);
  // A key belongs to one account; the message does not reveal it.
  const absl::Status shared =
      start({}, {{"acme", {"sk_test_shared"}}, {"globex", {"sk_test_shared"}}});
  EXPECT_EQ(shared.code(), kInvalid);
  EXPECT_FALSE(absl::StrContains(shared.message(), "sk_test_shared"));
  EXPECT_EQ(start({"a"}, {{"acme", {"a"}}}).code(), kInvalid);

  EXPECT_TRUE(start({"k"}, {{"acme", {"a", "a2"}}, {"globex", {}}}).ok());
  EXPECT_TRUE(start({}, {{"default", {"a"}}}).ok());
}

}  // namespace
}  // namespace clink_gateway::emulator
