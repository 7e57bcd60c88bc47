#include "adapters/events/sqlite_event_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <limits>
#include <set>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/memory/memory.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/errors/error_details.h"
#include "common/sqlite/sqlite_util.h"

namespace clink_gateway::events {
namespace internal {
namespace {

using sqlite::Statement;

constexpr char kDatabaseFile[] = "events.sqlite";
constexpr int kSchemaVersion = 1;
constexpr char kTokenKind[] = "sqlite";

// seq: arrival order (AUTOINCREMENT: never reused, even after a prune).
// create_us NULL when Clink's `created` was absent.
constexpr char kSchema[] = R"sql(
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  merchant TEXT NOT NULL,
  event_id TEXT NOT NULL,
  type TEXT NOT NULL,
  create_us INTEGER,
  receive_us INTEGER NOT NULL,
  body BLOB NOT NULL
);
CREATE UNIQUE INDEX events_by_id ON events (merchant, event_id);
CREATE INDEX events_by_merchant ON events (merchant, seq);
CREATE INDEX events_by_receive ON events (receive_us);
CREATE TABLE dedup (
  merchant TEXT NOT NULL,
  event_id TEXT NOT NULL,
  expiry_us INTEGER NOT NULL,
  PRIMARY KEY (merchant, event_id)
) WITHOUT ROWID;
CREATE INDEX dedup_by_expiry ON dedup (expiry_us);
CREATE TABLE subscriptions (
  id INTEGER PRIMARY KEY,
  merchant TEXT NOT NULL,
  name TEXT NOT NULL,
  event_types TEXT NOT NULL,
  start_us INTEGER NOT NULL,
  cursor INTEGER NOT NULL,
  UNIQUE (merchant, name)
);
CREATE TABLE subscription_types (
  subscription INTEGER NOT NULL,
  type TEXT NOT NULL,
  PRIMARY KEY (subscription, type)
) WITHOUT ROWID;
CREATE TABLE leases (
  subscription INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  consumer TEXT NOT NULL,
  lease_expiry_us INTEGER NOT NULL,
  attempts INTEGER NOT NULL,
  acked INTEGER NOT NULL,
  PRIMARY KEY (subscription, seq)
) WITHOUT ROWID;
CREATE INDEX leases_open ON leases (subscription, lease_expiry_us)
  WHERE acked = 0;
CREATE INDEX leases_by_seq ON leases (seq);
PRAGMA user_version = 1;
)sql";

// Columns every event query selects, in this order (ReadEvent reads them).
#define EVENT_COLUMNS \
  "e.seq, e.merchant, e.event_id, e.type, e.create_us, e.receive_us, e.body"

constexpr char kBegin[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";
constexpr char kRollback[] = "ROLLBACK";
constexpr char kFindDedup[] =
    "SELECT expiry_us FROM dedup WHERE merchant = ?1 AND event_id = ?2";
constexpr char kInsertEvent[] =
    "INSERT OR IGNORE INTO events (merchant, event_id, type, create_us, "
    "receive_us, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
constexpr char kUpsertDedup[] =
    "INSERT OR REPLACE INTO dedup (merchant, event_id, expiry_us) "
    "VALUES (?1, ?2, ?3)";
constexpr char kFindSubscription[] =
    "SELECT id, event_types, start_us, cursor FROM subscriptions "
    "WHERE merchant = ?1 AND name = ?2";
constexpr char kCountSubscriptions[] =
    "SELECT COUNT(*) FROM subscriptions WHERE merchant = ?1";
constexpr char kLastSeqBefore[] =
    "SELECT IFNULL(MAX(seq), 0) FROM events e "
    "WHERE merchant = ?1 AND receive_us < ?2";
constexpr char kInsertSubscription[] =
    "INSERT INTO subscriptions (merchant, name, event_types, start_us, cursor) "
    "VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr char kInsertSubscriptionType[] =
    "INSERT OR IGNORE INTO subscription_types (subscription, type) "
    "VALUES (?1, ?2)";
constexpr char kExpiredLeases[] =
    "SELECT " EVENT_COLUMNS ", l.attempts FROM leases l "
    "JOIN events e ON e.seq = l.seq "
    "WHERE l.subscription = ?1 AND l.acked = 0 AND l.lease_expiry_us <= ?2 "
    "ORDER BY l.seq LIMIT ?3";
constexpr char kRelease[] =
    "UPDATE leases SET consumer = ?3, lease_expiry_us = ?4, "
    "attempts = attempts + 1 WHERE subscription = ?1 AND seq = ?2";
// ?4: whether the subscription filters types.
constexpr char kNewEvents[] =
    "SELECT " EVENT_COLUMNS " FROM events e "
    "WHERE e.merchant = ?1 AND e.seq > ?2 AND e.receive_us >= ?3 AND "
    "(?4 = 0 OR e.type IN "
    "(SELECT type FROM subscription_types WHERE subscription = ?5)) "
    "ORDER BY e.seq LIMIT ?6";
constexpr char kInsertLease[] =
    "INSERT OR REPLACE INTO leases (subscription, seq, consumer, "
    "lease_expiry_us, attempts, acked) VALUES (?1, ?2, ?3, ?4, 1, 0)";
constexpr char kLastSeq[] =
    "SELECT IFNULL(MAX(seq), 0) FROM events WHERE merchant = ?1";
constexpr char kSetCursor[] = "UPDATE subscriptions SET cursor = ?2 WHERE id = ?1";
constexpr char kAcknowledge[] =
    "UPDATE leases SET acked = 1 WHERE subscription = ?1 AND acked = 0 AND "
    "seq = (SELECT seq FROM events WHERE merchant = ?2 AND event_id = ?3)";
constexpr char kOldestLeased[] =
    "SELECT MIN(e.receive_us) FROM leases l JOIN events e ON e.seq = l.seq "
    "WHERE l.subscription = ?1 AND l.acked = 0";
constexpr char kGetEvent[] =
    "SELECT " EVENT_COLUMNS
    " FROM events e WHERE e.merchant = ?1 AND e.event_id = ?2";
constexpr char kPruneLeases[] =
    "DELETE FROM leases WHERE seq IN "
    "(SELECT seq FROM events WHERE receive_us < ?1)";
constexpr char kPruneEvents[] = "DELETE FROM events WHERE receive_us < ?1";
constexpr char kPruneDedup[] = "DELETE FROM dedup WHERE expiry_us <= ?1";

int64_t Micros(absl::Time t) { return ToUnixMicrosClamped(t); }

StoredEvent ReadEvent(const Statement& row) {
  StoredEvent event;
  event.merchant = row.ColumnBytes(1);
  event.event_id = row.ColumnBytes(2);
  event.type = row.ColumnBytes(3);
  event.create_time = row.ColumnIsNull(4)
                          ? absl::InfinitePast()
                          : absl::FromUnixMicros(row.ColumnInt(4));
  event.receive_time = absl::FromUnixMicros(row.ColumnInt(5));
  event.body = row.ColumnBytes(6);
  return event;
}

}  // namespace

// The connection and its prepared statements. Not thread-safe: the store
// holds its mutex around every use.
class SqliteEventDb {
 public:
  SqliteEventDb(sqlite3* db, std::string path)
      : db_(db), path_(std::move(path)) {}
  ~SqliteEventDb() {
    statements_.clear();  // Finalized before the connection closes.
    sqlite3_close(db_);
  }

