#include "adapters/idempotency/sqlite_idempotency_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "common/sqlite/sqlite_util.h"

namespace clink_gateway::idempotency {
namespace internal {
namespace {

using Options = SqliteIdempotencyStore::Options;

// The longest the store thread sleeps while it has something to time, so a
// clock that jumps (or is faked) is re-read at least this often.
constexpr absl::Duration kMaxTimerSleep = absl::Milliseconds(200);
// How often a busy store deletes expired records (a full store also does so
// before it refuses a new key).
constexpr absl::Duration kSweepInterval = absl::Seconds(1);
constexpr char kDatabaseFile[] = "idempotency.sqlite3";
constexpr char kLockFile[] = "LOCK";
constexpr int kSchemaVersion = 1;

// in_flight = 1: lease_token and lease_expiry_us are set, result is NULL.
// in_flight = 0: result is a SerializeStoredResult(), the lease columns NULL.
constexpr char kSchema[] = R"sql(
CREATE TABLE records (
  digest TEXT PRIMARY KEY NOT NULL,
  request_hash BLOB NOT NULL,
  in_flight INTEGER NOT NULL,
  lease_token TEXT,
  lease_expiry_us INTEGER,
  expiry_us INTEGER NOT NULL,
  result BLOB
);
CREATE INDEX records_by_expiry ON records (expiry_us);
CREATE INDEX records_in_flight ON records (lease_expiry_us) WHERE in_flight = 1;
PRAGMA user_version = 1;
)sql";

int64_t Micros(absl::Time t) { return absl::ToUnixMicros(t); }

using sqlite::ErrnoStatus;
using sqlite::MakeDirs;
using sqlite::Statement;

}  // namespace

// Owns the database, the lock and the store thread; every member below the
// queue is touched by the store thread only (and by Open() before it starts).
class SqliteWorker {
 public:
  struct Op {
    enum class Type { kBegin, kComplete, kRelease, kSettleUnknown };
    Type type = Type::kBegin;
    std::string digest;
    std::string request_hash;  // kBegin, kSettleUnknown
    absl::Time wait_deadline;  // kBegin
    std::string lease_token;   // kComplete, kRelease
    StoredResult result;       // kComplete
    // kComplete, kSettleUnknown: SerializeStoredResult(result)
    std::string serialized;
    std::string expected;  // kSettleUnknown: the result bytes to replace
    IdempotencyStore::BeginCallback begin_done;  // kBegin
    // kComplete, kRelease, kSettleUnknown
    IdempotencyStore::DoneCallback done;
  };

  static absl::StatusOr<std::unique_ptr<SqliteWorker>> Open(
      const Options& options, int64_t* abandoned);
  ~SqliteWorker();

  // Queues `op` for the store thread, or answers it at once (kUnavailable)
  // when the queue is full.
  void Enqueue(Op op);
  void AbortWaits();

 private:
  // A callback and its answer, run once the batch is committed.
  struct Ready {
    IdempotencyStore::BeginCallback begin_done;
    absl::StatusOr<BeginResult> begin_result;
    IdempotencyStore::DoneCallback done;
    absl::Status status;

    static Ready BeginReady(IdempotencyStore::BeginCallback done,
                            absl::StatusOr<BeginResult> result) {
      Ready r;
      r.begin_done = std::move(done);
      r.begin_result = std::move(result);
      return r;
    }
    static Ready DoneReady(IdempotencyStore::DoneCallback done,
                           absl::Status status) {
      Ready r;
      r.done = std::move(done);
      r.status = std::move(status);
      return r;
    }
    void Fail(const absl::Status& error) {
      if (begin_done) {
        begin_result = error;
      } else {
        status = error;
      }
    }
    void Run() && {
      if (begin_done) {
        std::move(begin_done)(std::move(begin_result));
      } else if (done) {
        std::move(done)(std::move(status));
      }
    }
  };
  struct Waiter {
    absl::Time deadline;
    IdempotencyStore::BeginCallback done;
  };
  // What the database holds for a digest (the result column is read only for
  // a final record).
  struct Row {
    bool in_flight = false;
    std::string request_hash;
    std::string lease_token;
    int64_t expiry_us = 0;
  };

  SqliteWorker(const Options& options, const Clock& clock, int lock_fd,
               sqlite3* db);

  absl::Status Prepare();
  absl::Status SqlError(absl::string_view what) const;
  absl::Status Exec(const char* sql);

