#include "adapters/idempotency/idempotent_clink_api.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "adapters/clink/error_mapping.h"
#include "adapters/idempotency/memory_idempotency_store.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "common/errors/error_details.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;

// What the inner ClinkApi answers: a status and its outcome.
struct Answer {
  Answer(absl::Status s)  // NOLINT: implicit, for OK and unstated outcomes.
      : status(std::move(s)),
        outcome(status.ok() ? Outcome::kCommitted : Outcome::kUnknown) {}
  Answer(absl::Status s, Outcome o) : status(std::move(s)), outcome(o) {}
  CallResult Result() const {
    CallResult result;
    result.status = status;
    result.outcome = outcome;
    return result;
  }
  absl::Status status;
  Outcome outcome;
};

Answer WithOutcome(absl::Status status, Outcome outcome) {
  // Clink's verdict (a bare HTTP refusal from a proxy is the gateway's).
  errors::AttachErrorInfo(status, errors::kClinkDomain, "TEST", outcome);
  return Answer(std::move(status), outcome);
}

// Stands in for the Clink client: counts calls and answers each with
// `next_status` (and an order id on success), inline or, with `hold`, when
// AnswerHeld() runs.
class FakeClinkApi final : public ClinkApi {
 public:
  void Call(const RestMethod& method, const google::protobuf::Message& request,
            const CallOptions& options, google::protobuf::Message* response,
            Callback done) override {
    ++calls;
    methods.push_back(method.method->full_name());
    auto answer = [this, response, done = std::move(done)]() mutable {
      CallResult result = next_status.Result();
      result.attempts = 1;
      if (result.status.ok()) {
        if (auto* payment =
                dynamic_cast<v1::CreatePaymentResponse*>(response)) {
          payment->set_order_id(absl::StrCat("ord_", calls));
        }
      }
      std::move(done)(std::move(result));
    };
    if (hold) {
      held.push_back(std::move(answer));
    } else {
      answer();
    }
  }
  void AnswerHeld() {
    std::vector<absl::AnyInvocable<void()>> answers;
    answers.swap(held);
    for (auto& answer : answers) answer();
  }
  int calls = 0;
  std::vector<std::string> methods;
  Answer next_status = absl::OkStatus();
  bool hold = false;
  std::vector<absl::AnyInvocable<void()>> held;
};

// A store that cannot be reached.
class DownStore final : public idempotency::IdempotencyStore {
 public:
  void Begin(const idempotency::IdempotencyKey&, absl::string_view, absl::Time,
             BeginCallback done) override {
    std::move(done)(absl::UnavailableError("redis at unix:/x is down"));
  }
  void Complete(const idempotency::IdempotencyKey&, absl::string_view,
                idempotency::StoredResult, DoneCallback done) override {
    std::move(done)(absl::UnavailableError("down"));
  }
  void Release(const idempotency::IdempotencyKey&, absl::string_view,
               DoneCallback done) override {
    std::move(done)(absl::UnavailableError("down"));
  }
};

