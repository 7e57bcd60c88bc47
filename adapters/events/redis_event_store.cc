#include "adapters/events/redis_event_store.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/errors/error_details.h"
#include "common/redis/redis_connection.h"

namespace clink_gateway::events {
namespace internal {
namespace {

using redis::ContextPtr;
using redis::ReplyPtr;

constexpr char kTokenKind[] = "redis";

// KEYS: dedup key, stream, merchants set. ARGV: dedup PX ms, retention ms,
// merchant, event id, type, created µs (or ""), received µs, body.
// Returns {1, stream id} when stored, {0, stream id} for a duplicate.
constexpr char kAppendScript[] = R"lua(
local seen = redis.call('GET', KEYS[1])
if seen then return {0, seen} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local minid = string.format('%.0f', math.max(0, now - tonumber(ARGV[2])))
local id = redis.call('XADD', KEYS[2], 'MINID', '~', minid, '*',
                      'i', ARGV[4], 't', ARGV[5], 'c', ARGV[6], 'r', ARGV[7],
                      'b', ARGV[8])
redis.call('SET', KEYS[1], id, 'PX', ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
return {1, id}
)lua";

// KEYS: subscription hash, subscriptions set, stream. ARGV: name, canonical
// types, start µs, group start id, cap.
// Returns 'ok' | 'mismatch' | 'full'.
constexpr char kEnsureScript[] = R"lua(
local types = redis.call('HGET', KEYS[1], 'types')
if types then
  if types == ARGV[2] then return 'ok' end
  return 'mismatch'
end
if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 'full' end
local r = redis.pcall('XGROUP', 'CREATE', KEYS[3], ARGV[1], ARGV[4],
                      'MKSTREAM')
if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP') then
  return redis.error_reply(r.err)
end
redis.call('HSET', KEYS[1], 'types', ARGV[2], 'start', ARGV[3])
redis.call('SADD', KEYS[2], ARGV[1])
return 'ok'
)lua";

// KEYS: stream. ARGV: group, consumer, count, min idle ms.
// Returns {{stream id, {field, value, ...}, delivery count}, ...}: first
// entries whose lease expired (claimed now), then new ones.
constexpr char kClaimScript[] = R"lua(
local out = {}
local n = tonumber(ARGV[3])
local cursor = '0-0'
for _ = 1, 10 do
  local ac = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4],
                        cursor, 'COUNT', n - #out)
  for _, e in ipairs(ac[2]) do
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local count = 1
    if p[1] then count = p[1][4] end
    table.insert(out, {e[1], e[2], count})
  end
  cursor = ac[1]
  if cursor == '0-0' or #out >= n then break end
end
if #out < n then
  local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2],
                       'COUNT', n - #out, 'STREAMS', KEYS[1], '>')
  if r then
    for _, e in ipairs(r[1][2]) do table.insert(out, {e[1], e[2], 1}) end
  end
end
return out
)lua";

// KEYS: stream, dedup keys... ARGV: group. Returns how many were acknowledged.
constexpr char kAcknowledgeScript[] = R"lua(
local ids = {}
for i = 2, #KEYS do
  local id = redis.call('GET', KEYS[i])
  if id then table.insert(ids, id) end
end
if #ids == 0 then return 0 end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
)lua";

// KEYS: stream. ARGV: group, idle ms. Deletes the group's consumers with
// nothing pending that have been idle longer than that (every stream opened
// adds a consumer; Redis keeps them until deleted). Returns how many.
constexpr char kForgetConsumersScript[] = R"lua(
local n = 0
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local name, pending, idle
  for i = 1, #c, 2 do
    if c[i] == 'name' then name = c[i + 1]
    elseif c[i] == 'pending' then pending = c[i + 1]
    elseif c[i] == 'idle' then idle = c[i + 1] end
  end
  if name and pending == 0 and idle > tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
    n = n + 1
  end
end
return n
)lua";

absl::string_view Str(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING ||
                          r->type == REDIS_REPLY_STATUS ||
                          r->type == REDIS_REPLY_ERROR)
             ? absl::string_view(r->str, r->len)
             : absl::string_view();
}

bool IsArray(const redisReply* r, size_t min_elements = 0) {
  return r != nullptr && r->type == REDIS_REPLY_ARRAY &&
         r->elements >= min_elements;
}

