#include "adapters/idempotency/sqlite_idempotency_store.h"

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "adapters/idempotency/idempotency_store_conformance.h"
#include "common/sync.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

extern char** environ;

namespace clink_gateway::idempotency {
namespace {

using Kind = BeginResult::Kind;

// A new empty directory under the test's temp dir.
std::string NewStateDir() {
  std::string dir = absl::StrCat(::testing::TempDir(), "/state-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) return "";
  return dir;
}

// StoreTestEnv::StoreOptions gains waiter caps on branch idem-waiters; copy
// them when they exist, so this test builds (and honours them) before and
// after that change lands. Once it has, a plain assignment will do.
template <typename T, typename = void>
struct HasWaiterCaps : std::false_type {};
template <typename T>
struct HasWaiterCaps<T, std::void_t<decltype(std::declval<T&>().max_waiters)>>
    : std::true_type {};

template <typename From>
void CopyWaiterCaps(const From& from, SqliteIdempotencyStore::Options& to) {
  if constexpr (HasWaiterCaps<From>::value) {
    to.max_waiters_per_key = from.max_waiters_per_key;
    to.max_waiters = from.max_waiters;
  }
}

class SqliteStoreEnv final : public StoreTestEnv {
 public:
  absl::StatusOr<std::unique_ptr<IdempotencyStore>> NewStore(
      StoreOptions options) override {
    // A directory per store: one process (here: one store) per directory.
    SqliteIdempotencyStore::Options sqlite;
    sqlite.state_dir = NewStateDir();
    sqlite.retention = options.retention;
    sqlite.in_flight_lease = options.lease;
    CopyWaiterCaps(options, sqlite);
    sqlite.clock = &clock_;
    absl::StatusOr<std::unique_ptr<SqliteIdempotencyStore>> store =
        SqliteIdempotencyStore::Open(sqlite);
    if (!store.ok()) return store.status();
    return std::unique_ptr<IdempotencyStore>(*std::move(store));
  }
  absl::Time Now() override { return clock_.Now(); }
  void Advance(absl::Duration delta) override { clock_.Advance(delta); }
  absl::Duration ShortLease() const override { return absl::Minutes(2); }
  absl::Duration ShortRetention() const override { return absl::Hours(1); }

 private:
  FakeClock clock_;
};

INSTANTIATE_TEST_SUITE_P(
    Sqlite, IdempotencyStoreConformanceTest,
    ::testing::Values(ConformanceParam{
        "Sqlite",
        []() -> absl::StatusOr<std::unique_ptr<StoreTestEnv>> {
          return std::make_unique<SqliteStoreEnv>();
        }}),
    [](const ::testing::TestParamInfo<ConformanceParam>& info) {
      return info.param.name;
    });

const IdempotencyKey kKey{"caller", "clink.gateway.v1.PaymentService/Create",
                          "key-1", "acme"};

IdempotencyKey Key(int i) {
  return IdempotencyKey{"caller", "svc/Rpc", absl::StrCat("key-", i), "m"};
}

StoredResult Response(absl::string_view bytes) {
  StoredResult result;
  result.response = std::string(bytes);
  return result;
}

class SqliteIdempotencyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = NewStateDir();
    ASSERT_FALSE(dir_.empty());
  }

  SqliteIdempotencyStore::Options Options() {
    SqliteIdempotencyStore::Options options;
    options.state_dir = dir_;
    options.retention = absl::Hours(1);
    options.in_flight_lease = absl::Minutes(2);
    options.clock = &clock_;
    return options;
  }

  std::unique_ptr<SqliteIdempotencyStore> MustOpen(
      SqliteIdempotencyStore::Options options) {
    absl::StatusOr<std::unique_ptr<SqliteIdempotencyStore>> store =
        SqliteIdempotencyStore::Open(std::move(options));
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  absl::Time Far() { return clock_.Now() + absl::Hours(10); }

  std::string dir_;
  FakeClock clock_;
};

TEST_F(SqliteIdempotencyStoreTest, AResultSurvivesAReopen) {
  StoredResult error;
  error.status = absl::FailedPreconditionError("declined");
  error.status.SetPayload("type.example/x", absl::Cord("payload"));
  {
    std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(Options());
    ASSERT_NE(store, nullptr);
    absl::StatusOr<BeginResult> a = BeginAndWait(*store, Key(1), "h", Far());
    absl::StatusOr<BeginResult> b = BeginAndWait(*store, Key(2), "h", Far());
    ASSERT_TRUE(a.ok() && b.ok());
    ASSERT_TRUE(
        CompleteAndWait(*store, Key(1), a->lease_token, Response("one")).ok());
    ASSERT_TRUE(CompleteAndWait(*store, Key(2), b->lease_token, error).ok());
  }
  std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(Options());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->abandoned_at_open(), 0);
  absl::StatusOr<BeginResult> one = BeginAndWait(*store, Key(1), "h", Far());
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->kind, Kind::kCompleted);
  EXPECT_EQ(one->result.response, "one");
  absl::StatusOr<BeginResult> two = BeginAndWait(*store, Key(2), "h", Far());
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->kind, Kind::kCompleted);
  EXPECT_EQ(two->result.status, error.status);
  // Retention still counts from the first process's Complete.
  clock_.Advance(absl::Hours(1) + absl::Seconds(1));
  absl::StatusOr<BeginResult> gone = BeginAndWait(*store, Key(1), "h", Far());
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_EQ(gone->kind, Kind::kClaimed);
}

