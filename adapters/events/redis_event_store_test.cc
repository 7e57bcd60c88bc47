#include "adapters/events/redis_event_store.h"

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/events/event_store_conformance.h"
#include "gtest/gtest.h"
#include "tests/redis/redis_server.h"

namespace clink_gateway::events {
namespace {

using ::clink_gateway::testing::RedisServer;
using ::clink_gateway::testing::RespReply;

RedisEventStore::Options BaseOptions(const RedisServer& server) {
  RedisEventStore::Options options;
  options.address = server.address();
  options.connect_timeout = absl::Milliseconds(300);
  options.command_timeout = absl::Milliseconds(500);
  options.reconnect_backoff = absl::Milliseconds(100);
  return options;
}

// Every store of one environment talks to one redis-server (started for the
// environment); time is real (leases are Redis time).
class RedisEnv final : public EventStoreTestEnv {
 public:
  static absl::StatusOr<std::unique_ptr<EventStoreTestEnv>> Make() {
    absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Create();
    if (!server.ok()) return server.status();
    return std::unique_ptr<EventStoreTestEnv>(
        new RedisEnv(*std::move(server)));
  }

  absl::StatusOr<std::unique_ptr<EventStore>> OpenStore(
      StoreOptions options) override {
    RedisEventStore::Options redis = BaseOptions(*server_);
    redis.max_subscriptions_per_merchant =
        options.max_subscriptions_per_merchant;
    absl::StatusOr<std::unique_ptr<RedisEventStore>> store =
        RedisEventStore::Create(redis);
    if (!store.ok()) return store.status();
    return std::unique_ptr<EventStore>(*std::move(store));
  }
  absl::Time Now() override { return absl::Now(); }
  void Advance(absl::Duration) override {}
  absl::Duration ShortAckDeadline() const override {
    return absl::Milliseconds(300);
  }

 private:
  explicit RedisEnv(std::unique_ptr<RedisServer> server)
      : server_(std::move(server)) {}

  std::unique_ptr<RedisServer> server_;
};

INSTANTIATE_TEST_SUITE_P(
    Redis, EventStoreConformanceTest,
    ::testing::Values(EventConformanceParam{"Redis", &RedisEnv::Make}),
    [](const ::testing::TestParamInfo<EventConformanceParam>& info) {
      return info.param.name;
    });

StoredEvent Event(absl::string_view id) {
  StoredEvent event;
  event.merchant = "default";
  event.event_id = std::string(id);
  event.type = "order.succeeded";
  event.receive_time = absl::Now();
  event.body = "{}";
  return event;
}

class RedisEventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisServer>> server =
        RedisServer::Create(ServerOptions());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  virtual RedisServer::Options ServerOptions() { return {}; }