  void Loop();
  // The earliest time the store thread must act by itself.
  absl::Time NextDue() const;
  void RunBatch(std::vector<Op>& batch, bool abort_waits, bool stopping);
  absl::Status RunOp(Op& op, absl::Time now, bool stopping,
                     std::vector<Ready>* ready);
  absl::Status RunBegin(Op& op, absl::Time now, bool stopping,
                        std::vector<Ready>* ready);
  // Whether op.lease_token still holds op.digest; if not, answers op.done
  // with LeaseNotHeldError() (queued in `ready`).
  absl::Status CheckHeld(Op& op, bool* held, std::vector<Ready>* ready);
  absl::Status RunComplete(Op& op, absl::Time now, std::vector<Ready>* ready);
  absl::Status RunRelease(Op& op, absl::Time now, std::vector<Ready>* ready);
  absl::Status RunSettleUnknown(Op& op, absl::Time now,
                                std::vector<Ready>* ready);

  // Reads `digest`'s record into `row`; false in `*found` when there is none.
  // `result`, when not null, gets a final record's stored result bytes.
  absl::Status Load(const std::string& digest, Row* row, bool* found,
                    std::string* result);
  absl::Status Delete(const std::string& digest);
  absl::Status SettleDueLeases(absl::Time now, std::vector<Ready>* ready);
  absl::Status SweepExpired(absl::Time now);
  absl::Status Recount();
  absl::Status RefreshNextLease();

  void AddWaiter(const std::string& digest, absl::Time deadline,
                 IdempotencyStore::BeginCallback done);
  // Answers (and forgets) every waiter on `digest` with `result`.
  void AnswerWaiters(const std::string& digest,
                     const absl::StatusOr<BeginResult>& result,
                     std::vector<Ready>* ready);
  void AnswerDueWaiters(absl::Time now, std::vector<Ready>* ready);
  void AnswerAllWaiters(const absl::StatusOr<BeginResult>& result,
                        std::vector<Ready>* ready);

  const std::string path_;
  const absl::Duration retention_;
  const absl::Duration lease_;
  const size_t max_keys_;
  const size_t max_waiters_per_key_;
  const size_t max_waiters_;
  const size_t max_queued_;
  const size_t max_batch_;
  const Clock& clock_;
  const int lock_fd_;
  sqlite3* const db_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Op> queue_;        // Guarded by mu_.
  bool stop_ = false;           // Guarded by mu_.
  bool abort_pending_ = false;  // Guarded by mu_.
  // The earliest timed event (store thread writes, the waiting loop reads
  // under mu_): a waiter's deadline or a lease's expiry.
  absl::Time next_due_ = absl::InfiniteFuture();  // Guarded by mu_.
  // Set by AbortWaits(): Begin answers kInProgress instead of waiting.
  std::atomic<bool> waits_aborted_{false};

  // Store thread only.
  Statement select_;
  Statement insert_;
  Statement delete_;
  Statement complete_;
  Statement reclaim_;
  Statement due_leases_;
  Statement settle_;
  Statement resettle_;
  Statement sweep_;
  Statement next_lease_;
  Statement count_;
  Statement begin_;
  Statement commit_;
  Statement rollback_;
  size_t records_ = 0;
  absl::Time next_lease_expiry_ = absl::InfiniteFuture();
  absl::Time next_sweep_ = absl::InfinitePast();
  bool stopping_ = false;
  uint64_t next_waiter_id_ = 0;
  absl::flat_hash_map<std::string, std::map<uint64_t, Waiter>> waiters_;
  // (deadline, waiter id, digest) of every waiter.
  std::set<std::tuple<absl::Time, uint64_t, std::string>> waiter_deadlines_;
  // Waiters added by the batch being run (forgotten if it rolls back).
  std::vector<std::pair<std::string, uint64_t>> added_waiters_;

