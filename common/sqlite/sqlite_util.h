// Helpers shared by the gateway's SQLite stores (idempotency keys, webhook
// events): a prepared-statement wrapper, mkdir -p for the state directory, and
// opening a database in WAL mode with synchronous=FULL (a commit is durable
// when it returns: the WAL is fsync()ed).
#ifndef CLINK_GATEWAY_COMMON_SQLITE_SQLITE_UTIL_H_
#define CLINK_GATEWAY_COMMON_SQLITE_SQLITE_UTIL_H_

#include <sqlite3.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace clink_gateway::sqlite {

// A prepared statement, reset (bindings cleared) by Done() after each use.
// Not thread-safe (like the connection it belongs to).
class Statement {
 public:
  Statement() = default;
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // False when `sql` does not compile (sqlite3_errmsg(db) says why).
  bool Prepare(sqlite3* db, const char* sql) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_,
                              nullptr) == SQLITE_OK;
  }
  sqlite3_stmt* get() const { return stmt_; }
  void BindText(int i, absl::string_view text) {
    sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()),
                      SQLITE_TRANSIENT);
  }
  void BindBlob(int i, absl::string_view bytes) {
    sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()),
                      SQLITE_TRANSIENT);
  }
  void BindInt(int i, int64_t value) { sqlite3_bind_int64(stmt_, i, value); }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  std::string ColumnBytes(int i) const {
    const void* data = sqlite3_column_blob(stmt_, i);
    const int size = sqlite3_column_bytes(stmt_, i);
    return data == nullptr ? std::string()
                           : std::string(static_cast<const char*>(data),
                                         static_cast<size_t>(size));
  }
  int64_t ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  bool ColumnIsNull(int i) const {
    return sqlite3_column_type(stmt_, i) == SQLITE_NULL;
  }
  void Done() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void Finalize() {
    sqlite3_finalize(stmt_);
    stmt_ = nullptr;
  }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

// `what`: strerror(err), as kPermissionDenied (EACCES, EPERM, EROFS) or
// kUnavailable.
absl::Status ErrnoStatus(int err, absl::string_view what);

// mkdir -p, mode 0700 for what it creates. kFailedPrecondition when `dir`
// exists but is not a directory.
absl::Status MakeDirs(const std::string& dir);

// Switches `db` (the file `path`, named in messages) to journal_mode=WAL and
// synchronous=FULL. kUnavailable / kFailedPrecondition when SQLite refuses.
absl::Status EnableDurableWal(sqlite3* db, const std::string& path);

// Runs `sql` (one or more statements, no results) on `db`; kUnavailable with
// SQLite's message on failure.
absl::Status Exec(sqlite3* db, const char* sql);

// fsync()s the directory `dir` so that files just created in it survive a
// crash. Best effort.
void SyncDirectory(const std::string& dir);

}  // namespace clink_gateway::sqlite

#endif  // CLINK_GATEWAY_COMMON_SQLITE_SQLITE_UTIL_H_
