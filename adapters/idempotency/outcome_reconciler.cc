#include "adapters/idempotency/outcome_reconciler.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "adapters/idempotency/order_event_hint.h"
#include "clink/gateway/v1/billing.pb.h"
#include "clink/gateway/v1/payment.pb.h"
#include "common/logging.h"
#include "google/protobuf/util/time_util.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;

// Clink's largest ListOrders page.
constexpr int kPageSize = 50;

const RestMethod* MustFind(const RestCodec& codec,
                           const google::protobuf::Descriptor& request_type) {
  const RestMethod* method = codec.FindByRequestType(request_type);
  if (method == nullptr) {
    Log(LogLevel::kError, "outcome_reconciler_method_missing",
        {{"request_type", request_type.full_name()}});
  }
  return method;
}

// The caller-visible status of a settled order, or UNSPECIFIED when the order
// is not settled yet (or its status is unknown to the gateway).
v1::PaymentResultStatus ResultStatusOf(v1::OrderStatus status) {
  switch (status) {
    case v1::ORDER_STATUS_SUCCESS:
    case v1::ORDER_STATUS_PARTIAL_REFUNDED:
    case v1::ORDER_STATUS_REFUNDED:
      return v1::PAYMENT_RESULT_STATUS_SUCCESS;
    case v1::ORDER_STATUS_FAILED:
      return v1::PAYMENT_RESULT_STATUS_FAILURE;
    case v1::ORDER_STATUS_PENDING:
      return v1::PAYMENT_RESULT_STATUS_PENDING;
    default:
      // REQUIRES_ACTION: the response would lack its action; wait.
      return v1::PAYMENT_RESULT_STATUS_UNSPECIFIED;
  }
}

ReconciliationObserver& NoReconciliationObserver() {
  static ReconciliationObserver* const none = new ReconciliationObserver();
  return *none;
}

}  // namespace

absl::string_view ReconciliationResultName(ReconciliationResult result) {
  switch (result) {
    case ReconciliationResult::kResolved:
      return "resolved";
    case ReconciliationResult::kUnresolved:
      return "unresolved";
  }
  return "unresolved";
}

// One unknown outcome being looked for.
struct OutcomeReconciler::Pending {
  idempotency::IdempotencyKey key;
  std::string request_hash;
  // What the store holds now, serialized: a copy of an absl::Status would
  // share its payloads with the caller's across threads.
  std::string unknown;
  bool subscription = false;          // CreateSubscription, else CreatePayment.
  std::string reference;              // merchant_reference_id
  std::string customer_id;            // May be empty.
  std::string instrument_id;          // payment_instrument_id
  absl::Time not_before;              // Earliest create_time of the order.
  absl::Time give_up_at;
  absl::Duration backoff;  // Before the next poll.
  absl::Time due_at = absl::InfinitePast();  // Its entry in due_, if any.
  bool busy = false;                         // A check is running.
  bool recheck = false;  // An event came while busy: check again at once.
  std::string hinted_order_id;  // From an order.* event, not yet read.
};

// One check of a Pending (its copy: the Pending may change meanwhile).
struct OutcomeReconciler::Check {
  uint64_t id = 0;
  Pending what;
  std::vector<v1::Order> matches;
  v1::ListOrdersResponse list;
  v1::GetOrderResponse got;
  v1::GetInvoiceResponse invoice;
  std::string subscription_id;

  bool Matches(const v1::Order& order) const {
    if (order.merchant_reference_id() != what.reference ||
        order.payment_method().payment_instrument_id() != what.instrument_id ||
        order.type() != (what.subscription ? v1::ORDER_TYPE_RECURRING
                                           : v1::ORDER_TYPE_ONETIME) ||
        (!what.customer_id.empty() &&
         order.customer_id() != what.customer_id) ||
        !order.has_create_time()) {
      return false;
    }
    const absl::Time created = absl::FromUnixMillis(
        google::protobuf::util::TimeUtil::TimestampToMilliseconds(
            order.create_time()));
    return created >= what.not_before;
  }

  void Consider(const v1::Order& order) {
    if (!Matches(order)) return;
    for (const v1::Order& seen : matches) {
      if (seen.order_id() == order.order_id()) return;
    }
    matches.push_back(order);
  }
};

OutcomeReconciler::OutcomeReconciler(const RestCodec& codec, ClinkApi& inner,
                                     idempotency::IdempotencyStore& store,
                                     ReconciliationObserver* observer,
                                     Options options)
    : codec_(codec),
      inner_(inner),
      store_(store),
      observer_(observer != nullptr ? *observer : NoReconciliationObserver()),
      options_(options),
      list_orders_(MustFind(codec, *v1::ListOrdersRequest::descriptor())),
      get_order_(MustFind(codec, *v1::GetOrderRequest::descriptor())),
      get_invoice_(MustFind(codec, *v1::GetInvoiceRequest::descriptor())),
      thread_([this] { Loop(); }) {}

