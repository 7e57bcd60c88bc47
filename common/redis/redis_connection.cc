#include "common/redis/redis_connection.h"

#include <sys/time.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace clink_gateway::redis {
namespace {

timeval TimeoutTimeval(absl::Duration d) {
  return absl::ToTimeval(std::max(d, absl::Milliseconds(1)));
}

}  // namespace

absl::StatusOr<RedisAddress> ParseRedisAddress(absl::string_view address) {
  RedisAddress parsed;
  if (absl::ConsumePrefix(&address, "unix:")) {
    if (address.empty()) {
      return absl::InvalidArgumentError("Redis address: empty unix path");
    }
    parsed.is_unix = true;
    parsed.path = std::string(address);
    return parsed;
  }
  const size_t colon = address.rfind(':');
  if (colon == absl::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("Redis address \"", address,
                     "\": expected host:port, [ipv6]:port or unix:/path"));
  }
  absl::string_view host = address.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[") && !absl::ConsumeSuffix(&host, "]")) {
    return absl::InvalidArgumentError(
        absl::StrCat("Redis address \"", address, "\": unbalanced ["));
  }
  int port = 0;
  if (host.empty() || !absl::SimpleAtoi(address.substr(colon + 1), &port) ||
      port <= 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("Redis address \"", address, "\": bad host or port"));
  }
  parsed.host = std::string(host);
  parsed.port = port;
  return parsed;
}

absl::StatusOr<std::string> ReadPasswordFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read Redis password file ", path));
  }
  std::ostringstream contents;
  contents << in.rdbuf();
  std::string password = contents.str();
  while (!password.empty() &&
         (password.back() == '\n' || password.back() == '\r')) {
    password.pop_back();
  }
  if (password.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("Redis password file ", path, " is empty"));
  }
  return password;
}

ReplyPtr CommandArgv(redisContext* context,
                     const std::vector<absl::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (absl::string_view arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  return ReplyPtr(static_cast<redisReply*>(redisCommandArgv(
      context, static_cast<int>(argv.size()), argv.data(), lengths.data())));
}

absl::string_view ErrorKind(const redisReply& reply) {
  absl::string_view text(reply.str, reply.len);
  return text.substr(0, std::min(text.find(' '), size_t{32}));
}

absl::StatusOr<ContextPtr> Connect(const RedisAddress& address,
                                   const Secret& password,
                                   absl::Duration connect_timeout,
                                   absl::Duration command_timeout) {
  const timeval connect_tv = TimeoutTimeval(connect_timeout);
  ContextPtr context(
      address.is_unix
          ? redisConnectUnixWithTimeout(address.path.c_str(), connect_tv)
          : redisConnectWithTimeout(address.host.c_str(), address.port,
                                    connect_tv));
  if (context == nullptr) {
    return absl::ResourceExhaustedError("cannot allocate a connection");
  }
  if (context->err != 0) return absl::UnavailableError(context->errstr);
  if (redisSetTimeout(context.get(), TimeoutTimeval(command_timeout)) != 0 ||
      (!address.is_unix && redisEnableKeepAlive(context.get()) != 0)) {
    return absl::UnavailableError(context->errstr);
  }
  if (!password.empty()) {
    ReplyPtr reply = CommandArgv(context.get(), {"AUTH", password.Reveal()});
    if (reply == nullptr) return absl::UnavailableError(context->errstr);
    if (reply->type == REDIS_REPLY_ERROR) {
      return absl::UnavailableError(
          absl::StrCat("AUTH refused (", ErrorKind(*reply), ")"));
    }
  }
  return context;
}

}  // namespace clink_gateway::redis
