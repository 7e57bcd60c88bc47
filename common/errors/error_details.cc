#include "common/errors/error_details.h"

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace clink_gateway::errors {
namespace {

template <typename T>
absl::optional<T> GetPayload(const absl::Status& status,
                             absl::string_view type_url) {
  absl::optional<absl::Cord> payload = status.GetPayload(type_url);
  if (!payload.has_value()) return absl::nullopt;
  T message;
  if (!message.ParseFromString(std::string(*payload))) return absl::nullopt;
  return message;
}

}  // namespace

absl::string_view OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kNotSent:
      return "not_sent";
    case Outcome::kRejected:
      return "rejected";
    case Outcome::kUnknown:
      return "unknown";
    case Outcome::kCommitted:
      return "committed";
  }
  return "unknown";
}

bool IsValidReason(absl::string_view reason) {
  if (reason.size() < 2 || reason.size() > 63) return false;
  if (!absl::ascii_isupper(static_cast<unsigned char>(reason.front())) ||
      reason.back() == '_') {
    return false;
  }
  for (char c : reason) {
    const auto u = static_cast<unsigned char>(c);
    if (!absl::ascii_isupper(u) && !absl::ascii_isdigit(u) && c != '_') {
      return false;
    }
  }
  return true;
}

void AttachErrorInfo(absl::Status& status, absl::string_view domain,
                     absl::string_view reason, Outcome outcome,
                     std::map<std::string, std::string> metadata) {
  google::rpc::ErrorInfo info;
  info.set_reason(IsValidReason(reason) ? std::string(reason)
                                        : std::string("INVALID_REASON"));
  info.set_domain(std::string(domain));
  metadata["outcome"] = std::string(OutcomeName(outcome));
  for (auto& [key, value] : metadata) {
    (*info.mutable_metadata())[key] = std::move(value);
  }
  status.SetPayload(kErrorInfoTypeUrl, absl::Cord(info.SerializeAsString()));
}

absl::Status InvalidArgumentWithViolations(
    const std::vector<FieldViolation>& violations, absl::string_view reason) {
  std::string message = "invalid request:";
  google::rpc::BadRequest bad_request;
  for (size_t i = 0; i < violations.size(); ++i) {
    absl::StrAppend(&message, i == 0 ? " " : "; ", violations[i].field, ": ",
                    violations[i].description);
    auto* v = bad_request.add_field_violations();
    v->set_field(violations[i].field);
    v->set_description(violations[i].description);
  }
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kBadRequestTypeUrl,
                    absl::Cord(bad_request.SerializeAsString()));
  AttachErrorInfo(status, kGatewayDomain, reason, Outcome::kNotSent);
  return status;
}

void AttachRetryInfo(absl::Status& status, absl::Duration retry_delay) {
  google::rpc::RetryInfo info;
  const int64_t millis = absl::ToInt64Milliseconds(retry_delay);
  info.mutable_retry_delay()->set_seconds(millis / 1000);
  info.mutable_retry_delay()->set_nanos(
      static_cast<int32_t>((millis % 1000) * 1000000));
  status.SetPayload(kRetryInfoTypeUrl, absl::Cord(info.SerializeAsString()));
}

absl::optional<google::rpc::ErrorInfo> GetErrorInfo(
    const absl::Status& status) {
  return GetPayload<google::rpc::ErrorInfo>(status, kErrorInfoTypeUrl);
}
absl::optional<google::rpc::BadRequest> GetBadRequest(
    const absl::Status& status) {
  return GetPayload<google::rpc::BadRequest>(status, kBadRequestTypeUrl);
}
absl::optional<google::rpc::RetryInfo> GetRetryInfo(
    const absl::Status& status) {
  return GetPayload<google::rpc::RetryInfo>(status, kRetryInfoTypeUrl);
}

}  // namespace clink_gateway::errors
