#include "adapters/events/event_store_factory.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "adapters/events/redis_event_store.h"
#include "adapters/events/sqlite_event_store.h"

namespace clink_gateway::events {
namespace {

// `options` with what both stores take from `config`.
template <typename Options>
Options WithCommon(const EventStoreConfig& config, Options options) {
  options.retention = config.retention;
  options.dedup_window = config.dedup_window;
  options.listener = config.listener;
  options.clock = config.clock;
  return options;
}

template <typename Store>
absl::StatusOr<std::unique_ptr<EventStore>> AsEventStore(
    absl::StatusOr<std::unique_ptr<Store>> store) {
  if (!store.ok()) return store.status();
  return std::unique_ptr<EventStore>(*std::move(store));
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventStore>> MakeEventStore(
    const EventStoreConfig& config) {
  if (config.dedup_window < kMinDedupWindow) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--event_dedup_window must be at least ",
        absl::FormatDuration(kMinDedupWindow),
        " (Clink retries a webhook for about a day); got ",
        absl::FormatDuration(config.dedup_window)));
  }
  if (config.retention <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--event_retention must be positive");
  }
  if (!config.redis_address.empty()) {
    RedisEventStore::Options options;
    options.address = config.redis_address;
    options.password_file = config.redis_password_file;
    return AsEventStore(RedisEventStore::Create(WithCommon(config, options)));
  }
  if (config.state_dir.empty()) {
    return absl::InvalidArgumentError(
        "the event store needs --event_redis or --state_dir");
  }
  SqliteEventStore::Options options;
  options.state_dir = config.state_dir;
  return AsEventStore(SqliteEventStore::Open(WithCommon(config, options)));
}

}  // namespace clink_gateway::events
