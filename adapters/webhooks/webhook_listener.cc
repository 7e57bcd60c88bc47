#include "adapters/webhooks/webhook_listener.h"

#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "adapters/webhooks/webhook_payload.h"
#include "civetweb.h"
#include "common/listener_wake.h"
#include "common/logging.h"

namespace clink_gateway::webhooks {
namespace {

constexpr absl::string_view kUnknownMerchant = "unknown";
// civetweb's cap on the request line and headers.
constexpr char kMaxRequestHeaderBytes[] = "16384";

std::optional<absl::string_view> Header(mg_connection* conn,
                                        const char* name) {
  const char* value = mg_get_header(conn, name);  // Case-insensitive.
  if (value == nullptr) return std::nullopt;
  return absl::string_view(value);
}

// application/json, any case, parameters (charset) allowed.
bool IsJson(std::optional<absl::string_view> content_type) {
  if (!content_type.has_value()) return false;
  absl::string_view media = *content_type;
  media = media.substr(0, media.find(';'));
  return absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(media),
                                "application/json");
}

enum class BodyRead { kComplete, kTooLarge, kBroken };

// Reads the body (Content-Length or chunked), never buffering more than
// kMaxWebhookBodyBytes.
BodyRead ReadBody(mg_connection* conn, std::string* body) {
  char buffer[16384];
  for (;;) {
    const int n = mg_read(conn, buffer, sizeof(buffer));
    if (n < 0) return BodyRead::kBroken;  // Timeout, bad chunk, reset.
    if (n == 0) return BodyRead::kComplete;
    if (body->size() + static_cast<size_t>(n) > kMaxWebhookBodyBytes) {
      return BodyRead::kTooLarge;
    }
    body->append(buffer, static_cast<size_t>(n));
  }
}

}  // namespace

absl::string_view WebhookResultName(WebhookResult result) {
  switch (result) {
    case WebhookResult::kAccepted:
      return "accepted";
    case WebhookResult::kDuplicate:
      return "duplicate";
    case WebhookResult::kMalformed:
      return "malformed";
    case WebhookResult::kBadSignature:
      return "bad_signature";
    case WebhookResult::kStaleTimestamp:
      return "stale_timestamp";
    case WebhookResult::kUnknownMerchant:
      return "unknown_merchant";
    case WebhookResult::kNotFound:
      return "not_found";
    case WebhookResult::kMethodNotAllowed:
      return "method_not_allowed";
    case WebhookResult::kUnsupportedMediaType:
      return "unsupported_media_type";
    case WebhookResult::kTooLarge:
      return "too_large";
    case WebhookResult::kStoreUnavailable:
      return "store_unavailable";
  }
  return "malformed";
}

struct WebhookListener::Reply {
  WebhookResult result;
  int status;
  std::string text;
};

WebhookListener::WebhookListener(Options options,
                                 const WebhookSecrets& secrets,
                                 events::EventStore& store)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : SystemClock()),
      secrets_(secrets),
      store_(store) {}