  std::thread thread_;
};

SqliteWorker::SqliteWorker(const Options& options, const Clock& clock,
                           int lock_fd, sqlite3* db)
    : path_(absl::StrCat(options.state_dir, "/", kDatabaseFile)),
      retention_(options.retention),
      lease_(options.in_flight_lease),
      max_keys_(options.max_keys),
      max_waiters_per_key_(options.max_waiters_per_key),
      max_waiters_(options.max_waiters),
      max_queued_(options.max_queued_calls),
      max_batch_(options.max_batch),
      clock_(clock),
      lock_fd_(lock_fd),
      db_(db) {}

absl::StatusOr<std::unique_ptr<SqliteWorker>> SqliteWorker::Open(
    const Options& options, int64_t* abandoned) {
  if (options.state_dir.empty()) {
    return absl::InvalidArgumentError(
        "the idempotency store needs a state directory");
  }
  if (options.retention <= absl::ZeroDuration() ||
      options.in_flight_lease <= absl::ZeroDuration() ||
      options.max_keys == 0 || options.max_queued_calls == 0 ||
      options.max_batch == 0) {
    return absl::InvalidArgumentError(
        "idempotency store: retention, lease, max_keys, max_queued_calls and "
        "max_batch must be positive");
  }
  if (absl::Status made = MakeDirs(options.state_dir); !made.ok()) {
    return absl::Status(made.code(),
                        absl::StrCat("state directory: ", made.message()));
  }
  const std::string lock_path = absl::StrCat(options.state_dir, "/", kLockFile);
  const int lock_fd =
      open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    return ErrnoStatus(errno, absl::StrCat("cannot open ", lock_path));
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(lock_fd);
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(absl::StrCat(
          "state directory ", options.state_dir,
          " is in use by another gateway process (", lock_path,
          " is locked): each process needs its own --state_dir, and "
          "replicas that share keys need --idempotency_redis"));
    }
    return ErrnoStatus(err, absl::StrCat("cannot lock ", lock_path));
  }
  const std::string path = absl::StrCat(options.state_dir, "/", kDatabaseFile);
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(
      path.c_str(), &db,
      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
      nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat("cannot open ", path, ": ",
                     db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
    sqlite3_close(db);
    close(lock_fd);
    return status;
  }
  const Clock& clock =
      options.clock != nullptr ? *options.clock : SystemClock();
  std::unique_ptr<SqliteWorker> worker(
      new SqliteWorker(options, clock, lock_fd, db));

  if (absl::Status s = sqlite::EnableDurableWal(db, path); !s.ok()) return s;
  if (absl::Status s = worker->Exec("PRAGMA foreign_keys=OFF"); !s.ok()) {
    return s;
  }
  int version = 0;
  {
    Statement user_version;
    if (!user_version.Prepare(db, "PRAGMA user_version") ||
        user_version.Step() != SQLITE_ROW) {
      // SQLITE_NOTADB and friends: not a database, or a damaged one.
      return absl::DataLossError(absl::StrCat(
          path, " is not a readable SQLite database: ", sqlite3_errmsg(db)));
    }
    version = static_cast<int>(user_version.ColumnInt(0));
    user_version.Done();
  }
  if (version == 0) {
    if (absl::Status s = worker->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    if (absl::Status s = worker->Exec(kSchema); !s.ok()) {
      worker->Exec("ROLLBACK").IgnoreError();
      return s;
    }
    if (absl::Status s = worker->Exec("COMMIT"); !s.ok()) return s;
  } else if (version != kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        path, " has schema version ", version, "; this gateway reads version ",
        kSchemaVersion, " (written by a newer gateway?)"));
  }
  if (absl::Status s = worker->Prepare(); !s.ok()) return s;

  // Every record still in flight belonged to a process that died mid-call
  // (the lock proves no other process is running): settle it as abandoned.
  const std::string abandoned_bytes = SerializeStoredResult(AbandonedResult());
  {
    if (absl::Status s = worker->Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
    const absl::Time now = clock.Now();
    // Kept for the whole retention period from now: a retry after downtime
    // must still find the UNKNOWN, not a free key it would send again.
    Statement settle;
    if (!settle.Prepare(db,
                        "UPDATE records SET in_flight = 0, lease_token = NULL, "
                        "lease_expiry_us = NULL, result = ?1, expiry_us = ?2 "
                        "WHERE in_flight = 1")) {
      return worker->SqlError("prepare");
    }
    settle.BindBlob(1, abandoned_bytes);
    settle.BindInt(2, Micros(now + options.retention));
    const int step = settle.Step();
    settle.Done();
    if (step != SQLITE_DONE) return worker->SqlError("settle abandoned keys");
    *abandoned = sqlite3_changes64(db);
    if (absl::Status s = worker->SweepExpired(now); !s.ok()) return s;
    if (absl::Status s = worker->Exec("COMMIT"); !s.ok()) return s;
  }
  if (absl::Status s = worker->Recount(); !s.ok()) return s;
  if (absl::Status s = worker->RefreshNextLease(); !s.ok()) return s;
  // The database, its WAL and the lock file may have just been created: make
  // their directory entries durable too (SQLite syncs the files' contents).
  sqlite::SyncDirectory(options.state_dir);
  worker->next_due_ = worker->NextDue();
  worker->thread_ = std::thread([w = worker.get()] { w->Loop(); });
  return worker;
}

SqliteWorker::~SqliteWorker() {
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }
  // Statements go before the connection.
  for (Statement* s : {&select_, &insert_, &delete_, &complete_, &reclaim_,
                       &due_leases_, &settle_, &resettle_, &sweep_, &next_lease_, &count_,
                       &begin_, &commit_, &rollback_}) {
    s->Finalize();
  }
  sqlite3_close(db_);
  close(lock_fd_);  // Drops the lock.
}

absl::Status SqliteWorker::SqlError(absl::string_view what) const {
  return absl::UnavailableError(absl::StrCat("idempotency store ", path_, ": ",
                                             what, ": ", sqlite3_errmsg(db_)));
}