OutcomeReconciler::~OutcomeReconciler() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    cv_.SignalAll();
  }
  thread_.join();
  std::vector<std::string> unresolved;
  {
    MutexLock lock(&mu_);
    mu_.Await([this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return checks_in_flight_ == 0;
    });
    for (const auto& [id, pending] : pending_) {
      unresolved.push_back(pending->key.merchant);
    }
    pending_.clear();
    due_.clear();
    by_reference_.clear();
    observer_.OnReconciliationsPending(0);
  }
  for (const std::string& merchant : unresolved) {
    observer_.OnReconciliation(merchant, ReconciliationResult::kUnresolved);
  }
}

size_t OutcomeReconciler::pending() const {
  MutexLock lock(&mu_);
  return pending_.size();
}

void OutcomeReconciler::OnUnknownOutcomeStored(
    const RestMethod& method, const google::protobuf::Message& request,
    const idempotency::IdempotencyKey& key, absl::string_view request_hash,
    const idempotency::StoredResult& stored) {
  auto pending = std::make_unique<Pending>();
  const google::protobuf::Descriptor* type = request.GetDescriptor();
  if (type == v1::CreatePaymentRequest::descriptor()) {
    const auto& r = static_cast<const v1::CreatePaymentRequest&>(request);
    pending->reference = r.merchant_reference_id();
    pending->customer_id = r.customer_id();
    pending->instrument_id = r.payment_instrument_id();
  } else if (type == v1::CreateSubscriptionRequest::descriptor()) {
    const auto& r = static_cast<const v1::CreateSubscriptionRequest&>(request);
    pending->subscription = true;
    pending->reference = r.merchant_reference_id();
    pending->customer_id = r.customer_id();
    pending->instrument_id = r.payment_instrument_id();
  } else {
    return;
  }
  if (pending->reference.empty() || pending->instrument_id.empty() ||
      list_orders_ == nullptr || get_order_ == nullptr ||
      get_invoice_ == nullptr) {
    return;
  }
  const absl::Time now = absl::Now();
  pending->key = key;
  pending->request_hash = std::string(request_hash);
  pending->unknown = idempotency::SerializeStoredResult(stored);
  pending->not_before = now - options_.lookback;
  pending->give_up_at = now + options_.window;
  pending->backoff = options_.initial_backoff;
  {
    MutexLock lock(&mu_);
    if (!stopping_ && pending_.size() < options_.max_pending) {
      const uint64_t id = next_id_++;
      by_reference_.emplace(
          std::make_pair(key.merchant, pending->reference), id);
      const absl::Duration first = pending->backoff;
      pending->backoff = std::min(first * 2, options_.max_backoff);
      pending_.emplace(id, std::move(pending));
      ScheduleLocked(id, std::min(now + first, now + options_.window));
      // Under the lock: the gauge follows the changes in their order.
      observer_.OnReconciliationsPending(pending_.size());
      cv_.SignalAll();
      pending.reset();
    }
  }
  if (pending != nullptr) {
    Log(LogLevel::kWarning, "outcome_reconciliation_refused",
        {{"merchant", key.merchant},
         {"endpoint", method.endpoint},
         {"reason", "too many reconciliations in progress"}});
    observer_.OnReconciliation(key.merchant, ReconciliationResult::kUnresolved);
    return;
  }
  Log(LogLevel::kInfo, "outcome_reconciliation_started",
      {{"merchant", key.merchant}, {"endpoint", method.endpoint}});
}

void OutcomeReconciler::OnEventStored(const events::StoredEvent& event) {
  std::optional<idempotency::OrderEventHint> hint =
      idempotency::ParseOrderEventHint(event.type, event.body);
  if (!hint.has_value()) return;
  MutexLock lock(&mu_);
  const auto range = by_reference_.equal_range(
      std::make_pair(event.merchant, hint->merchant_reference_id));
  const absl::Time now = absl::Now();
  for (auto it = range.first; it != range.second; ++it) {
    Pending& p = *pending_.at(it->second);
    p.hinted_order_id = hint->order_id;
    if (p.busy) {
      p.recheck = true;
    } else {
      ScheduleLocked(it->second, now);
    }
  }
  if (range.first != range.second) cv_.SignalAll();
}

void OutcomeReconciler::UnscheduleLocked(uint64_t id, Pending& p) {
  if (p.due_at == absl::InfinitePast()) return;
  const auto range = due_.equal_range(p.due_at);
  for (auto it = range.first; it != range.second; ++it) {
    if (it->second == id) {
      due_.erase(it);
      break;
    }
  }
  p.due_at = absl::InfinitePast();
}

