#include "adapters/idempotency/redis_idempotency_store.h"

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/memory/memory.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/idempotency/redis_scripts.h"
#include "common/logging.h"
#include "common/redis/redis_connection.h"
#include "common/secret.h"
#include "common/sync.h"

namespace clink_gateway::idempotency {
namespace internal {
namespace {

// Commands sent in one pipelined round trip at most.
constexpr size_t kMaxBatch = 128;

using redis::CommandArgv;
using redis::ContextPtr;
using redis::ErrorKind;
using redis::ReplyPtr;

}  // namespace

using ReplyCallback =
    absl::AnyInvocable<void(absl::StatusOr<const redisReply*>) &&>;
using TimerCallback = absl::AnyInvocable<void(absl::Status) &&>;

using redis::ParseRedisAddress;
using redis::RedisAddress;

// Owns the connection. hiredis' synchronous API on a worker thread is used
// rather than its async API: hiredis 0.14's async API has no command timeout
// (redisAsyncSetTimeout came in 1.0) and needs an event-loop adapter, while a
// blocking context gets connect and per-read/write timeouts from the socket
// (redisSetTimeout), and pipelining (append every queued command, then read
// the replies in order) gives one round trip per batch. The caller's thread
// only ever takes a mutex to queue a command.
class RedisWorker {
 public:
  struct Config {
    std::string address;  // As configured: for messages and logs.
    RedisAddress parsed;
    Secret password;
    absl::Duration connect_timeout;
    absl::Duration command_timeout;
    absl::Duration initial_backoff;
    absl::Duration max_backoff;
    size_t max_pending;
  };

  explicit RedisWorker(Config config)
      : config_(std::move(config)),
        backoff_(config_.initial_backoff),
        thread_([this] { Loop(); }) {}

  ~RedisWorker() { Shutdown(); }

  // Fails what is queued or waiting with kUnavailable and joins the thread.
  // Callbacks run meanwhile may still call Submit() and After() (they are
  // refused). Idempotent; not to be called from the worker thread.
  void Shutdown() ABSL_LOCKS_EXCLUDED(mu_) {
    {
      MutexLock lock(&mu_);
      stop_ = true;
      cv_.Signal();
    }
    if (thread_.joinable()) thread_.join();
  }

  RedisWorker(const RedisWorker&) = delete;
  RedisWorker& operator=(const RedisWorker&) = delete;

  // Runs `script` with KEYS[1] = args[0] and ARGV = the rest, where args[1]
  // is the "resent" flag ("0"; the worker sets "1" when it resends). `done`
  // gets the reply (valid during the call only) on the worker thread, or
  // kUnavailable (inline when the connection is down or the queue full).
  void Submit(Script script, std::vector<std::string> args, ReplyCallback done)
      ABSL_LOCKS_EXCLUDED(mu_) {
    absl::Status refused;
    {
      MutexLock lock(&mu_);
      if (stop_) {
        refused = absl::UnavailableError("idempotency store shutting down");
      } else if (state_ == State::kDisconnected) {
        refused = Unavailable(last_error_);
      } else if (queue_.size() >= config_.max_pending) {
        refused = Unavailable("too many commands pending");
      } else {
        queue_.push_back(Command{script, std::move(args), std::move(done)});
        if (queue_.size() == 1) cv_.Signal();
        return;
      }
    }
    std::move(done)(refused);
  }

  // Runs `fn(OkStatus())` on the worker thread after `delay`, or
  // `fn(kUnavailable)` when the store shuts down first.
  void After(absl::Duration delay, TimerCallback fn) ABSL_LOCKS_EXCLUDED(mu_) {
    {
      MutexLock lock(&mu_);
      if (!stop_) {
        const absl::Time when =
            delays_stopped_ ? absl::InfinitePast() : absl::Now() + delay;
        if (timers_.empty() || when < timers_.begin()->first) cv_.Signal();
        timers_.emplace(when, std::move(fn));
        return;
      }
    }
    std::move(fn)(absl::UnavailableError("idempotency store shutting down"));
  }