class IdempotentClinkApiTest : public testing::Test {
 protected:
  void SetUp() override {
    auto codec = RestCodec::CreateForServices(GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    store_ = std::make_unique<idempotency::MemoryIdempotencyStore>(
        idempotency::MemoryIdempotencyStore::Options{});
    api_ = std::make_unique<IdempotentClinkApi>(*codec_, inner_, *store_);
  }

  // Starts a call; the result lands in `*out` when it completes.
  void Start(const google::protobuf::Message& request,
             google::protobuf::Message* response, CallOptions options,
             CallResult* out, bool* called) {
    const RestMethod* method =
        codec_->FindByRequestType(*request.GetDescriptor());
    ASSERT_NE(method, nullptr);
    *called = false;
    api_->Call(*method, request, options, response,
               [out, called](CallResult r) {
                 *out = std::move(r);
                 *called = true;
               });
  }

  CallResult Call(const google::protobuf::Message& request,
                  google::protobuf::Message* response, CallOptions options) {
    CallResult out;
    bool called = false;
    Start(request, response, std::move(options), &out, &called);
    EXPECT_TRUE(called);
    return out;
  }

  static CallOptions Keyed(std::string key, std::string caller = "checkout") {
    CallOptions options;
    options.deadline = absl::Now() + absl::Seconds(10);
    options.idempotency_key = std::move(key);
    options.caller = std::move(caller);
    return options;
  }

  static v1::CreatePaymentRequest Payment(std::string amount = "19.99") {
    v1::CreatePaymentRequest r;
    r.set_customer_id("cus_1");
    r.set_payment_instrument_id("pi_1");
    r.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
    r.set_return_url("https://shop.example/return");
    r.set_amount(std::move(amount));
    r.set_currency("USD");
    return r;
  }

  std::unique_ptr<RestCodec> codec_;
  FakeClinkApi inner_;
  std::unique_ptr<idempotency::IdempotencyStore> store_;
  std::unique_ptr<IdempotentClinkApi> api_;
};

TEST_F(IdempotentClinkApiTest, WithoutAKeyEveryCallRuns) {
  v1::CreatePaymentResponse r1, r2;
  EXPECT_TRUE(Call(Payment(), &r1, CallOptions{}).status.ok());
  EXPECT_TRUE(Call(Payment(), &r2, CallOptions{}).status.ok());
  EXPECT_EQ(inner_.calls, 2);
}

TEST_F(IdempotentClinkApiTest, ARepeatedKeyGetsTheFirstResultWithoutCalling) {
  class Recorder final : public UpstreamObserver {
   public:
    void OnIdempotency(const RestMethod& method,
                       IdempotencyResult result) override {
      results.push_back(std::string(IdempotencyResultName(result)));
    }
    std::vector<std::string> results;
  } recorder;
  api_ =
      std::make_unique<IdempotentClinkApi>(*codec_, inner_, *store_, &recorder);
  v1::CreatePaymentResponse first, second;
  const CallResult a = Call(Payment(), &first, Keyed("k1"));
  const CallResult b = Call(Payment(), &second, Keyed("k1"));
  ASSERT_TRUE(a.status.ok()) << a.status;
  ASSERT_TRUE(b.status.ok()) << b.status;
  EXPECT_EQ(inner_.calls, 1);
  EXPECT_FALSE(a.replayed);
  EXPECT_TRUE(b.replayed);
  EXPECT_EQ(second.order_id(), first.order_id());
  EXPECT_EQ(recorder.results,
            (std::vector<std::string>{"claimed", "replayed"}));
}

TEST_F(IdempotentClinkApiTest, TheSameKeyForADifferentRequestIsRefused) {
  v1::CreatePaymentResponse first, second;
  ASSERT_TRUE(Call(Payment("19.99"), &first, Keyed("k1")).status.ok());
  const CallResult b = Call(Payment("20.00"), &second, Keyed("k1"));
  EXPECT_EQ(b.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(errors::GetErrorInfo(b.status)->reason(), "IDEMPOTENCY_KEY_REUSED");
  EXPECT_EQ(errors::GetErrorInfo(b.status)->metadata().at("outcome"),
            "not_sent");
  EXPECT_EQ(inner_.calls, 1);
}

TEST_F(IdempotentClinkApiTest, KeysAreScopedPerCaller) {
  v1::CreatePaymentResponse a, b;
  ASSERT_TRUE(Call(Payment(), &a, Keyed("k1", "checkout")).status.ok());
  ASSERT_TRUE(Call(Payment(), &b, Keyed("k1", "billing")).status.ok());
  EXPECT_EQ(inner_.calls, 2);
  EXPECT_NE(a.order_id(), b.order_id());
}

TEST_F(IdempotentClinkApiTest, AnUnknownOutcomeIsStoredNotSentAgain) {
  inner_.next_status =
      WithOutcome(absl::UnknownError("reset after send"), Outcome::kUnknown);
  v1::CreatePaymentResponse r1, r2;
  EXPECT_EQ(Call(Payment(), &r1, Keyed("k1")).status.code(),
            absl::StatusCode::kUnknown);
  inner_.next_status = absl::OkStatus();  // Clink would now succeed.
  const CallResult retry = Call(Payment(), &r2, Keyed("k1"));
  EXPECT_EQ(retry.status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(errors::GetErrorInfo(retry.status)->metadata().at("outcome"),
            "unknown");
  EXPECT_TRUE(retry.replayed);
  EXPECT_EQ(inner_.calls, 1);
}

TEST_F(IdempotentClinkApiTest, ACallThatNeverLeftFreesTheKeyForTheRetry) {
  inner_.next_status =
      WithOutcome(absl::UnavailableError("connect refused"), Outcome::kNotSent);
  v1::CreatePaymentResponse r1, r2;
  EXPECT_EQ(Call(Payment(), &r1, Keyed("k1")).status.code(),
            absl::StatusCode::kUnavailable);
  inner_.next_status = absl::OkStatus();
  const CallResult retry = Call(Payment(), &r2, Keyed("k1"));
  EXPECT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_FALSE(retry.replayed);
  EXPECT_EQ(inner_.calls, 2);
}

TEST_F(IdempotentClinkApiTest, ConcurrentDuplicatesWaitForTheFirst) {
  inner_.hold = true;
  v1::CreatePaymentResponse r1, r2;
  CallResult a, b;
  bool a_done = false, b_done = false;
  Start(Payment(), &r1, Keyed("k1"), &a, &a_done);
  Start(Payment(), &r2, Keyed("k1"), &b, &b_done);
  EXPECT_FALSE(a_done);
  EXPECT_FALSE(b_done);  // Waiting, not calling Clink itself.
  EXPECT_EQ(inner_.calls, 1);
  inner_.AnswerHeld();
  ASSERT_TRUE(a_done);
  // The memory store wakes waiters on the completing thread.
  ASSERT_TRUE(b_done);
  EXPECT_TRUE(b.status.ok()) << b.status;
  EXPECT_EQ(r2.order_id(), r1.order_id());
  EXPECT_EQ(inner_.calls, 1);
}

TEST_F(IdempotentClinkApiTest, ReadsIgnoreTheKey) {
  v1::GetOrderRequest request;
  request.set_order_id("ord_1");
  v1::GetOrderResponse r1, r2;
  EXPECT_TRUE(Call(request, &r1, Keyed("k1")).status.ok());
  EXPECT_TRUE(Call(request, &r2, Keyed("k1")).status.ok());
  EXPECT_EQ(inner_.calls, 2);
}

TEST_F(IdempotentClinkApiTest, StoreDownFailsKeyedPaymentsClosedButNotRefunds) {
  DownStore down;
  IdempotentClinkApi api(*codec_, inner_, down);
  const RestMethod* payment =
      codec_->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  CallResult result;
  v1::CreatePaymentResponse response;
  api.Call(*payment, Payment(), Keyed("k1"), &response,
           [&](CallResult r) { result = std::move(r); });
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(errors::GetErrorInfo(result.status)->reason(),
            "IDEMPOTENCY_STORE_UNAVAILABLE");
  EXPECT_EQ(errors::GetErrorInfo(result.status)->metadata().at("outcome"),
            "not_sent");
  EXPECT_EQ(inner_.calls, 0);

  // Clink deduplicates refunds by refund_merchant_order_id: they go ahead.
  v1::CreateRefundRequest refund;
  refund.set_order_id("ord_1");
  refund.set_refund_merchant_order_id("rf_1");
  refund.set_refund_amount("5.00");
  const RestMethod* refund_method =
      codec_->FindByRequestType(*v1::CreateRefundRequest::descriptor());
  v1::CreateRefundResponse refund_response;
  api.Call(*refund_method, refund, Keyed("k2"), &refund_response,
           [&](CallResult r) { result = std::move(r); });
  EXPECT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(inner_.calls, 1);
}

// Thread-safe stand-in for Clink for the same-key storm: holds the first
// call, then refuses the next `refusals` calls at once (HTTP 429: nothing
// done, the key is released) and accepts the rest, inline.
class StormClinkApi final : public ClinkApi {
 public:
  explicit StormClinkApi(int refusals) : refusals_(refusals) {}

  void Call(const RestMethod& method, const google::protobuf::Message& request,
            const CallOptions& options, google::protobuf::Message* response,
            Callback done) override {
    // Calls running on this thread's stack: a hand-off that ran the next
    // holder's call inside the previous one's Release would nest them.
    static thread_local int depth = 0;
    struct Nest {
      explicit Nest(StormClinkApi& api) {
        std::lock_guard<std::mutex> lock(api.mu_);
        api.max_depth_ = std::max(api.max_depth_, ++depth);
      }
      ~Nest() { --depth; }
    } nest(*this);
    CallResult result;
    {
      std::lock_guard<std::mutex> lock(mu_);
      const int call = ++calls_;
      if (call == 1) {
        held_ = std::move(done);
        return;
      }
      if (call <= 1 + refusals_) {
        result = RateLimited().Result();
      } else {
        ++accepted_;
        static_cast<v1::CreatePaymentResponse*>(response)->set_order_id(
            absl::StrCat("ord_", call));
      }
    }
    std::move(done)(std::move(result));  // Synchronously, as a 429 can be.
  }

  // Answers the held first call with a 429.
  void RefuseHeld() {
    Callback done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done = std::move(held_);
    }
    std::move(done)(RateLimited().Result());
  }

  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  int accepted() {
    std::lock_guard<std::mutex> lock(mu_);
    return accepted_;
  }
  int max_depth() {
    std::lock_guard<std::mutex> lock(mu_);
    return max_depth_;
  }

 private:
  static Answer RateLimited() {
    return WithOutcome(absl::ResourceExhaustedError("clink: HTTP 429"),
                       Outcome::kRejected);
  }

  const int refusals_;
  std::mutex mu_;
  int calls_ = 0;      // mu_
  int accepted_ = 0;   // mu_
  int max_depth_ = 0;  // mu_
  Callback held_;      // mu_
};

// 10,000 concurrent calls with one key while the first is in flight; the
// first and the next 50 holders are refused at once (429) and each hands the
// key on. Before the fix every waiter queued, and each refusal's Release ran
// the next waiter's call inside its own stack: the stack overflowed (~3,000
// waiters). Now 100 wait (the per-key cap), the rest are told at once that
// the first call is still running, the hand-offs are a loop, and exactly one
// payment is accepted.
TEST_F(IdempotentClinkApiTest, ASameKeyStormIsCappedAndNeverRecurses) {
  constexpr int kCalls = 10000;
  constexpr int kThreads = 4;
  constexpr int kRefusals = 50;
  constexpr size_t kPerKey = 100;
  idempotency::MemoryIdempotencyStore::Options store_options;
  store_options.max_waiters_per_key = kPerKey;
  store_options.max_waiters = kCalls;
  idempotency::MemoryIdempotencyStore store(store_options);
  StormClinkApi inner(kRefusals);
  IdempotentClinkApi api(*codec_, inner, store);
  const RestMethod* method =
      codec_->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  ASSERT_NE(method, nullptr);
  CallOptions options = Keyed("storm");
  options.deadline = absl::Now() + absl::Hours(1);

  std::mutex mu;
  std::condition_variable cv;
  std::vector<CallResult> results;
  std::vector<v1::CreatePaymentResponse> responses(kCalls);
  const v1::CreatePaymentRequest request = Payment();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = t; i < kCalls; i += kThreads) {
        api.Call(*method, request, options, &responses[i],
                 [&, i](CallResult r) {
                   std::lock_guard<std::mutex> lock(mu);
                   results.push_back(std::move(r));
                   cv.notify_all();
                 });
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  {
    // Everyone but the holder is answered or waiting.
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] {
      return results.size() + store.waiting() == kCalls - 1;
    }));
  }
  EXPECT_EQ(store.waiting(), kPerKey);
  EXPECT_EQ(inner.calls(), 1);

  inner.RefuseHeld();
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(60),
                          [&] { return results.size() == kCalls; }));
  EXPECT_EQ(inner.accepted(), 1);
  EXPECT_EQ(inner.calls(), 1 + kRefusals + 1);
  EXPECT_EQ(inner.max_depth(), 1);
  int in_use = 0, rate_limited = 0, succeeded = 0, replayed = 0;
  std::set<std::string> order_ids;
  for (const CallResult& r : results) {
    if (r.status.ok()) {
      ++succeeded;
      if (r.replayed) ++replayed;
    } else if (r.status.code() == absl::StatusCode::kAborted) {
      ++in_use;
      EXPECT_EQ(errors::GetErrorInfo(r.status)->reason(),
                "IDEMPOTENCY_KEY_IN_USE");
      EXPECT_TRUE(errors::GetRetryInfo(r.status).has_value());
    } else {
      EXPECT_EQ(r.status.code(), absl::StatusCode::kResourceExhausted)
          << r.status;
      ++rate_limited;
    }
  }
  for (const auto& response : responses) {
    if (!response.order_id().empty()) order_ids.insert(response.order_id());
  }
  EXPECT_EQ(in_use, kCalls - 1 - static_cast<int>(kPerKey));
  EXPECT_EQ(rate_limited, 1 + kRefusals);
  EXPECT_EQ(succeeded, static_cast<int>(kPerKey) - kRefusals);
  EXPECT_EQ(replayed, succeeded - 1);
  EXPECT_EQ(order_ids.size(), 1u);  // One payment, replayed to the rest.
  EXPECT_EQ(store.waiting(), 0u);
}

