#include "adapters/http/http_types.h"

#include "absl/strings/match.h"

namespace clink_gateway::http {

absl::string_view MethodName(Method method) {
  switch (method) {
    case Method::kGet:
      return "GET";
    case Method::kPost:
      return "POST";
    case Method::kPut:
      return "PUT";
    case Method::kDelete:
      return "DELETE";
    case Method::kPatch:
      return "PATCH";
  }
  return "UNKNOWN";
}

absl::string_view DeliveryName(Delivery delivery) {
  switch (delivery) {
    case Delivery::kNotSent:
      return "not_sent";
    case Delivery::kUnknown:
      return "unknown";
    case Delivery::kReceived:
      return "received";
  }
  return "invalid";
}

absl::string_view FailureKindName(FailureKind kind) {
  switch (kind) {
    case FailureKind::kNone:
      return "none";
    case FailureKind::kInvalidRequest:
      return "invalid_request";
    case FailureKind::kDeadline:
      return "deadline";
    case FailureKind::kConnect:
      return "connect";
    case FailureKind::kConnectionLost:
      return "connection_lost";
    case FailureKind::kResponseTooLarge:
      return "response_too_large";
    case FailureKind::kShutdown:
      return "shutdown";
    case FailureKind::kOther:
      return "other";
    case FailureKind::kEgressDenied:
      return "egress_denied";
  }
  return "invalid";
}

absl::string_view HttpResponse::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return {};
}

}  // namespace clink_gateway::http
