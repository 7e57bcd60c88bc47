// WebhookService end to end: gRPC over TLS to the gateway, the gateway to the
// Clink emulator's /webhook API, and back. The plaintext signing secret goes
// to the first caller only: not to a replay, not to the idempotency store on
// disk, not to the audit line.
#include <dirent.h>

#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "clink/gateway/v1/webhook.grpc.pb.h"
#include "common/testing/json_lines.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/emulator/merchant_api.h"
#include "tests/integration/gateway_fixture.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr char kAdmin[] = "platform-admin";
constexpr char kUrl[] = "https://shop.example.com/webhooks/clink";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

class WebhookEndpointTest : public GatewayFixture {
 protected:
  void Configure(server::GatewayOptions& options) override {
    audit_path_ = temp_dir_ + "/audit.log";
    state_dir_ = temp_dir_ + "/state";
    options.audit_log_file = audit_path_;
    options.idempotency_store = server::GatewayOptions::IdempotencyStoreKind::kSqlite;
    options.state_dir = state_dir_;
  }

  void SetUp() override {
    GatewayFixture::SetUp();
    webhooks_ = v1::WebhookService::NewStub(channel_);
  }

  static std::unique_ptr<grpc::ClientContext> Keyed(const std::string& key) {
    auto context = Context();
    context->AddMetadata("x-clink-caller", kAdmin);
    if (!key.empty()) context->AddMetadata("idempotency-key", key);
    return context;
  }

  int RequestsTo(const std::string& method, const std::string& path) const {
    int n = 0;
    for (const auto& r : emulator_->requests()) {
      n += r.method == method && r.path == path;
    }
    return n;
  }

  // Every byte the gateway keeps on disk: the idempotency database (and its
  // WAL) and the audit log.
  std::string EverythingOnDisk() const {
    std::string all = ReadAll(audit_path_);
    if (DIR* d = opendir(state_dir_.c_str())) {
      while (dirent* e = readdir(d)) {
        const std::string name = e->d_name;
        if (name != "." && name != "..") {
          all += ReadAll(absl::StrCat(state_dir_, "/", name));
        }
      }
      closedir(d);
    }
    return all;
  }

  std::string audit_path_;
  std::string state_dir_;
  std::unique_ptr<v1::WebhookService::Stub> webhooks_;
};

TEST_F(WebhookEndpointTest, AKeyedCreateGivesTheSecretOnceAndKeepsItNowhere) {
  v1::CreateWebhookEndpointRequest create;
  create.set_url(kUrl);
  create.add_events("order.succeeded");
  create.add_events("refund.succeeded");
  create.set_description("Order sync");
  v1::CreateWebhookEndpointResponse created;
  auto first = Keyed("register-hook-1");
  const grpc::Status status =
      webhooks_->CreateWebhookEndpoint(first.get(), create, &created);
  ASSERT_TRUE(status.ok()) << status.error_message();
  const std::string secret = created.endpoint().signing_secret();
  ASSERT_TRUE(absl::StartsWith(secret, "whsec_")) << secret;
  const std::string id = created.endpoint().id();
  EXPECT_EQ(first->GetServerInitialMetadata().count("idempotency-replayed"),
            0u);
  // The emulator delivers with the secret the caller got.
  const auto enabled =
      emulator_->EnabledWebhookEndpoints("default");
  ASSERT_EQ(enabled.size(), 1u);
  EXPECT_EQ(enabled[0].signing_secret, secret);

  // The retry with the same key: the same endpoint, no second POST, no secret,
  // and it says it is a replay.
  v1::CreateWebhookEndpointResponse replayed;
  auto retry = Keyed("register-hook-1");
  ASSERT_TRUE(
      webhooks_->CreateWebhookEndpoint(retry.get(), create, &replayed).ok());
  EXPECT_EQ(replayed.endpoint().id(), id);
  EXPECT_EQ(replayed.endpoint().masked_signing_secret(),
            created.endpoint().masked_signing_secret());
  EXPECT_EQ(replayed.endpoint().signing_secret(), "");
  const auto replay_metadata = retry->GetServerInitialMetadata();
  const auto flag = replay_metadata.find("idempotency-replayed");
  ASSERT_NE(flag, replay_metadata.end());
  EXPECT_EQ(std::string(flag->second.data(), flag->second.size()), "true");
  EXPECT_EQ(RequestsTo("POST", "/api/webhook/endpoints"), 1);

  // A rotation's secret is kept nowhere either.
  v1::RotateWebhookEndpointSecretRequest rotate;
  rotate.set_endpoint_id(id);
  v1::RotateWebhookEndpointSecretResponse rotated;
  ASSERT_TRUE(webhooks_
                  ->RotateWebhookEndpointSecret(Keyed("rotate-1").get(), rotate,
                                                &rotated)
                  .ok());
  const std::string new_secret = rotated.endpoint().signing_secret();
  EXPECT_TRUE(absl::StartsWith(new_secret, "whsec_"));
  EXPECT_NE(new_secret, secret);

  const std::string disk = EverythingOnDisk();
  EXPECT_TRUE(absl::StrContains(disk, id)) << "nothing was written";
  EXPECT_FALSE(absl::StrContains(disk, secret));
  EXPECT_FALSE(absl::StrContains(disk, new_secret));
  const auto lines = ReadJsonLines(audit_path_);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0].at("method"),
            "clink.gateway.v1.WebhookService.CreateWebhookEndpoint");
  EXPECT_EQ(lines[0].at("clink_id"), id);
  EXPECT_EQ(lines[1].at("replayed"), "true");
}

