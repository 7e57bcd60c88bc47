#include "server/authz_policy.h"

#include <stdio.h>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sync.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

constexpr char kCheckoutWeb[] =
    "spiffe://cluster.local/ns/shop/sa/checkout-web";
constexpr char kSupport[] = "spiffe://cluster.local/ns/support/sa/support-tool";
constexpr char kFinance[] = "spiffe://cluster.local/ns/finance/sa/finance";
constexpr char kPlatformAdmin[] =
    "spiffe://cluster.local/ns/platform/sa/platform-admin";
constexpr char kFulfilment[] = "spiffe://cluster.local/ns/shop/sa/fulfilment";

bool Allows(const AuthzPolicy& policy, const std::string& path,
            const std::string& principal, const std::string& merchant = "",
            std::string* rule = nullptr) {
  Metadata metadata;
  if (!merchant.empty()) metadata.emplace("x-clink-merchant", merchant);
  std::vector<std::string> principals;
  if (!principal.empty()) principals.push_back(principal);
  return policy.Allows(path, principals, metadata, rule);
}

TEST(AuthzPolicyTest, TheThreeCallersGetWhatThePolicySays) {
  // The example policy the README describes.
  auto text = ReadPolicyFile("k8s/base/authz-policy.json");
  ASSERT_TRUE(text.ok()) << text.status();
  auto policy = AuthzPolicy::Parse(*text);
  ASSERT_TRUE(policy.ok()) << policy.status();
  const AuthzPolicy& p = **policy;
  std::string rule;
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.PaymentService/CreatePayment",
                     kCheckoutWeb, "eu", &rule));
  EXPECT_EQ(rule, "checkout-web-pays-for-eu");
  // Another merchant, or none named: the header rule does not match.
  EXPECT_FALSE(Allows(p, "/clink.gateway.v1.PaymentService/CreatePayment",
                      kCheckoutWeb, "us"));
  EXPECT_FALSE(Allows(p, "/clink.gateway.v1.PaymentService/CreatePayment",
                      kCheckoutWeb));
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.CheckoutService/GetCheckoutSession",
                     kCheckoutWeb, "eu"));
  EXPECT_FALSE(Allows(p, "/clink.gateway.v1.PaymentService/CreateRefund",
                      kCheckoutWeb, "eu"));
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.PaymentService/CreateRefund",
                     kSupport, "us"));
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.PaymentService/GetOrder", kSupport));
  EXPECT_FALSE(
      Allows(p, "/clink.gateway.v1.PaymentService/CreatePayment", kSupport));
  EXPECT_TRUE(
      Allows(p, "/clink.gateway.v1.BillingService/GetInvoice", kFinance));
  EXPECT_FALSE(Allows(p, "/clink.gateway.v1.PaymentService/CreateRefund",
                      kFinance, "", &rule));
  EXPECT_EQ(rule, "finance-never-writes");
  // Webhook endpoints (whose answers carry signing secrets): the platform
  // admin only.
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.WebhookService/EnsureWebhookEndpoint",
                     kPlatformAdmin, "", &rule));
  EXPECT_EQ(rule, "platform-admin-manages-webhook-endpoints");
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.WebhookService/ListWebhookEndpoints",
                     kPlatformAdmin));
  EXPECT_FALSE(
      Allows(p, "/clink.gateway.v1.PaymentService/CreatePayment", kPlatformAdmin));
  for (const char* other : {kCheckoutWeb, kSupport, kFinance}) {
    EXPECT_FALSE(Allows(p,
                        "/clink.gateway.v1.WebhookService/RotateWebhookEndpointSecret",
                        other, "eu"))
        << other;
    EXPECT_FALSE(Allows(p, "/clink.gateway.v1.WebhookService/GetWebhookEndpoint",
                        other, "eu"))
        << other;
  }
  // Events: fulfilment consumes and acknowledges; finance may read them back
  // (audits) but not take events from a subscription; nobody else.
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.EventService/StreamEvents",
                     kFulfilment, "", &rule));
  EXPECT_EQ(rule, "fulfilment-consumes-events");
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.EventService/AcknowledgeEvents",
                     kFulfilment));
  EXPECT_FALSE(
      Allows(p, "/clink.gateway.v1.PaymentService/GetOrder", kFulfilment));
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.EventService/ListEvents", kFinance));
  EXPECT_TRUE(Allows(p, "/clink.gateway.v1.EventService/GetEvent", kFinance));
  EXPECT_FALSE(
      Allows(p, "/clink.gateway.v1.EventService/StreamEvents", kFinance));
  for (const char* other : {kCheckoutWeb, kSupport, kPlatformAdmin}) {
    EXPECT_FALSE(Allows(p, "/clink.gateway.v1.EventService/StreamEvents",
                        other, "eu"))
        << other;
  }
  // No certificate, or an unknown one: denied by default.
  EXPECT_FALSE(Allows(p, "/clink.gateway.v1.BillingService/GetInvoice", ""));
  EXPECT_FALSE(Allows(p, "/clink.gateway.v1.BillingService/GetInvoice",
                      "spiffe://cluster.local/ns/x/sa/other", "", &rule));
  EXPECT_EQ(rule, "");
}

