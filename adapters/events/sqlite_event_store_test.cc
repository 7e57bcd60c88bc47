#include "adapters/events/sqlite_event_store.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "adapters/events/event_store_conformance.h"
#include "common/sync.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace clink_gateway::events {
namespace {

// A new empty directory under the test's temp dir.
std::string NewStateDir() {
  std::string dir = absl::StrCat(::testing::TempDir(), "/events-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) return "";
  return dir;
}

// Every store of one environment opens the same file; time is a FakeClock.
class SqliteEnv final : public EventStoreTestEnv {
 public:
  static absl::StatusOr<std::unique_ptr<EventStoreTestEnv>> Make() {
    return std::unique_ptr<EventStoreTestEnv>(new SqliteEnv());
  }

  absl::StatusOr<std::unique_ptr<EventStore>> OpenStore(
      StoreOptions options) override {
    SqliteEventStore::Options sqlite;
    sqlite.state_dir = dir_;
    sqlite.clock = &clock_;
    sqlite.max_subscriptions_per_merchant =
        options.max_subscriptions_per_merchant;
    absl::StatusOr<std::unique_ptr<SqliteEventStore>> store =
        SqliteEventStore::Open(sqlite);
    if (!store.ok()) return store.status();
    return std::unique_ptr<EventStore>(*std::move(store));
  }
  absl::Time Now() override { return clock_.Now(); }
  void Advance(absl::Duration delta) override { clock_.Advance(delta); }
  absl::Duration ShortAckDeadline() const override { return absl::Seconds(30); }

 private:
  const std::string dir_ = NewStateDir();
  FakeClock clock_;
};

INSTANTIATE_TEST_SUITE_P(
    Sqlite, EventStoreConformanceTest,
    ::testing::Values(EventConformanceParam{"Sqlite", &SqliteEnv::Make}),
    [](const ::testing::TestParamInfo<EventConformanceParam>& info) {
      return info.param.name;
    });

class RecordingListener final : public EventListener {
 public:
  void OnEventStored(const StoredEvent& event) override {
    MutexLock lock(&mu_);
    ids_.push_back(event.event_id);
  }
  std::vector<std::string> ids() {
    MutexLock lock(&mu_);
    return ids_;
  }

 private:
  Mutex mu_;
  std::vector<std::string> ids_ ABSL_GUARDED_BY(mu_);
};

class SqliteEventStoreTest : public ::testing::Test {
 protected:
  SqliteEventStore::Options Options() {
    SqliteEventStore::Options options;
    options.state_dir = dir_;
    options.clock = &clock_;
    return options;
  }

  const std::string dir_ = NewStateDir();
  FakeClock clock_;
};

StoredEvent Event(absl::string_view id, absl::Time received) {
  StoredEvent event;
  event.merchant = "default";
  event.event_id = std::string(id);
  event.type = "order.succeeded";
  event.receive_time = received;
  event.body = "{}";
  return event;
}

TEST_F(SqliteEventStoreTest, ListenerHearsOfStoredEventsOnly) {
  RecordingListener listener;
  SqliteEventStore::Options options = Options();
  options.listener = &listener;
  absl::StatusOr<std::unique_ptr<SqliteEventStore>> store =
      SqliteEventStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Append(Event("a", clock_.Now())).ok());
  ASSERT_TRUE((*store)->Append(Event("a", clock_.Now())).ok());
  ASSERT_TRUE((*store)->Append(Event("b", clock_.Now())).ok());
  EXPECT_EQ(listener.ids(), (std::vector<std::string>{"a", "b"}));
}

TEST_F(SqliteEventStoreTest, AppendPrunesPastRetentionButRemembersIds) {
  SqliteEventStore::Options options = Options();
  options.retention = absl::Hours(1);
  options.dedup_window = absl::Hours(72);
  absl::StatusOr<std::unique_ptr<SqliteEventStore>> store =
      SqliteEventStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->Append(Event("old", clock_.Now())).ok());
  clock_.Advance(absl::Hours(2));
  ASSERT_TRUE((*store)->Append(Event("new", clock_.Now())).ok());
  EXPECT_FALSE((*store)->Get("default", "old").value().has_value());
  EXPECT_TRUE((*store)->Get("default", "new").value().has_value());
  EXPECT_EQ((*store)->Append(Event("old", clock_.Now())).value(),
            AppendResult::kDuplicate);
  // Past the dedup window the id is new again.
  clock_.Advance(absl::Hours(73));
  EXPECT_EQ((*store)->Append(Event("old", clock_.Now())).value(),
            AppendResult::kStored);
}

TEST_F(SqliteEventStoreTest, RefusesBadOptionsAndNewerSchema) {
  SqliteEventStore::Options options = Options();
  options.state_dir.clear();
  EXPECT_EQ(SqliteEventStore::Open(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options();
  options.retention = absl::ZeroDuration();
  EXPECT_EQ(SqliteEventStore::Open(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  {
    absl::StatusOr<std::unique_ptr<SqliteEventStore>> store =
        SqliteEventStore::Open(Options());
    ASSERT_TRUE(store.ok()) << store.status();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open((*store)->path().c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr,
                           nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  EXPECT_EQ(SqliteEventStore::Open(Options()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(SqliteEventStoreTest, UnwritableDirectoryIsReported) {
  SqliteEventStore::Options options = Options();
  options.state_dir = "/proc/no-such-dir/events";
  EXPECT_FALSE(SqliteEventStore::Open(options).ok());
}

}  // namespace
}  // namespace clink_gateway::events