  sqlite3* db() const { return db_; }

  // The prepared statement for `sql` (one of the constants above: keyed by
  // address), prepared on first use; nullptr when it does not compile.
  Statement* Get(const char* sql) {
    std::unique_ptr<Statement>& slot = statements_[sql];
    if (slot == nullptr) {
      auto statement = std::make_unique<Statement>();
      if (!statement->Prepare(db_, sql)) return nullptr;
      slot = std::move(statement);
    }
    return slot.get();
  }

  absl::Status Error(absl::string_view what) const {
    return absl::UnavailableError(absl::StrCat(
        "event store ", path_, ": ", what, ": ", sqlite3_errmsg(db_)));
  }

  // Runs `sql` to completion (no rows); the number of rows it changed.
  // `bind` binds its parameters.
  template <typename Bind>
  absl::StatusOr<int64_t> Run(const char* sql, absl::string_view what,
                              Bind bind) {
    Statement* statement = Get(sql);
    if (statement == nullptr) return Error(what);
    bind(*statement);
    const int rc = statement->Step();
    statement->Done();
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) return Error(what);
    return sqlite3_changes64(db_);
  }

  // Runs the query `sql`, calling `row(statement)` for each row (until it
  // returns false).
  template <typename Bind, typename Row>
  absl::Status Query(const char* sql, absl::string_view what, Bind bind,
                     Row row) {
    Statement* statement = Get(sql);
    if (statement == nullptr) return Error(what);
    return QueryWith(*statement, what, bind, row);
  }

