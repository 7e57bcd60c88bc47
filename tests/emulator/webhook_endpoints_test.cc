// The emulated webhook endpoint API (clink-api.md §12) through
// MerchantApi::Handle, as the gateway reaches it, and the accessor a webhook
// sender reads.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/emulator/merchant_api.h"

namespace clink_gateway::emulator {
namespace {

class WebhookEndpointsTest : public ::testing::Test {
 protected:
  // Sends one request; returns the parsed answer (HTTP 200 expected: errors
  // are in the envelope).
  const rapidjson::Document& Send(const std::string& method,
                                  const std::string& path,
                                  const std::string& body = "",
                                  const std::string& query = "") {
    const ApiResponse response =
        api_.Handle(ApiRequest{method, path, query, body, "application/json"});
    EXPECT_EQ(response.http_status, 200) << response.body;
    last_body_ = response.body;
    doc_.Parse(response.body.c_str());
    EXPECT_FALSE(doc_.HasParseError()) << response.body;
    return doc_;
  }
  int Code() const { return doc_["code"].GetInt(); }
  std::string Msg() const { return doc_["msg"].GetString(); }
  std::string Create(const std::string& url) {
    Send("POST", "/webhook/endpoints",
         absl::StrCat(R"({"url":")", url,
                      R"(","events":["order.succeeded"],"description":"d"})"));
    EXPECT_EQ(Code(), 200) << last_body_;
    return doc_["data"]["id"].GetString();
  }