absl::Status SqliteWorker::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status status = absl::UnavailableError(absl::StrCat(
        "idempotency store ", path_, ": ", error != nullptr ? error : "error"));
    sqlite3_free(error);
    return status;
  }
  return absl::OkStatus();
}

absl::Status SqliteWorker::Prepare() {
  struct {
    Statement* statement;
    const char* sql;
  } const statements[] = {
      {&select_,
       "SELECT in_flight, request_hash, lease_token, expiry_us, result "
       "FROM records WHERE digest = ?1"},
      {&insert_,
       "INSERT INTO records (digest, request_hash, in_flight, lease_token, "
       "lease_expiry_us, expiry_us) VALUES (?1, ?2, 1, ?3, ?4, ?5)"},
      {&delete_, "DELETE FROM records WHERE digest = ?1"},
      {&complete_,
       "UPDATE records SET in_flight = 0, lease_token = NULL, "
       "lease_expiry_us = NULL, result = ?2, expiry_us = ?3 "
       "WHERE digest = ?1"},
      {&reclaim_,
       "UPDATE records SET lease_token = ?2, lease_expiry_us = ?3, "
       "expiry_us = ?4 WHERE digest = ?1"},
      {&due_leases_,
       "SELECT digest FROM records WHERE in_flight = 1 AND "
       "lease_expiry_us <= ?1"},
      {&settle_,
       "UPDATE records SET in_flight = 0, lease_token = NULL, "
       "lease_expiry_us = NULL, result = ?2, expiry_us = ?3 "
       "WHERE digest = ?1"},
      {&resettle_, "UPDATE records SET result = ?2 WHERE digest = ?1"},
      {&sweep_, "DELETE FROM records WHERE expiry_us <= ?1"},
      {&next_lease_,
       "SELECT MIN(lease_expiry_us) FROM records WHERE in_flight = 1"},
      {&count_, "SELECT COUNT(*) FROM records"},
      {&begin_, "BEGIN IMMEDIATE"},
      {&commit_, "COMMIT"},
      {&rollback_, "ROLLBACK"},
  };
  for (const auto& s : statements) {
    if (!s.statement->Prepare(db_, s.sql)) {
      return SqlError(absl::StrCat("cannot prepare \"", s.sql, "\""));
    }
  }
  return absl::OkStatus();
}

void SqliteWorker::Enqueue(Op op) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (queue_.size() < max_queued_) {
      queue_.push_back(std::move(op));
      cv_.notify_one();
      return;
    }
  }
  const absl::Status full = absl::UnavailableError(
      "idempotency store overloaded: too many calls queued for the disk");
  if (op.begin_done) {
    std::move(op.begin_done)(full);
  } else {
    std::move(op.done)(full);
  }
}

void SqliteWorker::AbortWaits() {
  waits_aborted_.store(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    abort_pending_ = true;
  }
  cv_.notify_one();
}

absl::Time SqliteWorker::NextDue() const {
  absl::Time next = next_lease_expiry_;
  if (!waiter_deadlines_.empty()) {
    next = std::min(next, std::get<0>(*waiter_deadlines_.begin()));
  }
  return next;
}

void SqliteWorker::Loop() {
  std::vector<Op> batch;
  for (;;) {
    bool abort_waits = false;
    bool stopping = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      for (;;) {
        if (!queue_.empty() || abort_pending_ || (stop_ && !stopping_)) break;
        if (stop_) return;  // Drained: waiters were answered at the stop.
        const absl::Time now = clock_.Now();
        if (next_due_ <= now) break;
        if (next_due_ == absl::InfiniteFuture()) {
          cv_.wait(lock);
        } else {
          cv_.wait_for(lock, absl::ToChronoNanoseconds(
                                 std::min(next_due_ - now, kMaxTimerSleep)));
        }
      }
      const size_t n = std::min(queue_.size(), max_batch_);
      batch.assign(std::make_move_iterator(queue_.begin()),
                   std::make_move_iterator(queue_.begin() + n));
      queue_.erase(queue_.begin(), queue_.begin() + n);
      abort_waits = std::exchange(abort_pending_, false);
      stopping = stop_;
    }
    RunBatch(batch, abort_waits, stopping);
    batch.clear();
    const absl::Time next_due = NextDue();
    std::lock_guard<std::mutex> lock(mu_);
    next_due_ = next_due;
  }
}