// A stream entry's fields {field, value, ...} as an event of `merchant`;
// nullopt when it is not one the store wrote.
std::optional<StoredEvent> ParseFields(absl::string_view merchant,
                                       const redisReply* fields) {
  if (!IsArray(fields)) return std::nullopt;
  StoredEvent event;
  event.merchant = std::string(merchant);
  bool has_id = false, has_received = false;
  for (size_t i = 0; i + 1 < fields->elements; i += 2) {
    const absl::string_view name = Str(fields->element[i]);
    const absl::string_view value = Str(fields->element[i + 1]);
    int64_t us = 0;
    if (name == "i") {
      event.event_id = std::string(value);
      has_id = true;
    } else if (name == "t") {
      event.type = std::string(value);
    } else if (name == "c") {
      if (!value.empty() && absl::SimpleAtoi(value, &us)) {
        event.create_time = absl::FromUnixMicros(us);
      }
    } else if (name == "r") {
      has_received = absl::SimpleAtoi(value, &us);
      event.receive_time = absl::FromUnixMicros(us);
    } else if (name == "b") {
      event.body = std::string(value);
    }
  }
  if (!has_id || !has_received) return std::nullopt;
  return event;
}

// A stream entry {id, {field, value, ...}} (XRANGE and friends); its id in
// `*stream_id` when not null.
std::optional<StoredEvent> ParseEntry(absl::string_view merchant,
                                      const redisReply* entry,
                                      std::string* stream_id) {
  if (!IsArray(entry, 2)) return std::nullopt;
  if (stream_id != nullptr) *stream_id = std::string(Str(entry->element[0]));
  return ParseFields(merchant, entry->element[1]);
}

// "<ms>-<seq>"; false for anything else.
bool ValidStreamId(absl::string_view id) {
  std::vector<absl::string_view> parts = absl::StrSplit(id, '-');
  uint64_t n = 0;
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], &n) &&
         absl::SimpleAtoi(parts[1], &n);
}

// hiredis writes with write(2) on the calling thread: a peer that closed the
// socket must turn into EPIPE there, not a process-killing SIGPIPE (tests and
// embedders may not ignore it process-wide, as server/main.cc does). Once per
// thread.
void BlockSigpipe() {
  thread_local bool blocked = false;
  if (blocked) return;
  sigset_t pipe_set;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);
  blocked = true;
}

}  // namespace

// Up to max_connections connections, each used by one call at a time.
class RedisPool {
 public:
  RedisPool(const RedisEventStore::Options& options, redis::RedisAddress address,
            Secret password)
      : address_text_(options.address),
        address_(std::move(address)),
        password_(std::move(password)),
        connect_timeout_(options.connect_timeout),
        command_timeout_(options.command_timeout),
        backoff_(options.reconnect_backoff),
        max_connections_(options.max_connections) {}

  // Sends `args` on a pooled connection and reads the reply. kUnavailable
  // when no connection can be had or it fails (it is then closed), and for
  // an error reply (`what` and the error's first word name it).
  absl::StatusOr<ReplyPtr> Command(const std::vector<absl::string_view>& args,
                                   absl::string_view what) {
    BlockSigpipe();
    absl::StatusOr<ContextPtr> context = Acquire();
    if (!context.ok()) return context.status();
    ReplyPtr reply = redis::CommandArgv(context->get(), args);
    if (reply == nullptr) {
      const std::string error = (*context)->errstr[0] != '\0'
                                    ? (*context)->errstr
                                    : "connection failed";
      Release(nullptr);
      return Unavailable(absl::StrCat(what, ": ", error));
    }
    Release(*std::move(context));
    if (reply->type == REDIS_REPLY_ERROR) {
      return absl::UnavailableError(
          absl::StrCat("event store Redis ", address_text_, ": ", what,
                       " failed (", redis::ErrorKind(*reply), ")"));
    }
    return reply;
  }

  absl::Status Unavailable(absl::string_view why) const {
    return absl::UnavailableError(
        absl::StrCat("event store Redis ", address_text_, ": ", why));
  }

