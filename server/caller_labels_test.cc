#include "server/caller_labels.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(CallerLabelsTest, NamedPrincipalsOtherAndAnonymous) {
  const CallerLabels labels(
      {"spiffe://c/ns/shop/sa/checkout-web", "finance", "finance", ""});
  EXPECT_EQ(labels.Label("spiffe://c/ns/shop/sa/checkout-web"),
            "spiffe://c/ns/shop/sa/checkout-web");
  EXPECT_EQ(labels.Label("finance"), "finance");
  EXPECT_EQ(labels.Label("made-up-caller"), "other");
  EXPECT_EQ(labels.Label(""), "anonymous");
  EXPECT_THAT(labels.values(),
              ElementsAre("anonymous", "other", "finance",
                          "spiffe://c/ns/shop/sa/checkout-web"));
}

TEST(CallerLabelsTest, WithoutAPolicyEveryIdentityIsOther) {
  const CallerLabels labels;
  EXPECT_EQ(labels.Label("checkout-web"), "other");
  EXPECT_EQ(labels.Label(""), "anonymous");
  EXPECT_EQ(labels.values().size(), 2u);
}

TEST(CallerLabelsTest, AtMostTheCapOfPrincipalsGetLabels) {
  std::vector<std::string> many;
  for (int i = 0; i < 200; ++i) many.push_back("p" + std::to_string(1000 + i));
  const CallerLabels labels(many);
  EXPECT_EQ(labels.values().size(), kMaxCallerLabels + 2);
  EXPECT_EQ(labels.Label("p1000"), "p1000");
  EXPECT_EQ(labels.Label("p1199"), "other");
}

TEST(PrincipalsFromAuthzPolicyTest,
     ReadsAllowAndDenyPrincipalsSkippingPatterns) {
  const auto names = PrincipalsFromAuthzPolicy(R"json({
    "name": "clink-gateway",
    "deny_rules": [
      {"name": "no-intruder",
       "source": {"principals": ["spiffe://cluster.local/ns/x/sa/intruder"]}}
    ],
    "allow_rules": [
      {"name": "checkout",
       "source": {"principals": ["spiffe://cluster.local/ns/shop/sa/checkout-web",
                                 "spiffe://cluster.local/ns/shop/*", "*"]},
       "request": {"paths": ["/clink.gateway.v1.PaymentService/CreatePayment"]}},
      {"name": "support",
       "source": {"principals": ["support-tool.internal",
                                 "spiffe://cluster.local/ns/shop/sa/checkout-web"]}},
      {"name": "health-no-source",
       "request": {"paths": ["/grpc.health.v1.Health/Check"]}}
    ]
  })json");
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names,
              ElementsAre("spiffe://cluster.local/ns/shop/sa/checkout-web",
                          "spiffe://cluster.local/ns/x/sa/intruder",
                          "support-tool.internal"));
}

TEST(PrincipalsFromAuthzPolicyTest, RefusesMalformedPolicies) {
  for (const char* bad :
       {"", "[]", "{\"allow_rules\": {}}", "{\"allow_rules\": [1]}",
        "{\"allow_rules\": [{\"source\": []}]}",
        "{\"allow_rules\": [{\"source\": {\"principals\": \"x\"}}]}",
        "{\"deny_rules\": [{\"source\": {\"principals\": [7]}}]}",
        "{\"allow_rules\": ["}) {
    const auto names = PrincipalsFromAuthzPolicy(bad);
    EXPECT_EQ(names.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

TEST(PrincipalsFromAuthzPolicyTest, AMissingFileIsAnError) {
  const auto names =
      PrincipalsFromAuthzPolicyFile("/nonexistent/authz-policy.json");
  EXPECT_EQ(names.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(names.status().message()),
              HasSubstr("/nonexistent/authz-policy.json"));
}

}  // namespace
}  // namespace clink_gateway::server
