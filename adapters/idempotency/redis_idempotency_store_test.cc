// Runs against a real redis-server (tests/redis), started per test on a unix
// socket in the test's temporary directory.
#include "adapters/idempotency/redis_idempotency_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/idempotency/idempotency_store_conformance.h"
#include "common/logging.h"
#include "common/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/redis/redis_server.h"

namespace clink_gateway::idempotency {
namespace {

using ::clink_gateway::testing::RedisServer;
using ::clink_gateway::testing::RespReply;
using ::testing::HasSubstr;
using ::testing::Not;
using Kind = BeginResult::Kind;

constexpr char kPrefix[] = "clink-gateway:idem:v1:";

// Real time throughout: leases are timed by Redis itself.
class RedisStoreEnv final : public StoreTestEnv {
 public:
  static absl::StatusOr<std::unique_ptr<StoreTestEnv>> Make() {
    absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Create();
    if (!server.ok()) return server.status();
    return std::unique_ptr<StoreTestEnv>(new RedisStoreEnv(*std::move(server)));
  }

  absl::StatusOr<std::unique_ptr<IdempotencyStore>> NewStore(
      StoreOptions options) override {
    RedisIdempotencyStore::Options redis;
    redis.address = server_->address();
    redis.retention = options.retention;
    redis.in_flight_lease = options.lease;
    redis.max_waiters_per_key = options.max_waiters_per_key;
    redis.max_waiters = options.max_waiters;
    // Generous: these tests are about semantics, not outages, and CI
    // machines stall.
    redis.command_timeout = absl::Seconds(5);
    redis.connect_timeout = absl::Seconds(5);
    absl::StatusOr<std::unique_ptr<RedisIdempotencyStore>> store =
        RedisIdempotencyStore::Create(redis);
    if (!store.ok()) return store.status();
    return std::unique_ptr<IdempotencyStore>(*std::move(store));
  }
  absl::Time Now() override { return absl::Now(); }
  void Advance(absl::Duration) override {}
  absl::Duration ShortLease() const override { return absl::Milliseconds(300); }
  absl::Duration ShortRetention() const override { return absl::Seconds(1); }

 private:
  explicit RedisStoreEnv(std::unique_ptr<RedisServer> server)
      : server_(std::move(server)) {}

  std::unique_ptr<RedisServer> server_;
};

INSTANTIATE_TEST_SUITE_P(
    Redis, IdempotencyStoreConformanceTest,
    ::testing::Values(ConformanceParam{"Redis", &RedisStoreEnv::Make}),
    [](const ::testing::TestParamInfo<ConformanceParam>& info) {
      return info.param.name;
    });

StoredResult Response(absl::string_view bytes) {
  StoredResult result;
  result.response = std::string(bytes);
  return result;
}

class RedisIdempotencyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Create();
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  RedisIdempotencyStore::Options Options() {
    RedisIdempotencyStore::Options options;
    options.address = server_->address();
    options.connect_timeout = absl::Milliseconds(300);
    options.command_timeout = absl::Milliseconds(300);
    options.max_reconnect_backoff = absl::Milliseconds(200);
    return options;
  }

