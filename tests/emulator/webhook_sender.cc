#include "tests/emulator/webhook_sender.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "curl/curl.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace clink_gateway::emulator {
namespace {

constexpr size_t kMaxUrlBytes = 2048;
constexpr size_t kMaxSecretBytes = 256;
constexpr char kSecretPrefix[] = "whsec_";
// Events whose resource Clink's docs always show under data.object, even in
// the legacy form (clink-api.md §13.2).
bool AlwaysUnderObject(absl::string_view type) {
  return absl::StartsWith(type, "dispute.") || type == "customer.verify";
}

// Deepest nesting accepted in an event's resource: rapidjson parses, compares
// and frees values recursively, so hostile depth must not reach it.
constexpr int kMaxJsonDepth = 64;

// Whether the arrays and objects of `json` nest at most `max_depth` deep
// (brackets inside strings do not count). Malformed text passes; the parser
// rejects it.
bool WithinDepth(absl::string_view json, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    const char c = json[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      if (++depth > max_depth) return false;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return true;
}

// Lower-case hex HMAC-SHA256 of `message` keyed with `key`.
std::string HmacSha256Hex(absl::string_view key, absl::string_view message) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(message.data()),
           message.size(), digest, &length) == nullptr) {
    abort();  // Only on allocation failure; an unsigned POST would mislead.
  }
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), length));
}

absl::Status CheckTarget(const WebhookTarget& target) {
  const std::string scheme =
      absl::AsciiStrToLower(target.url.substr(0, target.url.find("://") + 3));
  if ((scheme != "http://" && scheme != "https://") ||
      target.url.size() <= scheme.size() || target.url.size() > kMaxUrlBytes) {
    return absl::InvalidArgumentError(
        "url must be an http:// or https:// URL of at most 2048 bytes");
  }
  if (!absl::StartsWith(target.secret, kSecretPrefix) ||
      target.secret.size() <= sizeof(kSecretPrefix) - 1 ||
      target.secret.size() > kMaxSecretBytes) {
    return absl::InvalidArgumentError(
        "secret must be \"whsec_\" followed by at least one character, at "
        "most 256 bytes in all");
  }
  return absl::OkStatus();
}

// libcurl's progress callback: a non-zero answer aborts the transfer.
int AbortWhenStopping(void* stopping, curl_off_t, curl_off_t, curl_off_t,
                      curl_off_t) {
  return static_cast<std::atomic<bool>*>(stopping)->load() ? 1 : 0;
}

size_t DiscardBody(char* /*data*/, size_t size, size_t count, void* /*out*/) {
  return size * count;
}

}  // namespace

std::string WebhookSender::EventBody(WebhookPayloadForm form,
                                     absl::string_view id,
                                     absl::string_view type, absl::Time created,
                                     absl::string_view object_json) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  const auto key = [&writer](absl::string_view name) {
    writer.Key(name.data(), static_cast<rapidjson::SizeType>(name.size()));
  };
  const auto string = [&writer](absl::string_view value) {
    writer.String(value.data(), static_cast<rapidjson::SizeType>(value.size()));
  };
  const bool legacy = form == WebhookPayloadForm::kLegacy;
  writer.StartObject();
  key("id");
  string(id);
  key("type");
  string(type);
  key("object");
  string("event");
  key("created");
  if (legacy) {
    string(
        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", created, absl::UTCTimeZone()));
  } else {
    writer.Int64(absl::ToUnixMillis(created));
  }
  key("data");
  const bool wrapped = !legacy || AlwaysUnderObject(type);
  if (wrapped) {
    writer.StartObject();
    key("object");
  }
  writer.RawValue(object_json.data(), object_json.size(),
                  rapidjson::kObjectType);
  if (wrapped) writer.EndObject();
  writer.EndObject();
  return std::string(buffer.GetString(), buffer.GetSize());
}

WebhookSender::WebhookSender(Options options) : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<WebhookSender>> WebhookSender::Start(
    Options options) {
  if (options.max_attempts < 1) {
    return absl::InvalidArgumentError("max_attempts must be at least 1");
  }
  if (options.base_delay < absl::ZeroDuration() ||
      options.max_delay < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "base_delay and max_delay must not be negative");
  }
  if (options.timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("timeout must be positive");
  }
  if (options.max_pending == 0) {
    return absl::InvalidArgumentError("max_pending must be at least 1");
  }
  if (!options.clock) options.clock = [] { return absl::Now(); };
  // Thread-safe from libcurl 7.84 on, and a no-op after the first call.
  curl_global_init(CURL_GLOBAL_DEFAULT);
  std::unique_ptr<WebhookSender> sender(new WebhookSender(std::move(options)));
  sender->thread_ = std::thread([raw = sender.get()] { raw->Run(); });
  return sender;
}