void SqliteWorker::RunBatch(std::vector<Op>& batch, bool abort_waits,
                            bool stopping) {
  const absl::Time now = clock_.Now();
  // Answers that need no disk.
  std::vector<Ready> immediate;
  AnswerDueWaiters(now, &immediate);
  if (abort_waits) {
    AnswerAllWaiters(BeginResultOf(BeginResult::Kind::kInProgress), &immediate);
  }
  if (stopping && !stopping_) {
    stopping_ = true;
    AnswerAllWaiters(StoreShuttingDownError(), &immediate);
  }

  // Answers that hold only once the batch is on disk.
  std::vector<Ready> ready;
  if (!batch.empty() || next_lease_expiry_ <= now) {
    added_waiters_.clear();
    absl::Status status =
        begin_.Step() == SQLITE_DONE ? absl::OkStatus() : SqlError("begin");
    begin_.Done();
    if (status.ok()) status = SettleDueLeases(now, &ready);
    if (status.ok() && (now >= next_sweep_ || records_ >= max_keys_)) {
      status = SweepExpired(now);
      next_sweep_ = now + kSweepInterval;
    }
    for (Op& op : batch) {
      if (!status.ok()) break;
      status = RunOp(op, now, stopping_, &ready);
    }
    if (status.ok()) {
      if (commit_.Step() != SQLITE_DONE) status = SqlError("commit");
      commit_.Done();
    }
    if (!status.ok()) {
      // Nothing of the batch happened: every call in it, and every waiter it
      // answered, fails; the waiters it added are forgotten.
      rollback_.Step();
      rollback_.Done();
      Log(LogLevel::kError, "idempotency_store_write_failed",
          {{"error", status.message()}});
      const absl::Status error = absl::UnavailableError(
          absl::StrCat("idempotency store write failed: ", status.message()));
      for (Ready& r : ready) r.Fail(error);
      for (const auto& [digest, id] : added_waiters_) {
        auto it = waiters_.find(digest);
        if (it == waiters_.end()) continue;
        auto node = it->second.extract(id);
        if (node.empty()) continue;
        waiter_deadlines_.erase({node.mapped().deadline, id, digest});
        ready.push_back(
            Ready::BeginReady(std::move(node.mapped().done), error));
        if (it->second.empty()) waiters_.erase(it);
      }
      for (Op& op : batch) {
        if (op.begin_done) {
          ready.push_back(Ready::BeginReady(std::move(op.begin_done), error));
        } else if (op.done) {
          ready.push_back(Ready::DoneReady(std::move(op.done), error));
        }
      }
      Recount().IgnoreError();
    }
    added_waiters_.clear();
    RefreshNextLease().IgnoreError();
  }
  for (Ready& r : immediate) std::move(r).Run();
  for (Ready& r : ready) std::move(r).Run();
}

absl::Status SqliteWorker::RunOp(Op& op, absl::Time now, bool stopping,
                                 std::vector<Ready>* ready) {
  switch (op.type) {
    case Op::Type::kBegin:
      return RunBegin(op, now, stopping, ready);
    case Op::Type::kComplete:
      return RunComplete(op, now, ready);
    case Op::Type::kRelease:
      return RunRelease(op, now, ready);
    case Op::Type::kSettleUnknown:
      return RunSettleUnknown(op, now, ready);
  }
  return absl::InternalError("unknown op");
}

absl::Status SqliteWorker::RunBegin(Op& op, absl::Time now, bool stopping,
                                    std::vector<Ready>* ready) {
  auto answer = [&op, ready](absl::StatusOr<BeginResult> result) {
    ready->push_back(
        Ready::BeginReady(std::move(op.begin_done), std::move(result)));
  };
  if (stopping) {
    answer(StoreShuttingDownError());
    return absl::OkStatus();
  }
  Row row;
  bool found = false;
  std::string result_bytes;
  if (absl::Status s = Load(op.digest, &row, &found, &result_bytes); !s.ok()) {
    return s;
  }
  if (found && row.expiry_us <= Micros(now)) {
    if (absl::Status s = Delete(op.digest); !s.ok()) return s;
    found = false;
  }
  if (!found) {
    if (records_ >= max_keys_) {
      if (absl::Status s = SweepExpired(now); !s.ok()) return s;
    }
    if (records_ >= max_keys_) {
      answer(absl::ResourceExhaustedError(
          "idempotency store is full of live keys"));
      return absl::OkStatus();
    }
    std::string token = NewLeaseToken();
    insert_.BindText(1, op.digest);
    insert_.BindBlob(2, op.request_hash);
    insert_.BindText(3, token);
    insert_.BindInt(4, Micros(now + lease_));
    insert_.BindInt(5, Micros(now + std::max(retention_, lease_)));
    const int rc = insert_.Step();
    insert_.Done();
    if (rc != SQLITE_DONE) return SqlError("claim");
    ++records_;
    answer(ClaimedResult(std::move(token)));
    return absl::OkStatus();
  }
  if (row.request_hash != op.request_hash) {
    answer(BeginResultOf(BeginResult::Kind::kMismatch));
    return absl::OkStatus();
  }
  if (!row.in_flight) {
    absl::StatusOr<StoredResult> stored = ParseStoredResult(result_bytes);
    if (!stored.ok()) {
      // Fail closed: the key was used, but what it did cannot be told.
      answer(absl::UnavailableError(absl::StrCat(
          "idempotency store ", path_, ": ", stored.status().message())));
      return absl::OkStatus();
    }
    answer(CompletedResult(*std::move(stored)));
    return absl::OkStatus();
  }
  auto waiting = waiters_.find(op.digest);
  const size_t on_key = waiting == waiters_.end() ? 0 : waiting->second.size();
  if (op.wait_deadline <= now || waits_aborted_.load() ||
      on_key >= max_waiters_per_key_ ||
      waiter_deadlines_.size() >= max_waiters_) {
    answer(BeginResultOf(BeginResult::Kind::kInProgress));
    return absl::OkStatus();
  }
  AddWaiter(op.digest, op.wait_deadline, std::move(op.begin_done));
  return absl::OkStatus();
}