  // Runs every pending After() callback now (on the worker thread, in order),
  // and every later one without its delay. For good.
  void StopDelaying() ABSL_LOCKS_EXCLUDED(mu_) {
    MutexLock lock(&mu_);
    if (delays_stopped_) return;
    delays_stopped_ = true;
    std::multimap<absl::Time, TimerCallback> timers;
    for (auto& [when, fn] : timers_) {
      timers.emplace_hint(timers.end(), absl::InfinitePast(), std::move(fn));
    }
    timers_ = std::move(timers);
    cv_.Signal();
  }

  absl::Status Unavailable(absl::string_view why) const {
    return absl::UnavailableError(absl::StrCat(
        "Redis idempotency store at ", config_.address, " unavailable: ", why));
  }

 private:
  enum class State {
    kConnecting,    // A connection attempt is due: commands queue for it.
    kConnected,     // Commands are sent.
    kDisconnected,  // Waiting to retry: commands fail at once.
  };
  enum class Health { kUnknown, kHealthy, kUnhealthy };

  struct Command {
    Script script;
    std::vector<std::string> args;
    ReplyCallback done;
    bool use_eval = false;  // After NOSCRIPT: send the script's text.
    bool retried = false;   // Already resent once after a closed connection.
  };

  void Loop() ABSL_LOCKS_EXCLUDED(mu_) {
    // hiredis writes with write(2): a peer that closed the socket must turn
    // into EPIPE, not a process-killing SIGPIPE (tests and embedders may not
    // ignore it process-wide, as server/main.cc does).
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, nullptr);

    mu_.Lock();
    while (!stop_) {
      const absl::Time now = absl::Now();
      if (context_ == nullptr &&
          (state_ == State::kConnecting || now >= next_connect_at_)) {
        mu_.Unlock();
        absl::Status connected = Connect();
        std::deque<Command> failed;
        mu_.Lock();
        if (connected.ok()) {
          state_ = State::kConnected;
          backoff_ = config_.initial_backoff;
        } else {
          state_ = State::kDisconnected;
          last_error_ = std::string(connected.message());
          next_connect_at_ = absl::Now() + backoff_;
          backoff_ = std::min(backoff_ * 2, config_.max_backoff);
          failed.swap(queue_);
        }
        if (!failed.empty()) {
          mu_.Unlock();
          for (Command& command : failed) {
            std::move(command.done)(Unavailable(connected.message()));
          }
          mu_.Lock();
        }
        continue;
      }
      std::vector<TimerCallback> due;
      while (!timers_.empty() && timers_.begin()->first <= now) {
        due.push_back(std::move(timers_.begin()->second));
        timers_.erase(timers_.begin());
      }
      std::vector<Command> batch;
      if (context_ != nullptr) {
        while (!queue_.empty() && batch.size() < kMaxBatch) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      if (!due.empty() || !batch.empty()) {
        mu_.Unlock();
        for (TimerCallback& fn : due) std::move(fn)(absl::OkStatus());
        if (!batch.empty()) RunBatch(batch);
        mu_.Lock();
        continue;
      }
      absl::Time wake = absl::InfiniteFuture();
      if (!timers_.empty()) wake = timers_.begin()->first;
      if (context_ == nullptr) wake = std::min(wake, next_connect_at_);
      cv_.WaitWithDeadline(&mu_, wake);
    }
    std::deque<Command> queue = std::move(queue_);
    std::multimap<absl::Time, TimerCallback> timers = std::move(timers_);
    queue_.clear();
    timers_.clear();
    mu_.Unlock();
    context_.reset();
    const absl::Status shutting_down =
        absl::UnavailableError("idempotency store shutting down");
    for (Command& command : queue) std::move(command.done)(shutting_down);
    for (auto& [when, fn] : timers) std::move(fn)(shutting_down);
  }

