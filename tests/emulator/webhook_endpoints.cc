#include "tests/emulator/webhook_endpoints.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "rapidjson/document.h"
#include "tests/emulator/clink_json.h"
#include "tests/emulator/list_query.h"
#include "tests/emulator/merchant_api.h"

namespace clink_gateway::emulator {
namespace {

constexpr size_t kUrlMaxLength = 512;
constexpr size_t kDescriptionMaxLength = 512;
constexpr int64_t kPageSizeDefault = 20;
constexpr int64_t kPageSizeMax = 100;  // Larger values are capped.
constexpr char kSecretAlphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

size_t Utf8Length(absl::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

// Whether `host` (an IP literal or a name, lower case, no port) is one Clink
// refuses: localhost, or an address that is loopback, private, link-local,
// multicast or unspecified.
bool IsNonPublicHost(absl::string_view host) {
  if (host == "localhost" || absl::EndsWith(host, ".localhost")) return true;
  if (absl::StartsWith(host, "[")) {  // IPv6 literal.
    const absl::string_view ip = absl::StripSuffix(host.substr(1), "]");
    return ip == "::" || ip == "::1" || absl::StartsWith(ip, "fe8") ||
           absl::StartsWith(ip, "fe9") || absl::StartsWith(ip, "fea") ||
           absl::StartsWith(ip, "feb") || absl::StartsWith(ip, "fc") ||
           absl::StartsWith(ip, "fd") || absl::StartsWith(ip, "ff") ||
           absl::StartsWith(ip, "::ffff:");
  }
  const std::vector<absl::string_view> parts = absl::StrSplit(host, '.');
  int octets[4];
  if (parts.size() != 4) return false;
  for (int i = 0; i < 4; ++i) {
    if (!absl::SimpleAtoi(parts[i], &octets[i]) || octets[i] < 0 ||
        octets[i] > 255) {
      return false;  // A name.
    }
  }
  const int a = octets[0];
  const int b = octets[1];
  return a == 0 || a == 10 || a == 127 || (a == 169 && b == 254) ||
         (a == 172 && b >= 16 && b <= 31) || (a == 192 && b == 168) ||
         (a == 100 && b >= 64 && b <= 127) || a >= 224;
}

absl::Status ValidateUrl(const std::string& url) {
  if (Utf8Length(url) > kUrlMaxLength) {
    return absl::InvalidArgumentError("url must be at most 512 characters");
  }
  if (!absl::StartsWithIgnoreCase(url, "https://")) {
    return absl::InvalidArgumentError("url must use https");
  }
  absl::string_view authority = absl::string_view(url).substr(8);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    authority.remove_prefix(at + 1);
  }
  std::string host(authority);
  if (!host.empty() && host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else {
    host = host.substr(0, host.find(':'));
  }
  absl::AsciiStrToLower(&host);
  if (host.empty() || host.find_first_of(" \t\r\n") != std::string::npos) {
    return absl::InvalidArgumentError("url must have a host");
  }
  if (IsNonPublicHost(host)) {
    return absl::InvalidArgumentError(
        absl::StrCat("url must be on a public host, not ", host));
  }
  return absl::OkStatus();
}

// The `events` member: at least one §13.1 name. Empty when absent (and not
// `required`): a present list is never empty.
absl::StatusOr<std::vector<std::string>> ReadEvents(const JsonFields& fields,
                                                    bool required) {
  const rapidjson::Value* value = fields.Find("events");
  if (value == nullptr) {
    if (required) return absl::InvalidArgumentError("events is required");
    return std::vector<std::string>();
  }
  if (!value->IsArray() || value->Empty()) {
    return absl::InvalidArgumentError(
        "events must be a non-empty array of event names");
  }
  const std::vector<std::string>& known = WebhookEventNames();
  std::vector<std::string> events;
  for (rapidjson::SizeType i = 0; i < value->Size(); ++i) {
    const rapidjson::Value& event = (*value)[i];
    const std::string name =
        event.IsString() ? std::string(event.GetString(), event.GetStringLength())
                         : std::string();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "events[", i, "] must be an event name (numeric codes are not accepted)"));
    }
    if (std::find(events.begin(), events.end(), name) == events.end()) {
      events.push_back(name);
    }
  }
  return events;
}

absl::StatusOr<std::optional<std::string>> ReadDescription(
    const JsonFields& fields) {
  if (fields.Find("description") == nullptr) {
    return std::optional<std::string>();
  }
  GATEWAY_ASSIGN_OR_RETURN(std::string description,
                           fields.OptionalString("description"));
  if (Utf8Length(description) > kDescriptionMaxLength) {
    return absl::InvalidArgumentError(
        "description must be at most 512 characters");
  }
  return std::optional<std::string>(std::move(description));
}

