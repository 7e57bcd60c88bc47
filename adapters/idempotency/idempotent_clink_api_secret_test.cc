// A webhook endpoint's plaintext signing secret (FieldRule.sensitive) reaches
// the first caller of a keyed call only: the replay answers without it, and
// no store (memory, SQLite, Redis) ever holds its bytes.
#include <dirent.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/idempotency/idempotent_clink_api.h"
#include "adapters/idempotency/memory_idempotency_store.h"
#include "adapters/idempotency/redis_idempotency_store.h"
#include "adapters/idempotency/sqlite_idempotency_store.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "clink/gateway/v1/webhook.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/redis/redis_server.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;
using ::clink_gateway::testing::RespReply;
using ::clink_gateway::testing::RedisServer;

constexpr char kSecret[] = "whsec_S3cr3tPlaintextNeverStored0042";

// Clink: answers every webhook-endpoint call with an endpoint carrying the
// plaintext secret (as Clink's create and rotate do), inline.
class SecretClinkApi final : public ClinkApi {
 public:
  void Call(const RestMethod&, const google::protobuf::Message&,
            const CallOptions&, google::protobuf::Message* response,
            Callback done) override {
    ++calls;
    v1::WebhookEndpoint* endpoint = nullptr;
    if (auto* created =
            dynamic_cast<v1::CreateWebhookEndpointResponse*>(response)) {
      endpoint = created->mutable_endpoint();
    } else if (auto* ensured =
                   dynamic_cast<v1::EnsureWebhookEndpointResponse*>(response)) {
      ensured->set_signing_secret_available(true);
      ensured->set_source("created");
      endpoint = ensured->mutable_endpoint();
    }
    if (endpoint != nullptr) {
      endpoint->set_id("whk_1");
      endpoint->set_url("https://shop.example.com/hooks");
      endpoint->add_events("order.succeeded");
      endpoint->set_masked_signing_secret("whsec_...0042");
      endpoint->set_signing_secret(kSecret);
    }
    CallResult result;
    result.outcome = Outcome::kCommitted;
    std::move(done)(std::move(result));
  }
  int calls = 0;
};

// Forwards to a store and keeps a copy of every result it is asked to keep:
// what the memory store holds.
class RecordingStore final : public idempotency::IdempotencyStore {
 public:
  explicit RecordingStore(idempotency::IdempotencyStore& inner)
      : inner_(inner) {}
  void Begin(const idempotency::IdempotencyKey& key,
             absl::string_view request_hash, absl::Time deadline,
             BeginCallback done) override {
    inner_.Begin(key, request_hash, deadline, std::move(done));
  }
  void Complete(const idempotency::IdempotencyKey& key,
                absl::string_view lease_token,
                idempotency::StoredResult result,
                DoneCallback done) override {
    kept += result.response;
    kept += result.status.ToString();
    inner_.Complete(key, lease_token, std::move(result), std::move(done));
  }
  void Release(const idempotency::IdempotencyKey& key,
               absl::string_view lease_token, DoneCallback done) override {
    inner_.Release(key, lease_token, std::move(done));
  }
  std::string kept;

 private:
  idempotency::IdempotencyStore& inner_;
};

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Every byte of every file in `dir` (the database, its WAL and shm).
std::string ReadDirectory(const std::string& dir) {
  std::string all;
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return all;
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    all += ReadFile(absl::StrCat(dir, "/", name));
  }
  closedir(d);
  return all;
}

void AppendReply(const RespReply& reply, std::string* out) {
  *out += reply.text;
  for (const RespReply& e : reply.elements) AppendReply(e, out);
}

enum class StoreKind { kMemory, kSqlite, kRedis };

class SecretNotStoredTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  void SetUp() override {
    auto codec = RestCodec::CreateForServices(GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    switch (GetParam()) {
      case StoreKind::kMemory:
        memory_ = std::make_unique<idempotency::MemoryIdempotencyStore>();
        recording_ = std::make_unique<RecordingStore>(*memory_);
        store_ = recording_.get();
        break;
      case StoreKind::kSqlite: {
        idempotency::SqliteIdempotencyStore::Options options;
        state_dir_ = absl::StrCat(std::getenv("TEST_TMPDIR"), "/secret-",
                                  ::testing::UnitTest::GetInstance()
                                      ->current_test_info()
                                      ->name());
        options.state_dir = state_dir_;
        auto sqlite = idempotency::SqliteIdempotencyStore::Open(options);
        ASSERT_TRUE(sqlite.ok()) << sqlite.status();
        sqlite_ = *std::move(sqlite);
        store_ = sqlite_.get();
        break;
      }
      case StoreKind::kRedis: {
        auto redis = RedisServer::Create();
        ASSERT_TRUE(redis.ok()) << redis.status();
        redis_server_ = *std::move(redis);
        idempotency::RedisIdempotencyStore::Options options;
        options.address = redis_server_->address();
        auto store = idempotency::RedisIdempotencyStore::Create(options);
        ASSERT_TRUE(store.ok()) << store.status();
        redis_ = *std::move(store);
        store_ = redis_.get();
        break;
      }
    }
    api_ = std::make_unique<IdempotentClinkApi>(*codec_, inner_, *store_);
  }

  void TearDown() override {
    api_.reset();
    redis_.reset();
    sqlite_.reset();
  }

  // Runs `request` with idempotency key `key`; the answer lands in
  // `response`.
  CallResult Call(const google::protobuf::Message& request,
                  google::protobuf::Message* response,
                  const std::string& key) {
    const RestMethod* method =
        codec_->FindByRequestType(*request.GetDescriptor());
    EXPECT_NE(method, nullptr);
    CallOptions options;
    options.idempotency_key = key;
    options.caller = "platform-admin";
    // The SQLite and Redis stores answer on their own threads.
    auto answered = std::make_shared<std::promise<CallResult>>();
    std::future<CallResult> result = answered->get_future();
    api_->Call(*method, request, options, response,
               [answered](CallResult r) { answered->set_value(std::move(r)); });
    if (result.wait_for(std::chrono::seconds(30)) !=
        std::future_status::ready) {
      ADD_FAILURE() << "no answer";
      std::abort();  // The callback would write into a dead frame.
    }
    return result.get();
  }

  // Everything the store holds, as bytes.
  std::string StoredBytes() {
    switch (GetParam()) {
      case StoreKind::kMemory:
        return recording_->kept;
      case StoreKind::kSqlite:
        return ReadDirectory(state_dir_);
      case StoreKind::kRedis: {
        std::string all;
        absl::StatusOr<RespReply> keys = redis_server_->Command({"KEYS", "*"});
        EXPECT_TRUE(keys.ok()) << keys.status();
        if (!keys.ok()) return all;
        EXPECT_FALSE(keys->elements.empty());
        for (const RespReply& key : keys->elements) {
          absl::StatusOr<RespReply> type =
              redis_server_->Command({"TYPE", key.text});
          if (!type.ok()) continue;
          absl::StatusOr<RespReply> value =
              type->text == "hash"
                  ? redis_server_->Command({"HGETALL", key.text})
                  : redis_server_->Command({"GET", key.text});
          if (value.ok()) AppendReply(*value, &all);
        }
        return all;
      }
    }
    return std::string();
  }

  std::unique_ptr<RestCodec> codec_;
  SecretClinkApi inner_;
  std::unique_ptr<idempotency::MemoryIdempotencyStore> memory_;
  std::unique_ptr<RecordingStore> recording_;
  std::string state_dir_;
  std::unique_ptr<idempotency::SqliteIdempotencyStore> sqlite_;
  std::unique_ptr<RedisServer> redis_server_;
  std::unique_ptr<idempotency::RedisIdempotencyStore> redis_;
  idempotency::IdempotencyStore* store_ = nullptr;
  std::unique_ptr<IdempotentClinkApi> api_;
};