  // Opens a connection, authenticates and loads the scripts. Worker thread.
  absl::Status Connect() {
    absl::StatusOr<ContextPtr> connected =
        redis::Connect(config_.parsed, config_.password,
                       config_.connect_timeout, config_.command_timeout);
    absl::Status status = connected.status();
    ContextPtr context;
    if (connected.ok()) context = *std::move(connected);
    for (size_t i = 0; status.ok() && i < kScriptCount; ++i) {
      ReplyPtr reply =
          CommandArgv(context.get(), {"SCRIPT", "LOAD", kScripts[i]});
      if (reply == nullptr) {
        status = absl::UnavailableError(context->errstr);
      } else if (reply->type != REDIS_REPLY_STRING) {
        status = absl::UnavailableError(absl::StrCat(
            "SCRIPT LOAD failed (",
            reply->type == REDIS_REPLY_ERROR ? ErrorKind(*reply) : "reply",
            ")"));
      } else {
        shas_[i] = std::string(reply->str, reply->len);
      }
    }
    if (status.ok()) status = CheckEvictionPolicy(context.get());
    if (!status.ok()) {
      if (health_ != Health::kUnhealthy) {
        Log(LogLevel::kError,
            health_ == Health::kUnknown ? "idempotency_redis_connect_failed"
                                        : "idempotency_redis_connection_lost",
            {{"address", config_.address}, {"error", status.message()}});
        health_ = Health::kUnhealthy;
      }
      return status;
    }
    if (health_ != Health::kHealthy) {
      Log(LogLevel::kInfo,
          health_ == Health::kUnknown ? "idempotency_redis_connected"
                                      : "idempotency_redis_connection_restored",
          {{"address", config_.address}});
      health_ = Health::kHealthy;
    }
    context_ = std::move(context);
    return absl::OkStatus();
  }

  // Logs, once per connection, when Redis may evict keys: an evicted record is
  // a forgotten key, so the retry of a call that reached Clink would be sent
  // again. Never refuses the connection (a managed Redis may be set up that
  // way on purpose; the operator must hear of it); only a failed connection
  // fails it. Worker thread.
  absl::Status CheckEvictionPolicy(redisContext* context) {
    ReplyPtr reply =
        CommandArgv(context, {"CONFIG", "GET", "maxmemory-policy"});
    if (reply == nullptr) return absl::UnavailableError(context->errstr);
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
      const absl::string_view policy(reply->element[1]->str,
                                     reply->element[1]->len);
      if (policy != "noeviction") {
        // Every record has a TTL, so the volatile-* policies evict them too.
        Log(LogLevel::kWarning, "idempotency_redis_eviction_policy",
            {{"address", config_.address},
             {"maxmemory_policy", policy},
             {"warning",
              "Redis may evict idempotency records before their retention "
              "ends (under memory pressure); a retry whose record was evicted "
              "is sent to Clink again, so duplicate payments become "
              "possible. Set maxmemory-policy noeviction on this Redis."}});
      }
      return absl::OkStatus();
    }
    // CONFIG renamed or disabled (managed Redis), or refused by an ACL.
    Log(LogLevel::kInfo, "idempotency_redis_eviction_policy_unchecked",
        {{"address", config_.address},
         {"error", reply->type == REDIS_REPLY_ERROR ? ErrorKind(*reply)
                                                    : "unexpected reply"},
         {"note",
          "CONFIG GET maxmemory-policy failed; make sure this Redis uses "
          "maxmemory-policy noeviction, or records may be evicted and "
          "duplicate payments become possible"}});
    return absl::OkStatus();
  }