  template <typename Bind, typename Row>
  absl::Status QueryWith(Statement& statement, absl::string_view what,
                         Bind bind, Row row) {
    bind(statement);
    int rc;
    while ((rc = statement.Step()) == SQLITE_ROW) {
      if (!row(statement)) {
        rc = SQLITE_DONE;
        break;
      }
    }
    statement.Done();
    if (rc != SQLITE_DONE) return Error(what);
    return absl::OkStatus();
  }

  // Runs `body` in a write transaction: committed when it returns OK, rolled
  // back otherwise (and when the commit fails).
  template <typename Body>
  absl::Status Transaction(Body body) {
    if (absl::StatusOr<int64_t> begun = Run(kBegin, "begin", [](Statement&) {});
        !begun.ok()) {
      return begun.status();
    }
    absl::Status status = body();
    if (status.ok()) {
      absl::StatusOr<int64_t> committed =
          Run(kCommit, "commit", [](Statement&) {});
      status = committed.status();
    }
    if (!status.ok()) {
      Run(kRollback, "rollback", [](Statement&) {}).status().IgnoreError();
    }
    return status;
  }

  struct Subscription {
    int64_t id = 0;
    std::string canonical_types;
    bool filters_types = false;
    int64_t start_us = 0;
    int64_t cursor = 0;
  };

  // kNotFound when (merchant, name) is not a subscription.
  absl::StatusOr<Subscription> FindSubscription(absl::string_view merchant,
                                                absl::string_view name) {
    std::optional<Subscription> found;
    absl::Status status = Query(
        kFindSubscription, "find subscription",
        [&](Statement& s) {
          s.BindText(1, merchant);
          s.BindText(2, name);
        },
        [&](Statement& s) {
          found.emplace();
          found->id = s.ColumnInt(0);
          found->canonical_types = s.ColumnBytes(1);
          found->filters_types = !found->canonical_types.empty();
          found->start_us = s.ColumnInt(2);
          found->cursor = s.ColumnInt(3);
          return false;
        });
    if (!status.ok()) return status;
    if (!found.has_value()) {
      return internal::SubscriptionNotFound(merchant, name);
    }
    return *found;
  }

  // Binds kNewEvents for `sub` after `cursor`, at most `limit` rows.
  static auto BindNewEvents(absl::string_view merchant, const Subscription& sub,
                            int64_t cursor, int64_t limit) {
    return [merchant, &sub, cursor, limit](Statement& s) {
      s.BindText(1, merchant);
      s.BindInt(2, cursor);
      s.BindInt(3, sub.start_us);
      s.BindInt(4, sub.filters_types ? 1 : 0);
      s.BindInt(5, sub.id);
      s.BindInt(6, limit);
    };
  }

