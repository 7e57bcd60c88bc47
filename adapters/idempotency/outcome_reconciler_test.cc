#include "adapters/idempotency/outcome_reconciler.h"

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "adapters/idempotency/idempotent_clink_api.h"
#include "adapters/idempotency/memory_idempotency_store.h"
#include "clink/gateway/v1/billing.pb.h"
#include "clink/gateway/v1/payment.pb.h"
#include "common/errors/error_details.h"
#include "common/sync.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;
using google::protobuf::util::TimeUtil;

constexpr absl::Duration kWait = absl::Seconds(30);

absl::Status UnknownOutcome() {
  absl::Status status = absl::UnknownError("clink POST /payment: timed out");
  errors::AttachErrorInfo(status, errors::kGatewayDomain, "UPSTREAM_TIMEOUT",
                          Outcome::kUnknown);
  return status;
}

// Clink as the reconciler sees it: orders to list and read, invoices, and a
// CreatePayment/CreateSubscription that is processed (an order appears) but
// whose answer is lost (UNKNOWN). Thread-safe: the reconciler calls it from
// its own thread.
class FakeClink final : public ClinkApi {
 public:
  void Call(const RestMethod& method, const google::protobuf::Message& request,
            const CallOptions& options, google::protobuf::Message* response,
            Callback done) override {
    CallResult result;
    {
      MutexLock lock(&mu_);
      calls_.push_back(method.endpoint);
      if (method.mutating()) ++writes_;
      if (auto* r = dynamic_cast<const v1::CreatePaymentRequest*>(&request)) {
        if (process_writes_) {
          AddOrderLocked(NewOrder(r->merchant_reference_id(), r->customer_id(),
                                  r->payment_instrument_id(),
                                  v1::ORDER_TYPE_ONETIME, order_status_));
        }
        result.status = UnknownOutcome();
        result.outcome = Outcome::kUnknown;
      } else if (auto* r = dynamic_cast<const v1::CreateSubscriptionRequest*>(
                     &request)) {
        if (process_writes_) {
          v1::Order order = NewOrder(
              r->merchant_reference_id(), r->customer_id(),
              r->payment_instrument_id(), v1::ORDER_TYPE_RECURRING,
              order_status_);
          order.set_order_id(absl::StrCat("ord_", orders_.size() + 1));
          order.set_invoice_id(absl::StrCat("inv_", orders_.size() + 1));
          v1::Invoice& invoice = invoices_[order.invoice_id()];
          invoice.set_invoice_id(order.invoice_id());
          invoice.set_subscription_id("sub_1");
          invoice.set_order_id(order.order_id());
          AddOrderLocked(std::move(order));
        }
        result.status = UnknownOutcome();
        result.outcome = Outcome::kUnknown;
      } else if (auto* r =
                     dynamic_cast<const v1::ListOrdersRequest*>(&request)) {
        auto* list = static_cast<v1::ListOrdersResponse*>(response);
        std::vector<const v1::Order*> rows;  // Newest first.
        for (auto it = orders_.rbegin(); it != orders_.rend(); ++it) {
          if (r->customer_id().empty() || it->customer_id() == r->customer_id())
            rows.push_back(&*it);
        }
        const int size = r->page_size() > 0 ? r->page_size() : 20;
        const int first = (std::max(r->page_num(), 1) - 1) * size;
        for (int i = first; i < first + size && i < static_cast<int>(rows.size());
             ++i) {
          *list->add_orders() = *rows[i];
        }
        list->set_total(static_cast<int64_t>(rows.size()));
      } else if (auto* r = dynamic_cast<const v1::GetOrderRequest*>(&request)) {
        result.status = absl::NotFoundError("no such order");
        for (const v1::Order& order : orders_) {
          if (order.order_id() == r->order_id()) {
            *static_cast<v1::GetOrderResponse*>(response)->mutable_order() =
                order;
            result.status = absl::OkStatus();
          }
        }
      } else if (auto* r =
                     dynamic_cast<const v1::GetInvoiceRequest*>(&request)) {
        auto it = invoices_.find(r->invoice_id());
        if (it == invoices_.end()) {
          result.status = absl::NotFoundError("no such invoice");
        } else {
          *static_cast<v1::GetInvoiceResponse*>(response)->mutable_invoice() =
              it->second;
        }
      } else {
        result.status = absl::UnimplementedError(method.endpoint);
      }
      if (result.status.ok()) result.outcome = Outcome::kCommitted;
    }
    std::move(done)(std::move(result));
  }