TEST_F(SqliteIdempotencyStoreTest, InFlightAtReopenIsSettledAsAbandoned) {
  std::string token;
  {
    std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(Options());
    ASSERT_NE(store, nullptr);
    absl::StatusOr<BeginResult> a = BeginAndWait(*store, kKey, "h", Far());
    ASSERT_TRUE(a.ok());
    ASSERT_EQ(a->kind, Kind::kClaimed);
    token = a->lease_token;
    // Closed with the call in flight: as if the process had stopped.
  }
  std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(Options());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->abandoned_at_open(), 1);
  for (int i = 0; i < 2; ++i) {
    absl::StatusOr<BeginResult> again = BeginAndWait(*store, kKey, "h", Far());
    ASSERT_TRUE(again.ok()) << again.status();
    ASSERT_EQ(again->kind, Kind::kCompleted);  // Never kClaimed: never re-run.
    EXPECT_EQ(again->result.status, AbandonedResult().status);
  }
  EXPECT_EQ(CompleteAndWait(*store, kKey, token, Response("late")).code(),
            absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<BeginResult> other = BeginAndWait(*store, kKey, "h2", Far());
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->kind, Kind::kMismatch);
}

// Down for longer than the retention: the record settled at the next open
// must still answer UNKNOWN for a whole retention period from then, never be
// swept with the claim it replaces (the caller's retry would pay again).
TEST_F(SqliteIdempotencyStoreTest, AbandonedAtReopenIsKeptARetentionFromThen) {
  SqliteIdempotencyStore::Options options = Options();
  {
    std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(options);
    ASSERT_NE(store, nullptr);
    absl::StatusOr<BeginResult> a = BeginAndWait(*store, kKey, "h", Far());
    ASSERT_TRUE(a.ok() && a->kind == Kind::kClaimed);
  }
  clock_.Advance(std::max(options.retention, options.in_flight_lease) +
                 absl::Hours(1));
  std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->abandoned_at_open(), 1);
  clock_.Advance(options.retention - absl::Minutes(1));
  absl::StatusOr<BeginResult> again = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_EQ(again->kind, Kind::kCompleted);
  EXPECT_EQ(again->result.status, AbandonedResult().status);
}

// The child process of AClaimSurvivesSigkillOfItsProcess: this test binary
// run again with kChildStateDir set. It claims kKey in that state directory,
// writes 'c' to the file descriptor kChildReadyFd once Begin has reported
// kClaimed, and waits to be killed. (A new process rather than fork(): the
// test process has threads, and ThreadSanitizer refuses threads after a
// multi-threaded fork.)
constexpr char kChildStateDir[] = "SQLITE_STORE_TEST_CHILD_STATE_DIR";
constexpr char kChildReadyFd[] = "SQLITE_STORE_TEST_CHILD_READY_FD";

[[maybe_unused]] const bool kIsChild = [] {
  const char* dir = std::getenv(kChildStateDir);
  const char* fd_text = std::getenv(kChildReadyFd);
  if (dir == nullptr || fd_text == nullptr) return false;
  const int fd = std::atoi(fd_text);
  SqliteIdempotencyStore::Options options;
  options.state_dir = dir;
  auto store = SqliteIdempotencyStore::Open(options);
  if (!store.ok()) _exit(3);
  (*store)->Begin(kKey, "h", absl::InfiniteFuture(),
                  [fd](absl::StatusOr<BeginResult> begun) {
                    const char byte =
                        begun.ok() && begun->kind == Kind::kClaimed ? 'c' : 'x';
                    if (write(fd, &byte, 1) != 1) _exit(4);
                  });
  for (;;) pause();  // Killed here, the call "in flight".
}();