 private:
  sqlite3* const db_;
  const std::string path_;
  absl::flat_hash_map<const char*, std::unique_ptr<Statement>> statements_;
};

}  // namespace

namespace {

using internal::ReadEvent;
using internal::SqliteEventDb;
using sqlite::Statement;

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteEventStore>> SqliteEventStore::Open(
    Options options) {
  if (options.state_dir.empty()) {
    return absl::InvalidArgumentError("the event store needs a state directory");
  }
  if (options.retention <= absl::ZeroDuration() ||
      options.dedup_window <= absl::ZeroDuration() ||
      options.prune_interval <= absl::ZeroDuration() ||
      options.max_subscriptions_per_merchant == 0) {
    return absl::InvalidArgumentError(
        "event store: retention, dedup_window, prune_interval and "
        "max_subscriptions_per_merchant must be positive");
  }
  if (absl::Status made = sqlite::MakeDirs(options.state_dir); !made.ok()) {
    return absl::Status(made.code(),
                        absl::StrCat("state directory: ", made.message()));
  }
  std::string path = absl::StrCat(options.state_dir, "/", internal::kDatabaseFile);
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &raw,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::UnavailableError(absl::StrCat(
        "cannot open ", path, ": ",
        raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc)));
    sqlite3_close(raw);
    return status;
  }
  auto db = std::make_unique<SqliteEventDb>(raw, path);
  // Another process with the file open may hold the write lock briefly.
  sqlite3_busy_timeout(raw, 5000);
  if (absl::Status s = sqlite::EnableDurableWal(raw, path); !s.ok()) return s;
  int version = 0;
  {
    Statement user_version;
    if (!user_version.Prepare(raw, "PRAGMA user_version") ||
        user_version.Step() != SQLITE_ROW) {
      return absl::DataLossError(absl::StrCat(
          path, " is not a readable SQLite database: ", sqlite3_errmsg(raw)));
    }
    version = static_cast<int>(user_version.ColumnInt(0));
    user_version.Done();
  }
  if (version == 0) {
    absl::Status created = db->Transaction([&] {
      absl::Status s = sqlite::Exec(raw, internal::kSchema);
      return s.ok() ? s
                    : absl::UnavailableError(
                          absl::StrCat(path, ": create schema: ", s.message()));
    });
    if (!created.ok()) return created;
  } else if (version != internal::kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " has schema version ", version, "; this gateway reads version ",
        internal::kSchemaVersion, " (written by a newer gateway?)"));
  }
  sqlite::SyncDirectory(options.state_dir);
  return absl::WrapUnique(
      new SqliteEventStore(std::move(options), std::move(path), std::move(db)));
}

SqliteEventStore::SqliteEventStore(Options options, std::string path,
                                   std::unique_ptr<SqliteEventDb> db)
    : options_(std::move(options)),
      path_(std::move(path)),
      clock_(options_.clock != nullptr ? *options_.clock : SystemClock()),
      db_(std::move(db)) {}

SqliteEventStore::~SqliteEventStore() = default;

