#include "adapters/idempotency/redis_scripts.h"

namespace clink_gateway::idempotency::internal {
namespace {

// Record layout (one Redis hash per key):
//   h  request hash
//   s  state: f (in flight), d (done), a (abandoned), r (released)
//   t  lease token of the holder (kept after Complete/Release, so a retried
//      command with the same token is recognised; removed when abandoned)
//   l  lease expiry, Redis server time in ms (in flight only)
//   r  SerializeStoredResult bytes (done only)
//
// Every script reads the time with TIME (allowed in scripts since Redis 5,
// which replicate effects, not scripts), so leases follow one clock.
//
// ARGV[1] of every script is "1" when the worker resends the command after
// its connection closed (the first attempt may have run), else "0".

// KEYS[1] record. ARGV: resent, request hash, new lease token, lease ms, TTL
// ms of an in-flight record, retention ms (an abandoned record is kept that
// long from when it is settled).
// Returns {"claimed"} | {"mismatch"} | {"done", result} | {"abandoned"} |
// {"inflight"}.
constexpr char kBeginScript[] = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rec = redis.call('HMGET', KEYS[1], 'h', 's', 't', 'l', 'r')
if not rec[1] or rec[2] == 'r' then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'h', ARGV[2], 's', 'f', 't', ARGV[3],
             'l', string.format('%.0f', now + tonumber(ARGV[4])))
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  return {'claimed'}
end
if rec[1] ~= ARGV[2] then return {'mismatch'} end
if rec[2] == 'd' then return {'done', rec[5]} end
if rec[2] == 'a' then return {'abandoned'} end
if rec[2] ~= 'f' then return {'corrupt'} end
if now >= tonumber(rec[4]) then
  redis.call('HSET', KEYS[1], 's', 'a')
  redis.call('HDEL', KEYS[1], 't', 'l')
  redis.call('PEXPIRE', KEYS[1], ARGV[6])
  return {'abandoned'}
end
if ARGV[1] == '1' and rec[3] == ARGV[3] then return {'claimed'} end
return {'inflight'}
)lua";

// KEYS[1] record. ARGV: resent, lease token, serialized result, retention ms.
// Returns 1 (completed) or 0 (the token does not hold the key).
constexpr char kCompleteScript[] = R"lua(
local rec = redis.call('HMGET', KEYS[1], 's', 't', 'l')
if rec[2] ~= ARGV[2] then return 0 end
if rec[1] == 'd' and ARGV[1] == '1' then return 1 end
if rec[1] ~= 'f' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= tonumber(rec[3]) then
  redis.call('HSET', KEYS[1], 's', 'a')
  redis.call('HDEL', KEYS[1], 't', 'l')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 0
end
redis.call('HSET', KEYS[1], 's', 'd', 'r', ARGV[3])
redis.call('HDEL', KEYS[1], 'l')
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
)lua";

// KEYS[1] record. ARGV: resent, lease token, TTL ms of the released record,
// retention ms (of a record found abandoned).
// Returns 1 (released) or 0 (the token does not hold the key). A released
// record is a tombstone that Begin treats as absent; it only lets a resent
// Release recognise its own token.
constexpr char kReleaseScript[] = R"lua(
local rec = redis.call('HMGET', KEYS[1], 's', 't', 'l')
if rec[2] ~= ARGV[2] then return 0 end
if rec[1] == 'r' and ARGV[1] == '1' then return 1 end
if rec[1] ~= 'f' then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now >= tonumber(rec[3]) then
  redis.call('HSET', KEYS[1], 's', 'a')
  redis.call('HDEL', KEYS[1], 't', 'l')
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 0
end
redis.call('HSET', KEYS[1], 's', 'r')
redis.call('HDEL', KEYS[1], 'h', 'l', 'r')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
)lua";

// KEYS[1] record. ARGV: resent, request hash, expected result bytes, new
// result bytes, "1" when the expected result is AbandonedResult() (an
// abandoned record keeps no result bytes).
// Returns 1 (replaced) or 0 (not the unknown result expected: absent, in
// flight, another request or another result). The record keeps its TTL.
constexpr char kSettleUnknownScript[] = R"lua(
local rec = redis.call('HMGET', KEYS[1], 'h', 's', 'r')
if not rec[1] or rec[1] ~= ARGV[2] then return 0 end
if (rec[2] == 'd' and rec[3] == ARGV[3]) or
   (rec[2] == 'a' and ARGV[5] == '1') then
  redis.call('HSET', KEYS[1], 's', 'd', 'r', ARGV[4])
  return 1
end
return 0
)lua";

}  // namespace

const char* const kScripts[kScriptCount] = {
    kBeginScript, kCompleteScript, kReleaseScript, kSettleUnknownScript};

}  // namespace clink_gateway::idempotency::internal
