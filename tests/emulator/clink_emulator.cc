#include "tests/emulator/clink_emulator.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <optional>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/civil_time.h"
#include "civetweb.h"
#include "common/status_macros.h"
#include "rapidjson/document.h"
#include "tests/emulator/clink_json.h"

namespace clink_gateway::emulator {
namespace {

// Clink's largest request: a 5 MB product image plus its multipart framing.
constexpr size_t kMaxBodyBytes = 6 << 20;
constexpr char kApiPrefix[] = "/api";
constexpr char kAdminPrefix[] = "/__emulator/";
// What kMalformedJson answers: a success envelope cut off in the middle.
constexpr char kMalformedJsonBody[] =
    "{\"code\":200,\"msg\":\"success\",\"data\":{\"orderId\":\"ord_";

struct Reply {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::string retry_after;  // Sent as Retry-After when not empty.
};

// `time` as an RFC 7231 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
// Written out by hand: strftime's %a and %b follow the process's locale.
std::string HttpDate(absl::Time time) {
  static constexpr const char* kWeekdays[] = {"Mon", "Tue", "Wed", "Thu",
                                              "Fri", "Sat", "Sun"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};
  const absl::CivilSecond civil =
      absl::ToCivilSecond(time, absl::UTCTimeZone());
  const int weekday = static_cast<int>(absl::GetWeekday(civil));  // Mon = 0.
  return absl::StrFormat("%s, %02d %s %04d %02d:%02d:%02d GMT",
                         kWeekdays[weekday], civil.day(),
                         kMonths[civil.month() - 1], civil.year(), civil.hour(),
                         civil.minute(), civil.second());
}

// Sends `reply`, dated `now`, and returns its status, as civetweb request
// handlers do. civetweb adds a Date header from the system clock only when the
// handler has not added one, so this is the response's only Date.
int Send(mg_connection* conn, absl::Time now, const Reply& reply) {
  mg_response_header_start(conn, reply.status);
  const std::string date = HttpDate(now);
  mg_response_header_add(conn, "Date", date.c_str(), -1);
  mg_response_header_add(conn, "Content-Type", reply.content_type.c_str(), -1);
  mg_response_header_add(conn, "Content-Length",
                         std::to_string(reply.body.size()).c_str(), -1);
  if (!reply.retry_after.empty()) {
    mg_response_header_add(conn, "Retry-After", reply.retry_after.c_str(), -1);
  }
  mg_response_header_send(conn);
  mg_write(conn, reply.body.data(), reply.body.size());
  return reply.status;
}

Reply TextReply(int status, std::string text) {
  return Reply{status, "text/plain; charset=utf-8", std::move(text), ""};
}

std::string Header(mg_connection* conn, const char* name) {
  const char* value = mg_get_header(conn, name);  // Case-insensitive.
  return value == nullptr ? std::string() : std::string(value);
}

absl::StatusOr<std::string> ReadBody(mg_connection* conn) {
  std::string body;
  char buffer[8192];
  for (;;) {
    const int n = mg_read(conn, buffer, sizeof(buffer));
    if (n <= 0) break;
    body.append(buffer, static_cast<size_t>(n));
    if (body.size() > kMaxBodyBytes) {
      return absl::ResourceExhaustedError("request body larger than 6 MiB");
    }
  }
  return body;
}

// Resets the TCP connection behind `info` so the client sees RST rather than
// FIN. civetweb does not expose the socket, so this looks for the process's
// socket whose local and peer addresses are the connection's, and disconnects
// it with connect(AF_UNSPEC): Linux then sends RST and the descriptor stays
// valid for civetweb to close later. Returns false if the socket was not found
// (the caller then falls back to a plain close).
bool ResetConnection(const mg_request_info& info) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return false;
  bool reset = false;
  while (dirent* entry = readdir(dir)) {
    int fd = -1;
    if (!absl::SimpleAtoi(entry->d_name, &fd)) continue;
    sockaddr_storage peer{};
    sockaddr_storage local{};
    socklen_t peer_size = sizeof(peer);
    socklen_t local_size = sizeof(local);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_size) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_size) !=
            0 ||
        peer.ss_family != AF_INET || local.ss_family != AF_INET) {
      continue;
    }
    const auto& peer4 = reinterpret_cast<const sockaddr_in&>(peer);
    const auto& local4 = reinterpret_cast<const sockaddr_in&>(local);
    char peer_address[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &peer4.sin_addr, peer_address, sizeof(peer_address));
    if (ntohs(peer4.sin_port) != info.remote_port ||
        ntohs(local4.sin_port) != info.server_port ||
        absl::string_view(peer_address) != info.remote_addr) {
      continue;
    }
    sockaddr unspecified{};
    unspecified.sa_family = AF_UNSPEC;
    reset = connect(fd, &unspecified, sizeof(unspecified)) == 0;
    break;
  }
  closedir(dir);
  return reset;
}