void OutcomeReconciler::ScheduleLocked(uint64_t id, absl::Time when) {
  Pending& p = *pending_.at(id);
  UnscheduleLocked(id, p);
  p.due_at = when;
  due_.emplace(when, id);
}

void OutcomeReconciler::EraseLocked(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending& p = *it->second;
  UnscheduleLocked(id, p);
  const auto refs =
      by_reference_.equal_range(std::make_pair(p.key.merchant, p.reference));
  for (auto r = refs.first; r != refs.second; ++r) {
    if (r->second == id) {
      by_reference_.erase(r);
      break;
    }
  }
  pending_.erase(it);
  observer_.OnReconciliationsPending(pending_.size());
}

void OutcomeReconciler::Report(const std::string& merchant,
                               ReconciliationResult result) {
  Log(result == ReconciliationResult::kResolved ? LogLevel::kInfo
                                                : LogLevel::kWarning,
      "outcome_reconciliation_ended",
      {{"merchant", merchant},
       {"result", std::string(ReconciliationResultName(result))}});
  observer_.OnReconciliation(merchant, result);
}

void OutcomeReconciler::Loop() {
  mu_.Lock();
  while (!stopping_) {
    if (due_.empty()) {
      cv_.Wait(&mu_);
      continue;
    }
    const absl::Time now = absl::Now();
    const auto first = due_.begin();
    if (first->first > now) {
      cv_.WaitWithDeadline(&mu_, first->first);
      continue;
    }
    const uint64_t id = first->second;
    due_.erase(first);
    Pending& p = *pending_.at(id);
    p.due_at = absl::InfinitePast();
    if (now >= p.give_up_at && p.hinted_order_id.empty()) {
      const std::string merchant = p.key.merchant;
      EraseLocked(id);
      mu_.Unlock();
      Report(merchant, ReconciliationResult::kUnresolved);
      mu_.Lock();
      continue;
    }
    p.busy = true;
    auto check = std::make_shared<Check>();
    check->id = id;
    check->what = p;
    ++checks_in_flight_;
    mu_.Unlock();
    StartCheck(std::move(check));
    mu_.Lock();
  }
  mu_.Unlock();
}

CallOptions OutcomeReconciler::ReadOptions(const Check& check) const {
  CallOptions options;
  options.deadline = absl::Now() + options_.call_timeout;
  options.request_id = absl::StrCat("reconcile-", check.id);
  options.caller = check.what.key.caller;
  options.merchant = check.what.key.merchant;
  return options;
}

void OutcomeReconciler::StartCheck(std::shared_ptr<Check> check) {
  if (!check->what.hinted_order_id.empty()) {
    std::string order_id = check->what.hinted_order_id;
    GetOrder(std::move(check), std::move(order_id));
  } else {
    ListPage(std::move(check), 1);
  }
}

void OutcomeReconciler::ListPage(std::shared_ptr<Check> check, int page) {
  v1::ListOrdersRequest request;
  request.set_customer_id(check->what.customer_id);
  request.set_page_num(page);
  request.set_page_size(kPageSize);
  check->list.Clear();
  Check& c = *check;
  inner_.Call(*list_orders_, request, ReadOptions(c), &c.list,
              [this, check = std::move(check), page](CallResult result) {
                if (!result.status.ok()) {
                  Finish(check, false, false);
                  return;
                }
                bool older = false;  // The page reaches before not_before.
                for (const v1::Order& order : check->list.orders()) {
                  check->Consider(order);
                  if (order.has_create_time() &&
                      absl::FromUnixMillis(
                          google::protobuf::util::TimeUtil::
                              TimestampToMilliseconds(order.create_time())) <
                          check->what.not_before) {
                    older = true;
                  }
                }
                const bool more =
                    page < options_.max_pages && !older &&
                    check->list.orders_size() == kPageSize &&
                    static_cast<int64_t>(page) * kPageSize <
                        check->list.total();
                if (more) {
                  ListPage(check, page + 1);
                } else {
                  Decide(check);
                }
              });
}

void OutcomeReconciler::GetOrder(std::shared_ptr<Check> check,
                                 std::string order_id) {
  v1::GetOrderRequest request;
  request.set_order_id(std::move(order_id));
  Check& c = *check;
  inner_.Call(*get_order_, request, ReadOptions(c), &c.got,
              [this, check = std::move(check)](CallResult result) {
                if (!result.status.ok()) {
                  // Not readable now: the next poll lists orders instead.
                  Finish(check, false, false);
                  return;
                }
                check->Consider(check->got.order());
                Decide(check);
              });
}