// A store whose first `failures` Complete/Release calls fail with
// kUnavailable, as a Redis that is unreachable for a moment does; with
// `lost_replies` the write is applied first (a reply lost on the way back).
// Everything else goes to a memory store.
class FlakyStore final : public idempotency::IdempotencyStore {
 public:
  FlakyStore(idempotency::IdempotencyStore& real, int failures,
             bool lost_replies = false)
      : real_(real), failures_(failures), lost_replies_(lost_replies) {}

  void Begin(const idempotency::IdempotencyKey& key, absl::string_view hash,
             absl::Time deadline, BeginCallback done) override {
    real_.Begin(key, hash, deadline, std::move(done));
  }
  void Complete(const idempotency::IdempotencyKey& key, absl::string_view token,
                idempotency::StoredResult result, DoneCallback done) override {
    if (!Fail()) {
      real_.Complete(key, token, std::move(result), std::move(done));
    } else if (lost_replies_) {
      real_.Complete(key, token, std::move(result), Unreachable(done));
    } else {
      Unreachable(done)(absl::OkStatus());
    }
  }
  void Release(const idempotency::IdempotencyKey& key, absl::string_view token,
               DoneCallback done) override {
    if (!Fail()) {
      real_.Release(key, token, std::move(done));
    } else if (lost_replies_) {
      real_.Release(key, token, Unreachable(done));
    } else {
      Unreachable(done)(absl::OkStatus());
    }
  }
  void AbortWaits() override { real_.AbortWaits(); }