// Opens and closes a connection to 127.0.0.1:port.
void Poke(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address));
  close(fd);
}

// mg_stop(), minus civetweb's wait: its listener thread polls with a 2 s
// timeout before it notices the stop flag, so throwaway connections wake it up.
void StopCivetweb(mg_context* ctx, int port) {
  absl::Notification stopped;
  std::thread waker([&stopped, port] {
    while (!stopped.WaitForNotificationWithTimeout(absl::Milliseconds(20)))
      Poke(port);
  });
  mg_stop(ctx);
  stopped.Notify();
  waker.join();
}

absl::StatusOr<Fault::Kind> ParseFaultKind(absl::string_view name) {
  if (name == "latency") return Fault::Kind::kLatency;
  if (name == "http_error") return Fault::Kind::kHttpError;
  if (name == "rate_limit") return Fault::Kind::kRateLimit;
  if (name == "drop_connection") return Fault::Kind::kDropConnection;
  if (name == "reset_connection") return Fault::Kind::kResetConnection;
  if (name == "malformed_json") return Fault::Kind::kMalformedJson;
  if (name == "process_then_drop") return Fault::Kind::kProcessThenDrop;
  return absl::InvalidArgumentError(
      "kind must be one of latency, http_error, rate_limit, drop_connection, "
      "reset_connection, malformed_json, process_then_drop");
}

// Parses the body of POST /__emulator/faults (see clink_emulator.h).
absl::StatusOr<Fault> ParseFault(absl::string_view body) {
  rapidjson::Document doc;
  GATEWAY_RETURN_IF_ERROR(ParseJsonObject(body, &doc));
  const JsonFields fields(doc);
  Fault fault;
  GATEWAY_ASSIGN_OR_RETURN(std::string kind, fields.RequiredString("kind"));
  GATEWAY_ASSIGN_OR_RETURN(fault.kind, ParseFaultKind(kind));
  GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> count,
                           fields.OptionalInt("count"));
  fault.count = static_cast<int>(count.value_or(1));
  GATEWAY_ASSIGN_OR_RETURN(fault.path_prefix,
                           fields.OptionalString("pathPrefix"));
  GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> latency_ms,
                           fields.OptionalInt("latencyMs"));
  fault.latency = absl::Milliseconds(latency_ms.value_or(0));
  GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> status,
                           fields.OptionalInt("httpStatus"));
  fault.http_status = static_cast<int>(status.value_or(503));
  if (fault.http_status < 100 || fault.http_status > 599) {
    return absl::InvalidArgumentError("httpStatus must be an HTTP status code");
  }
  GATEWAY_ASSIGN_OR_RETURN(std::string retry_after,
                           fields.OptionalString("retryAfter"));
  if (!retry_after.empty()) fault.retry_after = retry_after;
  return fault;
}

bool IsIpv6(const std::string& address) {
  return address.find(':') != std::string::npos;
}

constexpr char kDefaultAccount[] = "default";