absl::StatusOr<std::unique_ptr<WebhookListener>> WebhookListener::Start(
    Options options, const WebhookSecrets& secrets,
    events::EventStore& store) {
  const size_t colon = options.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(options.listen).substr(colon + 1),
                        &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--webhook_listen: \"", options.listen, "\" is not host:port"));
  }
  if (options.num_threads < 1) {
    return absl::InvalidArgumentError("webhook listener: num_threads < 1");
  }
  if (options.timestamp_tolerance <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--webhook_timestamp_tolerance must be positive");
  }
  std::unique_ptr<WebhookListener> listener(
      new WebhookListener(std::move(options), secrets, store));
  const Options& opts = listener->options_;
  // civetweb's "listening_ports" takes a bare port for all interfaces.
  absl::string_view host = absl::string_view(opts.listen).substr(0, colon);
  const std::string listening =
      host.empty() || host == "0.0.0.0" || host == "*"
          ? std::to_string(port)
          : opts.listen;
  const std::string num_threads = std::to_string(opts.num_threads);
  const std::string timeout_ms =
      std::to_string(absl::ToInt64Milliseconds(opts.request_timeout));
  // clang-format off
  const char* civetweb_options[] = {
      "listening_ports", listening.c_str(),
      "num_threads", num_threads.c_str(),
      "request_timeout_ms", timeout_ms.c_str(),
      "enable_keep_alive", "no",
      "max_request_size", kMaxRequestHeaderBytes,
      nullptr};
  // clang-format on
  mg_callbacks callbacks{};
  mg_init_data init{&callbacks, listener.get(), civetweb_options};
  char error_text[256] = {};
  mg_error_data error{nullptr, error_text, sizeof(error_text)};
  [[maybe_unused]] static const unsigned kCivetwebFeatures =
      mg_init_library(0);  // Once.
  listener->civetweb_ = mg_start2(&init, &error);
  if (listener->civetweb_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve webhooks on ", opts.listen, ": ", error_text));
  }
  mg_set_request_handler(listener->civetweb_, "/", &WebhookListener::OnRequest,
                         listener.get());
  mg_server_port server_port{};
  if (mg_get_server_ports(listener->civetweb_, 1, &server_port) != 1) {
    listener->Stop();
    return absl::InternalError("civetweb reported no listening port");
  }
  listener->port_ = server_port.port;
  return listener;
}

WebhookListener::~WebhookListener() { Stop(); }

void WebhookListener::Stop(absl::Duration drain) {
  if (civetweb_ == nullptr) return;
  {
    MutexLock lock(&mu_);
    draining_ = true;
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return in_flight_ == 0;
    };
    mu_.AwaitWithTimeout(idle, drain);
  }
  mg_context* ctx = civetweb_;
  civetweb_ = nullptr;
  // mg_stop closes the listening socket and joins the workers; from its
  // start civetweb writes no more responses, hence the drain above.
  StopWithKnocks(KnockHost(options_.listen), port_, [ctx] { mg_stop(ctx); });
}

int WebhookListener::OnRequest(mg_connection* conn, void* self) {
  return static_cast<WebhookListener*>(self)->Handle(conn);
}

int WebhookListener::Handle(mg_connection* conn) {
  const absl::Time start = absl::Now();
  std::string merchant(kUnknownMerchant);
  std::string event_id;
  bool draining;
  {
    MutexLock lock(&mu_);
    draining = draining_;
    if (!draining) ++in_flight_;
  }
  const Reply reply =
      draining ? Reply{WebhookResult::kStoreUnavailable, 503, "draining\n"}
               : Process(conn, start, &merchant, &event_id);
  mg_response_header_start(conn, reply.status);
  mg_response_header_add(conn, "Content-Type", "text/plain; charset=utf-8",
                         -1);
  mg_response_header_add(conn, "Content-Length",
                         std::to_string(reply.text.size()).c_str(), -1);
  if (reply.result == WebhookResult::kMethodNotAllowed) {
    mg_response_header_add(conn, "Allow", "POST", -1);
  }
  mg_response_header_send(conn);
  mg_write(conn, reply.text.data(), reply.text.size());
  if (options_.observer != nullptr) {
    options_.observer->OnWebhookReceived(merchant, reply.result);
  }
  const std::string status = std::to_string(reply.status);
  Log(reply.status == 200 ? LogLevel::kInfo : LogLevel::kWarning,
      "webhook_received",
      {{"merchant", merchant},
       {"event_id", event_id},
       {"result", WebhookResultName(reply.result)},
       {"http_status", status}});
  if (!draining) {
    MutexLock lock(&mu_);
    --in_flight_;
  }
  return reply.status;
}