  int writes() {
    std::lock_guard<std::mutex> lock(mu_);
    return writes_;
  }

 private:
  bool Fail() {
    std::lock_guard<std::mutex> lock(mu_);
    return ++writes_ <= failures_;
  }
  static DoneCallback Unreachable(DoneCallback& done) {
    return [done = std::move(done)](absl::Status) mutable {
      std::move(done)(absl::UnavailableError("redis at unix:/x: timeout"));
    };
  }

  idempotency::IdempotencyStore& real_;
  const int failures_;
  const bool lost_replies_;
  std::mutex mu_;
  int writes_ = 0;  // mu_
};

// Records background store-write retries; waits for them.
class RetryRecorder final : public UpstreamObserver {
 public:
  void OnIdempotencyStoreRetry(StoreWrite write,
                               StoreRetryResult result) override {
    std::lock_guard<std::mutex> lock(mu_);
    events_.push_back(
        absl::StrCat(StoreWriteName(write), ":", StoreRetryResultName(result)));
    cv_.notify_all();
  }
  // Waits for an event that is not "...:failed"; false on timeout.
  bool WaitForLastWord() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [this] {
      return !events_.empty() && !absl::EndsWith(events_.back(), ":failed");
    });
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

IdempotentClinkApi::Options FastRetries() {
  IdempotentClinkApi::Options options;
  options.initial_backoff = absl::Milliseconds(1);
  options.max_backoff = absl::Milliseconds(4);
  options.retry_for = absl::Seconds(30);
  return options;
}