  v1::Order NewOrder(const std::string& reference, const std::string& customer,
                     const std::string& instrument, v1::OrderType type,
                     v1::OrderStatus status, absl::Time created = absl::Now()) {
    v1::Order order;
    order.set_merchant_reference_id(reference);
    order.set_customer_id(customer);
    order.mutable_payment_method()->set_payment_instrument_id(instrument);
    order.mutable_payment_method()->set_payment_method_type("CARD");
    order.set_type(type);
    order.set_status(status);
    *order.mutable_create_time() =
        TimeUtil::MillisecondsToTimestamp(absl::ToUnixMillis(created));
    order.set_amount_total("19.99");
    order.set_original_currency("USD");
    order.set_session_id("cs_1");
    return order;
  }

  void AddOrder(v1::Order order) {
    MutexLock lock(&mu_);
    AddOrderLocked(std::move(order));
  }
  std::string LastOrderId() {
    MutexLock lock(&mu_);
    return orders_.empty() ? "" : orders_.back().order_id();
  }
  int writes() {
    MutexLock lock(&mu_);
    return writes_;
  }
  std::vector<std::string> calls() {
    MutexLock lock(&mu_);
    return calls_;
  }
  void set_process_writes(bool process) {
    MutexLock lock(&mu_);
    process_writes_ = process;
  }
  void set_order_status(v1::OrderStatus status) {
    MutexLock lock(&mu_);
    order_status_ = status;
  }

 private:
  void AddOrderLocked(v1::Order order) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (order.order_id().empty()) {
      order.set_order_id(absl::StrCat("ord_", orders_.size() + 1));
    }
    orders_.push_back(std::move(order));
  }

  Mutex mu_;
  std::vector<v1::Order> orders_ ABSL_GUARDED_BY(mu_);  // Oldest first.
  std::map<std::string, v1::Invoice> invoices_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  int writes_ ABSL_GUARDED_BY(mu_) = 0;
  bool process_writes_ ABSL_GUARDED_BY(mu_) = true;
  v1::OrderStatus order_status_ ABSL_GUARDED_BY(mu_) =
      v1::ORDER_STATUS_SUCCESS;
};

class RecordingObserver final : public ReconciliationObserver {
 public:
  void OnReconciliation(absl::string_view merchant,
                        ReconciliationResult result) override {
    MutexLock lock(&mu_);
    ++(result == ReconciliationResult::kResolved ? resolved_ : unresolved_);
    merchants_.emplace_back(merchant);
  }
  void OnReconciliationsPending(size_t pending) override {
    MutexLock lock(&mu_);
    pending_ = pending;
  }
  // Waits until `resolved` and `unresolved` reconciliations ended.
  bool WaitFor(int resolved, int unresolved) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
          return resolved_ >= resolved && unresolved_ >= unresolved;
        },
        kWait);
  }
  int resolved() {
    MutexLock lock(&mu_);
    return resolved_;
  }
  int unresolved() {
    MutexLock lock(&mu_);
    return unresolved_;
  }
  size_t pending() {
    MutexLock lock(&mu_);
    return pending_;
  }
  std::vector<std::string> merchants() {
    MutexLock lock(&mu_);
    return merchants_;
  }

 private:
  Mutex mu_;
  int resolved_ ABSL_GUARDED_BY(mu_) = 0;
  int unresolved_ ABSL_GUARDED_BY(mu_) = 0;
  size_t pending_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::string> merchants_ ABSL_GUARDED_BY(mu_);
};

// Waits for an asynchronous ClinkApi call.
struct Waiter {
  Mutex mu;
  bool done ABSL_GUARDED_BY(mu) = false;
  CallResult result ABSL_GUARDED_BY(mu);
};