absl::Status SqliteWorker::CheckHeld(Op& op, bool* held,
                                     std::vector<Ready>* ready) {
  Row row;
  bool found = false;
  if (absl::Status s = Load(op.digest, &row, &found, nullptr); !s.ok()) {
    return s;
  }
  *held = found && row.in_flight && row.lease_token == op.lease_token;
  if (!*held) {
    ready->push_back(Ready::DoneReady(std::move(op.done), LeaseNotHeldError()));
  }
  return absl::OkStatus();
}

absl::Status SqliteWorker::RunComplete(Op& op, absl::Time now,
                                       std::vector<Ready>* ready) {
  bool held = false;
  if (absl::Status s = CheckHeld(op, &held, ready); !s.ok() || !held) {
    return s;
  }
  complete_.BindText(1, op.digest);
  complete_.BindBlob(2, op.serialized);
  complete_.BindInt(3, Micros(now + retention_));
  const int rc = complete_.Step();
  complete_.Done();
  if (rc != SQLITE_DONE) return SqlError("complete");
  AnswerWaiters(op.digest, CompletedResult(std::move(op.result)), ready);
  ready->push_back(Ready::DoneReady(std::move(op.done), absl::OkStatus()));
  return absl::OkStatus();
}

absl::Status SqliteWorker::RunRelease(Op& op, absl::Time now,
                                      std::vector<Ready>* ready) {
  bool held = false;
  if (absl::Status s = CheckHeld(op, &held, ready); !s.ok() || !held) {
    return s;
  }
  auto waiting = waiters_.find(op.digest);
  if (waiting == waiters_.end() || waiting->second.empty()) {
    if (absl::Status s = Delete(op.digest); !s.ok()) return s;
  } else {
    // The earliest waiter becomes the holder; the others wait on it. Its
    // callback runs after the commit, from the store thread's loop: never
    // inside this Release.
    std::string token = NewLeaseToken();
    reclaim_.BindText(1, op.digest);
    reclaim_.BindText(2, token);
    reclaim_.BindInt(3, Micros(now + lease_));
    reclaim_.BindInt(4, Micros(now + std::max(retention_, lease_)));
    const int rc = reclaim_.Step();
    reclaim_.Done();
    if (rc != SQLITE_DONE) return SqlError("hand over");
    auto first = waiting->second.begin();
    waiter_deadlines_.erase({first->second.deadline, first->first, op.digest});
    ready->push_back(Ready::BeginReady(std::move(first->second.done),
                                       ClaimedResult(std::move(token))));
    waiting->second.erase(first);
    if (waiting->second.empty()) waiters_.erase(waiting);
  }
  ready->push_back(Ready::DoneReady(std::move(op.done), absl::OkStatus()));
  return absl::OkStatus();
}

absl::Status SqliteWorker::RunSettleUnknown(Op& op, absl::Time now,
                                           std::vector<Ready>* ready) {
  Row row;
  bool found = false;
  std::string result_bytes;
  if (absl::Status s = Load(op.digest, &row, &found, &result_bytes); !s.ok()) {
    return s;
  }
  if (!found || row.in_flight || row.expiry_us <= Micros(now) ||
      row.request_hash != op.request_hash || result_bytes != op.expected) {
    ready->push_back(
        Ready::DoneReady(std::move(op.done), NotTheUnknownResultError()));
    return absl::OkStatus();
  }
  resettle_.BindText(1, op.digest);
  resettle_.BindBlob(2, op.serialized);
  const int rc = resettle_.Step();
  resettle_.Done();
  if (rc != SQLITE_DONE) return SqlError("settle an unknown result");
  ready->push_back(Ready::DoneReady(std::move(op.done), absl::OkStatus()));
  return absl::OkStatus();
}