void OutcomeReconciler::Decide(std::shared_ptr<Check> check) {
  if (check->matches.size() != 1) {
    if (check->matches.size() > 1) {
      // A reused reference: which order is the call's cannot be told.
      Log(LogLevel::kWarning, "outcome_reconciliation_ambiguous",
          {{"merchant", check->what.key.merchant},
           {"orders", absl::StrCat(check->matches.size())}});
    }
    Finish(check, false, false);
    return;
  }
  const v1::Order& order = check->matches.front();
  if (ResultStatusOf(order.status()) == v1::PAYMENT_RESULT_STATUS_UNSPECIFIED) {
    Finish(check, false, false);
    return;
  }
  if (check->what.subscription) {
    ReadSubscription(std::move(check));
  } else {
    Settle(std::move(check));
  }
}

void OutcomeReconciler::ReadSubscription(std::shared_ptr<Check> check) {
  const std::string invoice_id = check->matches.front().invoice_id();
  if (invoice_id.empty()) {
    Finish(check, false, false);
    return;
  }
  v1::GetInvoiceRequest request;
  request.set_invoice_id(invoice_id);
  Check& c = *check;
  inner_.Call(*get_invoice_, request, ReadOptions(c), &c.invoice,
              [this, check = std::move(check)](CallResult result) {
                if (!result.status.ok() ||
                    check->invoice.invoice().subscription_id().empty() ||
                    check->invoice.invoice().order_id() !=
                        check->matches.front().order_id()) {
                  Finish(check, false, false);
                  return;
                }
                check->subscription_id =
                    check->invoice.invoice().subscription_id();
                Settle(check);
              });
}

void OutcomeReconciler::Settle(std::shared_ptr<Check> check) {
  const v1::Order& order = check->matches.front();
  idempotency::StoredResult result;  // OK: what Clink would have answered.
  if (check->what.subscription) {
    v1::CreateSubscriptionResponse response;
    response.set_subscription_id(check->subscription_id);
    response.set_session_id(order.session_id());
    response.set_status(ResultStatusOf(order.status()));
    response.set_amount(order.amount_total());
    response.set_currency(order.original_currency());
    response.set_order_id(order.order_id());
    response.set_invoice_id(order.invoice_id());
    result.response = response.SerializeAsString();
  } else {
    v1::CreatePaymentResponse response;
    response.set_order_id(order.order_id());
    response.set_session_id(order.session_id());
    response.set_status(ResultStatusOf(order.status()));
    response.set_amount(order.amount_total());
    response.set_currency(order.original_currency());
    result.response = response.SerializeAsString();
  }
  const Pending& what = check->what;
  absl::StatusOr<idempotency::StoredResult> unknown =
      idempotency::ParseStoredResult(what.unknown);
  if (!unknown.ok()) {  // Cannot happen: serialized by this object.
    Finish(check, false, true);
    return;
  }
  store_.SettleUnknown(
      what.key, what.request_hash, *unknown, std::move(result),
      [this, check](absl::Status status) {
        if (status.ok()) {
          Finish(check, true, false);
        } else if (status.code() == absl::StatusCode::kFailedPrecondition ||
                   status.code() == absl::StatusCode::kInvalidArgument) {
          // The record is no longer the unknown result: not ours to change.
          Finish(check, false, true);
        } else {
          Finish(check, false, false);  // The store: try again later.
        }
      });
}

void OutcomeReconciler::Finish(const std::shared_ptr<Check>& check,
                               bool resolved, bool drop) {
  std::string merchant;
  bool report = false;
  {
    MutexLock lock(&mu_);
    auto it = pending_.find(check->id);
    if (!stopping_ && it != pending_.end()) {
      Pending& p = *it->second;
      p.busy = false;
      if (p.hinted_order_id == check->what.hinted_order_id) {
        p.hinted_order_id.clear();
      }
      if (resolved || drop) {
        merchant = p.key.merchant;
        EraseLocked(check->id);
        report = true;
      } else {
        const absl::Time now = absl::Now();
        if (std::exchange(p.recheck, false)) {
          ScheduleLocked(check->id, now);
        } else {
          ScheduleLocked(check->id, std::min(now + p.backoff, p.give_up_at));
          p.backoff = std::min(p.backoff * 2, options_.max_backoff);
        }
        cv_.SignalAll();
      }
    }
  }
  if (report) {
    Report(merchant,
           resolved ? ReconciliationResult::kResolved
                    : ReconciliationResult::kUnresolved);
  }
  // Last: the destructor waits for this, then `this` may be gone.
  MutexLock lock(&mu_);
  --checks_in_flight_;
}

}  // namespace clink_gateway::clink