// Before the fix a failed Release left the key claimed until its lease ended
// (2 minutes here), then settled it as abandoned: the caller's retry of a
// payment that was never sent heard ABORTED, then UNKNOWN.
TEST_F(IdempotentClinkApiTest, AFailedReleaseIsRetriedUntilTheKeyIsFree) {
  FlakyStore flaky(*store_, /*failures=*/2);
  RetryRecorder recorder;
  IdempotentClinkApi api(*codec_, inner_, flaky, &recorder, FastRetries());
  const RestMethod* method =
      codec_->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  inner_.next_status =
      WithOutcome(absl::ResourceExhaustedError("HTTP 429"), Outcome::kRejected);
  v1::CreatePaymentResponse r1, r2;
  CallResult first;
  api.Call(*method, Payment(), Keyed("k1"), &r1,
           [&](CallResult r) { first = std::move(r); });
  // The caller hears the real answer at once: rate limited, nothing done.
  EXPECT_EQ(first.status.code(), absl::StatusCode::kResourceExhausted);

  ASSERT_TRUE(recorder.WaitForLastWord());
  EXPECT_EQ(recorder.events(),
            (std::vector<std::string>{"release:failed", "release:ok"}));
  // The retry with the key runs: it was never sent, so it is not UNKNOWN.
  inner_.next_status = absl::OkStatus();
  CallResult retry;
  api.Call(*method, Payment(), Keyed("k1"), &r2,
           [&](CallResult r) { retry = std::move(r); });
  EXPECT_TRUE(retry.status.ok()) << retry.status;
  EXPECT_FALSE(retry.replayed);
  EXPECT_EQ(inner_.calls, 2);
}