// The accounts `options` describes (merchants, then "default" for api_keys),
// checked. Error messages never contain key values.
absl::StatusOr<std::vector<MerchantAccount>> CheckAccounts(
    const ClinkEmulator::Options& options) {
  std::vector<MerchantAccount> accounts = options.merchants;
  if (!options.api_keys.empty()) {
    accounts.push_back(MerchantAccount{kDefaultAccount, options.api_keys});
  }
  absl::flat_hash_map<std::string, std::string> owner_by_key;
  absl::flat_hash_set<std::string> names;
  for (const MerchantAccount& account : accounts) {
    if (account.name.empty()) {
      return absl::InvalidArgumentError("merchant account names must be set");
    }
    if (!names.insert(account.name).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("two merchant accounts are named \"", account.name, "\"",
                       account.name == kDefaultAccount
                           ? " (Options::api_keys is \"default\")"
                           : ""));
    }
    for (size_t i = 0; i < account.api_keys.size(); ++i) {
      const std::string& key = account.api_keys[i];
      if (key.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("API key #", i + 1, " of merchant \"", account.name,
                         "\" is empty"));
      }
      const auto [it, inserted] = owner_by_key.emplace(key, account.name);
      if (!inserted && it->second != account.name) {
        return absl::InvalidArgumentError(
            absl::StrCat("API key #", i + 1, " of merchant \"", account.name,
                         "\" is also a key of merchant \"", it->second, "\""));
      }
    }
  }
  if (owner_by_key.empty()) {
    return absl::InvalidArgumentError(
        "ClinkEmulator needs at least one API key");
  }
  return accounts;
}

}  // namespace

struct ClinkEmulator::FaultPlan {
  absl::Duration latency = absl::ZeroDuration();
  std::optional<Fault> fault;  // The first matching non-latency fault.
};

ClinkEmulator::ClinkEmulator(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ClinkEmulator>> ClinkEmulator::Start(
    Options options) {
  GATEWAY_ASSIGN_OR_RETURN(std::vector<MerchantAccount> accounts,
                           CheckAccounts(options));
  if (options.num_threads < 1)
    return absl::InvalidArgumentError("num_threads must be >= 1");
  if (options.port < 0 || options.port > 65535) {
    return absl::InvalidArgumentError("port must be in [0, 65535]");
  }
  const bool tls = !options.tls_cert_pem_path.empty();
  if (!tls && IsIpv6(options.listen_address)) {
    return absl::InvalidArgumentError(
        "plain HTTP needs an IPv4 listen address (Debian's civetweb has no "
        "IPv6)");
  }
  if (!options.clock) options.clock = [] { return absl::Now(); };
  for (const auto& [merchant, target] : options.webhook_targets) {
    const bool known = std::any_of(
        accounts.begin(), accounts.end(),
        [&](const MerchantAccount& a) { return a.name == merchant; });
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "webhook_targets names no merchant account \"", merchant, "\""));
    }
  }
  std::unique_ptr<ClinkEmulator> emulator(
      new ClinkEmulator(std::move(options)));
  const Options& opts = emulator->options_;
  {
    WebhookSender::Options webhook_options = opts.webhooks;
    ClinkEmulator* raw = emulator.get();
    webhook_options.clock = [raw] { return raw->Now(); };
    webhook_options.registered_targets = [raw](const std::string& merchant,
                                               const std::string& type) {
      return raw->RegisteredWebhookTargets(merchant, type);
    };
    GATEWAY_ASSIGN_OR_RETURN(emulator->webhooks_,
                             WebhookSender::Start(std::move(webhook_options)));
    for (const auto& [merchant, target] : opts.webhook_targets) {
      GATEWAY_RETURN_IF_ERROR(emulator->webhooks_->SetTarget(merchant, target));
    }
  }
  {
    ClinkEmulator* raw = emulator.get();
    absl::MutexLock lock(&emulator->keys_mu_);
    for (MerchantAccount& account : accounts) {
      const int index = static_cast<int>(emulator->accounts_.size());
      MerchantApi::Options api_options;
      api_options.clock = [raw] { return raw->Now(); };
      api_options.http_status_errors = opts.http_status_errors;
      api_options.on_event = [raw, merchant = account.name](
                                 const std::string& type, std::string json) {
        // The emulator writes valid objects, so this cannot fail.
        raw->webhooks_->Publish(merchant, type, json).IgnoreError();
      };
      emulator->accounts_.push_back(
          Account{std::move(account.name),
                  std::make_unique<MerchantApi>(std::move(api_options))});
      for (std::string& key : account.api_keys) {
        emulator->account_by_key_.emplace(std::move(key), index);
      }
    }
  }

  // With TLS, civetweb listens on loopback behind the TLS frontend (see
  // tls_frontend.h).
  const std::string listening_ports =
      tls ? "127.0.0.1:0" : absl::StrCat(opts.listen_address, ":", opts.port);
  const std::string num_threads = std::to_string(opts.num_threads);
  const std::string keep_alive_ms =
      std::to_string(absl::ToInt64Milliseconds(opts.keep_alive_timeout));
  // clang-format off
  const char* civetweb_options[] = {
      "listening_ports", listening_ports.c_str(),
      "num_threads", num_threads.c_str(),
      "enable_keep_alive", "yes",
      "keep_alive_timeout_ms", keep_alive_ms.c_str(),
      "tcp_nodelay", "1",  // Headers and body go out in separate writes.
      nullptr};
  // clang-format on
  mg_callbacks callbacks{};
  callbacks.init_connection = &ClinkEmulator::OnInitConnection;
  mg_init_data init{&callbacks, emulator.get(), civetweb_options};
  char error_text[256] = {};
  mg_error_data error{nullptr, error_text, sizeof(error_text)};
  [[maybe_unused]] static const unsigned kCivetwebFeatures =
      mg_init_library(0);  // Once.
  emulator->civetweb_ = mg_start2(&init, &error);
  if (emulator->civetweb_ == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot start civetweb on ", listening_ports, ": ", error_text));
  }
  mg_set_request_handler(emulator->civetweb_, "/", &ClinkEmulator::OnRequest,
                         emulator.get());
  mg_server_port server_port{};
  if (mg_get_server_ports(emulator->civetweb_, 1, &server_port) != 1) {
    return absl::InternalError("civetweb reported no listening port");
  }
  emulator->civetweb_port_ = server_port.port;
  emulator->port_ = server_port.port;

  if (tls) {
    TlsFrontend::Options tls_options;
    tls_options.listen_address = opts.listen_address;
    tls_options.port = opts.port;
    tls_options.cert_pem_path = opts.tls_cert_pem_path;
    tls_options.backend_port = emulator->civetweb_port_;
    ClinkEmulator* raw = emulator.get();
    tls_options.on_accept = [raw] { raw->connections_accepted_.fetch_add(1); };
    tls_options.on_close = [raw] {
      absl::MutexLock lock(&raw->closed_mu_);
      ++raw->connections_closed_;
    };
    GATEWAY_ASSIGN_OR_RETURN(emulator->tls_,
                             TlsFrontend::Start(std::move(tls_options)));
    emulator->port_ = emulator->tls_->port();
  }
  return emulator;
}

