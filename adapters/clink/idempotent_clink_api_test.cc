#include "adapters/clink/idempotent_clink_api.h"

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "adapters/clink/error_details.h"
#include "adapters/clink/error_mapping.h"
#include "adapters/idempotency/memory_idempotency_store.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;

absl::Status WithOutcome(absl::Status status, Outcome outcome) {
  google::rpc::ErrorInfo info;
  info.set_reason("TEST");
  (*info.mutable_metadata())["outcome"] = std::string(OutcomeName(outcome));
  AttachErrorInfo(status, info);
  return status;
}

// Stands in for the Clink client: counts calls and answers each with
// `next_status` (and an order id on success), inline or, with `hold`, when
// AnswerHeld() runs.
class FakeClinkApi final : public ClinkApi {
 public:
  void Call(const google::protobuf::MethodDescriptor& method,
            const google::protobuf::Message& request,
            const CallOptions& options, google::protobuf::Message* response,
            Callback done) override {
    ++calls;
    methods.push_back(method.full_name());
    auto answer = [this, response, done = std::move(done)]() mutable {
      CallResult result;
      result.status = next_status;
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
  absl::Status next_status;
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
    api_->Call(*method->method, request, options, response,
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
  v1::CreatePaymentResponse first, second;
  const CallResult a = Call(Payment(), &first, Keyed("k1"));
  const CallResult b = Call(Payment(), &second, Keyed("k1"));
  ASSERT_TRUE(a.status.ok()) << a.status;
  ASSERT_TRUE(b.status.ok()) << b.status;
  EXPECT_EQ(inner_.calls, 1);
  EXPECT_FALSE(a.replayed);
  EXPECT_TRUE(b.replayed);
  EXPECT_EQ(second.order_id(), first.order_id());
  EXPECT_EQ(api_->stats().replayed, 1);
}

TEST_F(IdempotentClinkApiTest, TheSameKeyForADifferentRequestIsRefused) {
  v1::CreatePaymentResponse first, second;
  ASSERT_TRUE(Call(Payment("19.99"), &first, Keyed("k1")).status.ok());
  const CallResult b = Call(Payment("20.00"), &second, Keyed("k1"));
  EXPECT_EQ(b.status.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(GetErrorInfo(b.status)->reason(), "IDEMPOTENCY_KEY_REUSED");
  EXPECT_EQ(GetErrorInfo(b.status)->metadata().at("outcome"), "not_sent");
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
  inner_.next_status = WithOutcome(absl::UnknownError("reset after send"),
                                   Outcome::kUnknown);
  v1::CreatePaymentResponse r1, r2;
  EXPECT_EQ(Call(Payment(), &r1, Keyed("k1")).status.code(),
            absl::StatusCode::kUnknown);
  inner_.next_status = absl::OkStatus();  // Clink would now succeed.
  const CallResult retry = Call(Payment(), &r2, Keyed("k1"));
  EXPECT_EQ(retry.status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(GetErrorInfo(retry.status)->metadata().at("outcome"), "unknown");
  EXPECT_TRUE(retry.replayed);
  EXPECT_EQ(inner_.calls, 1);
}

TEST_F(IdempotentClinkApiTest, ACallThatNeverLeftFreesTheKeyForTheRetry) {
  inner_.next_status = WithOutcome(absl::UnavailableError("connect refused"),
                                   Outcome::kNotSent);
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

TEST_F(IdempotentClinkApiTest, AnInvalidRequestDoesNotTouchTheKey) {
  v1::CreatePaymentRequest bad = Payment();
  bad.clear_currency();
  v1::CreatePaymentResponse r1, r2;
  EXPECT_EQ(Call(bad, &r1, Keyed("k1")).status.code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(inner_.calls, 0);
  // The key is still free for the corrected request.
  EXPECT_TRUE(Call(Payment(), &r2, Keyed("k1")).status.ok());
  EXPECT_EQ(inner_.calls, 1);
}

TEST_F(IdempotentClinkApiTest, StoreDownFailsKeyedPaymentsClosedButNotRefunds) {
  DownStore down;
  IdempotentClinkApi api(*codec_, inner_, down);
  const RestMethod* payment =
      codec_->FindByRequestType(*v1::CreatePaymentRequest::descriptor());
  CallResult result;
  v1::CreatePaymentResponse response;
  api.Call(*payment->method, Payment(), Keyed("k1"), &response,
           [&](CallResult r) { result = std::move(r); });
  EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(GetErrorInfo(result.status)->reason(),
            "IDEMPOTENCY_STORE_UNAVAILABLE");
  EXPECT_EQ(GetErrorInfo(result.status)->metadata().at("outcome"), "not_sent");
  EXPECT_EQ(inner_.calls, 0);

  // Clink deduplicates refunds by refund_merchant_order_id: they go ahead.
  v1::CreateRefundRequest refund;
  refund.set_order_id("ord_1");
  refund.set_refund_merchant_order_id("rf_1");
  refund.set_refund_amount("5.00");
  const RestMethod* refund_method =
      codec_->FindByRequestType(*v1::CreateRefundRequest::descriptor());
  v1::CreateRefundResponse refund_response;
  api.Call(*refund_method->method, refund, Keyed("k2"), &refund_response,
           [&](CallResult r) { result = std::move(r); });
  EXPECT_TRUE(result.status.ok()) << result.status;
  EXPECT_EQ(inner_.calls, 1);
}

TEST(IsFinalForIdempotencyTest, StoresWhatWouldRepeatAndReleasesTheRest) {
  struct Row {
    absl::Status status;
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
      // A status that says nothing is read as unknown: stored, never re-sent.
      {absl::UnavailableError("?"), false, true},
  };
  for (const Row& row : rows) {
    EXPECT_EQ(IsFinalForIdempotency(row.status, row.idempotent_upstream),
              row.final_result)
        << row.status << " idempotent_upstream=" << row.idempotent_upstream;
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
  // A proxy or load balancer in front of Clink answered: nothing was
  // processed, and it is not Clink's verdict. The retry must run.
  for (int status : {408, 400, 404, 405, 413, 418, 431}) {
    EXPECT_FALSE(IsFinalForIdempotency(answered(status, 0), false)) << status;
  }
  EXPECT_EQ(OutcomeOf(answered(408, 0)), Outcome::kNotSent);
  // Clink's own refusals would repeat: stored.
  EXPECT_TRUE(IsFinalForIdempotency(answered(200, 400), false));
  EXPECT_TRUE(IsFinalForIdempotency(answered(404, 404), false));
  EXPECT_TRUE(IsFinalForIdempotency(answered(200, 90101401), false));
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
  api_ = std::make_unique<IdempotentClinkApi>(*codec_, inner_, *store_,
                                              &recorder);
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
  api.Call(*method->method, Payment(), Keyed("k2"), &r1,
           [&](CallResult) { called = true; });
  EXPECT_TRUE(called);
  EXPECT_EQ(recorder.results, std::vector<std::string>{"store_error"});
}

}  // namespace
}  // namespace clink_gateway::clink
