// IdempotentClinkApi over the real Redis store (tests/redis): a store write
// that fails while Redis does not answer is retried until it lands.
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/clink/error_mapping.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/idempotency/idempotent_clink_api.h"
#include "adapters/idempotency/redis_idempotency_store.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "common/errors/error_details.h"
#include "gtest/gtest.h"
#include "tests/redis/redis_server.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;
using ::clink_gateway::testing::RedisServer;

constexpr std::chrono::seconds kTimeout(30);

// Clink: the first call is held until Answer(); later ones succeed at once.
class HeldClinkApi final : public ClinkApi {
 public:
  void Call(const RestMethod& method, const google::protobuf::Message& request,
            const CallOptions& options, google::protobuf::Message* response,
            Callback done) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (++calls_ == 1) {
        held_ = std::move(done);
        return;
      }
      static_cast<v1::CreatePaymentResponse*>(response)->set_order_id(
          absl::StrCat("ord_", calls_));
    }
    std::move(done)(CallResult{});
  }
  void Answer(absl::Status status, Outcome outcome) {
    Callback done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done = std::move(held_);
    }
    CallResult result;
    result.status = std::move(status);
    result.outcome = outcome;
    std::move(done)(std::move(result));
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

 private:
  std::mutex mu_;
  int calls_ = 0;  // mu_
  Callback held_;  // mu_
};

class Events final : public UpstreamObserver {
 public:
  void OnIdempotencyStoreRetry(StoreWrite write,
                               StoreRetryResult result) override {
    Push(
        absl::StrCat(StoreWriteName(write), ":", StoreRetryResultName(result)));
  }
  void Push(std::string event) {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(std::move(event));
    cv_.notify_all();
  }
  // Waits for one of `wanted`; returns it, or "" on timeout.
  std::string WaitFor(const std::vector<std::string>& wanted) {
    std::unique_lock<std::mutex> lock(mu_);
    std::string found;
    cv_.wait_for(lock, kTimeout, [&] {
      for (const std::string& e : events_) {
        for (const std::string& w : wanted) {
          if (e == w) {
            found = e;
            return true;
          }
        }
      }
      return false;
    });
    return found;
  }
  std::vector<std::string> events() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> events_;
};

absl::Status RateLimited() {
  absl::Status status = absl::ResourceExhaustedError("clink: HTTP 429");
  errors::AttachErrorInfo(status, errors::kGatewayDomain, "TEST",
                          Outcome::kRejected);
  return status;
}

// Redis stops answering (SIGSTOP) between the claim and the Release of a
// call Clink refused (429: nothing done). Before the fix the key stayed
// claimed for the whole lease and was then settled as abandoned, so the
// caller's retry heard UNKNOWN about a payment never made.
TEST(IdempotentClinkApiRedisTest, AReleaseLostToAHungRedisLandsWhenItAnswers) {
  absl::StatusOr<std::unique_ptr<RedisServer>> server = RedisServer::Create();
  ASSERT_TRUE(server.ok()) << server.status();
  idempotency::RedisIdempotencyStore::Options store_options;
  store_options.address = (*server)->address();
  store_options.command_timeout = absl::Milliseconds(200);
  store_options.connect_timeout = absl::Milliseconds(200);
  store_options.max_reconnect_backoff = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<idempotency::RedisIdempotencyStore>> store =
      idempotency::RedisIdempotencyStore::Create(store_options);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<std::unique_ptr<RestCodec>> codec =
      RestCodec::CreateForServices(GatewayServiceNames());
  ASSERT_TRUE(codec.ok()) << codec.status();
  HeldClinkApi inner;
  Events events;
  IdempotentClinkApi::Options options;
  options.initial_backoff = absl::Milliseconds(20);
  options.max_backoff = absl::Milliseconds(200);
  options.retry_for = absl::Seconds(30);
  auto api = std::make_unique<IdempotentClinkApi>(**codec, inner, **store,
                                                  &events, options);
  const RestMethod* method =
      (*codec)->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  ASSERT_NE(method, nullptr);
  v1::CreatePaymentRequest request;
  request.set_customer_id("cus_1");
  request.set_payment_instrument_id("pi_1");
  request.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  request.set_return_url("https://shop.example/return");
  request.set_amount("19.99");
  request.set_currency("USD");
  CallOptions call_options;
  call_options.idempotency_key = "k1";
  call_options.caller = "checkout";
  call_options.deadline = absl::Now() + absl::Minutes(1);

  v1::CreatePaymentResponse r1, r2;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<CallResult> results;
  auto record = [&](CallResult r) {
    std::lock_guard<std::mutex> lock(mu);
    results.push_back(std::move(r));
    cv.notify_all();
  };
  api->Call(*method, request, call_options, &r1, record);
  // Claimed in Redis: Clink has the call.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (inner.calls() == 0) {
    ASSERT_LT(absl::Now(), give_up);
    std::this_thread::yield();
  }

  ASSERT_TRUE((*server)->Pause().ok());
  // A command that times out: the store drops the connection and cannot
  // open a working one, so the Release below never reaches Redis.
  {
    std::mutex begin_mu;
    std::condition_variable begin_cv;
    bool begun = false;
    (*store)->Begin({"checkout", "other/Rpc", "other", ""}, "h",
                    absl::Now() + absl::Minutes(1),
                    [&](absl::StatusOr<idempotency::BeginResult> r) {
                      EXPECT_FALSE(r.ok());
                      std::lock_guard<std::mutex> lock(begin_mu);
                      begun = true;
                      begin_cv.notify_all();
                    });
    std::unique_lock<std::mutex> lock(begin_mu);
    ASSERT_TRUE(begin_cv.wait_for(lock, kTimeout, [&] { return begun; }));
  }
  inner.Answer(RateLimited(), Outcome::kRejected);
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kTimeout, [&] { return !results.empty(); }));
    // The caller hears the real answer (rate limited, nothing done).
    EXPECT_EQ(results[0].status.code(), absl::StatusCode::kResourceExhausted);
  }
  EXPECT_EQ(events.WaitFor({"release:failed"}), "release:failed");
  ASSERT_TRUE((*server)->Resume().ok());
  EXPECT_EQ(
      events.WaitFor({"release:ok", "release:not_held", "release:gave_up"}),
      "release:ok");

  // The retry with the same key runs (the key is free, not abandoned; before
  // the fix it waited out its deadline: ABORTED IDEMPOTENCY_KEY_IN_USE).
  call_options.deadline = absl::Now() + absl::Seconds(3);
  api->Call(*method, request, call_options, &r2, record);
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, kTimeout, [&] { return results.size() == 2; }));
  EXPECT_TRUE(results[1].status.ok()) << results[1].status;
  EXPECT_FALSE(results[1].replayed);
  EXPECT_EQ(inner.calls(), 2);
}

}  // namespace
}  // namespace clink_gateway::clink