ClinkEmulator::~ClinkEmulator() {
  stopping_.Notify();
  tls_.reset();
  if (civetweb_ != nullptr) StopCivetweb(civetweb_, civetweb_port_);
}

bool ClinkEmulator::WaitForConnectionsClosed(int64_t n,
                                             absl::Duration timeout) const {
  if (tls_ == nullptr) return false;
  struct Target {
    const int64_t* closed;
    int64_t n;
  } target{&connections_closed_, n};
  absl::MutexLock lock(&closed_mu_);
  return closed_mu_.AwaitWithTimeout(
      absl::Condition(
          +[](Target* t) { return *t->closed >= t->n; }, &target),
      timeout);
}

std::string ClinkEmulator::base_url() const {
  std::string host = options_.listen_address;
  if (host == "0.0.0.0") host = "127.0.0.1";
  if (host == "::") host = "::1";
  if (IsIpv6(host)) host = absl::StrCat("[", host, "]");
  return absl::StrCat(tls_ != nullptr ? "https" : "http", "://", host, ":",
                      port_, kApiPrefix);
}

void ClinkEmulator::SetFault(const Fault& fault) {
  absl::MutexLock lock(&mu_);
  faults_.push_back(fault);
}

void ClinkEmulator::ClearFaults() {
  absl::MutexLock lock(&mu_);
  faults_.clear();
}