  // Sends `batch` pipelined and answers each command. Worker thread, mu_ not
  // held.
  void RunBatch(std::vector<Command>& batch) ABSL_LOCKS_EXCLUDED(mu_) {
    for (Command& command : batch) {
      const size_t index = static_cast<size_t>(command.script);
      std::vector<absl::string_view> argv = {
          command.use_eval ? "EVAL" : "EVALSHA",
          command.use_eval ? absl::string_view(kScripts[index])
                           : absl::string_view(shas_[index]),
          "1"};
      argv.insert(argv.end(), command.args.begin(), command.args.end());
      std::vector<const char*> pointers;
      std::vector<size_t> lengths;
      for (absl::string_view arg : argv) {
        pointers.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      // Only fails when out of memory; the reply loop below then fails too.
      redisAppendCommandArgv(context_.get(), static_cast<int>(pointers.size()),
                             pointers.data(), lengths.data());
    }
    std::vector<Command> resend;
    for (size_t i = 0; i < batch.size(); ++i) {
      void* raw = nullptr;
      errno = 0;
      if (redisGetReply(context_.get(), &raw) != REDIS_OK || raw == nullptr) {
        OnConnectionError(batch, i, std::move(resend));
        return;
      }
      ReplyPtr reply(static_cast<redisReply*>(raw));
      Command& command = batch[i];
      if (reply->type == REDIS_REPLY_ERROR && !command.use_eval &&
          ErrorKind(*reply) == "NOSCRIPT") {
        // The script cache was flushed behind our back: send the text.
        command.use_eval = true;
        resend.push_back(std::move(command));
        continue;
      }
      std::move(command.done)(reply.get());
    }
    Requeue(std::move(resend));
  }

  // The connection failed while reading the reply to batch[failed_at].
  void OnConnectionError(std::vector<Command>& batch, size_t failed_at,
                         std::vector<Command> resend) ABSL_LOCKS_EXCLUDED(mu_) {
    const int saved_errno = errno;
    const std::string error =
        context_->errstr[0] != '\0' ? context_->errstr : "connection failed";
    // Closed under us (Redis restarted, idle connection dropped): resending
    // once on a new connection is safe because the scripts recognise their
    // own lease token. A timeout is not retried: the server is slow or hung.
    const bool closed = context_->err == REDIS_ERR_EOF ||
                        (context_->err == REDIS_ERR_IO &&
                         (saved_errno == ECONNRESET || saved_errno == EPIPE));
    context_.reset();
    if (health_ == Health::kHealthy) {
      Log(LogLevel::kError, "idempotency_redis_connection_lost",
          {{"address", config_.address}, {"error", error}});
      health_ = Health::kUnhealthy;
    }
    std::vector<Command> failed;
    for (size_t i = failed_at; i < batch.size(); ++i) {
      if (closed && !batch[i].retried) {
        batch[i].retried = true;
        batch[i].args[1] = "1";
        resend.push_back(std::move(batch[i]));
      } else {
        failed.push_back(std::move(batch[i]));
      }
    }
    {
      MutexLock lock(&mu_);
      // Reconnect at once; commands queue for that attempt.
      state_ = State::kConnecting;
    }
    Requeue(std::move(resend));
    for (Command& command : failed) {
      std::move(command.done)(Unavailable(error));
    }
  }

  // Puts `commands` back at the front of the queue, in order.
  void Requeue(std::vector<Command> commands) ABSL_LOCKS_EXCLUDED(mu_) {
    if (commands.empty()) return;
    MutexLock lock(&mu_);
    queue_.insert(queue_.begin(), std::make_move_iterator(commands.begin()),
                  std::make_move_iterator(commands.end()));
  }

  const Config config_;

  Mutex mu_;
  CondVar cv_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  State state_ ABSL_GUARDED_BY(mu_) = State::kConnecting;
  std::string last_error_ ABSL_GUARDED_BY(mu_);
  absl::Time next_connect_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  std::deque<Command> queue_ ABSL_GUARDED_BY(mu_);
  std::multimap<absl::Time, TimerCallback> timers_ ABSL_GUARDED_BY(mu_);
  bool delays_stopped_ ABSL_GUARDED_BY(mu_) = false;

  // Worker thread only.
  ContextPtr context_;
  std::string shas_[kScriptCount];
  Health health_ = Health::kUnknown;

  std::thread thread_;  // Last: starts once everything above exists.
};

// Counts the Begins of this process that poll an in-flight key, per record
// and in all, against the caps. Thread-safe.
class WaiterSlots {
 public:
  WaiterSlots(size_t max_per_key, size_t max_total)
      : max_per_key_(max_per_key), max_total_(max_total) {}

  // Takes a slot for `redis_key`; false when a cap is reached.
  bool TryTake(const std::string& redis_key) {
    std::lock_guard<std::mutex> lock(mu_);
    if (total_ >= max_total_) return false;
    size_t& count = per_key_[redis_key];
    if (count >= max_per_key_) {
      if (count == 0) per_key_.erase(redis_key);
      return false;
    }
    ++count;
    ++total_;
    return true;
  }

  void Give(const std::string& redis_key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = per_key_.find(redis_key);
    if (it == per_key_.end()) return;  // Cannot happen.
    if (--it->second == 0) per_key_.erase(it);
    --total_;
  }

