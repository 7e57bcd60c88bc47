// An IdempotencyStore in Redis, shared by every gateway replica, so that a
// keyed call reaches Clink at most once across the fleet and across restarts.
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_REDIS_IDEMPOTENCY_STORE_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_REDIS_IDEMPOTENCY_STORE_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/idempotency/idempotency_store.h"
#include "adapters/idempotency/key_waiters.h"
#include "adapters/idempotency/redis_scripts.h"
#include "common/clock.h"

namespace clink_gateway::idempotency {

namespace internal {
class RedisWorker;
class WaiterSlots;
}  // namespace internal

// Each record is one Redis hash named key_prefix + IdempotencyKey::Digest()
// (no caller data in key names), with a PX expiry: max(retention,
// in_flight_lease) from the claim, `retention` from Complete(). Begin,
// Complete and Release are each one Lua script, so each is atomic across
// replicas; leases are timed with the Redis server's clock (TIME), so the
// gateways' clocks do not matter for them.
//
// Nothing blocks the caller's thread on the network: one worker thread owns
// the connection and pipelines queued commands; callbacks run on that thread
// (or inline, when a call fails before reaching it). A Begin that finds the
// key in flight on another call (in this process or another) re-runs its
// script on a schedule (initial_poll_interval, doubling up to
// max_poll_interval) until the record is final or released, or wait_deadline
// (read from `clock`) passes; at most max_waiters_per_key Begins per key and
// max_waiters in all poll at once, more are answered kInProgress at once (no
// Begin is ever answered inside another call's Release: a poll's reply, like
// every reply, runs on the worker thread). AbortWaits() ends every such wait: a
// Begin waiting between polls is answered kInProgress at once, one whose script
// is with Redis when its reply comes (within command_timeout).
//
// On every (re)connection the store asks Redis for its maxmemory-policy and
// logs a warning (event idempotency_redis_eviction_policy) when it is not
// noeviction: Redis may then evict records early, and a retry whose record
// was evicted reaches Clink again. When CONFIG is disabled or renamed
// (managed Redis) it logs at info level that the policy was not checked. It
// never refuses to work over the policy.
//
// When Redis cannot be reached, queued and new calls fail fast with
// kUnavailable (the message names the address, never data); the worker
// reconnects in the background with backoff and the store recovers by itself.
// A command whose connection was closed under it (Redis restarted, an idle
// connection dropped) is resent once on a new connection, marked as resent:
// the scripts then recognise their own lease token, so a resent Begin,
// Complete or Release whose first attempt did run has the effect of one. A
// command that timed out is not resent (Redis is hung or overloaded); a Begin
// whose reply was lost that way frees the key it may have claimed (a Release
// with its token, retried with backoff while Redis cannot be reached, for up
// to in_flight_lease), so the caller's retry is not told UNKNOWN about a call
// that was never sent.
class RedisIdempotencyStore final : public IdempotencyStore {
 public:
  struct Options {
    // "host:port", "[ipv6]:port" or "unix:/path/to/redis.sock".
    std::string address;
    // Optional file holding the Redis password (AUTH); a trailing newline is
    // ignored. Read once by Create(); the password is never logged.
    std::string password_file;
    // How long a final result is replayed.
    absl::Duration retention = absl::Hours(24);
    // How long a claimed key may stay in flight before it is settled as
    // abandoned. Must exceed the longest call the gateway makes.
    absl::Duration in_flight_lease = absl::Minutes(2);
    absl::Duration connect_timeout = absl::Milliseconds(500);
    // Limit for each socket read or write on the connection.
    absl::Duration command_timeout = absl::Milliseconds(500);
    // Prefix of every key the store writes (a version, so a future record
    // format can live beside this one).
    std::string key_prefix = "clink-gateway:idem:v1:";
    // How often a Begin waiting on an in-flight key re-checks it.
    absl::Duration initial_poll_interval = absl::Milliseconds(5);
    absl::Duration max_poll_interval = absl::Milliseconds(50);
    // Delay between reconnection attempts: doubles from the initial value.
    absl::Duration initial_reconnect_backoff = absl::Milliseconds(50);
    absl::Duration max_reconnect_backoff = absl::Seconds(1);
    // Commands queued for the worker at most; more fail with kUnavailable.
    size_t max_pending_commands = 10000;
    // Time source for wait deadlines only; nullptr means SystemClock(). Must
    // outlive the store.
    const Clock* clock = nullptr;
    // Begins of this process polling one in-flight key at most / polling in
    // all at most (each poll is a command: unbounded waiters would crowd out
    // every other command); beyond either, Begin answers kInProgress without
    // waiting. Other replicas count their own.
    size_t max_waiters_per_key = kDefaultMaxWaitersPerKey;
    size_t max_waiters = kDefaultMaxWaiters;
  };

  // kInvalidArgument for a malformed address or a non-positive duration;
  // kNotFound / kPermissionDenied when password_file cannot be read. Does not
  // wait for Redis: the worker connects in the background, and calls made
  // meanwhile wait for that first attempt (at most about connect_timeout +
  // command_timeout).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RedisIdempotencyStore>>
  Create(Options options);

  // Fails every queued call and every waiting Begin with kUnavailable ("store
  // shutting down") and joins the worker. No call may be in progress.
  ~RedisIdempotencyStore() override;

  RedisIdempotencyStore(const RedisIdempotencyStore&) = delete;
  RedisIdempotencyStore& operator=(const RedisIdempotencyStore&) = delete;

  void Begin(const IdempotencyKey& key, absl::string_view request_hash,
             absl::Time wait_deadline, BeginCallback done) override;
  void Complete(const IdempotencyKey& key, absl::string_view lease_token,
                StoredResult result, DoneCallback done) override;
  void Release(const IdempotencyKey& key, absl::string_view lease_token,
               DoneCallback done) override;
  void SettleUnknown(const IdempotencyKey& key, absl::string_view request_hash,
                     const StoredResult& expected, StoredResult result,
                     DoneCallback done) override;
  // Waiting Begins are answered on the worker thread, after this returns.
  void AbortWaits() override;

 private:
  struct BeginOp;

  RedisIdempotencyStore(Options options,
                        std::unique_ptr<internal::RedisWorker> worker);

  void RunBegin(std::unique_ptr<BeginOp> op);
  // Frees a key that a Begin whose reply was lost may have claimed with
  // `token` (nobody will ever hold it), retrying with backoff while Redis
  // cannot be reached, until `give_up_at` or AbortWaits().
  // Runs `script`, which answers 1 (done) or 0 (refused), and tells `done`:
  // OK, `refused`, the worker's error, or kUnavailable (`unexpected`) for any
  // other reply.
  void SubmitForDone(internal::Script script, std::vector<std::string> args,
                     absl::Status refused, absl::string_view unexpected,
                     DoneCallback done);
  void ReleaseOrphan(std::string redis_key, std::string token,
                     absl::Duration backoff, absl::Time give_up_at);

  const Options options_;
  const Clock& clock_;
  // Set by AbortWaits(): Begins stop waiting.
  std::atomic<bool> waits_aborted_{false};
  // Begins polling an in-flight key, counted against the caps. Outlives the
  // worker (whose shutdown ends the last polls).
  std::unique_ptr<internal::WaiterSlots> slots_;
  std::unique_ptr<internal::RedisWorker> worker_;
};

}  // namespace clink_gateway::idempotency

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_REDIS_IDEMPOTENCY_STORE_H_