absl::StatusOr<AppendResult> SqliteEventStore::Append(const StoredEvent& event) {
  if (absl::Status valid = internal::ValidateEvent(event); !valid.ok()) {
    return valid;
  }
  StoredEvent stored = event;
  bool duplicate = false;
  {
    MutexLock lock(&mu_);
    SqliteEventDb& db = *db_;
    const absl::Time now = clock_.Now();
    if (stored.receive_time == absl::InfinitePast()) stored.receive_time = now;
    if (now >= next_prune_) {
      absl::StatusOr<int64_t> pruned = PruneLocked(now - options_.retention, now);
      if (!pruned.ok()) return pruned.status();
      next_prune_ = now + options_.prune_interval;
    }
    const int64_t now_us = internal::Micros(now);
    const int64_t dedup_expiry_us = internal::Micros(
        now + std::max(options_.dedup_window, options_.retention));
    absl::Status status = db.Transaction([&]() -> absl::Status {
      bool seen = false;
      absl::Status found = db.Query(
          internal::kFindDedup, "find duplicate",
          [&](Statement& s) {
            s.BindText(1, stored.merchant);
            s.BindText(2, stored.event_id);
          },
          [&](Statement& s) {
            seen = s.ColumnInt(0) > now_us;
            return false;
          });
      if (!found.ok()) return found;
      if (seen) {
        duplicate = true;
        return absl::OkStatus();
      }
      absl::StatusOr<int64_t> inserted =
          db.Run(internal::kInsertEvent, "store event", [&](Statement& s) {
            s.BindText(1, stored.merchant);
            s.BindText(2, stored.event_id);
            s.BindText(3, stored.type);
            if (stored.create_time != absl::InfinitePast()) {
              s.BindInt(4, internal::Micros(stored.create_time));
            }
            s.BindInt(5, internal::Micros(stored.receive_time));
            s.BindBlob(6, stored.body);
          });
      if (!inserted.ok()) return inserted.status();
      if (*inserted == 0) {
        // Still stored (its dedup entry lapsed first): a duplicate all the
        // same.
        duplicate = true;
        return absl::OkStatus();
      }
      return db
          .Run(internal::kUpsertDedup, "store dedup entry",
                [&](Statement& s) {
                  s.BindText(1, stored.merchant);
                  s.BindText(2, stored.event_id);
                  s.BindInt(3, dedup_expiry_us);
                })
          .status();
    });
    if (!status.ok()) return status;
  }
  if (duplicate) return AppendResult::kDuplicate;
  if (options_.listener != nullptr) options_.listener->OnEventStored(stored);
  return AppendResult::kStored;
}