 private:
  const size_t max_per_key_;
  const size_t max_total_;
  std::mutex mu_;
  absl::flat_hash_map<std::string, size_t> per_key_;  // mu_
  size_t total_ = 0;                                  // mu_
};

}  // namespace internal

namespace {

using internal::RedisWorker;
using internal::Script;

// Backoff between attempts to free a key claimed by a Begin whose reply was
// lost.
constexpr absl::Duration kOrphanInitialBackoff = absl::Milliseconds(50);
constexpr absl::Duration kOrphanMaxBackoff = absl::Seconds(2);

std::string Millis(absl::Duration d) {
  return absl::StrCat(std::max<int64_t>(1, absl::ToInt64Milliseconds(d)));
}

using redis::ReadPasswordFile;

absl::Status ValidateDurations(const RedisIdempotencyStore::Options& options) {
  const std::pair<absl::string_view, absl::Duration> durations[] = {
      {"retention", options.retention},
      {"in_flight_lease", options.in_flight_lease},
      {"connect_timeout", options.connect_timeout},
      {"command_timeout", options.command_timeout},
      {"initial_poll_interval", options.initial_poll_interval},
      {"max_poll_interval", options.max_poll_interval},
      {"initial_reconnect_backoff", options.initial_reconnect_backoff},
      {"max_reconnect_backoff", options.max_reconnect_backoff},
  };
  for (const auto& [name, value] : durations) {
    if (value <= absl::ZeroDuration() || value == absl::InfiniteDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "RedisIdempotencyStore option ", name, " must be positive"));
    }
  }
  if (options.max_pending_commands == 0) {
    return absl::InvalidArgumentError(
        "RedisIdempotencyStore option max_pending_commands must be positive");
  }
  return absl::OkStatus();
}

}  // namespace

struct RedisIdempotencyStore::BeginOp {
  BeginOp() = default;
  BeginOp(const BeginOp&) = delete;
  BeginOp& operator=(const BeginOp&) = delete;
  // However the Begin ends, its waiter slot (if it took one) is given back.
  ~BeginOp() {
    if (slots != nullptr) slots->Give(redis_key);
  }

  std::string redis_key;
  std::string request_hash;
  absl::Time wait_deadline;
  BeginCallback done;
  absl::Duration next_poll;
  // Set once the Begin waits (polls): the slot it holds.
  internal::WaiterSlots* slots = nullptr;
};

absl::StatusOr<std::unique_ptr<RedisIdempotencyStore>>
RedisIdempotencyStore::Create(Options options) {
  absl::Status valid = ValidateDurations(options);
  if (!valid.ok()) return valid;
  absl::StatusOr<internal::RedisAddress> parsed =
      internal::ParseRedisAddress(options.address);
  if (!parsed.ok()) return parsed.status();
  RedisWorker::Config config;
  config.address = options.address;
  config.parsed = *std::move(parsed);
  if (!options.password_file.empty()) {
    absl::StatusOr<std::string> password =
        ReadPasswordFile(options.password_file);
    if (!password.ok()) return password.status();
    config.password = Secret(*std::move(password));
  }
  config.connect_timeout = options.connect_timeout;
  config.command_timeout = options.command_timeout;
  config.initial_backoff = options.initial_reconnect_backoff;
  config.max_backoff = std::max(options.max_reconnect_backoff,
                                options.initial_reconnect_backoff);
  config.max_pending = options.max_pending_commands;
  auto worker = std::make_unique<RedisWorker>(std::move(config));
  return absl::WrapUnique(
      new RedisIdempotencyStore(std::move(options), std::move(worker)));
}

RedisIdempotencyStore::RedisIdempotencyStore(
    Options options, std::unique_ptr<internal::RedisWorker> worker)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? *options_.clock : SystemClock()),
      slots_(std::make_unique<internal::WaiterSlots>(
          options_.max_waiters_per_key, options_.max_waiters)),
      worker_(std::move(worker)) {}

RedisIdempotencyStore::~RedisIdempotencyStore() {
  // Stops the worker while worker_ is still set: the callbacks it runs on the
  // way out (the last replies, then kUnavailable for the rest) use it.
  worker_->Shutdown();
}

void RedisIdempotencyStore::Begin(const IdempotencyKey& key,
                                  absl::string_view request_hash,
                                  absl::Time wait_deadline,
                                  BeginCallback done) {
  auto op = std::make_unique<BeginOp>();
  op->redis_key = absl::StrCat(options_.key_prefix, key.Digest());
  op->request_hash = std::string(request_hash);
  op->wait_deadline = wait_deadline;
  op->done = std::move(done);
  op->next_poll = options_.initial_poll_interval;
  RunBegin(std::move(op));
}