absl::Status EndpointNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat("webhook endpoint ", id, " not found"));
}

std::string Masked(const std::string& secret) {
  return absl::StrCat("whsec_...", secret.substr(secret.size() - 4));
}

}  // namespace

const std::vector<std::string>& WebhookEventNames() {
  static const auto* const kNames = new std::vector<std::string>{
      "order.created",
      "order.succeeded",
      "order.failed",
      "refund.created",
      "refund.succeeded",
      "refund.failed",
      "subscription.created",
      "subscription.trialing",
      "subscription.activated",
      "subscription.incomplete_expired",
      "subscription.past_due",
      "subscription.cancelled",
      "invoice.open",
      "invoice.paid",
      "invoice.void",
      "order.next_action",
      "subscription.updated.plan_changed",
      "subscription.updated.plan_change_canceled",
      "subscription.updated.renewed",
      "subscription.updated.cancel_at_period_end_set",
      "subscription.updated.cancel_at_period_end_revoked",
      "session.complete",
      "session.expired",
      "dispute.created",
      "dispute.updated",
      "dispute.won",
      "dispute.lost",
      "dispute.closed",
      "customer.verify",
      "payment_method.added",
      "payment_method.default_change",
      "risk_rule.updated",
      "agent_order.succeeded",
      "agent_order.failed",
      "agent_refund.succeeded",
      "agent_refund.failed",
      "agent_refund.approved",
      "agent_refund.rejected",
      "payment_method.update",
      "purchase_instruction.created",
      "purchase_instruction.activated",
      "purchase_instruction.updated",
      "purchase_instruction.cancelled",
      "vic_device.binding_succeeded",
  };
  return *kNames;
}

WebhookEndpoints::WebhookEndpoints(std::function<absl::Time()> clock)
    : clock_(std::move(clock)) {}

namespace {

// The endpoint's members; the plaintext secret only when `with_secret`.
template <typename Endpoint>
void WriteEndpoint(JsonWriter& writer, const Endpoint& endpoint,
                   bool with_secret) {
  WriteString(writer, "id", endpoint.id);
  WriteString(writer, "url", endpoint.url);
  WriteKey(writer, "events");
  writer.StartArray();
  for (const std::string& event : endpoint.events) {
    writer.String(event.data(), static_cast<rapidjson::SizeType>(event.size()));
  }
  writer.EndArray();
  WriteBool(writer, "enabled", endpoint.enabled);
  WriteKey(writer, "signingSecret");
  if (with_secret) {
    writer.String(endpoint.secret.data(),
                  static_cast<rapidjson::SizeType>(endpoint.secret.size()));
  } else {
    writer.Null();
  }
  WriteString(writer, "maskedSigningSecret", Masked(endpoint.secret));
  WriteString(writer, "description", endpoint.description);
  WriteInt(writer, "createdAt", endpoint.created_at_ms);
  WriteInt(writer, "updatedAt", endpoint.updated_at_ms);
}

}  // namespace

void WebhookEndpoints::Rotate(Endpoint& endpoint) {
  std::string secret = "whsec_";
  for (int i = 0; i < 32; ++i) {
    secret.push_back(
        kSecretAlphabet[absl::Uniform(bitgen_, size_t{0},
                                      sizeof(kSecretAlphabet) - 1)]);
  }
  endpoint.secret = std::move(secret);
}

WebhookEndpoints::Endpoint* WebhookEndpoints::Find(const std::string& id) {
  for (Endpoint& endpoint : endpoints_) {
    if (endpoint.id == id) return &endpoint;
  }
  return nullptr;
}

absl::StatusOr<std::string> WebhookEndpoints::Create(
    const ApiRequest& request, const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  Endpoint endpoint;
  GATEWAY_ASSIGN_OR_RETURN(endpoint.url, fields.RequiredString("url"));
  GATEWAY_RETURN_IF_ERROR(ValidateUrl(endpoint.url));
  GATEWAY_ASSIGN_OR_RETURN(endpoint.events, ReadEvents(fields, true));
  GATEWAY_ASSIGN_OR_RETURN(auto description, ReadDescription(fields));
  endpoint.description = description.value_or("");
  GATEWAY_ASSIGN_OR_RETURN(auto enabled, fields.OptionalBool("enabled"));
  endpoint.enabled = enabled.value_or(true);
  endpoint.created_at_ms = endpoint.updated_at_ms =
      absl::ToUnixMillis(clock_());
  MutexLock lock(&mu_);
  endpoint.id = absl::StrCat("whk_", absl::Uniform<uint64_t>(bitgen_));
  Rotate(endpoint);
  endpoints_.push_back(std::move(endpoint));
  return DataEnvelope([&](JsonWriter& writer) {
    WriteEndpoint(writer, endpoints_.back(), /*with_secret=*/true);
  });
}

