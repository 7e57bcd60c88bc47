#include "adapters/events/event_store_factory.h"

#include <stdlib.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "adapters/events/redis_event_store.h"
#include "adapters/events/sqlite_event_store.h"
#include "gtest/gtest.h"

namespace clink_gateway::events {
namespace {

std::string NewStateDir() {
  std::string dir = absl::StrCat(::testing::TempDir(), "/factory-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) return "";
  return dir;
}

TEST(MakeEventStoreTest, StateDirMakesSqlite) {
  EventStoreConfig config;
  config.state_dir = NewStateDir();
  absl::StatusOr<std::unique_ptr<EventStore>> store = MakeEventStore(config);
  ASSERT_TRUE(store.ok()) << store.status();
  auto* sqlite = dynamic_cast<SqliteEventStore*>(store->get());
  ASSERT_NE(sqlite, nullptr);
  EXPECT_EQ(sqlite->path(), config.state_dir + "/events.sqlite");
}

TEST(MakeEventStoreTest, RedisAddressMakesRedisEvenWithAStateDir) {
  EventStoreConfig config;
  config.state_dir = NewStateDir();
  config.redis_address = "unix:/nonexistent/redis.sock";
  absl::StatusOr<std::unique_ptr<EventStore>> store = MakeEventStore(config);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_NE(dynamic_cast<RedisEventStore*>(store->get()), nullptr);
  // Nothing listens there: unavailable, not a crash or a hang.
  StoredEvent event;
  event.merchant = "default";
  event.event_id = "evt_1";
  EXPECT_EQ((*store)->Append(event).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST(MakeEventStoreTest, RefusesShortDedupWindowAndMissingPlace) {
  EventStoreConfig config;
  config.state_dir = NewStateDir();
  config.dedup_window = absl::Hours(71);
  absl::StatusOr<std::unique_ptr<EventStore>> store = MakeEventStore(config);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(store.status().message().find("--event_dedup_window"),
            std::string::npos);
  config = EventStoreConfig();
  EXPECT_EQ(MakeEventStore(config).status().code(),
            absl::StatusCode::kInvalidArgument);
  config.state_dir = NewStateDir();
  config.retention = absl::ZeroDuration();
  EXPECT_EQ(MakeEventStore(config).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace clink_gateway::events