WebhookSender::~WebhookSender() {
  stopping_.store(true);
  { MutexLock lock(&mu_); }  // Wakes Run() to see stopping_.
  thread_.join();
}

absl::Status WebhookSender::SetTarget(const std::string& merchant,
                                      WebhookTarget target) {
  MutexLock lock(&mu_);
  if (target.url.empty()) {
    targets_.erase(merchant);
    return absl::OkStatus();
  }
  if (absl::Status status = CheckTarget(target); !status.ok()) return status;
  targets_[merchant] = std::move(target);
  return absl::OkStatus();
}

absl::StatusOr<std::string> WebhookSender::Publish(
    const std::string& merchant, const std::string& type,
    absl::string_view object_json) {
  if (!WithinDepth(object_json, kMaxJsonDepth)) {
    return absl::InvalidArgumentError(
        "data must not nest arrays and objects more than 64 deep");
  }
  {
    // The body carries every byte, so rapidjson's leniencies are closed off:
    // it stops at a NUL byte (never valid in JSON text) as if the text ended
    // there ("{}\0junk"), and skips a leading 0xEF as the start of a UTF-8
    // byte-order mark ("\xEF{}"). The text must start with '{'.
    const size_t start = object_json.find_first_not_of(" \t\r\n");
    rapidjson::Document doc;
    doc.Parse<rapidjson::kParseNumbersAsStringsFlag>(object_json.data(),
                                                     object_json.size());
    if (start == absl::string_view::npos || object_json[start] != '{' ||
        object_json.find('\0') != absl::string_view::npos ||
        doc.HasParseError() || !doc.IsObject()) {
      return absl::InvalidArgumentError("data must be a JSON object");
    }
  }
  std::vector<WebhookTarget> targets;
  if (options_.registered_targets) {
    targets = options_.registered_targets(merchant, type);
  }
  const absl::Time created = options_.clock();
  MutexLock lock(&mu_);
  ++stats_.events;
  static constexpr char kAlphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string id = "evt_";
  for (int i = 0; i < 24; ++i) {
    id.push_back(kAlphabet[absl::Uniform(bitgen_, 0, 36)]);
  }
  if (const auto it = targets_.find(merchant); it != targets_.end()) {
    targets.insert(targets.begin(), it->second);
  }
  if (targets.empty()) return id;

  WebhookFault duplicate;
  const int copies = TakeFault(WebhookFault::Kind::kDuplicate, &duplicate)
                         ? duplicate.copies
                         : 1;
  const std::string body =
      EventBody(options_.form, id, type, created, object_json);
  std::vector<Delivery> deliveries;
  for (const WebhookTarget& target : targets) {
    for (int i = 0; i < copies; ++i) deliveries.push_back({body, target, 0});
  }
  const auto out_of_order =
      std::find_if(faults_.begin(), faults_.end(), [](const WebhookFault& f) {
        return f.kind == WebhookFault::Kind::kOutOfOrder;
      });
  if (out_of_order == faults_.end()) {
    EnqueueLocked(std::move(deliveries));
    return id;
  }
  if (held_deliveries_ + queue_.size() + deliveries.size() >
      options_.max_pending) {
    stats_.dropped += static_cast<int64_t>(deliveries.size());
    return id;
  }
  held_deliveries_ += deliveries.size();
  held_.push_back(std::move(deliveries));
  if (held_.size() >= static_cast<size_t>(out_of_order->count)) {
    faults_.erase(out_of_order);
    ReleaseHeldLocked(/*reversed=*/true);
  }
  return id;
}

void WebhookSender::EnqueueLocked(std::vector<Delivery> deliveries) {
  const absl::Time now = absl::Now();
  for (Delivery& delivery : deliveries) {
    if (queue_.size() + held_deliveries_ >= options_.max_pending) {
      ++stats_.dropped;
      continue;
    }
    queue_.emplace(QueueKey{now, next_sequence_++}, std::move(delivery));
  }
}

void WebhookSender::ReleaseHeldLocked(bool reversed) {
  if (reversed) std::reverse(held_.begin(), held_.end());
  std::vector<std::vector<Delivery>> held = std::move(held_);
  held_.clear();
  held_deliveries_ = 0;
  for (std::vector<Delivery>& event : held) EnqueueLocked(std::move(event));
}