 private:
  absl::StatusOr<ContextPtr> Acquire() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      MutexLock lock(&mu_);
      if (!mu_.AwaitWithTimeout(
              [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                return !idle_.empty() || open_ < max_connections_;
              },
              command_timeout_)) {
        return Unavailable("all connections busy");
      }
      if (!idle_.empty()) {
        ContextPtr context = std::move(idle_.back());
        idle_.pop_back();
        return context;
      }
      if (absl::Now() < retry_at_) return Unavailable(last_error_);
      ++open_;
    }
    absl::StatusOr<ContextPtr> context = redis::Connect(
        address_, password_, connect_timeout_, command_timeout_);
    if (!context.ok()) {
      MutexLock lock(&mu_);
      --open_;
      last_error_ = std::string(context.status().message());
      retry_at_ = absl::Now() + backoff_;
      return Unavailable(last_error_);
    }
    return context;
  }

  // Gives a connection back; nullptr when it failed (closed).
  void Release(ContextPtr context) ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (context == nullptr) {
      --open_;
    } else {
      idle_.push_back(std::move(context));
    }
  }

  const std::string address_text_;
  const redis::RedisAddress address_;
  const Secret password_;
  const absl::Duration connect_timeout_;
  const absl::Duration command_timeout_;
  const absl::Duration backoff_;
  const size_t max_connections_;

  Mutex mu_;
  std::vector<ContextPtr> idle_ ABSL_GUARDED_BY(mu_);
  size_t open_ ABSL_GUARDED_BY(mu_) = 0;  // Idle and in use.
  absl::Time retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string last_error_ ABSL_GUARDED_BY(mu_);
};

}  // namespace internal

namespace {

using internal::IsArray;
using internal::ParseEntry;
using internal::Str;
using redis::ReplyPtr;

std::string Millis(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

std::vector<absl::string_view> Views(const std::vector<std::string>& args) {
  return std::vector<absl::string_view>(args.begin(), args.end());
}

}  // namespace

absl::StatusOr<std::unique_ptr<RedisEventStore>> RedisEventStore::Create(
    Options options) {
  const std::pair<absl::string_view, absl::Duration> durations[] = {
      {"retention", options.retention},
      {"dedup_window", options.dedup_window},
      {"connect_timeout", options.connect_timeout},
      {"command_timeout", options.command_timeout},
      {"reconnect_backoff", options.reconnect_backoff},
      {"idle_consumer_expiry", options.idle_consumer_expiry},
  };
  for (const auto& [name, value] : durations) {
    if (value <= absl::ZeroDuration() || value == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(
          absl::StrCat("RedisEventStore option ", name, " must be positive"));
    }
  }
  if (options.start_time_slack < absl::ZeroDuration() ||
      options.max_connections == 0 ||
      options.max_subscriptions_per_merchant == 0 ||
      options.list_scan_limit == 0) {
    return absl::InvalidArgumentError(
        "RedisEventStore: start_time_slack must not be negative, and "
        "max_connections, max_subscriptions_per_merchant and list_scan_limit "
        "must be positive");
  }
  absl::StatusOr<redis::RedisAddress> address =
      redis::ParseRedisAddress(options.address);
  if (!address.ok()) return address.status();
  Secret password;
  if (!options.password_file.empty()) {
    absl::StatusOr<std::string> read =
        redis::ReadPasswordFile(options.password_file);
    if (!read.ok()) return read.status();
    password = Secret(*std::move(read));
  }
  auto pool = std::make_unique<internal::RedisPool>(
      options, *std::move(address), std::move(password));
  return absl::WrapUnique(new RedisEventStore(std::move(options), std::move(pool)));
}

RedisEventStore::RedisEventStore(Options options,
                                 std::unique_ptr<internal::RedisPool> pool)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : SystemClock()),
      pool_(std::move(pool)) {}

RedisEventStore::~RedisEventStore() = default;

std::string RedisEventStore::MerchantKey(absl::string_view merchant,
                                         absl::string_view suffix) const {
  return absl::StrCat(options_.key_prefix, merchant.size(), ":", merchant, ":",
                      suffix);
}