  std::unique_ptr<RedisIdempotencyStore> MakeStore(
      RedisIdempotencyStore::Options options) {
    absl::StatusOr<std::unique_ptr<RedisIdempotencyStore>> store =
        RedisIdempotencyStore::Create(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::vector<std::string> Keys() {
    absl::StatusOr<RespReply> keys = server_->Command({"KEYS", "*"});
    std::vector<std::string> names;
    EXPECT_TRUE(keys.ok()) << keys.status();
    if (keys.ok()) {
      for (const RespReply& key : keys->elements) names.push_back(key.text);
    }
    return names;
  }

  int64_t Pttl(const std::string& key) {
    absl::StatusOr<RespReply> ttl = server_->Command({"PTTL", key});
    EXPECT_TRUE(ttl.ok()) << ttl.status();
    return ttl.ok() ? ttl->integer : -100;
  }

  // Begins `key` on `store` until it is answered with something other than
  // kUnavailable (bounded); the last result.
  absl::StatusOr<BeginResult> BeginUntilAvailable(IdempotencyStore& store,
                                                  const IdempotencyKey& key) {
    const absl::Time give_up = absl::Now() + kCallbackTimeout;
    while (true) {
      absl::StatusOr<BeginResult> begun =
          BeginAndWait(store, key, "h", absl::Now() + absl::Seconds(5));
      if (begun.status().code() != absl::StatusCode::kUnavailable ||
          absl::Now() > give_up) {
        return begun;
      }
      // Waiting for the store's background reconnection.
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  absl::Time Far() { return absl::Now() + absl::Seconds(60); }

  std::unique_ptr<RedisServer> server_;
};

const IdempotencyKey kKey{"merchant-42", "clink.gateway.v1.PaymentService/Pay",
                          "order-99817"};

TEST_F(RedisIdempotencyStoreTest, KeysHoldNoCallerDataAndExpire) {
  RedisIdempotencyStore::Options options = Options();
  options.retention = absl::Seconds(100);
  options.in_flight_lease = absl::Seconds(10);
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(options);
  absl::StatusOr<BeginResult> begun = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(begun.ok()) << begun.status();
  ASSERT_EQ(begun->kind, Kind::kClaimed);

  const std::vector<std::string> keys = Keys();
  ASSERT_EQ(keys.size(), 1u);
  EXPECT_EQ(keys[0], absl::StrCat(kPrefix, kKey.Digest()));
  EXPECT_THAT(keys[0], Not(HasSubstr("merchant")));
  EXPECT_THAT(keys[0], Not(HasSubstr("99817")));
  // In flight: kept for the lease, then a retention period in which the next
  // Begin still finds it and settles it as abandoned.
  EXPECT_GT(Pttl(keys[0]), 100000);
  EXPECT_LE(Pttl(keys[0]), 110000);

  options.retention = absl::Seconds(50);
  std::unique_ptr<RedisIdempotencyStore> short_store = MakeStore(options);
  ASSERT_TRUE(
      CompleteAndWait(*short_store, kKey, begun->lease_token, Response("r"))
          .ok());
  // Completed: kept for the completing store's retention, from now.
  EXPECT_GT(Pttl(keys[0]), 40000);
  EXPECT_LE(Pttl(keys[0]), 50000);
}

TEST_F(RedisIdempotencyStoreTest, TwoGatewaysRacingClaimOnce) {
  constexpr int kCalls = 50;
  std::unique_ptr<RedisIdempotencyStore> stores[2] = {MakeStore(Options()),
                                                      MakeStore(Options())};
  ASSERT_NE(stores[0], nullptr);
  ASSERT_NE(stores[1], nullptr);
  BeginCollector collector;
  Notification claimed;
  std::atomic<int> claims{0};
  std::atomic<int> claimed_by{-1};
  Notification go;
  std::vector<std::thread> threads;
  const absl::Time deadline = Far();
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      go.WaitForNotification();
      stores[i % 2]->Begin(
          kKey, "h", deadline,
          collector.Callback([&, i](const absl::StatusOr<BeginResult>& r) {
            if (r.ok() && r->kind == Kind::kClaimed &&
                claims.fetch_add(1) == 0) {
              claimed_by = i % 2;
              claimed.Notify();
            }
          }));
    });
  }
  go.Notify();
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(claimed.WaitForNotificationWithTimeout(kCallbackTimeout));

  std::string token;
  for (const auto& r : collector.results()) {
    if (r.ok() && r->kind == Kind::kClaimed) token = r->lease_token;
  }
  ASSERT_TRUE(
      CompleteAndWait(*stores[claimed_by], kKey, token, Response("paid")).ok());
  ASSERT_TRUE(collector.WaitForCount(kCalls));
  int claimed_count = 0;
  for (const auto& r : collector.results()) {
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->kind == Kind::kClaimed) {
      ++claimed_count;
    } else {
      EXPECT_EQ(r->kind, Kind::kCompleted);
      EXPECT_EQ(r->result.response, "paid");
    }
  }
  EXPECT_EQ(claimed_count, 1);
}

TEST_F(RedisIdempotencyStoreTest, StoppedRedisFailsFastAndRecovers) {
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(Options());
  absl::StatusOr<BeginResult> held = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_EQ(held->kind, Kind::kClaimed);

  ASSERT_TRUE(server_->Stop().ok());
  const IdempotencyKey other{"merchant-42", kKey.rpc, "order-2"};
  const absl::Time start = absl::Now();
  absl::StatusOr<BeginResult> down = BeginAndWait(*store, other, "h", Far());
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(down.status().message()),
              HasSubstr(server_->address()));
  EXPECT_THAT(std::string(down.status().message()), Not(HasSubstr("merchant")));
  EXPECT_THAT(std::string(down.status().message()),
              Not(HasSubstr(other.Digest())));
  const absl::Time complete_start = absl::Now();
  EXPECT_EQ(
      CompleteAndWait(*store, kKey, held->lease_token, Response("r")).code(),
      absl::StatusCode::kUnavailable);
  EXPECT_EQ(ReleaseAndWait(*store, kKey, held->lease_token).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - complete_start, absl::Seconds(2));