void RedisIdempotencyStore::RunBegin(std::unique_ptr<BeginOp> op) {
  std::string token = NewLeaseToken();
  std::vector<std::string> args = {
      op->redis_key, "0", op->request_hash, token,
      Millis(options_.in_flight_lease),
      // In flight: the lease, then (if nobody settled it sooner) a retention
      // period in which the next Begin still finds it and settles it.
      Millis(options_.in_flight_lease + options_.retention),
      Millis(options_.retention)};
  worker_->Submit(
      Script::kBegin, std::move(args),
      [this, op = std::move(op), token = std::move(token)](
          absl::StatusOr<const redisReply*> reply) mutable {
        if (!reply.ok()) {
          // The script may have run and claimed the key with `token` before
          // its reply was lost (a timeout, or a failed resend). Nobody will
          // ever hold that token (the caller is told nothing was sent), so
          // free the key, retrying while Redis is unreachable; otherwise it
          // stays in flight until its lease runs out and is then settled as
          // abandoned, and every retry of a call that was never sent is told
          // its outcome is unknown.
          ReleaseOrphan(op->redis_key, token, kOrphanInitialBackoff,
                        absl::Now() + options_.in_flight_lease);
          std::move(op->done)(reply.status());
          return;
        }
        const redisReply& r = **reply;
        absl::string_view kind;
        if (r.type == REDIS_REPLY_ARRAY && r.elements >= 1 &&
            r.element[0]->type == REDIS_REPLY_STRING) {
          kind = absl::string_view(r.element[0]->str, r.element[0]->len);
        }
        if (kind == "claimed") {
          BeginResult result;
          result.kind = BeginResult::Kind::kClaimed;
          result.lease_token = std::move(token);
          std::move(op->done)(std::move(result));
        } else if (kind == "mismatch") {
          std::move(op->done)(BeginResultOf(BeginResult::Kind::kMismatch));
        } else if (kind == "abandoned") {
          BeginResult result = BeginResultOf(BeginResult::Kind::kCompleted);
          result.result = AbandonedResult();
          std::move(op->done)(std::move(result));
        } else if (kind == "done" && r.elements == 2 &&
                   r.element[1]->type == REDIS_REPLY_STRING) {
          absl::StatusOr<StoredResult> stored = ParseStoredResult(
              absl::string_view(r.element[1]->str, r.element[1]->len));
          if (!stored.ok()) {
            std::move(op->done)(
                worker_->Unavailable("a stored result does not parse"));
            return;
          }
          BeginResult result = BeginResultOf(BeginResult::Kind::kCompleted);
          result.result = *std::move(stored);
          std::move(op->done)(std::move(result));
        } else if (kind == "inflight") {
          const absl::Time now = clock_.Now();
          if (now >= op->wait_deadline || waits_aborted_.load()) {
            std::move(op->done)(BeginResultOf(BeginResult::Kind::kInProgress));
            return;
          }
          if (op->slots == nullptr) {
            // Starts waiting: within the caps, or told at once that the first
            // call is still running.
            if (!slots_->TryTake(op->redis_key)) {
              std::move(op->done)(
                  BeginResultOf(BeginResult::Kind::kInProgress));
              return;
            }
            op->slots = slots_.get();
          }
          const absl::Duration delay =
              std::min(op->next_poll, op->wait_deadline - now);
          op->next_poll =
              std::min(op->next_poll * 2, options_.max_poll_interval);
          worker_->After(
              delay, [this, op = std::move(op)](absl::Status status) mutable {
                if (!status.ok()) {
                  std::move(op->done)(std::move(status));
                  return;
                }
                if (waits_aborted_.load()) {
                  std::move(op->done)(
                      BeginResultOf(BeginResult::Kind::kInProgress));
                  return;
                }
                RunBegin(std::move(op));
              });
        } else if (r.type == REDIS_REPLY_ERROR) {
          std::move(op->done)(worker_->Unavailable(
              absl::StrCat("Begin failed (", internal::ErrorKind(r), ")")));
        } else {
          std::move(op->done)(worker_->Unavailable("unexpected Begin reply"));
        }
      });
}