absl::StatusOr<AppendResult> RedisEventStore::Append(const StoredEvent& event) {
  if (absl::Status valid = internal::ValidateEvent(event); !valid.ok()) {
    return valid;
  }
  StoredEvent stored = event;
  if (stored.receive_time == absl::InfinitePast()) {
    stored.receive_time = clock_.Now();
  }
  const std::vector<std::string> args = {
      "EVAL",
      internal::kAppendScript,
      "3",
      MerchantKey(stored.merchant, absl::StrCat("dedup:", stored.event_id)),
      MerchantKey(stored.merchant, "stream"),
      absl::StrCat(options_.key_prefix, "merchants"),
      Millis(std::max(options_.dedup_window, options_.retention)),
      Millis(options_.retention),
      stored.merchant,
      stored.event_id,
      stored.type,
      stored.create_time == absl::InfinitePast()
          ? std::string()
          : absl::StrCat(absl::ToUnixMicros(stored.create_time)),
      absl::StrCat(absl::ToUnixMicros(stored.receive_time)),
      stored.body};
  absl::StatusOr<ReplyPtr> reply = pool_->Command(Views(args), "append");
  if (!reply.ok()) return reply.status();
  const redisReply* r = reply->get();
  if (!IsArray(r, 2) || r->element[0]->type != REDIS_REPLY_INTEGER) {
    return pool_->Unavailable("unexpected append reply");
  }
  if (r->element[0]->integer == 0) return AppendResult::kDuplicate;
  if (options_.listener != nullptr) options_.listener->OnEventStored(stored);
  return AppendResult::kStored;
}

absl::Status RedisEventStore::EnsureSubscription(const SubscriptionSpec& spec) {
  if (absl::Status valid = internal::ValidateSubscription(spec); !valid.ok()) {
    return valid;
  }
  std::string group_start = "0";
  if (spec.start_time != absl::InfinitePast()) {
    const int64_t ms = absl::ToUnixMillis(spec.start_time - options_.start_time_slack);
    // The group has read everything up to (and including) this id.
    if (ms > 0) group_start = absl::StrCat(ms - 1, "-18446744073709551615");
  }
  const std::vector<std::string> args = {
      "EVAL",
      internal::kEnsureScript,
      "3",
      MerchantKey(spec.merchant, absl::StrCat("sub:", spec.name)),
      MerchantKey(spec.merchant, "subs"),
      MerchantKey(spec.merchant, "stream"),
      spec.name,
      internal::CanonicalTypes(spec.event_types),
      absl::StrCat(internal::ToUnixMicrosClamped(spec.start_time)),
      group_start,
      absl::StrCat(options_.max_subscriptions_per_merchant)};
  absl::StatusOr<ReplyPtr> reply =
      pool_->Command(Views(args), "create subscription");
  if (!reply.ok()) return reply.status();
  const absl::string_view answer = Str(reply->get());
  if (answer == "ok") return absl::OkStatus();
  if (answer == "mismatch") {
    return absl::FailedPreconditionError(
        absl::StrCat("subscription \"", spec.name,
                     "\" exists with a different set of event types"));
  }
  if (answer == "full") {
    return absl::ResourceExhaustedError(absl::StrCat(
        "merchant \"", spec.merchant, "\" has ",
        options_.max_subscriptions_per_merchant,
        " subscriptions, the most this store keeps"));
  }
  return pool_->Unavailable("unexpected subscription reply");
}

absl::StatusOr<RedisEventStore::Subscription> RedisEventStore::FindSubscription(
    absl::string_view merchant, absl::string_view name) {
  const std::string cache_key = absl::StrCat(merchant, std::string(1, '\0'), name);
  {
    MutexLock lock(&mu_);
    auto it = subscriptions_.find(cache_key);
    if (it != subscriptions_.end()) return it->second;
  }
  const std::string key = MerchantKey(merchant, absl::StrCat("sub:", name));
  absl::StatusOr<ReplyPtr> reply =
      pool_->Command({"HMGET", key, "types", "start"}, "read subscription");
  if (!reply.ok()) return reply.status();
  const redisReply* r = reply->get();
  if (!IsArray(r, 2) || r->element[0]->type != REDIS_REPLY_STRING) {
    return internal::SubscriptionNotFound(merchant, name);
  }
  absl::StatusOr<std::vector<std::string>> types =
      internal::ParseCanonicalTypes(Str(r->element[0]));
  Subscription sub;
  if (!types.ok() || !absl::SimpleAtoi(Str(r->element[1]), &sub.start_us)) {
    return pool_->Unavailable("a subscription record does not parse");
  }
  sub.types = *std::move(types);
  MutexLock lock(&mu_);
  subscriptions_.emplace(cache_key, sub);
  return sub;
}

void RedisEventStore::ForgetSubscription(absl::string_view merchant,
                                         absl::string_view name) {
  MutexLock lock(&mu_);
  subscriptions_.erase(absl::StrCat(merchant, std::string(1, '\0'), name));
}