class OutcomeReconcilerTest : public testing::Test {
 protected:
  void SetUp() override {
    auto codec = RestCodec::CreateForServices(GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    store_ = std::make_unique<idempotency::MemoryIdempotencyStore>();
  }

  void Start(OutcomeReconciler::Options options) {
    reconciler_ = std::make_unique<OutcomeReconciler>(
        *codec_, clink_, *store_, &observer_, options);
    IdempotentClinkApi::Options api_options;
    api_options.unknown_outcomes = reconciler_.get();
    api_ = std::make_unique<IdempotentClinkApi>(*codec_, clink_, *store_,
                                                nullptr, api_options);
  }

  void TearDown() override {
    api_.reset();
    reconciler_.reset();
  }

  static OutcomeReconciler::Options Fast() {
    OutcomeReconciler::Options options;
    options.initial_backoff = absl::Milliseconds(5);
    options.max_backoff = absl::Milliseconds(20);
    options.window = absl::Seconds(20);
    return options;
  }

  static v1::CreatePaymentRequest Payment(std::string reference = "cart-42") {
    v1::CreatePaymentRequest request;
    request.set_customer_id("cus_1");
    request.set_payment_instrument_id("pi_1");
    request.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
    request.set_amount("19.99");
    request.set_currency("USD");
    request.set_merchant_reference_id(std::move(reference));
    request.set_return_url("https://shop.example/done");
    return request;
  }

  CallResult Call(const google::protobuf::Message& request,
                  google::protobuf::Message* response,
                  std::string key = "key-1") {
    const RestMethod* method =
        codec_->FindByRequestType(*request.GetDescriptor());
    EXPECT_NE(method, nullptr);
    CallOptions options;
    options.idempotency_key = std::move(key);
    options.caller = "shop";
    options.merchant = "default";
    options.deadline = absl::Now() + kWait;
    auto waiter = std::make_shared<Waiter>();
    api_->Call(*method, request, options, response,
               [waiter](CallResult result) {
                 MutexLock lock(&waiter->mu);
                 waiter->result = std::move(result);
                 waiter->done = true;
               });
    MutexLock lock(&waiter->mu);
    EXPECT_TRUE(waiter->mu.AwaitWithTimeout(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(waiter->mu) { return waiter->done; },
        kWait));
    return waiter->result;
  }

  static events::StoredEvent OrderEvent(const std::string& order_id,
                                        const std::string& reference,
                                        bool legacy = false) {
    events::StoredEvent event;
    event.merchant = "default";
    event.event_id = "evt_1";
    event.type = "order.succeeded";
    const std::string order = absl::StrCat(
        R"({"orderId":")", order_id, R"(","merchantReferenceId":")",
        reference, R"(","amountTotal":19.99,"status":"success"})");
    event.body = absl::StrCat(
        R"({"id":"evt_1","type":"order.succeeded","created":1700000000000,)",
        legacy ? R"("data":)" : R"("data":{"object":)", order,
        legacy ? "}" : "}}");
    return event;
  }

  std::unique_ptr<RestCodec> codec_;
  FakeClink clink_;
  std::unique_ptr<idempotency::MemoryIdempotencyStore> store_;
  RecordingObserver observer_;
  std::unique_ptr<OutcomeReconciler> reconciler_;
  std::unique_ptr<IdempotentClinkApi> api_;
};

TEST_F(OutcomeReconcilerTest, PolledOrderSettlesTheKeyAndTheRetryGetsIt) {
  Start(Fast());
  v1::CreatePaymentResponse first;
  const CallResult unknown = Call(Payment(), &first);
  ASSERT_EQ(unknown.status.code(), absl::StatusCode::kUnknown);

  ASSERT_TRUE(observer_.WaitFor(1, 0));
  EXPECT_EQ(observer_.merchants(), std::vector<std::string>{"default"});
  EXPECT_EQ(reconciler_->pending(), 0u);
  EXPECT_EQ(observer_.pending(), 0u);

  v1::CreatePaymentResponse retry;
  const CallResult settled = Call(Payment(), &retry);
  ASSERT_TRUE(settled.status.ok()) << settled.status;
  EXPECT_TRUE(settled.replayed);
  EXPECT_EQ(retry.order_id(), clink_.LastOrderId());
  EXPECT_EQ(retry.status(), v1::PAYMENT_RESULT_STATUS_SUCCESS);
  EXPECT_EQ(retry.amount(), "19.99");
  EXPECT_EQ(retry.currency(), "USD");
  EXPECT_EQ(retry.session_id(), "cs_1");
  // The payment was sent once; the reconciler only read.
  EXPECT_EQ(clink_.writes(), 1);
  for (const std::string& endpoint : clink_.calls()) {
    EXPECT_TRUE(endpoint == "POST /payment" || endpoint == "GET /order")
        << endpoint;
  }
}