// The claim is on disk before Begin reports it: a process SIGKILLed right
// after its kClaimed callback leaves a record the next process settles as
// abandoned.
TEST_F(SqliteIdempotencyStoreTest, AClaimSurvivesSigkillOfItsProcess) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  std::vector<std::string> env_strings = {
      absl::StrCat(kChildStateDir, "=", dir_),
      absl::StrCat(kChildReadyFd, "=", ready[1])};
  std::vector<char*> env;
  for (std::string& e : env_strings) env.push_back(e.data());
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  env.push_back(nullptr);
  char self[] = "/proc/self/exe";
  char* argv[] = {self, nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addclose(&actions, ready[0]);
  pid_t child = 0;
  ASSERT_EQ(posix_spawn(&child, self, &actions, nullptr, argv, env.data()), 0);
  posix_spawn_file_actions_destroy(&actions);
  close(ready[1]);
  char byte = 0;
  const ssize_t got = read(ready[0], &byte, 1);
  close(ready[0]);
  kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_EQ(got, 1);
  EXPECT_EQ(byte, 'c');
  ASSERT_TRUE(WIFSIGNALED(status));

  SqliteIdempotencyStore::Options options = Options();
  options.clock = nullptr;  // The child used the system clock.
  std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->abandoned_at_open(), 1);
  absl::StatusOr<BeginResult> retry =
      BeginAndWait(*store, kKey, "h", absl::InfiniteFuture());
  ASSERT_TRUE(retry.ok()) << retry.status();
  ASSERT_EQ(retry->kind, Kind::kCompleted);
  EXPECT_EQ(retry->result.status, AbandonedResult().status);
}

TEST_F(SqliteIdempotencyStoreTest, OneStorePerStateDirectory) {
  std::unique_ptr<SqliteIdempotencyStore> first = MustOpen(Options());
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<SqliteIdempotencyStore>> second =
      SqliteIdempotencyStore::Open(Options());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("in use by another gateway"),
            absl::string_view::npos)
      << second.status();
  first.reset();
  EXPECT_NE(MustOpen(Options()), nullptr);
}

TEST_F(SqliteIdempotencyStoreTest, CreatesAMissingStateDirectory) {
  SqliteIdempotencyStore::Options options = Options();
  options.state_dir = absl::StrCat(dir_, "/a/b/state");
  EXPECT_NE(MustOpen(options), nullptr);
  EXPECT_EQ(
      access(absl::StrCat(options.state_dir, "/idempotency.sqlite3").c_str(),
             F_OK),
      0);
}

TEST_F(SqliteIdempotencyStoreTest, RefusesAFileThatIsNotADatabase) {
  std::ofstream(absl::StrCat(dir_, "/idempotency.sqlite3"))
      << std::string(8192, 'x');
  absl::StatusOr<std::unique_ptr<SqliteIdempotencyStore>> store =
      SqliteIdempotencyStore::Open(Options());
  EXPECT_FALSE(store.ok());
}