TEST_F(IdempotentClinkApiTest, AFailedCompleteIsRetriedAndThenReplayed) {
  FlakyStore flaky(*store_, /*failures=*/1);
  RetryRecorder recorder;
  IdempotentClinkApi api(*codec_, inner_, flaky, &recorder, FastRetries());
  const RestMethod* method =
      codec_->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  v1::CreatePaymentResponse r1, r2;
  CallResult first;
  api.Call(*method, Payment(), Keyed("k1"), &r1,
           [&](CallResult r) { first = std::move(r); });
  ASSERT_TRUE(first.status.ok()) << first.status;

  ASSERT_TRUE(recorder.WaitForLastWord());
  EXPECT_EQ(recorder.events(), std::vector<std::string>{"complete:ok"});
  CallResult replay;
  api.Call(*method, Payment(), Keyed("k1"), &r2,
           [&](CallResult r) { replay = std::move(r); });
  EXPECT_TRUE(replay.status.ok()) << replay.status;
  EXPECT_TRUE(replay.replayed);
  EXPECT_EQ(r2.order_id(), r1.order_id());
  EXPECT_EQ(inner_.calls, 1);
}

// The first Release landed but its reply was lost; the next call claimed the
// key. The retried Release carries the old lease token, so it cannot free
// the new holder's key: the new holder completes, and its result replays.
TEST_F(IdempotentClinkApiTest, ARetriedWriteNeverTouchesAnotherHoldersKey) {
  FlakyStore flaky(*store_, /*failures=*/1, /*lost_replies=*/true);
  RetryRecorder recorder;
  IdempotentClinkApi::Options options = FastRetries();
  options.initial_backoff = absl::Milliseconds(200);  // After the new claim.
  IdempotentClinkApi api(*codec_, inner_, flaky, &recorder, options);
  const RestMethod* method =
      codec_->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  inner_.next_status =
      WithOutcome(absl::ResourceExhaustedError("HTTP 429"), Outcome::kRejected);
  v1::CreatePaymentResponse r1, r2, r3;
  CallResult first;
  api.Call(*method, Payment(), Keyed("k1"), &r1,
           [&](CallResult r) { first = std::move(r); });
  EXPECT_EQ(first.status.code(), absl::StatusCode::kResourceExhausted);
  // The key is free (the Release landed): the next call holds it.
  inner_.next_status = absl::OkStatus();
  inner_.hold = true;
  CallResult second;
  bool second_done = false;
  api.Call(*method, Payment(), Keyed("k1"), &r2, [&](CallResult r) {
    second = std::move(r);
    second_done = true;
  });
  EXPECT_EQ(inner_.calls, 2);
  EXPECT_FALSE(second_done);

  ASSERT_TRUE(recorder.WaitForLastWord());
  EXPECT_EQ(recorder.events(), std::vector<std::string>{"release:not_held"});
  inner_.AnswerHeld();
  ASSERT_TRUE(second_done);
  EXPECT_TRUE(second.status.ok()) << second.status;
  CallResult replay;
  api.Call(*method, Payment(), Keyed("k1"), &r3,
           [&](CallResult r) { replay = std::move(r); });
  EXPECT_TRUE(replay.replayed);
  EXPECT_EQ(r3.order_id(), r2.order_id());
  EXPECT_EQ(inner_.calls, 2);
}