absl::Status SqliteWorker::Load(const std::string& digest, Row* row,
                                bool* found, std::string* result) {
  select_.BindText(1, digest);
  const int rc = select_.Step();
  if (rc == SQLITE_ROW) {
    *found = true;
    row->in_flight = select_.ColumnInt(0) != 0;
    row->request_hash = select_.ColumnBytes(1);
    row->lease_token = select_.ColumnBytes(2);
    row->expiry_us = select_.ColumnInt(3);
    if (result != nullptr && !row->in_flight) *result = select_.ColumnBytes(4);
  } else {
    *found = false;
  }
  select_.Done();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return SqlError("read");
  return absl::OkStatus();
}

absl::Status SqliteWorker::Delete(const std::string& digest) {
  delete_.BindText(1, digest);
  const int rc = delete_.Step();
  delete_.Done();
  if (rc != SQLITE_DONE) return SqlError("delete");
  records_ -= std::min<size_t>(records_, sqlite3_changes64(db_));
  return absl::OkStatus();
}

absl::Status SqliteWorker::SettleDueLeases(absl::Time now,
                                           std::vector<Ready>* ready) {
  if (next_lease_expiry_ > now) return absl::OkStatus();
  std::vector<std::string> due;
  due_leases_.BindInt(1, Micros(now));
  int rc;
  while ((rc = due_leases_.Step()) == SQLITE_ROW) {
    due.push_back(due_leases_.ColumnBytes(0));
  }
  due_leases_.Done();
  if (rc != SQLITE_DONE) return SqlError("find expired leases");
  if (due.empty()) return absl::OkStatus();
  const StoredResult abandoned = AbandonedResult();
  const std::string bytes = SerializeStoredResult(abandoned);
  for (const std::string& digest : due) {
    settle_.BindText(1, digest);
    settle_.BindBlob(2, bytes);
    // The UNKNOWN is kept a whole retention period from now, like any
    // result: the claim's own expiry may be about to pass.
    settle_.BindInt(3, Micros(now + retention_));
    rc = settle_.Step();
    settle_.Done();
    if (rc != SQLITE_DONE) return SqlError("settle an expired lease");
    AnswerWaiters(digest, CompletedResult(abandoned), ready);
  }
  return absl::OkStatus();
}

absl::Status SqliteWorker::SweepExpired(absl::Time now) {
  // An in-flight record outlives its lease, so it was settled before it
  // expires, and a final record has no waiters: deleting drops nobody.
  sweep_.BindInt(1, Micros(now));
  const int rc = sweep_.Step();
  sweep_.Done();
  if (rc != SQLITE_DONE) return SqlError("delete expired records");
  records_ -= std::min<size_t>(records_, sqlite3_changes64(db_));
  return absl::OkStatus();
}

absl::Status SqliteWorker::Recount() {
  const int rc = count_.Step();
  if (rc == SQLITE_ROW) records_ = static_cast<size_t>(count_.ColumnInt(0));
  count_.Done();
  return rc == SQLITE_ROW ? absl::OkStatus() : SqlError("count");
}

absl::Status SqliteWorker::RefreshNextLease() {
  const int rc = next_lease_.Step();
  next_lease_expiry_ = absl::InfiniteFuture();
  if (rc == SQLITE_ROW &&
      sqlite3_column_type(next_lease_.get(), 0) != SQLITE_NULL) {
    next_lease_expiry_ = absl::FromUnixMicros(next_lease_.ColumnInt(0));
  }
  next_lease_.Done();
  if (rc != SQLITE_ROW) {
    // Look again soon rather than never.
    next_lease_expiry_ = clock_.Now() + kMaxTimerSleep;
    return SqlError("next lease");
  }
  return absl::OkStatus();
}

void SqliteWorker::AddWaiter(const std::string& digest, absl::Time deadline,
                             IdempotencyStore::BeginCallback done) {
  const uint64_t id = next_waiter_id_++;
  waiters_[digest].emplace(id, Waiter{deadline, std::move(done)});
  waiter_deadlines_.emplace(deadline, id, digest);
  added_waiters_.emplace_back(digest, id);
}

void SqliteWorker::AnswerWaiters(const std::string& digest,
                                 const absl::StatusOr<BeginResult>& result,
                                 std::vector<Ready>* ready) {
  auto it = waiters_.find(digest);
  if (it == waiters_.end()) return;
  for (auto& [id, waiter] : it->second) {
    waiter_deadlines_.erase({waiter.deadline, id, digest});
    ready->push_back(Ready::BeginReady(std::move(waiter.done), result));
  }
  waiters_.erase(it);
}

