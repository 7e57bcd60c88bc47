#include "tests/redis/redis_server.h"

#include <sys/stat.h>

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace clink_gateway::testing {
namespace {

bool SocketExists(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISSOCK(info.st_mode);
}

TEST(RedisServerTest, StartsOnAShortUnixSocketAndAnswers) {
  absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Create();
  ASSERT_TRUE(redis.ok()) << redis.status();
  EXPECT_LT((*redis)->socket_path().size(), 100u);
  EXPECT_EQ((*redis)->address(), "unix:" + (*redis)->socket_path());
  EXPECT_TRUE(SocketExists((*redis)->socket_path()));

  absl::StatusOr<RespReply> set = (*redis)->Command({"SET", "k", "v\r\n1"});
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->type, RespReply::Type::kStatus);
  absl::StatusOr<RespReply> get = (*redis)->Command({"GET", "k"});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->type, RespReply::Type::kString);
  EXPECT_EQ(get->text, "v\r\n1");
  absl::StatusOr<RespReply> missing = (*redis)->Command({"GET", "nope"});
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_EQ(missing->type, RespReply::Type::kNil);
  absl::StatusOr<RespReply> keys = (*redis)->Command({"KEYS", "*"});
  ASSERT_TRUE(keys.ok()) << keys.status();
  ASSERT_EQ(keys->type, RespReply::Type::kArray);
  ASSERT_EQ(keys->elements.size(), 1u);
  EXPECT_EQ(keys->elements[0].text, "k");
}

TEST(RedisServerTest, StopsAndStartsAgainOnTheSameSocketWithNoData) {
  absl::StatusOr<std::unique_ptr<RedisServer>> redis = RedisServer::Create();
  ASSERT_TRUE(redis.ok()) << redis.status();
  RedisServer& server = **redis;
  ASSERT_TRUE(server.Command({"SET", "k", "v"}).ok());

  ASSERT_TRUE(server.Stop().ok());
  EXPECT_FALSE(server.running());
  EXPECT_EQ(server.Command({"PING"}).status().code(),
            absl::StatusCode::kUnavailable);

  ASSERT_TRUE(server.Start().ok());
  EXPECT_TRUE(server.running());
  absl::StatusOr<RespReply> get = server.Command({"GET", "k"});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->type, RespReply::Type::kNil);  // Nothing persisted.
}

TEST(RedisServerTest, ExtraArgumentsReachTheServer) {
  RedisServer::Options options;
  options.extra_args = {"--requirepass", "test-only-password"};
  absl::StatusOr<std::unique_ptr<RedisServer>> redis =
      RedisServer::Create(options);
  ASSERT_TRUE(redis.ok()) << redis.status();
  absl::StatusOr<RespReply> get = (*redis)->Command({"GET", "k"});
  ASSERT_TRUE(get.ok()) << get.status();
  EXPECT_EQ(get->type, RespReply::Type::kError);
  EXPECT_EQ(get->text.substr(0, 6), "NOAUTH");
}

TEST(RedisServerTest, ReportsAMissingBinary) {
  RedisServer::Options options;
  options.binary = "/nonexistent/redis-server";
  options.start_timeout = absl::Seconds(5);
  EXPECT_FALSE(RedisServer::Create(options).ok());
}

}  // namespace
}  // namespace clink_gateway::testing