TEST_F(IdempotentClinkApiTest, RetriesAreBoundedInTime) {
  FlakyStore flaky(*store_, /*failures=*/1000000);
  RetryRecorder recorder;
  IdempotentClinkApi::Options options = FastRetries();
  options.retry_for = absl::Milliseconds(50);
  IdempotentClinkApi api(*codec_, inner_, flaky, &recorder, options);
  const RestMethod* method =
      codec_->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  inner_.next_status =
      WithOutcome(absl::ResourceExhaustedError("HTTP 429"), Outcome::kRejected);
  v1::CreatePaymentResponse r1;
  CallResult first;
  api.Call(*method, Payment(), Keyed("k1"), &r1,
           [&](CallResult r) { first = std::move(r); });
  ASSERT_TRUE(recorder.WaitForLastWord());
  const std::vector<std::string> events = recorder.events();
  EXPECT_EQ(events.back(), "release:gave_up");
  EXPECT_EQ(std::count(events.begin(), events.end(), "release:gave_up"), 1);
  EXPECT_GE(events.size(), 2u);
  EXPECT_EQ(flaky.writes(), 1 + static_cast<int>(events.size()));
}

TEST(IsFinalForIdempotencyTest, StoresWhatWouldRepeatAndReleasesTheRest) {
  struct Row {
    Answer answer;
    bool idempotent_upstream;
    bool final_result;
  };
  const Row rows[] = {
      {absl::OkStatus(), false, true},
      {WithOutcome(absl::UnknownError(""), Outcome::kUnknown), false, true},
      // Clink deduplicates refunds: the retry learns the outcome.
      {WithOutcome(absl::UnknownError(""), Outcome::kUnknown), true, false},
      {WithOutcome(absl::InternalError(""), Outcome::kCommitted), false, true},
      {WithOutcome(absl::FailedPreconditionError("declined"),
                   Outcome::kRejected),
       false, true},
      {WithOutcome(absl::InvalidArgumentError(""), Outcome::kRejected), false,
       true},
      {WithOutcome(absl::NotFoundError(""), Outcome::kRejected), false, true},
      {WithOutcome(absl::UnavailableError(""), Outcome::kNotSent), false,
       false},
      {WithOutcome(absl::ResourceExhaustedError("429"), Outcome::kRejected),
       false, false},
      {WithOutcome(absl::AbortedError("409"), Outcome::kRejected), false,
       false},
      {WithOutcome(absl::InternalError("key refused"), Outcome::kRejected),
       false, false},
      // A result whose outcome was never set is read as unknown: stored,
      // never re-sent.
      {absl::UnavailableError("?"), false, true},
  };
  for (const Row& row : rows) {
    EXPECT_EQ(IsFinalForIdempotency(row.answer.status, row.answer.outcome,
                                    row.idempotent_upstream),
              row.final_result)
        << row.answer.status
        << " idempotent_upstream=" << row.idempotent_upstream;
  }
}

