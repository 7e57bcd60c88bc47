#include "adapters/http/sharded_curl_transport.h"

#include <memory>
#include <string>
#include <thread>  // NOLINT(build/c++11)
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "adapters/http/api_key_signer.h"
#include "adapters/http/curl_http_transport.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_transport.h"
#include "adapters/http/http_types.h"
#include "adapters/http/testing/test_http_server.h"
#include "common/secret.h"
#include "common/sync.h"
#include "common/testing/fake_clock.h"
#include "gtest/gtest.h"

namespace clink_gateway::http {
namespace {

using ::clink_gateway::http::testing::RecordedRequest;
using ::clink_gateway::http::testing::TestHttpServer;
using ::clink_gateway::http::testing::TestResponse;

constexpr absl::Duration kWait = absl::Seconds(20);

// One call's result, set once by `done`.
struct Pending {
  Notification done;
  HttpResult result;
  HttpTransport::DoneCallback Callback() {
    return [this](HttpResult r) {
      result = std::move(r);
      done.Notify();
    };
  }
};

HttpRequest Get(std::string path) {
  HttpRequest request;
  request.method = Method::kGet;
  request.path_and_query = std::move(path);
  return request;
}

class ShardedCurlTransportTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto server = TestHttpServer::Start(
        [this](const RecordedRequest& request) {
          TestResponse response;
          if (request.path == "/api/pair" &&
              !server_->WaitForRequests(2, kWait)) {
            response.status = 500;  // the two calls never overlapped
          } else if (request.path == "/api/slow") {
            release_.WaitForNotificationWithTimeout(kWait);
          }
          response.body = request.path;
          return response;
        },
        /*threads=*/16);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }
  void TearDown() override {
    if (!release_.HasBeenNotified()) release_.Notify();
  }

  CurlHttpTransport::Options Options(int max_connections) {
    CurlHttpTransport::Options options;
    options.base_url = absl::StrCat(server_->base_url(), "/api");
    options.allow_plaintext = true;
    options.signer = &signer_;
    options.clock = &clock_;
    options.max_connections = max_connections;
    options.egress.allow_cidrs = *ParseCidrList("127.0.0.0/8");
    return options;
  }

  std::unique_ptr<ShardedCurlTransport> Create(int max_connections,
                                               int shards) {
    auto transport =
        ShardedCurlTransport::Create(Options(max_connections), shards);
    EXPECT_TRUE(transport.ok()) << transport.status();
    return transport.ok() ? *std::move(transport) : nullptr;
  }

  FakeClock clock_;
  ApiKeySigner signer_{Secret("sk_test_shards"), clock_};
  Notification release_;  // unblocks /api/slow; outlives server_
  std::unique_ptr<TestHttpServer> server_;
};

TEST(CoresAvailableTest, IsAtLeastOneAndAtMostTheMachinesCores) {
  EXPECT_GE(CoresAvailable(), 1);
  const int hardware = static_cast<int>(std::thread::hardware_concurrency());
  if (hardware > 0) EXPECT_LE(CoresAvailable(), hardware);
}

TEST_F(ShardedCurlTransportTest, ShardsAreClampedToTheConnections) {
  auto transport = Create(/*max_connections=*/3, /*shards=*/8);
  ASSERT_NE(transport, nullptr);
  EXPECT_EQ(transport->shard_count(), 3);
  auto one = Create(/*max_connections=*/32, /*shards=*/1);
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one->shard_count(), 1);
}

TEST_F(ShardedCurlTransportTest, ZeroShardsMeansTheCoresAvailable) {
  auto transport = Create(/*max_connections=*/64, /*shards=*/0);
  ASSERT_NE(transport, nullptr);
  EXPECT_EQ(transport->shard_count(), std::min(64, CoresAvailable()));
}

TEST_F(ShardedCurlTransportTest, InvalidOptionsFailCreate) {
  CurlHttpTransport::Options options = Options(4);
  options.base_url = "ftp://example.com";
  EXPECT_EQ(ShardedCurlTransport::Create(options, 2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ShardedCurlTransport::Create(Options(0), 2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Two shards with one connection each: the second call goes to the idle
// shard, so both are in the server at once (one shard would send them one
// after the other on its single connection, and /api/pair would answer 500).
TEST_F(ShardedCurlTransportTest, ConcurrentCallsGoToTheLeastLoadedShard) {
  auto transport = Create(/*max_connections=*/2, /*shards=*/2);
  ASSERT_NE(transport, nullptr);
  Pending a, b;
  transport->Send(Get("/pair"), {}, a.Callback());
  transport->Send(Get("/pair"), {}, b.Callback());
  ASSERT_TRUE(a.done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(b.done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(a.result.status.ok()) << a.result.status;
  ASSERT_TRUE(b.result.status.ok()) << b.result.status;
  EXPECT_EQ(a.result.response.status_code, 200);
  EXPECT_EQ(b.result.response.status_code, 200);
  EXPECT_EQ(server_->connections_accepted(), 2);
}

// The pool is split, not multiplied: 3 connections over 2 shards stay 3.
TEST_F(ShardedCurlTransportTest, ManyCallsStayWithinTheSplitPool) {
  auto transport = Create(/*max_connections=*/3, /*shards=*/2);
  ASSERT_NE(transport, nullptr);
  std::vector<Pending> calls(60);
  for (size_t i = 0; i < calls.size(); ++i) {
    transport->Send(Get(absl::StrCat("/order/", i)), {}, calls[i].Callback());
  }
  for (size_t i = 0; i < calls.size(); ++i) {
    ASSERT_TRUE(calls[i].done.WaitForNotificationWithTimeout(kWait)) << i;
    ASSERT_TRUE(calls[i].result.status.ok()) << calls[i].result.status;
    EXPECT_EQ(calls[i].result.response.body, absl::StrCat("/api/order/", i));
  }
  const CurlHttpTransport::Stats stats = transport->stats();
  EXPECT_EQ(stats.requests_started, 60);
  EXPECT_EQ(stats.in_flight, 0);
  EXPECT_LE(stats.connections_opened, 3);
  EXPECT_LE(server_->connections_accepted(), 3);
}

TEST_F(ShardedCurlTransportTest, ShutdownCompletesCallsOnEveryShard) {
  auto transport = Create(/*max_connections=*/2, /*shards=*/2);
  ASSERT_NE(transport, nullptr);
  Pending a, b;
  transport->Send(Get("/slow"), {}, a.Callback());
  transport->Send(Get("/slow"), {}, b.Callback());
  ASSERT_TRUE(server_->WaitForRequests(2, kWait));
  transport->Shutdown();
  ASSERT_TRUE(a.done.HasBeenNotified());
  ASSERT_TRUE(b.done.HasBeenNotified());
  for (const HttpResult* r : {&a.result, &b.result}) {
    EXPECT_EQ(r->status.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(r->failure, FailureKind::kShutdown);
    EXPECT_EQ(r->delivery, Delivery::kUnknown);
  }
  Pending late;
  transport->Send(Get("/order/1"), {}, late.Callback());
  ASSERT_TRUE(late.done.HasBeenNotified());  // inline
  EXPECT_EQ(late.result.failure, FailureKind::kShutdown);
  EXPECT_EQ(late.result.delivery, Delivery::kNotSent);
}

}  // namespace
}  // namespace clink_gateway::http