absl::Status SqliteEventStore::EnsureSubscription(const SubscriptionSpec& spec) {
  if (absl::Status valid = internal::ValidateSubscription(spec); !valid.ok()) {
    return valid;
  }
  const std::string canonical = internal::CanonicalTypes(spec.event_types);
  MutexLock lock(&mu_);
  SqliteEventDb& db = *db_;
  return db.Transaction([&]() -> absl::Status {
    absl::StatusOr<SqliteEventDb::Subscription> existing =
        db.FindSubscription(spec.merchant, spec.name);
    if (existing.ok()) {
      if (existing->canonical_types != canonical) {
        return absl::FailedPreconditionError(absl::StrCat(
            "subscription \"", spec.name,
            "\" exists with a different set of event types"));
      }
      return absl::OkStatus();
    }
    if (!absl::IsNotFound(existing.status())) return existing.status();
    int64_t count = 0;
    absl::Status counted = db.Query(
        internal::kCountSubscriptions, "count subscriptions",
        [&](Statement& s) { s.BindText(1, spec.merchant); },
        [&](Statement& s) {
          count = s.ColumnInt(0);
          return false;
        });
    if (!counted.ok()) return counted;
    if (count >= static_cast<int64_t>(options_.max_subscriptions_per_merchant)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "merchant \"", spec.merchant, "\" has ",
          options_.max_subscriptions_per_merchant,
          " subscriptions, the most this store keeps"));
    }
    // The cursor starts after the last event received before start_time.
    int64_t cursor = 0;
    absl::Status last = db.Query(
        internal::kLastSeqBefore, "find start",
        [&](Statement& s) {
          s.BindText(1, spec.merchant);
          s.BindInt(2, internal::Micros(spec.start_time));
        },
        [&](Statement& s) {
          cursor = s.ColumnInt(0);
          return false;
        });
    if (!last.ok()) return last;
    absl::StatusOr<int64_t> inserted = db.Run(
        internal::kInsertSubscription, "create subscription", [&](Statement& s) {
          s.BindText(1, spec.merchant);
          s.BindText(2, spec.name);
          s.BindText(3, canonical);
          s.BindInt(4, internal::Micros(spec.start_time));
          s.BindInt(5, cursor);
        });
    if (!inserted.ok()) return inserted.status();
    const int64_t id = sqlite3_last_insert_rowid(db.db());
    for (const std::string& type : spec.event_types) {
      absl::StatusOr<int64_t> added = db.Run(
          internal::kInsertSubscriptionType, "create subscription",
          [&](Statement& s) {
            s.BindInt(1, id);
            s.BindText(2, type);
          });
      if (!added.ok()) return added.status();
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<Delivery>> SqliteEventStore::Claim(
    absl::string_view merchant, absl::string_view subscription,
    absl::string_view consumer, int max_events, absl::Duration ack_deadline) {
  if (absl::Status valid = internal::ValidateClaim(
          merchant, subscription, consumer, max_events, ack_deadline);
      !valid.ok()) {
    return valid;
  }
  std::vector<Delivery> deliveries;
  MutexLock lock(&mu_);
  SqliteEventDb& db = *db_;
  const absl::Time now = clock_.Now();
  const int64_t now_us = internal::Micros(now);
  const int64_t expiry_us = internal::Micros(now + ack_deadline);
  absl::Status status = db.Transaction([&]() -> absl::Status {
    deliveries.clear();
    absl::StatusOr<SqliteEventDb::Subscription> sub =
        db.FindSubscription(merchant, subscription);
    if (!sub.ok()) return sub.status();
    // First the leases that expired unacknowledged.
    std::vector<int64_t> seqs;
    absl::Status expired = db.Query(
        internal::kExpiredLeases, "find expired leases",
        [&](Statement& s) {
          s.BindInt(1, sub->id);
          s.BindInt(2, now_us);
          s.BindInt(3, max_events);
        },
        [&](Statement& s) {
          seqs.push_back(s.ColumnInt(0));
          deliveries.push_back(
              {ReadEvent(s), static_cast<int32_t>(s.ColumnInt(7)) + 1});
          return true;
        });
    if (!expired.ok()) return expired;
    for (int64_t seq : seqs) {
      absl::StatusOr<int64_t> leased =
          db.Run(internal::kRelease, "lease", [&](Statement& s) {
            s.BindInt(1, sub->id);
            s.BindInt(2, seq);
            s.BindText(3, consumer);
            s.BindInt(4, expiry_us);
          });
      if (!leased.ok()) return leased.status();
    }
    // Then new ones, after the cursor.
    const int64_t want = max_events - static_cast<int64_t>(deliveries.size());
    if (want <= 0) return absl::OkStatus();
    seqs.clear();
    absl::Status fresh = db.Query(
        internal::kNewEvents, "find new events",
        SqliteEventDb::BindNewEvents(merchant, *sub, sub->cursor, want),
        [&](Statement& s) {
          seqs.push_back(s.ColumnInt(0));
          deliveries.push_back({ReadEvent(s), 1});
          return true;
        });
    if (!fresh.ok()) return fresh;
    for (int64_t seq : seqs) {
      absl::StatusOr<int64_t> leased =
          db.Run(internal::kInsertLease, "lease", [&](Statement& s) {
            s.BindInt(1, sub->id);
            s.BindInt(2, seq);
            s.BindText(3, consumer);
            s.BindInt(4, expiry_us);
          });
      if (!leased.ok()) return leased.status();
    }
    // Every event up to the last one returned has been considered; when fewer
    // than asked for came back, every event stored so far has (those of
    // other types are thereby acknowledged: never delivered).
    int64_t cursor = sub->cursor;
    if (static_cast<int64_t>(seqs.size()) == want) {
      cursor = seqs.back();
    } else {
      absl::Status last = db.Query(
          internal::kLastSeq, "find last event",
          [&](Statement& s) { s.BindText(1, merchant); },
          [&](Statement& s) {
            cursor = std::max(cursor, s.ColumnInt(0));
            return false;
          });
      if (!last.ok()) return last;
    }
    if (cursor == sub->cursor) return absl::OkStatus();
    return db
        .Run(internal::kSetCursor, "advance cursor",
              [&](Statement& s) {
                s.BindInt(1, sub->id);
                s.BindInt(2, cursor);
              })
        .status();
  });
  if (!status.ok()) return status;
  return deliveries;
}

absl::StatusOr<int> SqliteEventStore::Acknowledge(
    absl::string_view merchant, absl::string_view subscription,
    const std::vector<std::string>& event_ids) {
  if (absl::Status valid =
          internal::ValidateAcknowledge(merchant, subscription, event_ids);
      !valid.ok()) {
    return valid;
  }
  int acknowledged = 0;
  MutexLock lock(&mu_);
  SqliteEventDb& db = *db_;
  absl::Status status = db.Transaction([&]() -> absl::Status {
    acknowledged = 0;
    absl::StatusOr<SqliteEventDb::Subscription> sub =
        db.FindSubscription(merchant, subscription);
    if (!sub.ok()) return sub.status();
    for (const std::string& id : event_ids) {
      absl::StatusOr<int64_t> changed =
          db.Run(internal::kAcknowledge, "acknowledge", [&](Statement& s) {
            s.BindInt(1, sub->id);
            s.BindText(2, merchant);
            s.BindText(3, id);
          });
      if (!changed.ok()) return changed.status();
      acknowledged += static_cast<int>(*changed);
    }
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return acknowledged;
}

absl::StatusOr<std::optional<absl::Time>>
SqliteEventStore::OldestUnacknowledged(absl::string_view merchant,
                                       absl::string_view subscription) {
  if (absl::Status valid =
          internal::ValidateSubscriptionRef(merchant, subscription);
      !valid.ok()) {
    return valid;
  }
  MutexLock lock(&mu_);
  SqliteEventDb& db = *db_;
  absl::StatusOr<SqliteEventDb::Subscription> sub =
      db.FindSubscription(merchant, subscription);
  if (!sub.ok()) return sub.status();
  std::optional<int64_t> oldest_us;
  auto take = [&oldest_us](Statement& s) {
    if (!s.ColumnIsNull(0)) {
      const int64_t us = s.ColumnInt(0);
      oldest_us = oldest_us.has_value() ? std::min(*oldest_us, us) : us;
    }
    return false;
  };
  absl::Status leased = db.Query(
      internal::kOldestLeased, "find oldest lease",
      [&](Statement& s) { s.BindInt(1, sub->id); }, take);
  if (!leased.ok()) return leased;
  // The first event not yet handed out (column 5 of kNewEvents: receive_us).
  absl::Status fresh = db.Query(
      internal::kNewEvents, "find oldest new event",
      SqliteEventDb::BindNewEvents(merchant, *sub, sub->cursor, 1),
      [&](Statement& s) {
        const int64_t us = s.ColumnInt(5);
        oldest_us = oldest_us.has_value() ? std::min(*oldest_us, us) : us;
        return false;
      });
  if (!fresh.ok()) return fresh;
  if (!oldest_us.has_value()) return std::optional<absl::Time>();
  return std::optional<absl::Time>(absl::FromUnixMicros(*oldest_us));
}

absl::StatusOr<std::optional<StoredEvent>> SqliteEventStore::Get(
    absl::string_view merchant, absl::string_view event_id) {
  if (absl::Status valid = internal::ValidateEventRef(merchant, event_id);
      !valid.ok()) {
    return valid;
  }
  std::optional<StoredEvent> event;
  MutexLock lock(&mu_);
  SqliteEventDb& db = *db_;
  absl::Status status = db.Query(
      internal::kGetEvent, "get event",
      [&](Statement& s) {
        s.BindText(1, merchant);
        s.BindText(2, event_id);
      },
      [&](Statement& s) {
        event = ReadEvent(s);
        return false;
      });
  if (!status.ok()) return status;
  return event;
}

absl::StatusOr<ListPage> SqliteEventStore::List(const ListQuery& query) {
  if (absl::Status valid = internal::ValidateListQuery(query); !valid.ok()) {
    return valid;
  }
  int64_t before = std::numeric_limits<int64_t>::max();
  if (!query.page_token.empty()) {
    absl::StatusOr<std::string> position =
        internal::DecodePageToken(internal::kTokenKind, query.page_token);
    if (!position.ok()) return position.status();
    if (!absl::SimpleAtoi(*position, &before)) {
      return errors::InvalidArgumentWithViolations(
          {{"page_token", "not a page token of this list"}});
    }
  }
  const std::set<std::string> types(query.event_types.begin(),
                                    query.event_types.end());
  std::string sql = absl::StrCat(
      "SELECT " EVENT_COLUMNS
      " FROM events e WHERE e.merchant = ?1 AND e.seq < ?2 AND "
      "e.receive_us >= ?3 AND e.receive_us < ?4");
  if (!types.empty()) {
    std::vector<std::string> params;
    for (size_t i = 0; i < types.size(); ++i) {
      params.push_back(absl::StrCat("?", 6 + i));
    }
    absl::StrAppend(&sql, " AND e.type IN (", absl::StrJoin(params, ", "), ")");
  }
  absl::StrAppend(&sql, " ORDER BY e.seq DESC LIMIT ?5");
  ListPage page;
  int64_t last_seq = 0;
  bool more = false;
  MutexLock lock(&mu_);
  SqliteEventDb& db = *db_;
  Statement statement;
  if (!statement.Prepare(db.db(), sql.c_str())) return db.Error("list");
  absl::Status status = db.QueryWith(
      statement, "list",
      [&](Statement& s) {
        s.BindText(1, query.merchant);
        s.BindInt(2, before);
        s.BindInt(3, internal::Micros(query.start_time));
        s.BindInt(4, internal::Micros(query.end_time));
        s.BindInt(5, query.page_size + 1);
        int i = 6;
        for (const std::string& type : types) s.BindText(i++, type);
      },
      [&](Statement& s) {
        if (static_cast<int>(page.events.size()) == query.page_size) {
          more = true;
          return false;
        }
        last_seq = s.ColumnInt(0);
        page.events.push_back(ReadEvent(s));
        return true;
      });
  if (!status.ok()) return status;
  if (more) {
    page.next_page_token =
        internal::EncodePageToken(internal::kTokenKind, absl::StrCat(last_seq));
  }
  return page;
}

absl::StatusOr<int64_t> SqliteEventStore::Prune(absl::Time cutoff) {
  MutexLock lock(&mu_);
  return PruneLocked(cutoff, clock_.Now());
}

absl::StatusOr<int64_t> SqliteEventStore::PruneLocked(absl::Time cutoff,
                                                      absl::Time now) {
  SqliteEventDb& db = *db_;
  int64_t dropped = 0;
  const int64_t cutoff_us = internal::Micros(cutoff);
  absl::Status status = db.Transaction([&]() -> absl::Status {
    auto bind_cutoff = [cutoff_us](Statement& s) { s.BindInt(1, cutoff_us); };
    absl::StatusOr<int64_t> leases =
        db.Run(internal::kPruneLeases, "prune deliveries", bind_cutoff);
    if (!leases.ok()) return leases.status();
    absl::StatusOr<int64_t> events =
        db.Run(internal::kPruneEvents, "prune events", bind_cutoff);
    if (!events.ok()) return events.status();
    dropped = *events;
    return db
        .Run(internal::kPruneDedup, "prune dedup entries",
              [now](Statement& s) { s.BindInt(1, internal::Micros(now)); })
        .status();
  });
  if (!status.ok()) return status;
  return dropped;
}

}  // namespace clink_gateway::events