std::vector<WebhookTarget> ClinkEmulator::RegisteredWebhookTargets(
    const std::string& merchant, const std::string& type) const {
  std::vector<WebhookTarget> targets;
  for (RegisteredWebhookEndpoint& endpoint :
       EnabledWebhookEndpoints(merchant)) {
    if (std::find(endpoint.events.begin(), endpoint.events.end(), type) ==
        endpoint.events.end()) {
      continue;
    }
    std::string url = std::move(endpoint.url);
    const size_t scheme_end = url.find("://");
    const size_t origin_end = scheme_end == std::string::npos
                                  ? std::string::npos
                                  : url.find('/', scheme_end + 3);
    const auto origin = options_.webhook_endpoint_origins.find(
        url.substr(0, origin_end));
    if (origin != options_.webhook_endpoint_origins.end()) {
      url = origin_end == std::string::npos
                ? origin->second
                : absl::StrCat(origin->second, url.substr(origin_end));
    }
    targets.push_back({std::move(url), std::move(endpoint.signing_secret)});
  }
  return targets;
}

std::vector<RegisteredWebhookEndpoint> ClinkEmulator::EnabledWebhookEndpoints(
    absl::string_view merchant) const {
  for (const Account& account : accounts_) {  // Fixed after Start.
    if (account.name == merchant) return account.api->EnabledWebhookEndpoints();
  }
  return {};
}

absl::Status ClinkEmulator::SetApiKeys(absl::string_view merchant,
                                       std::vector<std::string> keys) {
  const int index = AccountNamed(merchant);
  if (index < 0) {
    return absl::NotFoundError(
        absl::StrCat("no merchant account named \"", merchant, "\""));
  }
  absl::MutexLock lock(&keys_mu_);
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "API key #", i + 1, " for merchant \"", merchant, "\" is empty"));
    }
    const auto it = account_by_key_.find(keys[i]);
    if (it != account_by_key_.end() && it->second != index) {
      return absl::InvalidArgumentError(absl::StrCat(
          "API key #", i + 1, " for merchant \"", merchant,
          "\" is a key of merchant \"", accounts_[it->second].name, "\""));
    }
  }
  absl::erase_if(account_by_key_,
                 [index](const auto& entry) { return entry.second == index; });
  for (std::string& key : keys) account_by_key_.emplace(std::move(key), index);
  return absl::OkStatus();
}

void ClinkEmulator::SetClockOffset(absl::Duration offset) {
  clock_offset_ns_.store(absl::ToInt64Nanoseconds(offset));
}

int ClinkEmulator::AccountNamed(absl::string_view merchant) const {
  for (size_t i = 0; i < accounts_.size(); ++i) {
    if (accounts_[i].name == merchant) return static_cast<int>(i);
  }
  return -1;
}

absl::Status ClinkEmulator::SetWebhookTarget(absl::string_view merchant,
                                             WebhookTarget target) {
  if (AccountNamed(merchant) < 0) {
    return absl::NotFoundError(
        absl::StrCat("no merchant account named \"", merchant, "\""));
  }
  return webhooks_->SetTarget(std::string(merchant), std::move(target));
}

absl::StatusOr<std::string> ClinkEmulator::EmitWebhookEvent(
    absl::string_view merchant, const std::string& type,
    absl::string_view object_json) {
  if (AccountNamed(merchant) < 0) {
    return absl::NotFoundError(
        absl::StrCat("no merchant account named \"", merchant, "\""));
  }
  if (type.empty()) return absl::InvalidArgumentError("type is required");
  return webhooks_->Publish(std::string(merchant), type, object_json);
}

absl::Status ClinkEmulator::SetWebhookFault(const WebhookFault& fault) {
  return webhooks_->SetFault(fault);
}

void ClinkEmulator::ClearWebhookFaults() { webhooks_->ClearFaults(); }

WebhookStats ClinkEmulator::webhook_stats() const { return webhooks_->stats(); }

bool ClinkEmulator::WaitForWebhooksIdle(absl::Duration timeout) const {
  return webhooks_->WaitForIdle(timeout);
}

absl::Time ClinkEmulator::Now() const {
  return options_.clock() + absl::Nanoseconds(clock_offset_ns_.load());
}

std::vector<RecordedRequest> ClinkEmulator::requests() const {
  absl::MutexLock lock(&mu_);
  return std::vector<RecordedRequest>(requests_.begin(), requests_.end());
}

void ClinkEmulator::ClearRequests() {
  absl::MutexLock lock(&mu_);
  requests_.clear();
  request_count_ = 0;
  requests_by_key_.clear();
}