void SqliteWorker::AnswerDueWaiters(absl::Time now, std::vector<Ready>* ready) {
  while (!waiter_deadlines_.empty() &&
         std::get<0>(*waiter_deadlines_.begin()) <= now) {
    auto node = waiter_deadlines_.extract(waiter_deadlines_.begin());
    const auto& [deadline, id, digest] = node.value();
    auto it = waiters_.find(digest);
    if (it == waiters_.end()) continue;
    auto waiter = it->second.extract(id);
    if (!waiter.empty()) {
      ready->push_back(
          Ready::BeginReady(std::move(waiter.mapped().done),
                            BeginResultOf(BeginResult::Kind::kInProgress)));
    }
    if (it->second.empty()) waiters_.erase(it);
  }
}

void SqliteWorker::AnswerAllWaiters(const absl::StatusOr<BeginResult>& result,
                                    std::vector<Ready>* ready) {
  for (auto& [digest, waiters] : waiters_) {
    for (auto& [id, waiter] : waiters) {
      ready->push_back(Ready::BeginReady(std::move(waiter.done), result));
    }
  }
  waiters_.clear();
  waiter_deadlines_.clear();
}

}  // namespace internal

absl::StatusOr<std::unique_ptr<SqliteIdempotencyStore>>
SqliteIdempotencyStore::Open(Options options) {
  int64_t abandoned = 0;
  absl::StatusOr<std::unique_ptr<internal::SqliteWorker>> worker =
      internal::SqliteWorker::Open(options, &abandoned);
  if (!worker.ok()) return worker.status();
  if (abandoned > 0) {
    Log(LogLevel::kWarning, "idempotency_keys_abandoned",
        {{"state_dir", options.state_dir},
         {"count", absl::StrCat(abandoned)},
         {"detail",
          "keyed calls were in flight when the previous process stopped; "
          "their keys now answer UNKNOWN (IDEMPOTENT_CALL_ABANDONED) and are "
          "never sent again"}});
  }
  return std::unique_ptr<SqliteIdempotencyStore>(
      new SqliteIdempotencyStore(*std::move(worker), abandoned));
}

SqliteIdempotencyStore::SqliteIdempotencyStore(
    std::unique_ptr<internal::SqliteWorker> worker, int64_t abandoned_at_open)
    : worker_(std::move(worker)), abandoned_at_open_(abandoned_at_open) {}

SqliteIdempotencyStore::~SqliteIdempotencyStore() = default;

void SqliteIdempotencyStore::Begin(const IdempotencyKey& key,
                                   absl::string_view request_hash,
                                   absl::Time wait_deadline,
                                   BeginCallback done) {
  internal::SqliteWorker::Op op;
  op.type = internal::SqliteWorker::Op::Type::kBegin;
  op.digest = key.Digest();
  op.request_hash = std::string(request_hash);
  op.wait_deadline = wait_deadline;
  op.begin_done = std::move(done);
  worker_->Enqueue(std::move(op));
}

void SqliteIdempotencyStore::Complete(const IdempotencyKey& key,
                                      absl::string_view lease_token,
                                      StoredResult result, DoneCallback done) {
  internal::SqliteWorker::Op op;
  op.type = internal::SqliteWorker::Op::Type::kComplete;
  op.digest = key.Digest();
  op.lease_token = std::string(lease_token);
  op.serialized = SerializeStoredResult(result);
  op.result = std::move(result);
  op.done = std::move(done);
  worker_->Enqueue(std::move(op));
}

void SqliteIdempotencyStore::Release(const IdempotencyKey& key,
                                     absl::string_view lease_token,
                                     DoneCallback done) {
  internal::SqliteWorker::Op op;
  op.type = internal::SqliteWorker::Op::Type::kRelease;
  op.digest = key.Digest();
  op.lease_token = std::string(lease_token);
  op.done = std::move(done);
  worker_->Enqueue(std::move(op));
}

void SqliteIdempotencyStore::SettleUnknown(const IdempotencyKey& key,
                                           absl::string_view request_hash,
                                           const StoredResult& expected,
                                           StoredResult result,
                                           DoneCallback done) {
  if (absl::Status s = CheckSettleableUnknown(expected); !s.ok()) {
    std::move(done)(std::move(s));
    return;
  }
  internal::SqliteWorker::Op op;
  op.type = internal::SqliteWorker::Op::Type::kSettleUnknown;
  op.digest = key.Digest();
  op.request_hash = std::string(request_hash);
  op.expected = SerializeStoredResult(expected);
  op.serialized = SerializeStoredResult(result);
  op.done = std::move(done);
  worker_->Enqueue(std::move(op));
}

void SqliteIdempotencyStore::AbortWaits() { worker_->AbortWaits(); }

}  // namespace clink_gateway::idempotency