absl::StatusOr<std::string> WebhookEndpoints::List(const ApiRequest& request,
                                                   const Params& /*params*/) {
  const std::map<std::string, std::string> query =
      ParseQuery(request.query_string);
  GATEWAY_ASSIGN_OR_RETURN(
      Page page, ReadPage(query, kPageSizeDefault, kPageSizeMax, true));
  const std::string enabled = QueryValue(query, "enabled");
  if (!enabled.empty() && enabled != "true" && enabled != "false") {
    return absl::InvalidArgumentError("enabled must be true or false");
  }
  const std::string url = QueryValue(query, "url");
  MutexLock lock(&mu_);
  std::vector<const Endpoint*> rows;
  for (const Endpoint& endpoint : endpoints_) {
    if (!enabled.empty() && endpoint.enabled != (enabled == "true")) continue;
    if (!url.empty() && endpoint.url != url) continue;
    rows.push_back(&endpoint);
  }
  return PagedList(rows, page, [](JsonWriter& writer, const Endpoint& e) {
    WriteEndpoint(writer, e, /*with_secret=*/false);
  });
}

absl::StatusOr<std::string> WebhookEndpoints::Get(const ApiRequest& /*request*/,
                                                  const Params& params) {
  MutexLock lock(&mu_);
  const Endpoint* endpoint = Find(params[0]);
  if (endpoint == nullptr) {
    return EndpointNotFound(params[0]);
  }
  return DataEnvelope([&](JsonWriter& writer) {
    WriteEndpoint(writer, *endpoint, /*with_secret=*/false);
  });
}

absl::StatusOr<std::string> WebhookEndpoints::Update(const ApiRequest& request,
                                                     const Params& params) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  std::optional<std::string> url;
  if (fields.Find("url") != nullptr) {
    GATEWAY_ASSIGN_OR_RETURN(url, fields.RequiredString("url"));
    GATEWAY_RETURN_IF_ERROR(ValidateUrl(*url));
  }
  GATEWAY_ASSIGN_OR_RETURN(std::vector<std::string> events,
                           ReadEvents(fields, false));
  GATEWAY_ASSIGN_OR_RETURN(auto description, ReadDescription(fields));
  GATEWAY_ASSIGN_OR_RETURN(auto enabled, fields.OptionalBool("enabled"));
  MutexLock lock(&mu_);
  Endpoint* endpoint = Find(params[0]);
  if (endpoint == nullptr) {
    return EndpointNotFound(params[0]);
  }
  if (url.has_value()) endpoint->url = *std::move(url);
  if (!events.empty()) endpoint->events = std::move(events);
  if (description.has_value()) endpoint->description = *std::move(description);
  if (enabled.has_value()) endpoint->enabled = *enabled;
  endpoint->updated_at_ms = absl::ToUnixMillis(clock_());
  return DataEnvelope([&](JsonWriter& writer) {
    WriteEndpoint(writer, *endpoint, /*with_secret=*/false);
  });
}

absl::StatusOr<std::string> WebhookEndpoints::Delete(
    const ApiRequest& /*request*/, const Params& params) {
  MutexLock lock(&mu_);
  auto it = std::find_if(
      endpoints_.begin(), endpoints_.end(),
      [&](const Endpoint& endpoint) { return endpoint.id == params[0]; });
  if (it == endpoints_.end()) {
    return EndpointNotFound(params[0]);
  }
  endpoints_.erase(it);
  return ErrorEnvelope(kCodeSuccess, "Success");  // {code, msg, data: null}
}

absl::StatusOr<std::string> WebhookEndpoints::SetEnabled(const std::string& id,
                                                         bool enabled) {
  MutexLock lock(&mu_);
  Endpoint* endpoint = Find(id);
  if (endpoint == nullptr) {
    return EndpointNotFound(id);
  }
  endpoint->enabled = enabled;
  endpoint->updated_at_ms = absl::ToUnixMillis(clock_());
  return DataEnvelope([&](JsonWriter& writer) {
    WriteEndpoint(writer, *endpoint, /*with_secret=*/false);
  });
}

absl::StatusOr<std::string> WebhookEndpoints::Enable(
    const ApiRequest& /*request*/, const Params& params) {
  return SetEnabled(params[0], true);
}

absl::StatusOr<std::string> WebhookEndpoints::Disable(
    const ApiRequest& /*request*/, const Params& params) {
  return SetEnabled(params[0], false);
}

absl::StatusOr<std::string> WebhookEndpoints::RotateSecret(
    const ApiRequest& /*request*/, const Params& params) {
  MutexLock lock(&mu_);
  Endpoint* endpoint = Find(params[0]);
  if (endpoint == nullptr) {
    return EndpointNotFound(params[0]);
  }
  Rotate(*endpoint);
  endpoint->updated_at_ms = absl::ToUnixMillis(clock_());
  return DataEnvelope([&](JsonWriter& writer) {
    WriteEndpoint(writer, *endpoint, /*with_secret=*/true);
  });
}