int64_t ClinkEmulator::requests_with_key(absl::string_view api_key) const {
  absl::MutexLock lock(&mu_);
  const auto it = requests_by_key_.find(api_key);
  return it == requests_by_key_.end() ? 0 : it->second;
}

bool ClinkEmulator::WaitForRequests(int64_t n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto reached = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return request_count_ >= n;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

int ClinkEmulator::OnRequest(mg_connection* conn, void* self) {
  return static_cast<ClinkEmulator*>(self)->HandleRequest(conn);
}

int ClinkEmulator::OnInitConnection(const mg_connection* conn,
                                    void** /*conn_data*/) {
  auto* self =
      static_cast<ClinkEmulator*>(mg_get_user_data(mg_get_context(conn)));
  // With TLS the frontend counts client connections; civetweb only sees its
  // relays.
  if (self != nullptr && self->options_.tls_cert_pem_path.empty()) {
    self->connections_accepted_.fetch_add(1);
  }
  return 0;
}

ClinkEmulator::FaultPlan ClinkEmulator::TakeFaults(const std::string& path) {
  absl::MutexLock lock(&mu_);
  FaultPlan plan;
  for (auto it = faults_.begin(); it != faults_.end();) {
    const bool applies =
        absl::StartsWith(path, it->path_prefix) &&
        (it->kind == Fault::Kind::kLatency || !plan.fault.has_value());
    if (!applies) {
      ++it;
      continue;
    }
    if (it->kind == Fault::Kind::kLatency) {
      plan.latency += it->latency;
    } else {
      plan.fault = *it;
    }
    if (it->count > 0 && --it->count == 0) {
      it = faults_.erase(it);
    } else {
      ++it;
    }
  }
  return plan;
}

void ClinkEmulator::Record(RecordedRequest request) {
  absl::MutexLock lock(&mu_);
  ++request_count_;
  ++requests_by_key_[request.api_key];
  requests_.push_back(std::move(request));
  while (requests_.size() > options_.max_recorded_requests)
    requests_.pop_front();
}

int ClinkEmulator::AccountOf(const std::string& api_key) const {
  absl::MutexLock lock(&keys_mu_);
  const auto it = account_by_key_.find(api_key);
  return it == account_by_key_.end() ? -1 : it->second;
}

std::string ClinkEmulator::AuthError(const RecordedRequest& request,
                                     int* account) const {
  if (request.api_key.empty()) return "Unauthorized: missing X-API-KEY header";
  // Looked up again rather than taken from request.merchant: a latency fault
  // may have let a key change take effect since the request arrived.
  *account = AccountOf(request.api_key);
  if (*account < 0) return "Unauthorized: invalid API key";
  if (request.timestamp.empty())
    return "Unauthorized: missing X-Timestamp header";
  int64_t timestamp_ms = 0;
  if (!absl::SimpleAtoi(request.timestamp, &timestamp_ms)) {
    return "Unauthorized: X-Timestamp must be Unix time in milliseconds";
  }
  const absl::Duration skew =
      absl::AbsDuration(Now() - absl::FromUnixMillis(timestamp_ms));
  if (skew > options_.timestamp_tolerance) {
    return absl::StrCat(
        "Unauthorized: X-Timestamp is outside the allowed window of ",
        absl::FormatDuration(options_.timestamp_tolerance));
  }
  return "";
}

int ClinkEmulator::HandleRequest(mg_connection* conn) {
  const mg_request_info* info = mg_get_request_info(conn);
  const std::string method =
      info->request_method != nullptr ? info->request_method : "";
  const std::string path = info->local_uri != nullptr ? info->local_uri : "/";
  absl::StatusOr<std::string> body = ReadBody(conn);
  if (!body.ok())
    return Send(conn, Now(),
                TextReply(413, std::string(body.status().message())));
  if (absl::StartsWith(path, kAdminPrefix))
    return HandleAdmin(conn, method, path, *body);
  if (path != kApiPrefix &&
      !absl::StartsWith(path, absl::StrCat(kApiPrefix, "/"))) {
    return Send(conn, Now(), TextReply(404, "Not Found"));
  }

  RecordedRequest request;
  request.method = method;
  request.path = path;
  request.query_string =
      info->query_string != nullptr ? info->query_string : "";
  request.body = *std::move(body);
  request.api_key = Header(conn, "X-API-KEY");
  request.timestamp = Header(conn, "X-Timestamp");
  request.content_type = Header(conn, "Content-Type");
  request.user_agent = Header(conn, "User-Agent");
  request.request_id = Header(conn, "X-Request-Id");
  if (!request.api_key.empty()) {
    if (const int account = AccountOf(request.api_key); account >= 0) {
      request.merchant = accounts_[account].name;
    }
  }
  Record(request);

  const FaultPlan plan = TakeFaults(path);
  if (plan.latency > absl::ZeroDuration()) {
    stopping_.WaitForNotificationWithTimeout(plan.latency);
  }
  bool drop_answer = false;
  if (plan.fault.has_value()) {
    const Fault& fault = *plan.fault;
    switch (fault.kind) {
      case Fault::Kind::kHttpError:
        return Send(
            conn, Now(),
            TextReply(fault.http_status, absl::StrCat("emulated fault: HTTP ",
                                                      fault.http_status)));
      case Fault::Kind::kRateLimit: {
        Reply reply = TextReply(429, "Too Many Requests");
        reply.retry_after = fault.retry_after;
        return Send(conn, Now(), reply);
      }
      case Fault::Kind::kResetConnection:
        ResetConnection(
            *info);  // Falls back to the plain close below if not found.
        mg_disable_connection_keep_alive(conn);
        return 499;
      case Fault::Kind::kDropConnection:
        // No response bytes; with keep-alive off civetweb closes the socket
        // (FIN) on return.
        mg_disable_connection_keep_alive(conn);
        return 499;
      case Fault::Kind::kMalformedJson:
        return Send(conn, Now(),
                    Reply{200, "application/json", kMalformedJsonBody, ""});
      case Fault::Kind::kProcessThenDrop:
        drop_answer = true;  // After the request is handled, below.
        break;
      case Fault::Kind::kLatency:
        break;  // Never stored in plan.fault.
    }
  }

  int account = -1;
  if (const std::string auth_error = AuthError(request, &account);
      !auth_error.empty()) {
    return Send(conn, Now(), TextReply(401, auth_error));
  }
  const ApiResponse response = accounts_[account].api->Handle(
      ApiRequest{method, path.substr(sizeof(kApiPrefix) - 1),
                 request.query_string, request.body, request.content_type});
  if (drop_answer) {
    // Processed, but the answer never leaves: as kDropConnection.
    mg_disable_connection_keep_alive(conn);
    return 499;
  }
  return Send(
      conn, Now(),
      Reply{response.http_status, "application/json", response.body, ""});
}

int ClinkEmulator::HandleAdmin(mg_connection* conn, const std::string& method,
                               const std::string& path,
                               const std::string& body) {
  const std::string endpoint = path.substr(sizeof(kAdminPrefix) - 1);
  if (endpoint == "faults" && method == "POST") {
    absl::StatusOr<Fault> fault = ParseFault(body);
    if (!fault.ok())
      return Send(conn, Now(),
                  TextReply(400, std::string(fault.status().message())));
    SetFault(*fault);
    return Send(conn, Now(),
                Reply{200, "application/json",
                      "{\"code\":200,\"msg\":\"success\"}", ""});
  }
  if (endpoint == "faults" && method == "DELETE") {
    ClearFaults();
    return Send(conn, Now(),
                Reply{200, "application/json",
                      "{\"code\":200,\"msg\":\"success\"}", ""});
  }
  if (endpoint == "stats" && method == "GET") {
    int64_t request_count = 0;
    {
      absl::MutexLock lock(&mu_);
      request_count = request_count_;
    }
    const WebhookStats webhooks = webhook_stats();
    return Send(
        conn, Now(),
        Reply{200, "application/json",
              absl::StrCat(
                  "{\"connectionsAccepted\":", connections_accepted(),
                  ",\"requests\":", request_count,
                  ",\"webhookEvents\":", webhooks.events,
                  ",\"webhookDeliveryAttempts\":", webhooks.attempts,
                  ",\"webhookDeliveriesSucceeded\":", webhooks.succeeded,
                  ",\"webhookDeliveriesGaveUp\":", webhooks.gave_up,
                  ",\"webhookDeliveriesDropped\":", webhooks.dropped, "}"),
              ""});
  }
  if (absl::StartsWith(endpoint, "webhooks")) {
    const char* query = mg_get_request_info(conn)->query_string;
    const absl::StatusOr<std::string> answer = HandleWebhookAdmin(
        method, endpoint, query == nullptr ? "" : query, body);
    if (answer.ok()) {
      return Send(conn, Now(), Reply{200, "application/json", *answer, ""});
    }
    return Send(
        conn, Now(),
        TextReply(
            answer.status().code() == absl::StatusCode::kNotFound ? 404 : 400,
            std::string(answer.status().message())));
  }
  return Send(conn, Now(), TextReply(404, "Not Found"));
}

absl::StatusOr<std::string> ClinkEmulator::HandleWebhookAdmin(
    const std::string& method, const std::string& endpoint,
    absl::string_view query, const std::string& body) {
  static constexpr char kSuccess[] = "{\"code\":200,\"msg\":\"success\"}";
  if (endpoint == "webhooks" && method == "POST") {
    rapidjson::Document doc;
    GATEWAY_RETURN_IF_ERROR(ParseJsonObject(body, &doc));
    const JsonFields fields(doc);
    GATEWAY_ASSIGN_OR_RETURN(std::string merchant,
                             fields.OptionalString("merchant"));
    WebhookTarget target;
    GATEWAY_ASSIGN_OR_RETURN(target.url, fields.OptionalString("url"));
    GATEWAY_ASSIGN_OR_RETURN(target.secret, fields.OptionalString("secret"));
    GATEWAY_RETURN_IF_ERROR(SetWebhookTarget(
        merchant.empty() ? kDefaultAccount : merchant, std::move(target)));
    return std::string(kSuccess);
  }
  if (endpoint == "webhooks/events" && method == "POST") {
    std::string type;
    std::string merchant = kDefaultAccount;
    for (absl::string_view pair : absl::StrSplit(query, '&')) {
      const std::pair<std::string, std::string> kv =
          absl::StrSplit(pair, absl::MaxSplits('=', 1));
      if (kv.first == "type") type = kv.second;
      if (kv.first == "merchant") merchant = kv.second;
    }
    GATEWAY_ASSIGN_OR_RETURN(std::string id,
                             EmitWebhookEvent(merchant, type, body));
    return DataEnvelope(
        [&](JsonWriter& writer) { WriteString(writer, "eventId", id); });
  }
  if (endpoint == "webhooks/faults" && method == "POST") {
    rapidjson::Document doc;
    GATEWAY_RETURN_IF_ERROR(ParseJsonObject(body, &doc));
    const JsonFields fields(doc);
    WebhookFault fault;
    GATEWAY_ASSIGN_OR_RETURN(std::string kind, fields.RequiredString("kind"));
    if (kind == "duplicate") {
      fault.kind = WebhookFault::Kind::kDuplicate;
    } else if (kind == "out_of_order") {
      fault.kind = WebhookFault::Kind::kOutOfOrder;
    } else if (kind == "wrong_signature") {
      fault.kind = WebhookFault::Kind::kWrongSignature;
    } else {
      return absl::InvalidArgumentError(
          "kind must be one of duplicate, out_of_order, wrong_signature");
    }
    GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> count,
                             fields.OptionalInt("count"));
    GATEWAY_ASSIGN_OR_RETURN(std::optional<int64_t> copies,
                             fields.OptionalInt("copies"));
    // Clamped so a hostile value cannot overflow int; SetWebhookFault refuses
    // what is out of range.
    fault.count = static_cast<int>(std::clamp<int64_t>(
        count.value_or(fault.kind == WebhookFault::Kind::kOutOfOrder ? 2 : 1),
        0, 1000000));
    fault.copies =
        static_cast<int>(std::clamp<int64_t>(copies.value_or(2), 0, 1000));
    GATEWAY_RETURN_IF_ERROR(SetWebhookFault(fault));
    return std::string(kSuccess);
  }
  if (endpoint == "webhooks/faults" && method == "DELETE") {
    ClearWebhookFaults();
    return std::string(kSuccess);
  }
  return absl::NotFoundError("Not Found");
}

}  // namespace clink_gateway::emulator