  MerchantApi api_{MerchantApi::Options{
      [] { return absl::FromUnixMillis(1754006400123); }}};
  rapidjson::Document doc_;
  std::string last_body_;
};

TEST_F(WebhookEndpointsTest, CreateReturnsThePlaintextSecretOnceAndListGetNever) {
  Send("POST", "/webhook/endpoints",
       R"({"url":"https://shop.example.com/hooks","events":["order.succeeded","refund.succeeded"]})");
  ASSERT_EQ(Code(), 200) << last_body_;
  const std::string id = doc_["data"]["id"].GetString();
  const std::string secret = doc_["data"]["signingSecret"].GetString();
  EXPECT_TRUE(absl::StartsWith(id, "whk_"));
  EXPECT_TRUE(absl::StartsWith(secret, "whsec_"));
  EXPECT_EQ(doc_["data"]["maskedSigningSecret"].GetString(),
            absl::StrCat("whsec_...", secret.substr(secret.size() - 4)));
  EXPECT_TRUE(doc_["data"]["enabled"].GetBool());
  EXPECT_EQ(doc_["data"]["createdAt"].GetInt64(), 1754006400123);

  Send("GET", "/webhook/endpoints/" + id);
  EXPECT_TRUE(doc_["data"]["signingSecret"].IsNull());
  Send("GET", "/webhook/endpoints");
  EXPECT_EQ(doc_["total"].GetInt(), 1);
  EXPECT_TRUE(doc_["rows"][0]["signingSecret"].IsNull());
  EXPECT_FALSE(absl::StrContains(last_body_, secret));

  // What a webhook sender reads.
  const std::vector<RegisteredWebhookEndpoint> enabled =
      api_.EnabledWebhookEndpoints();
  ASSERT_EQ(enabled.size(), 1u);
  EXPECT_EQ(enabled[0].id, id);
  EXPECT_EQ(enabled[0].url, "https://shop.example.com/hooks");
  EXPECT_EQ(enabled[0].events,
            (std::vector<std::string>{"order.succeeded", "refund.succeeded"}));
  EXPECT_EQ(enabled[0].signing_secret, secret);
}

TEST_F(WebhookEndpointsTest, RefusesWhatClinkRefuses) {
  for (const char* body : {
           R"({"events":["order.succeeded"]})",
           R"({"url":"http://shop.example.com/h","events":["order.succeeded"]})",
           R"({"url":"https://localhost/h","events":["order.succeeded"]})",
           R"({"url":"https://127.0.0.1:8443/h","events":["order.succeeded"]})",
           R"({"url":"https://10.1.2.3/h","events":["order.succeeded"]})",
           R"({"url":"https://192.168.0.10/h","events":["order.succeeded"]})",
           R"({"url":"https://169.254.169.254/latest","events":["order.succeeded"]})",
           R"({"url":"https://[::1]/h","events":["order.succeeded"]})",
           R"({"url":"https://shop.example.com/h"})",
           R"({"url":"https://shop.example.com/h","events":[]})",
           R"({"url":"https://shop.example.com/h","events":[2]})",
           R"({"url":"https://shop.example.com/h","events":["order.paid"]})",
       }) {
    Send("POST", "/webhook/endpoints", body);
    EXPECT_EQ(Code(), kCodeBadRequest) << body << " -> " << last_body_;
  }
  const std::string long_url =
      absl::StrCat("https://shop.example.com/", std::string(500, 'a'));
  Send("POST", "/webhook/endpoints",
       absl::StrCat(R"({"url":")", long_url, R"(","events":["order.succeeded"]})"));
  EXPECT_EQ(Code(), kCodeBadRequest);
  EXPECT_TRUE(api_.EnabledWebhookEndpoints().empty());
}

TEST_F(WebhookEndpointsTest, PatchChangesOnlyWhatIsSentAndEmptyDescriptionClears) {
  const std::string id = Create("https://shop.example.com/hooks");
  Send("PATCH", "/webhook/endpoints/" + id, R"({"enabled":false})");
  ASSERT_EQ(Code(), 200) << last_body_;
  EXPECT_FALSE(doc_["data"]["enabled"].GetBool());
  EXPECT_EQ(std::string(doc_["data"]["description"].GetString()), "d");
  EXPECT_EQ(doc_["data"]["events"].Size(), 1u);
  EXPECT_TRUE(api_.EnabledWebhookEndpoints().empty());

  Send("PATCH", "/webhook/endpoints/" + id,
       R"({"description":"","events":["invoice.paid","session.complete"]})");
  ASSERT_EQ(Code(), 200) << last_body_;
  EXPECT_EQ(std::string(doc_["data"]["description"].GetString()), "");
  EXPECT_EQ(doc_["data"]["events"].Size(), 2u);
  EXPECT_FALSE(doc_["data"]["enabled"].GetBool());

  Send("PATCH", "/webhook/endpoints/" + id, R"({"url":"http://x.example/"})");
  EXPECT_EQ(Code(), kCodeBadRequest);
  Send("PATCH", "/webhook/endpoints/whk_nope", R"({"enabled":true})");
  EXPECT_EQ(Code(), kCodeNotFound);
}

TEST_F(WebhookEndpointsTest, EnableDisableDeleteAndFilters) {
  const std::string a = Create("https://a.example.com/h");
  const std::string b = Create("https://b.example.com/h");
  Send("POST", "/webhook/endpoints/" + a + "/disable");
  EXPECT_FALSE(doc_["data"]["enabled"].GetBool());
  Send("GET", "/webhook/endpoints", "", "enabled=false");
  ASSERT_EQ(doc_["total"].GetInt(), 1);
  EXPECT_EQ(std::string(doc_["rows"][0]["id"].GetString()), a);
  Send("GET", "/webhook/endpoints", "",
       "url=https%3A%2F%2Fb.example.com%2Fh&pageSize=500");
  ASSERT_EQ(doc_["total"].GetInt(), 1);
  EXPECT_EQ(std::string(doc_["rows"][0]["id"].GetString()), b);
  Send("POST", "/webhook/endpoints/" + a + "/enable");
  EXPECT_TRUE(doc_["data"]["enabled"].GetBool());
  EXPECT_EQ(api_.EnabledWebhookEndpoints().size(), 2u);

  Send("DELETE", "/webhook/endpoints/" + a);
  EXPECT_EQ(Code(), 200);
  EXPECT_TRUE(doc_["data"].IsNull());
  Send("GET", "/webhook/endpoints/" + a);
  EXPECT_EQ(Code(), kCodeNotFound);
  Send("DELETE", "/webhook/endpoints/" + a);
  EXPECT_EQ(Code(), kCodeNotFound);
  EXPECT_EQ(api_.EnabledWebhookEndpoints().size(), 1u);
}

TEST_F(WebhookEndpointsTest, RotateReplacesTheSecretAtOnce) {
  const std::string id = Create("https://shop.example.com/hooks");
  const std::string before = api_.EnabledWebhookEndpoints()[0].signing_secret;
  Send("POST", "/webhook/endpoints/" + id + "/rotate-secret");
  ASSERT_EQ(Code(), 200) << last_body_;
  const std::string after = doc_["data"]["signingSecret"].GetString();
  EXPECT_NE(after, before);
  EXPECT_EQ(api_.EnabledWebhookEndpoints()[0].signing_secret, after);
}

TEST_F(WebhookEndpointsTest, EnsureIsKeyedByUrlAndNeverReturnsAnExistingSecret) {
  const std::string body =
      R"({"url":"https://shop.example.com/hooks","events":["order.succeeded"],"returnSigningSecret":true})";
  Send("PUT", "/webhook/endpoints/ensure", body);
  ASSERT_EQ(Code(), 200) << last_body_;
  EXPECT_EQ(std::string(doc_["data"]["source"].GetString()), "created");
  EXPECT_TRUE(doc_["data"]["signingSecretAvailable"].GetBool());
  const std::string id = doc_["data"]["endpoint"]["id"].GetString();
  const std::string first =
      doc_["data"]["endpoint"]["signingSecret"].GetString();

  Send("PUT", "/webhook/endpoints/ensure", body);
  EXPECT_EQ(std::string(doc_["data"]["endpoint"]["id"].GetString()), id);
  EXPECT_EQ(std::string(doc_["data"]["source"].GetString()), "unchanged");
  EXPECT_FALSE(doc_["data"]["signingSecretAvailable"].GetBool());
  EXPECT_TRUE(doc_["data"]["endpoint"]["signingSecret"].IsNull());
  EXPECT_EQ(std::string(doc_["data"]["signingSecretUnavailableReason"].GetString()),
            "EXISTING_SECRET_NOT_RETURNABLE");
  EXPECT_EQ(std::string(doc_["data"]["nextAction"].GetString()),
            "CALL_ROTATE_SECRET_OR_RETRY_ENSURE_WITH_ROTATE_SECRET_IF_UNAVAILABLE");

  Send("PUT", "/webhook/endpoints/ensure",
       R"({"url":"https://shop.example.com/hooks","events":["order.failed"],"returnSigningSecret":true,"rotateSecretIfUnavailable":true})");
  EXPECT_EQ(std::string(doc_["data"]["source"].GetString()), "updated_rotated");
  EXPECT_TRUE(doc_["data"]["signingSecretAvailable"].GetBool());
  const std::string rotated =
      doc_["data"]["endpoint"]["signingSecret"].GetString();
  EXPECT_NE(rotated, first);
  ASSERT_EQ(api_.EnabledWebhookEndpoints().size(), 1u);
  EXPECT_EQ(api_.EnabledWebhookEndpoints()[0].signing_secret, rotated);
  EXPECT_EQ(api_.EnabledWebhookEndpoints()[0].events,
            std::vector<std::string>{"order.failed"});
}

TEST_F(WebhookEndpointsTest, EventCatalogListsTheNamesWithTheirCodes) {
  Send("GET", "/webhook/events");
  ASSERT_EQ(Code(), 200);
  const rapidjson::Value& events = doc_["data"]["events"];
  ASSERT_EQ(events.Size(), 44u);
  EXPECT_EQ(std::string(events[1]["name"].GetString()), "order.succeeded");
  EXPECT_EQ(events[1]["code"].GetInt(), 2);
  EXPECT_EQ(std::string(events[43]["name"].GetString()),
            "vic_device.binding_succeeded");
}

}  // namespace
}  // namespace clink_gateway::emulator