TEST_P(SecretNotStoredTest, TheFirstCallGetsTheSecretTheReplayAndTheStoreDoNot) {
  v1::CreateWebhookEndpointRequest request;
  request.set_url("https://shop.example.com/hooks");
  request.add_events("order.succeeded");

  v1::CreateWebhookEndpointResponse first;
  const CallResult created = Call(request, &first, "create-hook-1");
  ASSERT_TRUE(created.status.ok()) << created.status;
  EXPECT_FALSE(created.replayed);
  EXPECT_EQ(first.endpoint().signing_secret(), kSecret);

  v1::CreateWebhookEndpointResponse replay;
  const CallResult replayed = Call(request, &replay, "create-hook-1");
  ASSERT_TRUE(replayed.status.ok()) << replayed.status;
  EXPECT_TRUE(replayed.replayed);
  EXPECT_EQ(inner_.calls, 1);  // Not registered twice.
  EXPECT_EQ(replay.endpoint().id(), "whk_1");
  EXPECT_EQ(replay.endpoint().masked_signing_secret(), "whsec_...0042");
  EXPECT_EQ(replay.endpoint().signing_secret(), "");

  const std::string stored = StoredBytes();
  EXPECT_TRUE(absl::StrContains(stored, "whk_1"))
      << "the record was not found where the test looks";
  EXPECT_FALSE(absl::StrContains(stored, kSecret));
}

TEST_P(SecretNotStoredTest, AnEnsuredSecretIsNotStoredEither) {
  v1::EnsureWebhookEndpointRequest request;
  request.set_url("https://shop.example.com/hooks");
  request.add_events("order.succeeded");
  request.set_return_signing_secret(true);

  v1::EnsureWebhookEndpointResponse first;
  ASSERT_TRUE(Call(request, &first, "ensure-1").status.ok());
  EXPECT_EQ(first.endpoint().signing_secret(), kSecret);
  v1::EnsureWebhookEndpointResponse replay;
  ASSERT_TRUE(Call(request, &replay, "ensure-1").status.ok());
  EXPECT_EQ(replay.endpoint().signing_secret(), "");
  EXPECT_EQ(replay.source(), "created");
  EXPECT_FALSE(absl::StrContains(StoredBytes(), kSecret));
}

// Responses without a sensitive field are stored as they are.
TEST(SensitiveFieldsTest, OnlyMarkedFieldsAreCleared) {
  auto codec = RestCodec::CreateForServices(GatewayServiceNames());
  ASSERT_TRUE(codec.ok()) << codec.status();
  for (const RestMethod* method : (*codec)->methods()) {
    const std::string& name = method->method->name();
    const bool carries_secret = name == "CreateWebhookEndpoint" ||
                                name == "RotateWebhookEndpointSecret" ||
                                name == "EnsureWebhookEndpoint" ||
                                name == "GetWebhookEndpoint" ||
                                name == "ListWebhookEndpoints" ||
                                name == "UpdateWebhookEndpoint" ||
                                name == "EnableWebhookEndpoint" ||
                                name == "DisableWebhookEndpoint";
    EXPECT_EQ(method->sensitive_response, carries_secret) << name;
  }
  v1::ListWebhookEndpointsResponse list;
  list.add_endpoints()->set_signing_secret("a");
  list.add_endpoints()->set_signing_secret("b");
  list.mutable_endpoints(1)->set_id("whk_2");
  list.set_total(2);
  EXPECT_EQ(ClearSensitiveFields(&list), 2);
  EXPECT_EQ(list.endpoints(0).signing_secret(), "");
  EXPECT_EQ(list.endpoints(1).signing_secret(), "");
  EXPECT_EQ(list.endpoints(1).id(), "whk_2");
  EXPECT_EQ(list.total(), 2);
  v1::CreatePaymentResponse payment;
  payment.set_order_id("ord_1");
  EXPECT_EQ(ClearSensitiveFields(&payment), 0);
  EXPECT_EQ(payment.order_id(), "ord_1");
}

INSTANTIATE_TEST_SUITE_P(
    Stores, SecretNotStoredTest,
    ::testing::Values(StoreKind::kMemory, StoreKind::kSqlite,
                      StoreKind::kRedis),
    [](const ::testing::TestParamInfo<StoreKind>& info) {
      switch (info.param) {
        case StoreKind::kMemory:
          return "Memory";
        case StoreKind::kSqlite:
          return "Sqlite";
        case StoreKind::kRedis:
          return "Redis";
      }
      return "";
    });

}  // namespace
}  // namespace clink_gateway::clink
