// The Lua scripts RedisIdempotencyStore runs on Redis (one per store
// operation), and the record layout they share. Internal to the Redis store.
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_REDIS_SCRIPTS_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_REDIS_SCRIPTS_H_

#include <cstddef>

namespace clink_gateway::idempotency::internal {

// Index into kScripts.
enum class Script {
  kBegin = 0,
  kComplete = 1,
  kRelease = 2,
  kSettleUnknown = 3
};

inline constexpr size_t kScriptCount = 4;

// The scripts' source, by Script (see redis_scripts.cc for what each takes
// and returns).
extern const char* const kScripts[kScriptCount];

}  // namespace clink_gateway::idempotency::internal

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_REDIS_SCRIPTS_H_