  // Back (empty: nothing was persisted); the same store recovers by itself.
  ASSERT_TRUE(server_->Start().ok());
  absl::StatusOr<BeginResult> again = BeginUntilAvailable(*store, other);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->kind, Kind::kClaimed);
  EXPECT_TRUE(
      CompleteAndWait(*store, other, again->lease_token, Response("r")).ok());
}

TEST_F(RedisIdempotencyStoreTest, HungRedisFailsWithinTheCommandTimeout) {
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(Options());
  absl::StatusOr<BeginResult> held = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(held.ok()) << held.status();

  ASSERT_TRUE(server_->Pause().ok());
  const absl::Time start = absl::Now();
  absl::StatusOr<BeginResult> hung =
      BeginAndWait(*store, {"c", kKey.rpc, "other"}, "h", Far());
  const absl::Duration took = absl::Now() - start;
  EXPECT_EQ(hung.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_GE(took, absl::Milliseconds(250));
  EXPECT_LT(took, absl::Seconds(3));

  ASSERT_TRUE(server_->Resume().ok());
  // The record claimed before the hang is intact.
  absl::Status completed = absl::UnavailableError("not yet");
  const absl::Time give_up = absl::Now() + kCallbackTimeout;
  while (completed.code() == absl::StatusCode::kUnavailable &&
         absl::Now() < give_up) {
    completed = CompleteAndWait(*store, kKey, held->lease_token, Response("r"));
    if (completed.code() == absl::StatusCode::kUnavailable) {
      absl::SleepFor(absl::Milliseconds(20));  // Background reconnection.
    }
  }
  EXPECT_TRUE(completed.ok()) << completed;
}

TEST_F(RedisIdempotencyStoreTest, BeginWhoseReplyTimedOutLeavesTheKeyFree) {
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(Options());
  ASSERT_TRUE(BeginAndWait(*store, {"c", kKey.rpc, "warm"}, "h", Far()).ok());
  // Redis stalls past the command timeout: the Begin runs (and claims the
  // key) once Redis resumes, but its reply is lost and the caller is told
  // "unavailable, nothing sent, retry with the same key".
  ASSERT_TRUE(server_->Pause().ok());
  absl::StatusOr<BeginResult> hung = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_EQ(hung.status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(server_->Resume().ok());
  // The retry claims the key; it is not stuck behind a claim nobody holds
  // (in flight until the lease runs out, then "abandoned": unknown).
  absl::StatusOr<BeginResult> retry = BeginUntilAvailable(*store, kKey);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->kind, Kind::kClaimed);
}

// As above, but Redis stays unreachable after the lost reply, so the first
// attempt to free the key fails too. Before the fix that attempt was the
// only one: Redis, answering again, ran the hung Begin and the key stayed
// claimed for nobody (the retry heard "in progress", then UNKNOWN).
TEST_F(RedisIdempotencyStoreTest, AnOrphanClaimIsFreedOnceRedisAnswersAgain) {
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(Options());
  ASSERT_TRUE(
      BeginAndWait(*store, {"c", kKey.rpc, "warm", ""}, "h", Far()).ok());
  ASSERT_TRUE(server_->Pause().ok());
  absl::StatusOr<BeginResult> hung = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_EQ(hung.status().code(), absl::StatusCode::kUnavailable);
  // A later command fails as well: the Release queued before it (to free
  // what the hung Begin may claim) has failed by now.
  absl::StatusOr<BeginResult> later =
      BeginAndWait(*store, {"c", kKey.rpc, "later", ""}, "h", Far());
  ASSERT_EQ(later.status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(server_->Resume().ok());
  absl::StatusOr<BeginResult> retry = BeginUntilAvailable(*store, kKey);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_EQ(retry->kind, Kind::kClaimed);
}

TEST_F(RedisIdempotencyStoreTest, ConnectionClosedUnderTheStoreIsRetried) {
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(Options());
  absl::StatusOr<BeginResult> held = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(held.ok()) << held.status();
  // Close every client connection (as a Redis proxy restart or an idle
  // timeout would). The store only notices when it next writes.
  absl::StatusOr<RespReply> killed =
      server_->Command({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  ASSERT_TRUE(killed.ok()) << killed.status();
  ASSERT_EQ(killed->integer, 1);
  EXPECT_TRUE(
      CompleteAndWait(*store, kKey, held->lease_token, Response("r")).ok());
  absl::StatusOr<BeginResult> replay = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->kind, Kind::kCompleted);
}

TEST_F(RedisIdempotencyStoreTest, FlushedScriptCacheIsRecovered) {
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(Options());
  absl::StatusOr<BeginResult> held = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(held.ok()) << held.status();
  ASSERT_TRUE(server_->Command({"SCRIPT", "FLUSH"}).ok());
  EXPECT_TRUE(
      CompleteAndWait(*store, kKey, held->lease_token, Response("r")).ok());
}

TEST_F(RedisIdempotencyStoreTest, CorruptRecordsFailClosed) {
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(Options());
  const std::string name = absl::StrCat(kPrefix, kKey.Digest());
  ASSERT_TRUE(server_->Command({"SET", name, "not a hash"}).ok());
  absl::StatusOr<BeginResult> wrong_type =
      BeginAndWait(*store, kKey, "h", Far());
  EXPECT_EQ(wrong_type.status().code(), absl::StatusCode::kUnavailable);

  ASSERT_TRUE(server_->Command({"DEL", name}).ok());
  ASSERT_TRUE(
      server_->Command({"HSET", name, "h", "h", "s", "d", "r", "\xff garbage"})
          .ok());
  absl::StatusOr<BeginResult> bad_result =
      BeginAndWait(*store, kKey, "h", Far());
  EXPECT_EQ(bad_result.status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(RedisIdempotencyStoreTest, UnreachableAtStartFailsFast) {
  RedisIdempotencyStore::Options options = Options();
  options.address = "unix:/nonexistent/redis.sock";
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(options);
  ASSERT_NE(store, nullptr);
  const absl::Time start = absl::Now();
  absl::StatusOr<BeginResult> begun = BeginAndWait(*store, kKey, "h", Far());
  EXPECT_EQ(begun.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(begun.status().message()),
              HasSubstr("unix:/nonexistent/redis.sock"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
}

TEST_F(RedisIdempotencyStoreTest, RejectsBadOptions) {
  for (const char* address : {"", "localhost", "localhost:0", "localhost:99999",
                              ":6379", "unix:", "[::1:6379"}) {
    RedisIdempotencyStore::Options options = Options();
    options.address = address;
    EXPECT_EQ(RedisIdempotencyStore::Create(options).status().code(),
              absl::StatusCode::kInvalidArgument)
        << address;
  }
  RedisIdempotencyStore::Options options = Options();
  options.in_flight_lease = absl::ZeroDuration();
  EXPECT_EQ(RedisIdempotencyStore::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.password_file = "/nonexistent/password";
  EXPECT_EQ(RedisIdempotencyStore::Create(options).status().code(),
            absl::StatusCode::kNotFound);
  // The accepted forms. A store starts connecting as soon as it exists, so
  // each points at a loopback port this test holds bound but not listening
  // (refused at once): never a fixed port something may serve on (a Redis on
  // 6379), nor an address off this machine.
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in bound{};
  bound.sin_family = AF_INET;
  bound.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(bound);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&bound), sizeof(bound)), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length), 0);
  const int port = ntohs(bound.sin_port);
  for (const std::string& address :
       {absl::StrCat("localhost:", port), absl::StrCat("[::1]:", port),
        absl::StrCat("127.0.0.1:", port)}) {
    options = Options();
    options.address = address;
    options.connect_timeout = absl::Milliseconds(50);
    EXPECT_TRUE(RedisIdempotencyStore::Create(options).ok()) << address;
  }
  close(fd);
}

// Log lines (common/logging.h writes them to stdout) whose text has
// `needle`.
int CountLines(absl::string_view out, absl::string_view needle) {
  int count = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (absl::StrContains(line, needle)) ++count;
  }
  return count;
}

constexpr char kEvictionWarning[] =
    R"("event":"idempotency_redis_eviction_policy")";
constexpr char kEvictionUnchecked[] =
    R"("event":"idempotency_redis_eviction_policy_unchecked")";

class RedisEvictionPolicyTest : public RedisIdempotencyStoreTest {
 protected:
  void SetUp() override {}

  void StartServer(std::vector<std::string> extra_args) {
    RedisServer::Options options;
    options.extra_args = std::move(extra_args);
    absl::StatusOr<std::unique_ptr<RedisServer>> server =
        RedisServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  // Makes a store, claims and completes a key, closes the store's connection
  // under it and completes another (so the store connects twice); the log
  // lines written meanwhile.
  std::string RunTwoConnections() {
    FlushLogs();
    ::testing::internal::CaptureStdout();
    {
      std::unique_ptr<RedisIdempotencyStore> store = MakeStore(Options());
      absl::StatusOr<BeginResult> first =
          BeginAndWait(*store, kKey, "h", Far());
      EXPECT_TRUE(first.ok()) << first.status();
      absl::StatusOr<RespReply> killed = server_->Command(
          {"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
      EXPECT_TRUE(killed.ok()) << killed.status();
      // Resent on a new connection (see ConnectionClosedUnderTheStore...).
      if (first.ok()) {
        EXPECT_TRUE(
            CompleteAndWait(*store, kKey, first->lease_token, Response("r"))
                .ok());
      }
      absl::StatusOr<BeginResult> replay =
          BeginAndWait(*store, kKey, "h", Far());
      EXPECT_TRUE(replay.ok()) << replay.status();
      if (replay.ok()) {
        EXPECT_EQ(replay->kind, Kind::kCompleted);
      }
    }
    FlushLogs();
    return ::testing::internal::GetCapturedStdout();
  }
};

TEST_F(RedisEvictionPolicyTest, WarnsOncePerConnectionWhenRedisMayEvict) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--maxmemory-policy", "allkeys-lru"}));
  const std::string out = RunTwoConnections();
  EXPECT_EQ(CountLines(out, kEvictionWarning), 2) << out;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (!absl::StrContains(line, kEvictionWarning)) continue;
    EXPECT_THAT(std::string(line), HasSubstr(R"("level":"warning")"));
    EXPECT_THAT(std::string(line),
                HasSubstr(R"("maxmemory_policy":"allkeys-lru")"));
    EXPECT_THAT(std::string(line), HasSubstr("duplicate payments"));
    EXPECT_THAT(std::string(line), HasSubstr(server_->address()));
  }
  EXPECT_EQ(CountLines(out, kEvictionUnchecked), 0) << out;
}

TEST_F(RedisEvictionPolicyTest, VolatilePoliciesAlsoWarn) {
  // Every record has a TTL, so volatile-* policies may evict them too.
  ASSERT_NO_FATAL_FAILURE(StartServer({"--maxmemory-policy", "volatile-ttl"}));
  const std::string out = RunTwoConnections();
  EXPECT_EQ(CountLines(out, kEvictionWarning), 2) << out;
  EXPECT_EQ(CountLines(out, "volatile-ttl"), 2) << out;
}

TEST_F(RedisEvictionPolicyTest, NoevictionIsQuiet) {
  ASSERT_NO_FATAL_FAILURE(StartServer({"--maxmemory-policy", "noeviction"}));
  const std::string out = RunTwoConnections();
  EXPECT_EQ(CountLines(out, kEvictionWarning), 0) << out;
  EXPECT_EQ(CountLines(out, kEvictionUnchecked), 0) << out;
}

TEST_F(RedisEvictionPolicyTest, DisabledConfigIsLoggedAtInfoAndIgnored) {
  // As managed Redis services do: CONFIG is renamed away.
  ASSERT_NO_FATAL_FAILURE(
      StartServer({"--maxmemory-policy", "allkeys-lru", "--rename-command",
                   "CONFIG", "clink-test-renamed-config"}));
  // RunTwoConnections checks that the store works all the same.
  const std::string out = RunTwoConnections();
  EXPECT_EQ(CountLines(out, kEvictionUnchecked), 2) << out;
  EXPECT_EQ(CountLines(out, R"("level":"info","event":"idempotency_redis_)"
                            R"(eviction_policy_unchecked")"),
            2)
      << out;
  EXPECT_EQ(CountLines(out, kEvictionWarning), 0) << out;
}

class RedisAuthTest : public RedisIdempotencyStoreTest {
 protected:
  void SetUp() override {
    RedisServer::Options options;
    options.extra_args = {"--requirepass", kPassword};
    absl::StatusOr<std::unique_ptr<RedisServer>> server =
        RedisServer::Create(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  std::string PasswordFile(absl::string_view contents) {
    const std::string path =
        absl::StrCat(::testing::TempDir(), "/redis-password-", ++files_);
    std::ofstream(path) << contents;
    return path;
  }

  static constexpr char kPassword[] = "test-only-redis-password";
  int files_ = 0;
};

TEST_F(RedisAuthTest, AuthenticatesWithThePasswordFile) {
  RedisIdempotencyStore::Options options = Options();
  options.password_file = PasswordFile(absl::StrCat(kPassword, "\n"));
  std::unique_ptr<RedisIdempotencyStore> store = MakeStore(options);
  absl::StatusOr<BeginResult> begun = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(begun.ok()) << begun.status();
  EXPECT_EQ(begun->kind, Kind::kClaimed);
}

TEST_F(RedisAuthTest, WrongOrMissingPasswordIsUnavailable) {
  RedisIdempotencyStore::Options options = Options();
  options.password_file = PasswordFile("wrong-password");
  std::unique_ptr<RedisIdempotencyStore> wrong = MakeStore(options);
  absl::StatusOr<BeginResult> refused = BeginAndWait(*wrong, kKey, "h", Far());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("AUTH"));
  EXPECT_THAT(std::string(refused.status().message()),
              Not(HasSubstr("wrong-password")));

  std::unique_ptr<RedisIdempotencyStore> none = MakeStore(Options());
  EXPECT_EQ(BeginAndWait(*none, kKey, "h", Far()).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace clink_gateway::idempotency
