#include "common/sqlite/sqlite_util.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace clink_gateway::sqlite {

absl::Status ErrnoStatus(int err, absl::string_view what) {
  const std::string message = absl::StrCat(what, ": ", std::strerror(err));
  switch (err) {
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::PermissionDeniedError(message);
    default:
      return absl::UnavailableError(message);
  }
}

absl::Status MakeDirs(const std::string& dir) {
  for (size_t at = 1; at <= dir.size(); ++at) {
    if (at != dir.size() && dir[at] != '/') continue;
    const std::string prefix = dir.substr(0, at);
    if (mkdir(prefix.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("cannot create ", prefix));
    }
  }
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("cannot stat ", dir));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " is not a directory"));
  }
  return absl::OkStatus();
}

absl::Status Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status status = absl::UnavailableError(
        absl::StrCat(error != nullptr ? error : sqlite3_errmsg(db)));
    sqlite3_free(error);
    return status;
  }
  return absl::OkStatus();
}

absl::Status EnableDurableWal(sqlite3* db, const std::string& path) {
  // WAL: a commit appends to the log and fsyncs it (synchronous=FULL), so a
  // commit is one sequential write and one fsync.
  Statement wal;
  if (!wal.Prepare(db, "PRAGMA journal_mode=WAL") || wal.Step() != SQLITE_ROW) {
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot enable WAL: ", sqlite3_errmsg(db)));
  }
  const std::string mode = wal.ColumnBytes(0);
  wal.Done();
  if (mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": journal mode is ", mode, ", not wal"));
  }
  if (absl::Status s = Exec(db, "PRAGMA synchronous=FULL"); !s.ok()) {
    return absl::UnavailableError(absl::StrCat(path, ": ", s.message()));
  }
  return absl::OkStatus();
}

void SyncDirectory(const std::string& dir) {
  if (const int dir_fd =
          open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
}

}  // namespace clink_gateway::sqlite
