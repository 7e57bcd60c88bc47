#include "adapters/events/redis_event_store.h"

#include <algorithm>
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

TEST_F(RedisEventStoreTest, SubscriptionLostWithRedisDataIsNotFoundThenRecreated) {
  std::unique_ptr<RedisEventStore> store = MakeStore(BaseOptions(*server_));
  ASSERT_NE(store, nullptr);
  SubscriptionSpec spec;
  spec.merchant = "default";
  spec.name = "s";
  ASSERT_TRUE(store->EnsureSubscription(spec).ok());
  ASSERT_TRUE(store->Claim("default", "s", "c", 1, absl::Minutes(1)).ok());
  ASSERT_TRUE(server_->Stop().ok());
  ASSERT_TRUE(server_->Start().ok());  // Nothing persisted: all gone.
  absl::StatusOr<std::vector<Delivery>> got =
      store->Claim("default", "s", "c", 1, absl::Minutes(1));
  const absl::Time give_up = absl::Now() + absl::Seconds(10);
  while (absl::IsUnavailable(got.status()) && absl::Now() < give_up) {
    got = store->Claim("default", "s", "c", 1, absl::Minutes(1));
  }
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(store->EnsureSubscription(spec).ok());
  ASSERT_TRUE(store->Append(Event("after")).ok());
  got = store->Claim("default", "s", "c", 1, absl::Minutes(1));
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].event.event_id, "after");
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

TEST_F(RedisEventStoreTest, IdleConsumersWithNothingPendingAreForgotten) {
  // The streams open and close through a replica that keeps consumers for
  // an hour; then one that forgets them after 1 ms claims.
  std::unique_ptr<RedisEventStore> store = MakeStore(BaseOptions(*server_));
  RedisEventStore::Options options = BaseOptions(*server_);
  options.idle_consumer_expiry = absl::Milliseconds(1);
  std::unique_ptr<RedisEventStore> sweeper = MakeStore(options);
  ASSERT_TRUE(store != nullptr && sweeper != nullptr);
  SubscriptionSpec spec;
  spec.merchant = "default";
  spec.name = "s";
  ASSERT_TRUE(store->EnsureSubscription(spec).ok());
  ASSERT_TRUE(store->Append(Event("kept")).ok());
  // "holder" keeps an event pending; the streams that came and went hold
  // nothing.
  ASSERT_EQ(store->Claim("default", "s", "holder", 1, absl::Hours(1))->size(),
            1u);
  for (int i = 0; i < 5; ++i) {
    const std::string id = absl::StrCat("e", i);
    ASSERT_TRUE(store->Append(Event(id)).ok());
    absl::StatusOr<std::vector<Delivery>> got = store->Claim(
        "default", "s", absl::StrCat("gone-", i), 1, absl::Hours(1));
    ASSERT_TRUE(got.ok() && got->size() == 1);
    ASSERT_EQ(store->Acknowledge("default", "s", {id}).value_or(0), 1);
  }
  const std::string stream = "clink-gateway:events:v1:7:default:stream";
  auto consumers = [&] {
    std::vector<std::string> names;
    for (const RespReply& c : Redis({"XINFO", "CONSUMERS", stream, "s"}).elements) {
      for (size_t i = 0; i + 1 < c.elements.size(); i += 2) {
        if (c.elements[i].text == "name") names.push_back(c.elements[i + 1].text);
      }
    }
    std::sort(names.begin(), names.end());
    return names;
  };
  auto gone_left = [](const std::vector<std::string>& names) {
    return std::count_if(names.begin(), names.end(), [](const std::string& n) {
      return n.rfind("gone-", 0) == 0;
    });
  };
  std::vector<std::string> left = consumers();
  EXPECT_EQ(gone_left(left), 5);
  const absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (gone_left(left) > 0 && absl::Now() < give_up) {
    ASSERT_TRUE(sweeper->Claim("default", "s", "last", 1, absl::Hours(1)).ok());
    left = consumers();
  }
  EXPECT_EQ(gone_left(left), 0);
  // The lease it holds keeps a consumer.
  EXPECT_NE(std::find(left.begin(), left.end(), "holder"), left.end());
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