absl::Status WebhookSender::SetFault(const WebhookFault& fault) {
  if (fault.count < 1) {
    return absl::InvalidArgumentError("count must be at least 1");
  }
  if (fault.kind == WebhookFault::Kind::kOutOfOrder && fault.count < 2) {
    return absl::InvalidArgumentError(
        "count must be at least 2 for out_of_order");
  }
  if (fault.kind == WebhookFault::Kind::kDuplicate &&
      (fault.copies < 2 || fault.copies > 100)) {
    return absl::InvalidArgumentError("copies must be between 2 and 100");
  }
  MutexLock lock(&mu_);
  faults_.push_back(fault);
  return absl::OkStatus();
}

void WebhookSender::ClearFaults() {
  MutexLock lock(&mu_);
  faults_.clear();
  ReleaseHeldLocked(/*reversed=*/false);
}

bool WebhookSender::TakeFault(WebhookFault::Kind kind, WebhookFault* fault) {
  for (auto it = faults_.begin(); it != faults_.end(); ++it) {
    if (it->kind != kind) continue;
    *fault = *it;
    if (--it->count == 0) faults_.erase(it);
    return true;
  }
  return false;
}

WebhookStats WebhookSender::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

bool WebhookSender::WaitForIdle(absl::Duration timeout) const {
  MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(
      [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return queue_.empty() && in_flight_ == 0;
      },
      timeout);
}

void WebhookSender::Run() {
  for (;;) {
    Delivery delivery;
    bool wrong_signature = false;
    if (!Next(&delivery, &wrong_signature)) return;
    const bool ok = Post(delivery, wrong_signature);
    Finish(std::move(delivery), ok);
  }
}

bool WebhookSender::Next(Delivery* delivery, bool* wrong_signature) {
  MutexLock lock(&mu_);
  const auto due = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return stopping_.load() ||
           (!queue_.empty() && queue_.begin()->first.first <= absl::Now());
  };
  // Sleeps until the first delivery is due; a Publish or the destructor wakes
  // it early (every Unlock re-evaluates the condition).
  while (!due()) {
    mu_.AwaitWithTimeout(due, queue_.empty()
                                  ? absl::InfiniteDuration()
                                  : queue_.begin()->first.first - absl::Now());
  }
  if (stopping_.load()) return false;
  *delivery = std::move(queue_.begin()->second);
  queue_.erase(queue_.begin());
  WebhookFault unused;
  *wrong_signature = TakeFault(WebhookFault::Kind::kWrongSignature, &unused);
  ++in_flight_;
  ++stats_.attempts;
  ++delivery->attempts;
  return true;
}

void WebhookSender::Finish(Delivery delivery, bool ok) {
  MutexLock lock(&mu_);
  --in_flight_;
  if (ok) {
    ++stats_.succeeded;
    return;
  }
  if (delivery.attempts >= options_.max_attempts) {
    ++stats_.gave_up;
    return;
  }
  absl::Duration delay = options_.base_delay;
  for (int i = 1; i < delivery.attempts && delay < options_.max_delay; ++i) {
    delay *= 2;
  }
  delay = std::min(delay, options_.max_delay);
  queue_.emplace(QueueKey{absl::Now() + delay, next_sequence_++},
                 std::move(delivery));
}

bool WebhookSender::Post(const Delivery& delivery, bool wrong_signature) {
  const std::string timestamp =
      std::to_string(absl::ToUnixMillis(options_.clock()));
  const std::string message = absl::StrCat(timestamp, ".", delivery.body);
  const std::string signature =
      wrong_signature
          ? HmacSha256Hex(absl::StrCat(delivery.target.secret, "_wrong"),
                          message)
          : HmacSha256Hex(delivery.target.secret, message);
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return false;
  curl_slist* headers = nullptr;
  for (const std::string& header :
       {std::string("Content-Type: application/json"),
        absl::StrCat("X-Clink-Timestamp: ", timestamp),
        absl::StrCat("X-Clink-Signature: ", signature),
        std::string("X-Clink-SignType: SHA256"), std::string("Expect:")}) {
    headers = curl_slist_append(headers, header.c_str());
  }
  const long timeout_ms =  // NOLINT(runtime/int): curl's type.
      static_cast<long>(absl::ToInt64Milliseconds(options_.timeout));  // NOLINT
  curl_easy_setopt(curl, CURLOPT_URL, delivery.target.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, std::max(timeout_ms, 1L));
  curl_easy_setopt(curl, CURLOPT_POST, 1L);
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, delivery.body.data());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                   static_cast<curl_off_t>(delivery.body.size()));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "clink-emulator-webhooks/1");
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &DiscardBody);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &AbortWhenStopping);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &stopping_);
  if (!options_.ca_file.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  }
  const CURLcode code = curl_easy_perform(curl);
  long status = 0;  // NOLINT(runtime/int): curl's type.
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  return code == CURLE_OK && status >= 200 && status < 300;
}

}  // namespace clink_gateway::emulator