absl::Status RedisEventStore::GroupError(absl::Status status,
                                         absl::string_view merchant,
                                         absl::string_view subscription) {
  if (!absl::StrContains(status.message(), "NOGROUP")) return status;
  // The group is gone (Redis lost its data): so is the subscription.
  ForgetSubscription(merchant, subscription);
  return internal::SubscriptionNotFound(merchant, subscription);
}

void RedisEventStore::ForgetIdleConsumers(absl::string_view merchant,
                                          absl::string_view subscription,
                                          const std::string& stream) {
  const absl::Time now = absl::Now();
  {
    MutexLock lock(&mu_);
    absl::Time& next =
        next_consumer_sweep_[absl::StrCat(merchant, std::string(1, '\0'),
                                          subscription)];
    if (now < next) return;
    next = now + std::min(options_.idle_consumer_expiry, absl::Minutes(1));
  }
  // Best effort: a failure here is the next command's to report.
  pool_->Command({"EVAL", internal::kForgetConsumersScript, "1", stream,
                  subscription, Millis(options_.idle_consumer_expiry)},
                 "forget idle consumers")
      .status()
      .IgnoreError();
}

absl::StatusOr<std::vector<Delivery>> RedisEventStore::Claim(
    absl::string_view merchant, absl::string_view subscription,
    absl::string_view consumer, int max_events, absl::Duration ack_deadline) {
  if (absl::Status valid = internal::ValidateClaim(
          merchant, subscription, consumer, max_events, ack_deadline);
      !valid.ok()) {
    return valid;
  }
  absl::StatusOr<Subscription> sub = FindSubscription(merchant, subscription);
  if (!sub.ok()) return sub.status();
  const absl::flat_hash_set<std::string> types(sub->types.begin(),
                                               sub->types.end());
  const std::string stream = MerchantKey(merchant, "stream");
  ForgetIdleConsumers(merchant, subscription, stream);
  std::vector<Delivery> deliveries;
  // Skipped entries make room for more: a few rounds at most.
  for (int round = 0; round < 10; ++round) {
    const int want = max_events - static_cast<int>(deliveries.size());
    if (want <= 0) break;
    const std::string count = absl::StrCat(want);
    const std::string idle = Millis(ack_deadline);
    absl::StatusOr<ReplyPtr> reply = pool_->Command(
        {"EVAL", internal::kClaimScript, "1", stream, subscription, consumer,
         count, idle},
        "claim");
    if (!reply.ok()) {
      return GroupError(reply.status(), merchant, subscription);
    }
    const redisReply* r = reply->get();
    if (!IsArray(r)) return pool_->Unavailable("unexpected claim reply");
    std::vector<std::string> skipped;
    for (size_t i = 0; i < r->elements; ++i) {
      const redisReply* item = r->element[i];
      if (!IsArray(item, 3)) continue;
      std::optional<StoredEvent> event =
          internal::ParseFields(merchant, item->element[1]);
      if (!event.has_value() || !internal::TypeSelected(types, event->type) ||
          absl::ToUnixMicros(event->receive_time) < sub->start_us) {
        skipped.emplace_back(Str(item->element[0]));
        continue;
      }
      const int64_t attempt = item->element[2]->type == REDIS_REPLY_INTEGER
                                  ? item->element[2]->integer
                                  : 1;
      deliveries.push_back(
          {*std::move(event),
           static_cast<int32_t>(std::clamp<int64_t>(attempt, 1, 1 << 30))});
    }
    if (skipped.empty()) break;
    std::vector<std::string> ack = {"XACK", stream, std::string(subscription)};
    ack.insert(ack.end(), skipped.begin(), skipped.end());
    absl::StatusOr<ReplyPtr> acked = pool_->Command(Views(ack), "skip");
    if (!acked.ok()) return acked.status();
  }
  return deliveries;
}

absl::StatusOr<int> RedisEventStore::Acknowledge(
    absl::string_view merchant, absl::string_view subscription,
    const std::vector<std::string>& event_ids) {
  if (absl::Status valid =
          internal::ValidateAcknowledge(merchant, subscription, event_ids);
      !valid.ok()) {
    return valid;
  }
  absl::StatusOr<Subscription> sub = FindSubscription(merchant, subscription);
  if (!sub.ok()) return sub.status();
  if (event_ids.empty()) return 0;
  std::vector<std::string> args = {"EVAL", internal::kAcknowledgeScript,
                                   absl::StrCat(event_ids.size() + 1),
                                   MerchantKey(merchant, "stream")};
  for (const std::string& id : event_ids) {
    args.push_back(MerchantKey(merchant, absl::StrCat("dedup:", id)));
  }
  args.push_back(std::string(subscription));
  absl::StatusOr<ReplyPtr> reply = pool_->Command(Views(args), "acknowledge");
  if (!reply.ok()) return reply.status();
  if ((*reply)->type != REDIS_REPLY_INTEGER) {
    return pool_->Unavailable("unexpected acknowledge reply");
  }
  return static_cast<int>((*reply)->integer);
}