  std::unique_ptr<RedisEventStore> MakeStore(RedisEventStore::Options options) {
    absl::StatusOr<std::unique_ptr<RedisEventStore>> store =
        RedisEventStore::Create(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  RespReply Redis(const std::vector<std::string>& args) {
    absl::StatusOr<RespReply> reply = server_->Command(args);
    EXPECT_TRUE(reply.ok()) << reply.status();
    return reply.value_or(RespReply());
  }

  std::unique_ptr<RedisServer> server_;
};

TEST_F(RedisEventStoreTest, DuplicateWritesNothingAndDedupKeyOutlivesRetention) {
  RedisEventStore::Options options = BaseOptions(*server_);
  options.retention = absl::Hours(1);
  options.dedup_window = absl::Hours(72);
  std::unique_ptr<RedisEventStore> store = MakeStore(options);
  ASSERT_NE(store, nullptr);
  ASSERT_EQ(store->Append(Event("evt_1")).value(), AppendResult::kStored);
  ASSERT_EQ(store->Append(Event("evt_1")).value(), AppendResult::kDuplicate);
  const std::string prefix = "clink-gateway:events:v1:7:default:";
  EXPECT_EQ(Redis({"XLEN", prefix + "stream"}).integer, 1);
  const int64_t pttl = Redis({"PTTL", prefix + "dedup:evt_1"}).integer;
  EXPECT_GT(pttl, absl::ToInt64Milliseconds(absl::Hours(71)));
  EXPECT_LE(pttl, absl::ToInt64Milliseconds(absl::Hours(72)));
}

TEST_F(RedisEventStoreTest, ConcurrentAppendsFromTwoReplicasStoreOnce) {
  std::unique_ptr<RedisEventStore> a = MakeStore(BaseOptions(*server_));
  std::unique_ptr<RedisEventStore> b = MakeStore(BaseOptions(*server_));
  ASSERT_TRUE(a != nullptr && b != nullptr);
  std::atomic<int> stored{0};
  auto append = [&stored](RedisEventStore* store) {
    for (int i = 0; i < 50; ++i) {
      absl::StatusOr<AppendResult> r = store->Append(Event(absl::StrCat("e", i)));
      ASSERT_TRUE(r.ok()) << r.status();
      if (*r == AppendResult::kStored) stored.fetch_add(1);
    }
  };
  std::thread ta(append, a.get());
  std::thread tb(append, b.get());
  ta.join();
  tb.join();
  EXPECT_EQ(stored.load(), 50);
  EXPECT_EQ(Redis({"XLEN", "clink-gateway:events:v1:7:default:stream"}).integer,
            50);
}

TEST_F(RedisEventStoreTest, DownRedisIsUnavailableQuicklyAndRecovers) {
  std::unique_ptr<RedisEventStore> store = MakeStore(BaseOptions(*server_));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Event("before")).ok());
  ASSERT_TRUE(server_->Stop().ok());
  const absl::Time start = absl::Now();
  EXPECT_EQ(store->Append(Event("during")).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store->Get("default", "before").status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ASSERT_TRUE(server_->Start().ok());
  // Back (empty: nothing is persisted): within the reconnect backoff.
  absl::StatusOr<AppendResult> again = store->Append(Event("after"));
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (!again.ok() && absl::Now() < give_up) {
    again = store->Append(Event("after"));
  }
  ASSERT_TRUE(again.ok()) << again.status();
}

TEST_F(RedisEventStoreTest, HungRedisTimesOut) {
  std::unique_ptr<RedisEventStore> store = MakeStore(BaseOptions(*server_));
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->Append(Event("before")).ok());
  ASSERT_TRUE(server_->Pause().ok());
  const absl::Time start = absl::Now();
  EXPECT_EQ(store->Append(Event("during")).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  ASSERT_TRUE(server_->Resume().ok());
}

TEST_F(RedisEventStoreTest, RefusesBadOptions) {
  RedisEventStore::Options options = BaseOptions(*server_);
  options.address = "no-port";
  EXPECT_EQ(RedisEventStore::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = BaseOptions(*server_);
  options.command_timeout = absl::ZeroDuration();
  EXPECT_EQ(RedisEventStore::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = BaseOptions(*server_);
  options.password_file = "/nonexistent/password";
  EXPECT_EQ(RedisEventStore::Create(options).status().code(),
            absl::StatusCode::kNotFound);
}

class RedisEventStoreAuthTest : public RedisEventStoreTest {
 protected:
  RedisServer::Options ServerOptions() override {
    RedisServer::Options options;
    options.extra_args = {"--requirepass", "s3cret"};
    return options;
  }
};

TEST_F(RedisEventStoreAuthTest, AuthenticatesWithThePasswordFile) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/redis-password");
  std::ofstream(path) << "s3cret\n";
  RedisEventStore::Options options = BaseOptions(*server_);
  EXPECT_EQ(MakeStore(options)->Append(Event("x")).status().code(),
            absl::StatusCode::kUnavailable);
  options.password_file = path;
  std::unique_ptr<RedisEventStore> store = MakeStore(options);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Append(Event("x")).ok());
}

}  // namespace
}  // namespace clink_gateway::events
