// A real redis-server for tests: a child process listening only on a unix
// socket in a temporary directory, with persistence off.
//
//   absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Create();
//   ASSERT_TRUE(redis.ok()) << redis.status();
//   options.address = (*redis)->address();  // "unix:/tmp/.../redis.sock"
#ifndef CLINK_GATEWAY_TESTS_REDIS_REDIS_SERVER_H_
#define CLINK_GATEWAY_TESTS_REDIS_REDIS_SERVER_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace clink_gateway::testing {

// One Redis reply, as read by RedisServer::Command().
struct RespReply {
  enum class Type { kString, kStatus, kError, kInteger, kNil, kArray };
  Type type = Type::kNil;
  std::string text;  // kString, kStatus, kError
  int64_t integer = 0;
  std::vector<RespReply> elements;  // kArray
};

class RedisServer {
 public:
  struct Options {
    std::string binary = "/usr/bin/redis-server";
    // Appended to the command line, e.g. {"--requirepass", "secret"}.
    std::vector<std::string> extra_args;
    // How long Start() waits for the server to answer PING.
    absl::Duration start_timeout = absl::Seconds(10);
  };

  // Starts a server and waits until it answers PING.
  static absl::StatusOr<std::unique_ptr<RedisServer>> Create();
  static absl::StatusOr<std::unique_ptr<RedisServer>> Create(Options options);

  // Kills the server (SIGKILL) and removes its directory.
  ~RedisServer();

  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // "unix:<socket path>": the address RedisIdempotencyStore takes.
  std::string address() const { return "unix:" + socket_path_; }
  const std::string& socket_path() const { return socket_path_; }
  bool running() const { return pid_ > 0; }

  // Starts the server again on the same socket (its data is gone: nothing is
  // persisted). FailedPrecondition when it is running.
  absl::Status Start();
  // SIGTERM, then SIGKILL when it has not exited within 5 s; waits for it.
  absl::Status Stop();
  // SIGSTOP / SIGCONT: the socket stays open but nothing answers.
  absl::Status Pause();
  absl::Status Resume();

  // Sends one command on a new connection and reads its reply (10 s limit).
  absl::StatusOr<RespReply> Command(const std::vector<std::string>& args) const;

 private:
  RedisServer(Options options, std::string dir, std::string socket_path);

  absl::Status WaitUntilReady();
  void Kill();

  const Options options_;
  const std::string dir_;
  const std::string socket_path_;
  pid_t pid_ = -1;
};

}  // namespace clink_gateway::testing

#endif  // CLINK_GATEWAY_TESTS_REDIS_REDIS_SERVER_H_