absl::StatusOr<std::optional<absl::Time>>
RedisEventStore::OldestUnacknowledged(absl::string_view merchant,
                                      absl::string_view subscription) {
  if (absl::Status valid =
          internal::ValidateSubscriptionRef(merchant, subscription);
      !valid.ok()) {
    return valid;
  }
  absl::StatusOr<Subscription> sub = FindSubscription(merchant, subscription);
  if (!sub.ok()) return sub.status();
  const absl::flat_hash_set<std::string> types(sub->types.begin(),
                                               sub->types.end());
  const std::string stream = MerchantKey(merchant, "stream");
  std::optional<absl::Time> oldest;
  auto consider = [&oldest](absl::Time t) {
    if (!oldest.has_value() || t < *oldest) oldest = t;
  };
  // The first pending (delivered, unacknowledged) entry: the oldest of them.
  {
    absl::StatusOr<ReplyPtr> pending = pool_->Command(
        {"XPENDING", stream, subscription, "-", "+", "1"}, "read pending");
    if (!pending.ok()) {
      return GroupError(pending.status(), merchant, subscription);
    }
    if (IsArray(pending->get(), 1) && IsArray((*pending)->element[0], 1)) {
      const std::string id(Str((*pending)->element[0]->element[0]));
      absl::StatusOr<ReplyPtr> entry =
          pool_->Command({"XRANGE", stream, id, id}, "read pending entry");
      if (!entry.ok()) return entry.status();
      if (IsArray(entry->get(), 1)) {
        std::optional<StoredEvent> event =
            ParseEntry(merchant, (*entry)->element[0], nullptr);
        if (event.has_value()) consider(event->receive_time);
      }
    }
  }
  // The first entry after the group's last-delivered-id that it takes.
  std::string last_delivered;
  {
    absl::StatusOr<ReplyPtr> groups =
        pool_->Command({"XINFO", "GROUPS", stream}, "read groups");
    if (!groups.ok()) return groups.status();
    const redisReply* r = groups->get();
    for (size_t g = 0; IsArray(r) && g < r->elements; ++g) {
      const redisReply* group = r->element[g];
      if (!IsArray(group)) continue;
      std::string name, last;
      for (size_t i = 0; i + 1 < group->elements; i += 2) {
        const absl::string_view field = Str(group->element[i]);
        if (field == "name") name = std::string(Str(group->element[i + 1]));
        if (field == "last-delivered-id") {
          last = std::string(Str(group->element[i + 1]));
        }
      }
      if (name == subscription) last_delivered = last;
    }
  }
  if (last_delivered.empty()) {
    ForgetSubscription(merchant, subscription);
    return internal::SubscriptionNotFound(merchant, subscription);
  }
  std::string after = absl::StrCat("(", last_delivered);
  for (int page = 0; page < 10; ++page) {
    absl::StatusOr<ReplyPtr> entries = pool_->Command(
        {"XRANGE", stream, after, "+", "COUNT", "100"}, "read new entries");
    if (!entries.ok()) return entries.status();
    const redisReply* r = entries->get();
    if (!IsArray(r) || r->elements == 0) break;
    for (size_t i = 0; i < r->elements; ++i) {
      std::string id;
      std::optional<StoredEvent> event = ParseEntry(merchant, r->element[i], &id);
      after = absl::StrCat("(", id);
      if (event.has_value() && internal::TypeSelected(types, event->type) &&
          absl::ToUnixMicros(event->receive_time) >= sub->start_us) {
        consider(event->receive_time);
        return oldest;
      }
    }
  }
  return oldest;
}