TEST(AuthzPolicyTest, RejectsMalformedPolicies) {
  for (const char* bad : {
           "",
           "[]",
           "{\"name\": \"x\"}",                         // no allow_rules
           "{\"allow_rules\": []}",                     // no name
           "{\"name\": \"x\", \"allow_rules\": [{}]}",  // rule without name
           "{\"name\": \"x\", \"allow_rules\": [], \"allow\": []}",
           "{\"name\": \"x\", \"allow_rules\": [{\"name\": \"r\", "
           "\"request\": {\"path\": [\"/a\"]}}]}",  // typo'd member
           "{\"name\": \"x\", \"allow_rules\": [{\"name\": \"r\", "
           "\"request\": {\"headers\": [{\"key\": \":path\", "
           "\"values\": [\"a\"]}]}}]}",
           "{\"name\": \"x\", \"allow_rules\": [{\"name\": \"r\", "
           "\"request\": {\"paths\": [\"/a*b\"]}}]}",
       }) {
    EXPECT_FALSE(AuthzPolicy::Parse(bad).ok()) << bad;
  }
}

// Replaces `path` by a rename, as a ConfigMap volume update does.
void WriteAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  std::ofstream(tmp) << content;
  ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);
}

TEST(AuthzPolicyFileTest, FollowsTheFileAndKeepsTheLastGoodPolicy) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/policy.json");
  const std::string allow_a = R"({"name": "a", "allow_rules": [
      {"name": "a", "request": {"paths": ["/s/A"]}}]})";
  const std::string allow_b = R"({"name": "b", "allow_rules": [
      {"name": "b", "request": {"paths": ["/s/B"]}}]})";
  WriteAtomically(path, allow_a);
  Mutex mu;
  std::vector<bool> reloads;
  auto file =
      AuthzPolicyFile::Start(path, absl::Milliseconds(5), [&](bool applied) {
        MutexLock lock(&mu);
        reloads.push_back(applied);
      });
  ASSERT_TRUE(file.ok()) << file.status();
  const Metadata none;
  EXPECT_TRUE((*file)->Current()->Allows("/s/A", {}, none));
  EXPECT_FALSE((*file)->Current()->Allows("/s/B", {}, none));
  auto reloads_seen = [&](size_t n) {
    MutexLock lock(&mu);
    return mu.AwaitWithTimeout([&] { return reloads.size() >= n; },
                               absl::Seconds(10));
  };

  WriteAtomically(path, allow_b);
  ASSERT_TRUE(reloads_seen(1));
  EXPECT_TRUE((*file)->Current()->Allows("/s/B", {}, none));
  EXPECT_FALSE((*file)->Current()->Allows("/s/A", {}, none));

  WriteAtomically(path, "{\"name\": \"broken\"");
  ASSERT_TRUE(reloads_seen(2));
  EXPECT_EQ((*file)->Current()->name(), "b");
  EXPECT_TRUE((*file)->Current()->Allows("/s/B", {}, none));
  (*file)->Stop();
  MutexLock lock(&mu);
  EXPECT_EQ(reloads, (std::vector<bool>{true, false}));
}

TEST(AuthzPolicyFileTest, AnInvalidFileAtStartIsAnError) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/bad.json");
  WriteAtomically(path, "{}");
  EXPECT_EQ(
      AuthzPolicyFile::Start(path, absl::Seconds(1), nullptr).status().code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(
      AuthzPolicyFile::Start(path + ".missing", absl::Seconds(1), nullptr)
          .ok());
}

}  // namespace
}  // namespace clink_gateway::server
