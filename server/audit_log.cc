#include "server/audit_log.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/clink/error_mapping.h"
#include "adapters/idempotency/idempotency_store.h"
#include "clink/gateway/v1/rest_options.pb.h"
#include "common/logging.h"
#include "google/protobuf/descriptor.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;
using google::protobuf::FieldDescriptor;

int OpenAppend(const std::string& path) {
  return open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

bool IsSetString(const google::protobuf::Message& message,
                 const FieldDescriptor& field) {
  return field.cpp_type() == FieldDescriptor::CPPTYPE_STRING &&
         !field.is_repeated() &&
         !message.GetReflection()->GetString(message, &field).empty();
}

// The charged amount and its currency: the first set top-level DECIMAL field
// with a currency rule.
void ReadMoney(const google::protobuf::Message& request, AuditEntry& entry) {
  const google::protobuf::Descriptor& type = *request.GetDescriptor();
  const google::protobuf::Reflection& reflection = *request.GetReflection();
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    const v1::FieldRule& rule = field.options().GetExtension(v1::field);
    if (rule.encoding() != v1::VALUE_ENCODING_DECIMAL) continue;
    if (rule.currency_field().empty() && !rule.any_currency()) continue;
    if (!IsSetString(request, field)) continue;
    entry.amount = reflection.GetString(request, &field);
    entry.amount_field = field.name();
    if (const FieldDescriptor* currency =
            type.FindFieldByName(rule.currency_field());
        currency != nullptr && IsSetString(request, *currency)) {
      entry.currency = reflection.GetString(request, currency);
    }
    return;
  }
}

void ReadIds(const google::protobuf::Message& payload, AuditEntry& entry) {
  const google::protobuf::Descriptor& type = *payload.GetDescriptor();
  for (int i = 0; i < type.field_count(); ++i) {
    const FieldDescriptor& field = *type.field(i);
    if (field.name() != "id" && !absl::EndsWith(field.name(), "_id")) continue;
    // A secret is never printed, whatever its name (FieldRule.sensitive).
    if (field.options().GetExtension(::clink::gateway::v1::field).sensitive()) {
      continue;
    }
    if (!IsSetString(payload, field)) continue;
    entry.ids.emplace_back(absl::StrCat("clink_", field.name()),
                           payload.GetReflection()->GetString(payload, &field));
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::OpenFile(std::string path) {
  const int fd = OpenAppend(path);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot open the audit log file ", path, ": ", std::strerror(errno)));
  }
  auto log = std::make_unique<AuditLog>();
  log->path_ = std::move(path);
  log->fd_ = fd;
  return log;
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) close(fd_);
}

AuditEntry AuditLog::Start(const clink::RestMethod& method,
                           const google::protobuf::Message& request,
                           const clink::CallOptions& options) {
  AuditEntry entry;
  entry.write = method.mutating();
  if (!entry.write) return entry;
  entry.caller = options.caller;
  entry.caller_authenticated = options.caller_authenticated;
  entry.method = method.method->full_name();
  entry.merchant = options.merchant;
  entry.request_id = options.request_id;
  if (!options.idempotency_key.empty()) {
    // Exactly as IdempotentClinkApi scopes the key.
    idempotency::IdempotencyKey key;
    key.caller = options.caller;
    key.rpc = method.method->full_name();
    key.key = options.idempotency_key;
    key.merchant = options.merchant;
    entry.key_digest = key.Digest();
  }
  ReadMoney(request, entry);
  return entry;
}

void AuditLog::Settle(const clink::RestMethod& method,
                      const google::protobuf::Message* response,
                      const absl::Status& status, errors::Outcome outcome,
                      bool replayed, AuditEntry& entry) {
  if (!entry.write) return;
  entry.code = absl::StatusCodeToString(status.code());
  entry.outcome = std::string(errors::OutcomeName(
      entry.refused_before_sending ? errors::Outcome::kNotSent : outcome));
  entry.replayed = replayed;
  if (response == nullptr) return;
  const google::protobuf::Message* payload = response;
  if (const FieldDescriptor* body = method.response_body; body != nullptr) {
    if (body->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
        body->is_repeated() ||
        !response->GetReflection()->HasField(*response, body)) {
      return;
    }
    payload = &response->GetReflection()->GetMessage(*response, body);
  }
  ReadIds(*payload, entry);
}

void AuditLog::Write(const AuditEntry& entry) {
  if (!entry.write) return;
  std::vector<LogField> fields = {
      {"caller", entry.caller},
      {"caller_authenticated", entry.caller_authenticated ? "true" : "false"},
      {"method", entry.method},
      {"merchant", entry.merchant},
      {"request_id", entry.request_id},
      {"idempotency_key_digest", entry.key_digest},
      {"amount", entry.amount},
      {"amount_field", entry.amount_field},
      {"currency", entry.currency},
      {"code", entry.code},
      {"outcome", entry.outcome},
      {"replayed", entry.replayed ? "true" : "false"},
  };
  for (const auto& [name, value] : entry.ids) fields.emplace_back(name, value);
  if (path_.empty()) {
    LogAlways(LogLevel::kInfo, "audit", fields);
    return;
  }
  const std::string line = TimestampedLogLine(LogLevel::kInfo, "audit", fields);
  int error = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    ReopenIfReplaced();
    size_t done = 0;
    while (done < line.size()) {
      const ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        error = n < 0 ? errno : EIO;
        ++failed_writes_;
        break;
      }
      done += static_cast<size_t>(n);
    }
  }
  if (error != 0) {
    // The line itself stays out of the process log.
    Log(LogLevel::kError, "audit_write_failed",
        {{"path", path_}, {"error", std::strerror(error)}});
  }
}

void AuditLog::ReopenIfReplaced() {
  struct stat at_path;
  struct stat open_file;
  if (stat(path_.c_str(), &at_path) == 0 && fstat(fd_, &open_file) == 0 &&
      at_path.st_dev == open_file.st_dev &&
      at_path.st_ino == open_file.st_ino) {
    return;
  }
  const int fd = OpenAppend(path_);
  if (fd < 0) {
    // Keep writing to the old file rather than losing lines.
    Log(LogLevel::kError, "audit_reopen_failed",
        {{"path", path_}, {"error", std::strerror(errno)}});
    return;
  }
  close(fd_);
  fd_ = fd;
}

int64_t AuditLog::failed_writes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return failed_writes_;
}

}  // namespace clink_gateway::server