absl::StatusOr<std::optional<StoredEvent>> RedisEventStore::Get(
    absl::string_view merchant, absl::string_view event_id) {
  if (absl::Status valid = internal::ValidateEventRef(merchant, event_id);
      !valid.ok()) {
    return valid;
  }
  absl::StatusOr<ReplyPtr> id = pool_->Command(
      {"GET", MerchantKey(merchant, absl::StrCat("dedup:", event_id))},
      "find event");
  if (!id.ok()) return id.status();
  if ((*id)->type != REDIS_REPLY_STRING) return std::optional<StoredEvent>();
  const std::string stream_id(Str(id->get()));
  absl::StatusOr<ReplyPtr> entry = pool_->Command(
      {"XRANGE", MerchantKey(merchant, "stream"), stream_id, stream_id},
      "read event");
  if (!entry.ok()) return entry.status();
  if (!IsArray(entry->get(), 1)) return std::optional<StoredEvent>();
  return ParseEntry(merchant, (*entry)->element[0], nullptr);
}

absl::StatusOr<ListPage> RedisEventStore::List(const ListQuery& query) {
  if (absl::Status valid = internal::ValidateListQuery(query); !valid.ok()) {
    return valid;
  }
  std::string end = "+";
  if (!query.page_token.empty()) {
    absl::StatusOr<std::string> position =
        internal::DecodePageToken(internal::kTokenKind, query.page_token);
    if (!position.ok()) return position.status();
    if (!internal::ValidStreamId(*position)) {
      return errors::InvalidArgumentWithViolations(
          {{"page_token", "not a page token of this list"}});
    }
    end = absl::StrCat("(", *position);
  }
  const absl::flat_hash_set<std::string> types(query.event_types.begin(),
                                               query.event_types.end());
  const std::string stream = MerchantKey(query.merchant, "stream");
  const size_t batch = std::max<size_t>(query.page_size + 1, 100);
  ListPage page;
  std::string last_returned;  // Stream id of the last event in the page.
  std::string last_scanned;
  size_t scanned = 0;
  bool exhausted = false;
  while (!exhausted && scanned < options_.list_scan_limit) {
    absl::StatusOr<ReplyPtr> entries = pool_->Command(
        {"XREVRANGE", stream, end, "-", "COUNT", absl::StrCat(batch)}, "list");
    if (!entries.ok()) return entries.status();
    const redisReply* r = entries->get();
    if (!IsArray(r)) return pool_->Unavailable("unexpected list reply");
    exhausted = r->elements < batch;
    for (size_t i = 0; i < r->elements; ++i) {
      std::string id;
      std::optional<StoredEvent> event =
          ParseEntry(query.merchant, r->element[i], &id);
      ++scanned;
      last_scanned = id;
      if (!event.has_value() || !internal::TypeSelected(types, event->type) ||
          event->receive_time < query.start_time ||
          event->receive_time >= query.end_time) {
        continue;
      }
      if (static_cast<int>(page.events.size()) == query.page_size) {
        // One more exists: the page is full and has a next.
        page.next_page_token =
            internal::EncodePageToken(internal::kTokenKind, last_returned);
        return page;
      }
      page.events.push_back(*std::move(event));
      last_returned = id;
    }
    if (!last_scanned.empty()) end = absl::StrCat("(", last_scanned);
  }
  if (!exhausted && !last_scanned.empty()) {
    // Stopped at the scan limit: the next page goes on from there.
    page.next_page_token = internal::EncodePageToken(
        internal::kTokenKind,
        static_cast<int>(page.events.size()) == query.page_size
            ? last_returned
            : last_scanned);
  }
  return page;
}

absl::StatusOr<int64_t> RedisEventStore::Prune(absl::Time cutoff) {
  absl::StatusOr<ReplyPtr> merchants = pool_->Command(
      {"SMEMBERS", absl::StrCat(options_.key_prefix, "merchants")},
      "list merchants");
  if (!merchants.ok()) return merchants.status();
  const std::string minid =
      absl::StrCat(std::max<int64_t>(0, internal::ToUnixMillisClamped(cutoff)));
  int64_t dropped = 0;
  for (size_t i = 0; IsArray(merchants->get()) && i < (*merchants)->elements;
       ++i) {
    const absl::string_view merchant = Str((*merchants)->element[i]);
    absl::StatusOr<ReplyPtr> trimmed = pool_->Command(
        {"XTRIM", MerchantKey(merchant, "stream"), "MINID", minid}, "prune");
    if (!trimmed.ok()) return trimmed.status();
    if ((*trimmed)->type == REDIS_REPLY_INTEGER) dropped += (*trimmed)->integer;
  }
  return dropped;
}

}  // namespace clink_gateway::events