TEST_F(WebhookEndpointTest, UpdateSendsOnlyWhatIsSetAndDeleteSendsNoBody) {
  v1::CreateWebhookEndpointRequest create;
  create.set_url(kUrl);
  create.add_events("order.succeeded");
  create.set_description("Order sync");
  v1::CreateWebhookEndpointResponse created;
  ASSERT_TRUE(
      webhooks_->CreateWebhookEndpoint(Keyed("").get(), create, &created).ok());
  const std::string id = created.endpoint().id();

  v1::UpdateWebhookEndpointRequest update;
  update.set_endpoint_id(id);
  update.set_description("");  // Present and empty: clears it.
  update.set_enabled(false);   // Present and false: disables.
  v1::UpdateWebhookEndpointResponse updated;
  const grpc::Status status =
      webhooks_->UpdateWebhookEndpoint(Keyed("").get(), update, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(updated.endpoint().description(), "");
  EXPECT_FALSE(updated.endpoint().enabled());
  EXPECT_EQ(updated.endpoint().url(), kUrl);  // Unset: unchanged.
  ASSERT_EQ(updated.endpoint().events_size(), 1);
  EXPECT_EQ(updated.endpoint().signing_secret(), "");
  const auto requests = emulator_->requests();
  EXPECT_EQ(requests.back().method, "PATCH");
  EXPECT_EQ(requests.back().body, R"({"description":"","enabled":false})");

  v1::ListWebhookEndpointsRequest list;
  list.set_enabled(false);
  v1::ListWebhookEndpointsResponse listed;
  ASSERT_TRUE(
      webhooks_->ListWebhookEndpoints(Keyed("").get(), list, &listed).ok());
  ASSERT_EQ(listed.total(), 1);
  EXPECT_EQ(listed.endpoints(0).id(), id);
  EXPECT_EQ(emulator_->requests().back().query_string, "enabled=false");

  v1::DeleteWebhookEndpointRequest remove;
  remove.set_endpoint_id(id);
  v1::DeleteWebhookEndpointResponse removed;
  ASSERT_TRUE(
      webhooks_->DeleteWebhookEndpoint(Keyed("").get(), remove, &removed).ok());
  EXPECT_EQ(emulator_->requests().back().method, "DELETE");
  EXPECT_EQ(emulator_->requests().back().body, "");
  v1::GetWebhookEndpointRequest get;
  get.set_endpoint_id(id);
  v1::GetWebhookEndpointResponse got;
  EXPECT_EQ(webhooks_->GetWebhookEndpoint(Keyed("").get(), get, &got)
                .error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(WebhookEndpointTest, EnsureConvergesOnOneEndpointPerUrl) {
  v1::EnsureWebhookEndpointRequest ensure;
  ensure.set_url(kUrl);
  ensure.add_events("order.succeeded");
  ensure.set_return_signing_secret(true);
  v1::EnsureWebhookEndpointResponse first;
  ASSERT_TRUE(
      webhooks_->EnsureWebhookEndpoint(Keyed("").get(), ensure, &first).ok());
  EXPECT_EQ(first.source(), "created");
  EXPECT_TRUE(first.signing_secret_available());
  EXPECT_TRUE(absl::StartsWith(first.endpoint().signing_secret(), "whsec_"));

  v1::EnsureWebhookEndpointResponse again;
  ASSERT_TRUE(
      webhooks_->EnsureWebhookEndpoint(Keyed("").get(), ensure, &again).ok());
  EXPECT_EQ(again.endpoint().id(), first.endpoint().id());
  EXPECT_FALSE(again.signing_secret_available());
  EXPECT_EQ(again.endpoint().signing_secret(), "");
  EXPECT_EQ(again.signing_secret_unavailable_reason(),
            "EXISTING_SECRET_NOT_RETURNABLE");

  v1::ListWebhookEventTypesResponse types;
  ASSERT_TRUE(webhooks_
                  ->ListWebhookEventTypes(Keyed("").get(),
                                          v1::ListWebhookEventTypesRequest(),
                                          &types)
                  .ok());
  EXPECT_EQ(types.events_size(), 44);
}

TEST_F(WebhookEndpointTest, BadInputIsRefusedBeforeAnythingIsSent) {
  struct Case {
    std::string url;
    std::vector<std::string> events;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {"http://shop.example.com/h", {"order.succeeded"}, "url"},
           {"", {"order.succeeded"}, "url"},
           {absl::StrCat("https://shop.example.com/", std::string(600, 'a')),
            {"order.succeeded"},
            "url"},
           {kUrl, {}, "events"},
           {kUrl, {"2"}, "events[0]"},
           {kUrl, {"order.succeeded", "Order Succeeded"}, "events[1]"},
       }) {
    v1::CreateWebhookEndpointRequest create;
    create.set_url(c.url);
    for (const std::string& e : c.events) create.add_events(e);
    v1::CreateWebhookEndpointResponse response;
    const grpc::Status status =
        webhooks_->CreateWebhookEndpoint(Keyed("").get(), create, &response);
    ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.url;
    const auto bad = BadRequestOf(status);
    ASSERT_GE(bad.field_violations_size(), 1);
    EXPECT_EQ(bad.field_violations(0).field(), c.field);
  }
  v1::UpdateWebhookEndpointRequest update;
  update.set_endpoint_id("whk_1");
  update.set_description(std::string(513, 'd'));
  v1::UpdateWebhookEndpointResponse updated;
  const grpc::Status status =
      webhooks_->UpdateWebhookEndpoint(Keyed("").get(), update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(BadRequestOf(status).field_violations(0).field(), "description");
  for (const auto& r : emulator_->requests()) {
    EXPECT_FALSE(absl::StartsWith(r.path, "/api/webhook")) << r.path;
  }
}

}  // namespace
}  // namespace clink_gateway::testing