TEST_F(SqliteIdempotencyStoreTest, RefusesAnEmptyStateDir) {
  SqliteIdempotencyStore::Options options = Options();
  options.state_dir = "";
  EXPECT_EQ(SqliteIdempotencyStore::Open(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteIdempotencyStoreTest, FullOfLiveRecordsFailsClosed) {
  SqliteIdempotencyStore::Options options = Options();
  options.max_keys = 2;
  std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  // Key 1 is claimed and never finishes: its 2 min lease passes, and the next
  // store operation (10 min later) settles it as abandoned, kept 1 h from
  // then. Key 2 completes at that time too: kept 1 h as well.
  absl::StatusOr<BeginResult> a = BeginAndWait(*store, Key(1), "h", Far());
  ASSERT_TRUE(a.ok());
  clock_.Advance(absl::Minutes(10));
  absl::StatusOr<BeginResult> b = BeginAndWait(*store, Key(2), "h", Far());
  ASSERT_TRUE(b.ok());
  ASSERT_TRUE(
      CompleteAndWait(*store, Key(2), b->lease_token, Response("2")).ok());
  EXPECT_EQ(BeginAndWait(*store, Key(3), "h", Far()).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Known keys are still answered while full.
  absl::StatusOr<BeginResult> replay = BeginAndWait(*store, Key(2), "h", Far());
  ASSERT_TRUE(replay.ok()) << replay.status();
  EXPECT_EQ(replay->result.response, "2");
  absl::StatusOr<BeginResult> abandoned =
      BeginAndWait(*store, Key(1), "h", Far());
  ASSERT_TRUE(abandoned.ok()) << abandoned.status();
  EXPECT_EQ(abandoned->result.status, AbandonedResult().status);
  // Nothing is evicted before its retention.
  clock_.Advance(absl::Minutes(59));
  EXPECT_EQ(BeginAndWait(*store, Key(3), "h", Far()).status().code(),
            absl::StatusCode::kResourceExhausted);
  // Both reach their retention: two slots.
  clock_.Advance(absl::Minutes(2));
  absl::StatusOr<BeginResult> c = BeginAndWait(*store, Key(3), "h", Far());
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kind, Kind::kClaimed);
  absl::StatusOr<BeginResult> d = BeginAndWait(*store, Key(4), "h", Far());
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->kind, Kind::kClaimed);
  EXPECT_EQ(BeginAndWait(*store, Key(5), "h", Far()).status().code(),
            absl::StatusCode::kResourceExhausted);
}

// Defect 2 of issue 11, for this store: a thousand waiters on one key, each
// of which releases the key from inside its kClaimed callback, are handed the
// key one after another without any callback running inside another's
// Release (the memory store recursed here and overflowed the stack).
TEST_F(SqliteIdempotencyStoreTest, HandOffNeverRunsAWaiterInsideRelease) {
  constexpr int kWaiters = 1000;
  SqliteIdempotencyStore::Options options = Options();
  options.max_waiters_per_key = kWaiters;
  options.max_waiters = kWaiters;
  std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<BeginResult> first = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(first.ok());

  std::atomic<int> depth{0};
  std::atomic<int> max_depth{0};
  std::atomic<int> claims{0};
  Notification all_done;
  SqliteIdempotencyStore* s = store.get();
  for (int i = 0; i < kWaiters; ++i) {
    s->Begin(kKey, "h", Far(), [&, s](absl::StatusOr<BeginResult> begun) {
      const int now_depth = depth.fetch_add(1) + 1;
      int seen = max_depth.load();
      while (now_depth > seen &&
             !max_depth.compare_exchange_weak(seen, now_depth)) {
      }
      if (begun.ok() && begun->kind == Kind::kClaimed) {
        const int n = claims.fetch_add(1) + 1;
        // The synchronous release of a call that failed before sending.
        s->Release(kKey, begun->lease_token, [&, n](absl::Status released) {
          EXPECT_TRUE(released.ok()) << released;
          if (n == kWaiters) all_done.Notify();
        });
      }
      depth.fetch_sub(1);
    });
  }
  ASSERT_TRUE(ReleaseAndWait(*store, kKey, first->lease_token).ok());
  ASSERT_TRUE(all_done.WaitForNotificationWithTimeout(absl::Seconds(120)));
  EXPECT_EQ(claims.load(), kWaiters);
  EXPECT_EQ(max_depth.load(), 1);
}

TEST_F(SqliteIdempotencyStoreTest, WaitersBeyondTheCapAreToldInProgress) {
  SqliteIdempotencyStore::Options options = Options();
  options.max_waiters_per_key = 2;
  std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(options);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<BeginResult> a = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(a.ok());
  BeginCollector waiters;
  store->Begin(kKey, "h", Far(), waiters.Callback());
  store->Begin(kKey, "h", Far(), waiters.Callback());
  absl::StatusOr<BeginResult> third = BeginAndWait(*store, kKey, "h", Far());
  ASSERT_TRUE(third.ok()) << third.status();
  EXPECT_EQ(third->kind, Kind::kInProgress);
  EXPECT_TRUE(waiters.results().empty());
  ASSERT_TRUE(
      CompleteAndWait(*store, kKey, a->lease_token, Response("r")).ok());
  ASSERT_TRUE(waiters.WaitForCount(2));
  for (const auto& r : waiters.results()) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->kind, Kind::kCompleted);
  }
}

// No caller waits for the disk: callbacks run on the store thread.
TEST_F(SqliteIdempotencyStoreTest, CallbacksRunOnTheStoreThread) {
  std::unique_ptr<SqliteIdempotencyStore> store = MustOpen(Options());
  ASSERT_NE(store, nullptr);
  Notification done;
  std::thread::id callback_thread;
  store->Begin(kKey, "h", Far(), [&](absl::StatusOr<BeginResult>) {
    callback_thread = std::this_thread::get_id();
    done.Notify();
  });
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kCallbackTimeout));
  EXPECT_NE(callback_thread, std::this_thread::get_id());
}

}  // namespace
}  // namespace clink_gateway::idempotency