TEST(IsFinalForIdempotencyTest, AnswersWithoutAClinkEnvelopeReleaseTheKey) {
  // What MapUpstreamOutcome makes of a POST /payment answered with `status`
  // and, when `envelope_code` is set, a Clink envelope.
  auto answered = [](int status, int64_t envelope_code) {
    UpstreamOutcome o;
    o.endpoint = "POST /payment";
    o.mutating = true;
    o.delivery = http::Delivery::kReceived;
    o.http_status = status;
    o.has_envelope_code = envelope_code != 0;
    o.envelope_code = envelope_code;
    return MapUpstreamOutcome(o);
  };
  auto final_result = [](const UpstreamVerdict& v) {
    return IsFinalForIdempotency(v.status, v.outcome, false);
  };
  // A proxy or load balancer in front of Clink answered: nothing was
  // processed, and it is not Clink's verdict. The retry must run.
  for (int status : {408, 400, 404, 405, 413, 418, 431}) {
    EXPECT_FALSE(final_result(answered(status, 0))) << status;
  }
  EXPECT_EQ(answered(408, 0).outcome, Outcome::kNotSent);
  // Clink's own refusals would repeat: stored.
  EXPECT_TRUE(final_result(answered(200, 400)));
  EXPECT_TRUE(final_result(answered(404, 404)));
  EXPECT_TRUE(final_result(answered(200, 90101401)));
}

TEST_F(IdempotentClinkApiTest, TheObserverSeesWhatHappenedToEachKeyedCall) {
  class Recorder final : public UpstreamObserver {
   public:
    void OnIdempotency(const RestMethod& method,
                       IdempotencyResult result) override {
      results.push_back(std::string(IdempotencyResultName(result)));
      endpoint = method.endpoint;
    }
    std::vector<std::string> results;
    std::string endpoint;
  } recorder;
  api_ =
      std::make_unique<IdempotentClinkApi>(*codec_, inner_, *store_, &recorder);
  v1::CreatePaymentResponse r1, r2, r3, r4;
  ASSERT_TRUE(Call(Payment(), &r1, Keyed("k1")).status.ok());
  ASSERT_TRUE(Call(Payment(), &r2, Keyed("k1")).status.ok());
  EXPECT_FALSE(Call(Payment("1.00"), &r3, Keyed("k1")).status.ok());
  ASSERT_TRUE(Call(Payment(), &r4, CallOptions{}).status.ok());  // No key.
  EXPECT_EQ(recorder.results,
            (std::vector<std::string>{"claimed", "replayed", "mismatched"}));
  EXPECT_EQ(recorder.endpoint, "POST /payment");

  DownStore down;
  IdempotentClinkApi api(*codec_, inner_, down, &recorder);
  recorder.results.clear();
  const RestMethod* method =
      codec_->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  bool called = false;
  api.Call(*method, Payment(), Keyed("k2"), &r1,
           [&](CallResult) { called = true; });
  EXPECT_TRUE(called);
  EXPECT_EQ(recorder.results, std::vector<std::string>{"store_error"});
}

}  // namespace
}  // namespace clink_gateway::clink