TEST_F(OutcomeReconcilerTest, OrderEventSettlesTheKeyWithoutPolling) {
  OutcomeReconciler::Options options = Fast();
  options.initial_backoff = absl::Hours(1);  // Only the event can do it.
  Start(options);
  v1::CreatePaymentResponse first;
  ASSERT_EQ(Call(Payment(), &first).status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(reconciler_->pending(), 1u);

  // An event about another reference changes nothing.
  reconciler_->OnEventStored(OrderEvent(clink_.LastOrderId(), "cart-41"));
  // A event of another merchant neither.
  events::StoredEvent other_merchant = OrderEvent(clink_.LastOrderId(), "cart-42");
  other_merchant.merchant = "acme";
  reconciler_->OnEventStored(other_merchant);
  EXPECT_EQ(reconciler_->pending(), 1u);

  reconciler_->OnEventStored(
      OrderEvent(clink_.LastOrderId(), "cart-42", /*legacy=*/true));
  ASSERT_TRUE(observer_.WaitFor(1, 0));
  v1::CreatePaymentResponse retry;
  const CallResult settled = Call(Payment(), &retry);
  ASSERT_TRUE(settled.status.ok()) << settled.status;
  EXPECT_EQ(retry.order_id(), clink_.LastOrderId());
  EXPECT_EQ(clink_.writes(), 1);
  EXPECT_EQ(clink_.calls(),
            (std::vector<std::string>{"POST /payment", "GET /order/{order_id}"}));
}

TEST_F(OutcomeReconcilerTest, NoOrderWithinTheWindowStaysUnknown) {
  OutcomeReconciler::Options options = Fast();
  options.window = absl::Milliseconds(200);
  Start(options);
  clink_.set_process_writes(false);  // Clink never got it.
  v1::CreatePaymentResponse first;
  ASSERT_EQ(Call(Payment(), &first).status.code(), absl::StatusCode::kUnknown);

  ASSERT_TRUE(observer_.WaitFor(0, 1));
  EXPECT_EQ(observer_.resolved(), 0);
  EXPECT_EQ(reconciler_->pending(), 0u);
  v1::CreatePaymentResponse retry;
  EXPECT_EQ(Call(Payment(), &retry).status.code(), absl::StatusCode::kUnknown);
  EXPECT_EQ(clink_.writes(), 1);
}

TEST_F(OutcomeReconcilerTest, AReferenceThatMatchesNothingIsNeverSettled) {
  OutcomeReconciler::Options options = Fast();
  options.window = absl::Milliseconds(300);
  Start(options);
  clink_.set_process_writes(false);
  // Orders that are not the call's: another reference; the same reference
  // with another instrument, another customer or as a subscription order; and
  // the same everything but created long before the call.
  struct NotIt {
    const char* reference;
    const char* customer;
    const char* instrument;
    v1::OrderType type;
    absl::Duration age;
  };
  for (const NotIt& o : {
           NotIt{"cart-41", "cus_1", "pi_1", v1::ORDER_TYPE_ONETIME,
                 absl::ZeroDuration()},
           NotIt{"cart-42", "cus_1", "pi_2", v1::ORDER_TYPE_ONETIME,
                 absl::ZeroDuration()},
           NotIt{"cart-42", "cus_2", "pi_1", v1::ORDER_TYPE_ONETIME,
                 absl::ZeroDuration()},
           NotIt{"cart-42", "cus_1", "pi_1", v1::ORDER_TYPE_RECURRING,
                 absl::ZeroDuration()},
           NotIt{"cart-42", "cus_1", "pi_1", v1::ORDER_TYPE_ONETIME,
                 absl::Hours(2)},
       }) {
    clink_.AddOrder(clink_.NewOrder(o.reference, o.customer, o.instrument,
                                    o.type, v1::ORDER_STATUS_SUCCESS,
                                    absl::Now() - o.age));
  }
  v1::CreatePaymentResponse first;
  ASSERT_EQ(Call(Payment(), &first).status.code(), absl::StatusCode::kUnknown);
  // Events naming those orders do not settle it either.
  for (int i = 1; i <= 5; ++i) {
    reconciler_->OnEventStored(OrderEvent(absl::StrCat("ord_", i), "cart-42"));
  }

  ASSERT_TRUE(observer_.WaitFor(0, 1));
  EXPECT_EQ(observer_.resolved(), 0);
  v1::CreatePaymentResponse retry;
  EXPECT_EQ(Call(Payment(), &retry).status.code(), absl::StatusCode::kUnknown);
}

TEST_F(OutcomeReconcilerTest, TwoMatchingOrdersLeaveItUnknown) {
  OutcomeReconciler::Options options = Fast();
  options.window = absl::Milliseconds(200);
  Start(options);
  // The reference was reused: the call's order and another one just before.
  clink_.AddOrder(clink_.NewOrder("cart-42", "cus_1", "pi_1",
                                  v1::ORDER_TYPE_ONETIME,
                                  v1::ORDER_STATUS_FAILED));
  v1::CreatePaymentResponse first;
  ASSERT_EQ(Call(Payment(), &first).status.code(), absl::StatusCode::kUnknown);
  ASSERT_TRUE(observer_.WaitFor(0, 1));
  v1::CreatePaymentResponse retry;
  EXPECT_EQ(Call(Payment(), &retry).status.code(), absl::StatusCode::kUnknown);
}

TEST_F(OutcomeReconcilerTest, AFailedOrderSettlesAsTheDeclineClinkReports) {
  Start(Fast());
  clink_.set_order_status(v1::ORDER_STATUS_FAILED);
  v1::CreatePaymentResponse first;
  ASSERT_EQ(Call(Payment(), &first).status.code(), absl::StatusCode::kUnknown);
  ASSERT_TRUE(observer_.WaitFor(1, 0));
  v1::CreatePaymentResponse retry;
  const CallResult settled = Call(Payment(), &retry);
  ASSERT_TRUE(settled.status.ok()) << settled.status;
  EXPECT_EQ(retry.status(), v1::PAYMENT_RESULT_STATUS_FAILURE);
  EXPECT_EQ(clink_.writes(), 1);
}

TEST_F(OutcomeReconcilerTest, AnOrderAwaitingActionIsNotSettledYet) {
  OutcomeReconciler::Options options = Fast();
  options.window = absl::Milliseconds(200);
  Start(options);
  clink_.set_order_status(v1::ORDER_STATUS_REQUIRES_ACTION);
  v1::CreatePaymentResponse first;
  ASSERT_EQ(Call(Payment(), &first).status.code(), absl::StatusCode::kUnknown);
  ASSERT_TRUE(observer_.WaitFor(0, 1));
  EXPECT_EQ(observer_.resolved(), 0);
}

TEST_F(OutcomeReconcilerTest, SubscriptionIsSettledWithItsSubscriptionId) {
  Start(Fast());
  v1::CreateSubscriptionRequest request;
  request.set_customer_id("cus_1");
  request.set_merchant_reference_id("plan-7");
  request.set_price_id("price_1");
  request.set_product_id("prod_1");
  request.set_payment_instrument_id("pi_1");
  request.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  request.set_payment_currency("USD");
  request.set_return_url("https://shop.example/done");
  v1::CreateSubscriptionResponse first;
  ASSERT_EQ(Call(request, &first).status.code(), absl::StatusCode::kUnknown);
  ASSERT_TRUE(observer_.WaitFor(1, 0));
  v1::CreateSubscriptionResponse retry;
  const CallResult settled = Call(request, &retry);
  ASSERT_TRUE(settled.status.ok()) << settled.status;
  EXPECT_EQ(retry.subscription_id(), "sub_1");
  EXPECT_EQ(retry.order_id(), clink_.LastOrderId());
  EXPECT_FALSE(retry.invoice_id().empty());
  EXPECT_EQ(retry.status(), v1::PAYMENT_RESULT_STATUS_SUCCESS);
  EXPECT_EQ(clink_.writes(), 1);
}

TEST_F(OutcomeReconcilerTest, ARecordThatIsNotUnknownIsNeverReplaced) {
  Start(Fast());
  // The key's record is a known result (the call's own response).
  const idempotency::IdempotencyKey key{
      "shop", "clink.gateway.v1.PaymentService.CreatePayment", "key-9",
      "default"};
  std::string token;
  {
    Mutex mu;
    bool done = false;
    store_->Begin(key, "hash", absl::Now() + kWait,
                  [&](absl::StatusOr<idempotency::BeginResult> r) {
                    MutexLock lock(&mu);
                    ASSERT_TRUE(r.ok());
                    token = r->lease_token;
                    done = true;
                  });
    MutexLock lock(&mu);
    ASSERT_TRUE(mu.AwaitWithTimeout(
        [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return done; }, kWait));
  }
  idempotency::StoredResult known;
  known.response = "own";
  store_->Complete(key, token, known, [](absl::Status s) { ASSERT_TRUE(s.ok()); });

  // Told (wrongly) that it holds an unknown result, with a matching order.
  idempotency::StoredResult unknown;
  unknown.status = UnknownOutcome();
  const v1::CreatePaymentRequest request = Payment();
  clink_.AddOrder(clink_.NewOrder("cart-42", "cus_1", "pi_1",
                                  v1::ORDER_TYPE_ONETIME,
                                  v1::ORDER_STATUS_SUCCESS));
  const RestMethod* method = codec_->FindByRequestType(*request.GetDescriptor());
  reconciler_->OnUnknownOutcomeStored(*method, request, key, "hash", unknown);
  // The compare-and-set refuses: counted unresolved, the record untouched.
  ASSERT_TRUE(observer_.WaitFor(0, 1));
  EXPECT_EQ(observer_.resolved(), 0);
  Mutex mu;
  bool done = false;
  store_->Begin(key, "hash", absl::Now() + kWait,
                [&](absl::StatusOr<idempotency::BeginResult> r) {
                  MutexLock lock(&mu);
                  EXPECT_TRUE(r.ok());
                  EXPECT_EQ(r->kind, idempotency::BeginResult::Kind::kCompleted);
                  EXPECT_EQ(r->result.response, "own");
                  done = true;
                });
  MutexLock lock(&mu);
  ASSERT_TRUE(mu.AwaitWithTimeout(
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return done; }, kWait));
}

TEST_F(OutcomeReconcilerTest, PendingReconciliationsAreBounded) {
  OutcomeReconciler::Options options = Fast();
  options.initial_backoff = absl::Hours(1);
  options.max_pending = 1;
  Start(options);
  v1::CreatePaymentResponse response;
  ASSERT_EQ(Call(Payment("cart-1"), &response, "key-1").status.code(),
            absl::StatusCode::kUnknown);
  ASSERT_EQ(Call(Payment("cart-2"), &response, "key-2").status.code(),
            absl::StatusCode::kUnknown);
  EXPECT_EQ(reconciler_->pending(), 1u);
  ASSERT_TRUE(observer_.WaitFor(0, 1));
}

TEST_F(OutcomeReconcilerTest, CallsWithoutAReferenceAreNotReconciled) {
  Start(Fast());
  v1::CreatePaymentResponse response;
  ASSERT_EQ(Call(Payment(""), &response).status.code(),
            absl::StatusCode::kUnknown);
  EXPECT_EQ(reconciler_->pending(), 0u);
  EXPECT_EQ(observer_.pending(), 0u);
}

}  // namespace
}  // namespace clink_gateway::clink