WebhookListener::Reply WebhookListener::Process(mg_connection* conn,
                                                absl::Time start,
                                                std::string* merchant,
                                                std::string* event_id) {
  const mg_request_info* info = mg_get_request_info(conn);
  absl::string_view path =
      info->local_uri_raw != nullptr ? info->local_uri_raw : "";
  std::optional<absl::string_view> named;  // The merchant the path names.
  if (path == kWebhookPath) {
    named = absl::string_view(options_.default_merchant);
  } else if (absl::ConsumePrefix(&path, kWebhookPath) &&
             absl::ConsumePrefix(&path, "/") && !path.empty() &&
             !absl::StrContains(path, '/')) {
    named = path;
  }
  if (!named.has_value()) {
    return {WebhookResult::kNotFound, 404, "not found\n"};
  }
  // Only configured names become a label value.
  const bool configured = secrets_.Configured(*named);
  if (configured) *merchant = std::string(*named);
  if (absl::string_view(info->request_method) != "POST") {
    return {WebhookResult::kMethodNotAllowed, 405, "method not allowed\n"};
  }
  std::shared_ptr<const WebhookSecretSet> secrets =
      configured ? secrets_.Current(*named) : nullptr;
  if (secrets == nullptr) {
    return {WebhookResult::kUnknownMerchant, 404, "unknown merchant\n"};
  }
  if (!IsJson(Header(conn, "Content-Type"))) {
    return {WebhookResult::kUnsupportedMediaType, 415,
            "Content-Type must be application/json\n"};
  }
  const Reply too_large{WebhookResult::kTooLarge, 413,
                        "body larger than 1 MiB\n"};
  if (info->content_length > static_cast<long long>(kMaxWebhookBodyBytes)) {
    return too_large;
  }
  std::string body;
  switch (ReadBody(conn, &body)) {
    case BodyRead::kComplete:
      break;
    case BodyRead::kTooLarge:
      return too_large;
    case BodyRead::kBroken:
      return {WebhookResult::kMalformed, 400, "body: incomplete\n"};
  }

  SignedDelivery delivery;
  delivery.timestamp = Header(conn, kTimestampHeader);
  delivery.signature = Header(conn, kSignatureHeader);
  delivery.sign_type = Header(conn, kSignTypeHeader);
  delivery.body = body;
  const absl::Time now = clock_.Now();
  switch (VerifySignature(delivery, secrets->pointers(), now,
                          options_.timestamp_tolerance)) {
    case SignatureVerdict::kValid:
      break;
    case SignatureVerdict::kBadSignature:
      return {WebhookResult::kBadSignature, 401, "bad signature\n"};
    case SignatureVerdict::kStaleTimestamp:
      return {WebhookResult::kStaleTimestamp, 401,
              "timestamp outside the tolerance\n"};
  }
  absl::StatusOr<WebhookPayload> payload = ParseWebhookPayload(body);
  if (!payload.ok()) {
    // The message names the field, never its value.
    return {WebhookResult::kMalformed, 400,
            absl::StrCat(payload.status().message(), "\n")};
  }
  *event_id = payload->id;
  events::StoredEvent event;
  event.merchant = *merchant;
  event.event_id = payload->id;
  event.type = payload->type;
  event.create_time = payload->create_time;
  event.receive_time = now;
  event.body = std::move(body);
  absl::StatusOr<events::AppendResult> appended = store_.Append(event);
  if (!appended.ok()) {
    Log(LogLevel::kError, "webhook_store_failed",
        {{"merchant", *merchant},
         {"event_id", *event_id},
         {"error", appended.status().ToString()}});
    return {WebhookResult::kStoreUnavailable, 503, "store unavailable\n"};
  }
  if (options_.observer != nullptr) {
    options_.observer->OnWebhookIngested(*merchant, absl::Now() - start);
  }
  if (*appended == events::AppendResult::kDuplicate) {
    return {WebhookResult::kDuplicate, 200, "duplicate\n"};
  }
  if (options_.observer != nullptr) {
    options_.observer->OnWebhookEventStored(*merchant, event.type);
  }
  if (options_.event_listener != nullptr) {
    options_.event_listener->OnEventStored(event);
  }
  return {WebhookResult::kAccepted, 200, "accepted\n"};
}

}  // namespace clink_gateway::webhooks