absl::StatusOr<std::string> WebhookEndpoints::Ensure(const ApiRequest& request,
                                                     const Params& /*params*/) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(request.body, &doc));
  const JsonFields fields(doc);
  GATEWAY_ASSIGN_OR_RETURN(std::string url, fields.RequiredString("url"));
  GATEWAY_RETURN_IF_ERROR(ValidateUrl(url));
  GATEWAY_ASSIGN_OR_RETURN(std::vector<std::string> events,
                           ReadEvents(fields, true));
  GATEWAY_ASSIGN_OR_RETURN(auto description, ReadDescription(fields));
  GATEWAY_ASSIGN_OR_RETURN(auto enabled, fields.OptionalBool("enabled"));
  GATEWAY_ASSIGN_OR_RETURN(auto return_secret,
                           fields.OptionalBool("returnSigningSecret"));
  GATEWAY_ASSIGN_OR_RETURN(auto rotate_if_unavailable,
                           fields.OptionalBool("rotateSecretIfUnavailable"));
  GATEWAY_ASSIGN_OR_RETURN(auto rotate, fields.OptionalBool("rotateSecret"));
  const int64_t now_ms = absl::ToUnixMillis(clock_());
  MutexLock lock(&mu_);
  Endpoint* endpoint = nullptr;
  for (Endpoint& e : endpoints_) {
    if (e.url == url) endpoint = &e;
  }
  std::string source;
  bool available = false;
  if (endpoint == nullptr) {
    Endpoint created;
    created.id = absl::StrCat("whk_", absl::Uniform<uint64_t>(bitgen_));
    created.url = url;
    created.events = std::move(events);
    created.description = description.value_or("");
    created.enabled = enabled.value_or(true);
    created.created_at_ms = created.updated_at_ms = now_ms;
    Rotate(created);
    endpoints_.push_back(std::move(created));
    endpoint = &endpoints_.back();
    source = "created";
    available = true;
  } else {
    const bool changed =
        endpoint->events != events ||
        (description.has_value() && endpoint->description != *description) ||
        (enabled.has_value() && endpoint->enabled != *enabled);
    endpoint->events = std::move(events);
    if (description.has_value()) endpoint->description = *description;
    if (enabled.has_value()) endpoint->enabled = *enabled;
    const bool rotating = rotate.value_or(false) ||
                          (return_secret.value_or(false) &&
                           rotate_if_unavailable.value_or(false));
    if (rotating) Rotate(*endpoint);
    if (changed || rotating) endpoint->updated_at_ms = now_ms;
    source = rotating ? (changed ? "updated_rotated" : "rotated")
                      : (changed ? "updated" : "unchanged");
    available = rotating;
  }
  const bool unavailable_asked = !available && return_secret.value_or(false);
  return DataEnvelope([&](JsonWriter& writer) {
    WriteKey(writer, "endpoint");
    writer.StartObject();
    WriteEndpoint(writer, *endpoint, available);
    writer.EndObject();
    WriteBool(writer, "signingSecretAvailable", available);
    if (unavailable_asked) {
      WriteString(writer, "signingSecretUnavailableReason",
                  "EXISTING_SECRET_NOT_RETURNABLE");
      WriteString(
          writer, "nextAction",
          "CALL_ROTATE_SECRET_OR_RETRY_ENSURE_WITH_ROTATE_SECRET_IF_UNAVAILABLE");
    }
    WriteString(writer, "source", source);
  });
}

absl::StatusOr<std::string> WebhookEndpoints::EventTypes(
    const ApiRequest& /*request*/, const Params& /*params*/) {
  return DataEnvelope([](JsonWriter& writer) {
    WriteKey(writer, "events");
    writer.StartArray();
    const std::vector<std::string>& names = WebhookEventNames();
    for (size_t i = 0; i < names.size(); ++i) {
      writer.StartObject();
      WriteString(writer, "name", names[i]);
      WriteInt(writer, "code", static_cast<int64_t>(i + 1));
      WriteString(writer, "description", names[i]);
      writer.EndObject();
    }
    writer.EndArray();
  });
}

std::vector<RegisteredWebhookEndpoint> WebhookEndpoints::Enabled() const {
  MutexLock lock(&mu_);
  std::vector<RegisteredWebhookEndpoint> out;
  for (const Endpoint& endpoint : endpoints_) {
    if (!endpoint.enabled) continue;
    out.push_back(
        {endpoint.id, endpoint.url, endpoint.events, endpoint.secret});
  }
  return out;
}

}  // namespace clink_gateway::emulator
