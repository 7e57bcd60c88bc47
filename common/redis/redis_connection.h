// Connecting to Redis over hiredis' blocking API, as the gateway's Redis
// stores (idempotency keys, webhook events) do: the address forms they accept,
// the password file, connect and per-read/write timeouts, AUTH.
#ifndef CLINK_GATEWAY_COMMON_REDIS_REDIS_CONNECTION_H_
#define CLINK_GATEWAY_COMMON_REDIS_REDIS_CONNECTION_H_

#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/secret.h"

namespace clink_gateway::redis {

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

struct ContextDeleter {
  void operator()(redisContext* context) const { redisFree(context); }
};
using ContextPtr = std::unique_ptr<redisContext, ContextDeleter>;

struct RedisAddress {
  bool is_unix = false;
  std::string path;  // unix
  std::string host;  // tcp
  int port = 0;
};

// "host:port", "[ipv6]:port" or "unix:/path/to/redis.sock";
// kInvalidArgument otherwise.
absl::StatusOr<RedisAddress> ParseRedisAddress(absl::string_view address);

// The password in `path`, without trailing newlines. kNotFound when the file
// cannot be read, kInvalidArgument when it is empty. Never logs the password.
absl::StatusOr<std::string> ReadPasswordFile(const std::string& path);

// Sends one command (binary-safe arguments) and reads its reply; nullptr when
// the connection failed (context->err / errstr say why).
ReplyPtr CommandArgv(redisContext* context,
                     const std::vector<absl::string_view>& args);

// The first word of a Redis error ("NOSCRIPT", "WRONGTYPE", "ERR"): enough to
// diagnose, and never data.
absl::string_view ErrorKind(const redisReply& reply);

// Connects within `connect_timeout`, sets `command_timeout` on every socket
// read and write, enables TCP keep-alive, and AUTHs when `password` is set.
// kUnavailable (with hiredis' or Redis' reason, never the password) when any
// step fails.
absl::StatusOr<ContextPtr> Connect(const RedisAddress& address,
                                   const Secret& password,
                                   absl::Duration connect_timeout,
                                   absl::Duration command_timeout);

}  // namespace clink_gateway::redis

#endif  // CLINK_GATEWAY_COMMON_REDIS_REDIS_CONNECTION_H_