void RedisIdempotencyStore::ReleaseOrphan(std::string redis_key,
                                          std::string token,
                                          absl::Duration backoff,
                                          absl::Time give_up_at) {
  std::vector<std::string> args = {redis_key, "0", token,
                                   Millis(options_.in_flight_lease),
                                   Millis(options_.retention)};
  worker_->Submit(
      Script::kRelease, std::move(args),
      [this, redis_key = std::move(redis_key), token = std::move(token),
       backoff, give_up_at](absl::StatusOr<const redisReply*> reply) mutable {
        // Any reply ends it: released, or the token holds nothing (the Begin
        // never ran, or its record is gone).
        if (reply.ok()) return;
        if (absl::Now() + backoff > give_up_at || waits_aborted_.load()) {
          Log(LogLevel::kWarning, "idempotency_redis_orphan_release_given_up",
              {{"address", options_.address},
               {"error", std::string(reply.status().message())}});
          return;
        }
        worker_->After(backoff, [this, redis_key = std::move(redis_key),
                                 token = std::move(token), backoff,
                                 give_up_at](absl::Status status) mutable {
          if (!status.ok()) return;  // The store is shutting down.
          ReleaseOrphan(std::move(redis_key), std::move(token),
                        std::min(backoff * 2, kOrphanMaxBackoff), give_up_at);
        });
      });
}

void RedisIdempotencyStore::SubmitForDone(Script script,
                                          std::vector<std::string> args,
                                          absl::Status refused,
                                          absl::string_view unexpected,
                                          DoneCallback done) {
  worker_->Submit(
      script, std::move(args),
      [this, refused = std::move(refused), unexpected = std::string(unexpected),
       done = std::move(done)](
          absl::StatusOr<const redisReply*> reply) mutable {
        if (!reply.ok()) {
          std::move(done)(reply.status());
        } else if ((*reply)->type == REDIS_REPLY_INTEGER &&
                   (*reply)->integer == 1) {
          std::move(done)(absl::OkStatus());
        } else if ((*reply)->type == REDIS_REPLY_INTEGER &&
                   (*reply)->integer == 0) {
          std::move(done)(std::move(refused));
        } else {
          std::move(done)(worker_->Unavailable(unexpected));
        }
      });
}

void RedisIdempotencyStore::AbortWaits() {
  // Set first: a Begin whose reply comes after this does not start waiting,
  // and a poll timer that fires after StopDelaying() (below) sees it.
  waits_aborted_.store(true);
  worker_->StopDelaying();
}

void RedisIdempotencyStore::Complete(const IdempotencyKey& key,
                                     absl::string_view lease_token,
                                     StoredResult result, DoneCallback done) {
  std::vector<std::string> args = {
      absl::StrCat(options_.key_prefix, key.Digest()), "0",
      std::string(lease_token), SerializeStoredResult(result),
      Millis(options_.retention)};
  SubmitForDone(Script::kComplete, std::move(args), LeaseNotHeldError(),
                "unexpected Complete reply", std::move(done));
}

void RedisIdempotencyStore::SettleUnknown(const IdempotencyKey& key,
                                          absl::string_view request_hash,
                                          const StoredResult& expected,
                                          StoredResult result,
                                          DoneCallback done) {
  if (absl::Status s = CheckSettleableUnknown(expected); !s.ok()) {
    std::move(done)(std::move(s));
    return;
  }
  const std::string expected_bytes = SerializeStoredResult(expected);
  const bool abandoned =
      expected_bytes == SerializeStoredResult(AbandonedResult());
  std::vector<std::string> args = {
      absl::StrCat(options_.key_prefix, key.Digest()), "0",
      std::string(request_hash), expected_bytes, SerializeStoredResult(result),
      abandoned ? "1" : "0"};
  SubmitForDone(Script::kSettleUnknown, std::move(args),
                NotTheUnknownResultError(), "unexpected SettleUnknown reply",
                std::move(done));
}

void RedisIdempotencyStore::Release(const IdempotencyKey& key,
                                    absl::string_view lease_token,
                                    DoneCallback done) {
  std::vector<std::string> args = {
      absl::StrCat(options_.key_prefix, key.Digest()), "0",
      std::string(lease_token), Millis(options_.in_flight_lease),
      Millis(options_.retention)};
  SubmitForDone(Script::kRelease, std::move(args), LeaseNotHeldError(),
                "unexpected Release reply", std::move(done));
}

}  // namespace clink_gateway::idempotency
