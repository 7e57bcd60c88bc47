// Unknown payment outcomes resolve themselves (issue 12 §5).
//
// A keyed CreatePayment or CreateSubscription whose outcome was unknown (a
// timeout, reset or 5xx after the request was sent) is stored by
// IdempotentClinkApi as UNKNOWN, so a retry with the key never pays twice, but
// is also told nothing. When the request carried a `merchant_reference_id`,
// the OutcomeReconciler looks for the order at Clink for a bounded window
// (Options::window, --reconcile_window, default 15 min):
//   - it polls ListOrders (GET /order, filtered by the request's
//     `customer_id` when it has one; newest first, at most max_pages pages of
//     50) with backoff (5 s, 10 s, 20 s ... capped at 2 min), and
//   - it listens to stored webhook events (events::EventListener): an
//     `order.*` event of the same merchant carrying the reference makes it
//     read that order (GetOrder) at once.
// An order matches when its `merchantReferenceId`, payment instrument and
// order type are the request's, its customer is the request's `customer_id`
// (when given), and it was created at most Options::lookback before the
// call ended. Exactly one match is needed: several (a reused reference) leave
// the outcome unknown. A match whose status is SUCCESS, FAILED, PENDING,
// PARTIAL_REFUNDED or REFUNDED settles the key (REQUIRES_ACTION does not: the
// response would lack the action, so the reconciler waits for the order to
// move on); the stored result becomes what Clink would have answered: OK with
// the response built from the order (order_id, session_id, status
// SUCCESS/FAILURE/PENDING, amount = amountTotal, currency = originalCurrency;
// for CreateSubscription also invoice_id and subscription_id, read with
// GetInvoice). A failed order is a committed decline, which Clink reports as
// OK with status FAILURE (payment.proto), so that is what is stored. The
// record is replaced with IdempotencyStore::SettleUnknown, a compare-and-set:
// only the very UNKNOWN result that was stored, never a record in flight or
// already known.
//
// It only reads: ListOrders, GetOrder, GetInvoice through the inner
// (non-idempotent) ClinkApi. It never sends a write, so it can never make a
// second payment.
//
// Bounded: at most Options::max_pending reconciliations at once (more are
// counted unresolved at once); one check per reconciliation at a time.
// Threads: checks are started by the reconciler's own thread (never a gRPC
// handler thread); their calls complete on the inner ClinkApi's threads.
#ifndef CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_OUTCOME_RECONCILER_H_
#define CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_OUTCOME_RECONCILER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "adapters/clink/clink_api.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/events/event_store.h"
#include "adapters/idempotency/idempotency_store.h"
#include "adapters/idempotency/idempotent_clink_api.h"
#include "common/sync.h"
#include "google/protobuf/message.h"

namespace clink_gateway::clink {

enum class ReconciliationResult {
  kResolved,    // The order was found and the key settled with it.
  kUnresolved,  // The window passed (or the reconciler was full or stopped)
                // and the key still answers UNKNOWN.
};

// "resolved", "unresolved": the metric's `result` label.
absl::string_view ReconciliationResultName(ReconciliationResult result);

// Told what the reconciler does (the server's metrics implement it:
// clink_gateway_outcome_reconciliations_total{merchant,result} and
// clink_gateway_outcome_reconciliations_pending). Called on any of the
// reconciler's threads; must not block.
class ReconciliationObserver {
 public:
  virtual ~ReconciliationObserver() = default;
  // One per reconciliation, when it ends; `merchant` is the key's merchant.
  virtual void OnReconciliation(absl::string_view merchant,
                                ReconciliationResult result) {}
  // Reconciliations in progress now, after each change (before the
  // OnReconciliation of one that ended). Called under the reconciler's lock,
  // so the values arrive in order: it must not call the reconciler.
  virtual void OnReconciliationsPending(size_t pending) {}
};

class OutcomeReconciler final : public UnknownOutcomeListener,
                                public events::EventListener {
 public:
  struct Options {
    // How long an unknown outcome is looked for (--reconcile_window).
    absl::Duration window = absl::Minutes(15);
    // Delay before the first ListOrders poll; doubles up to max_backoff.
    absl::Duration initial_backoff = absl::Seconds(5);
    absl::Duration max_backoff = absl::Minutes(2);
    // Reconciliations in progress at most.
    size_t max_pending = 10000;
    // ListOrders pages (of 50 orders, newest first) read per poll at most.
    int max_pages = 2;
    // An order created earlier than this before the unknown outcome was
    // stored is not the call's (Clink's clock may differ from ours a little;
    // a call lasts at most the gateway's longest deadline).
    absl::Duration lookback = absl::Minutes(10);
    // Deadline of each read sent to Clink.
    absl::Duration call_timeout = absl::Seconds(30);
  };

  // `codec` must hold PaymentService and BillingService (ListOrders, GetOrder,
  // GetInvoice). `inner` is the ClinkApi below the idempotency layer (the
  // merchant router): reads only go through it. All references (and
  // `observer`, null for none) must outlive this object.
  OutcomeReconciler(const RestCodec& codec, ClinkApi& inner,
                    idempotency::IdempotencyStore& store,
                    ReconciliationObserver* observer, Options options);
  // Stops the thread, counts what is still pending as unresolved and waits for
  // checks in progress to end (their calls on `inner` must be able to finish).
  ~OutcomeReconciler() override;

  OutcomeReconciler(const OutcomeReconciler&) = delete;
  OutcomeReconciler& operator=(const OutcomeReconciler&) = delete;

  // Starts a reconciliation when `method` is CreatePayment or
  // CreateSubscription and the request has a merchant_reference_id; ignores
  // anything else.
  void OnUnknownOutcomeStored(const RestMethod& method,
                              const google::protobuf::Message& request,
                              const idempotency::IdempotencyKey& key,
                              absl::string_view request_hash,
                              const idempotency::StoredResult& stored) override;

  // An `order.*` event naming a reference being reconciled for the event's
  // merchant makes that reconciliation read the order now. Never blocks on
  // the network (the read runs from the reconciler's thread).
  void OnEventStored(const events::StoredEvent& event) override;

  // Reconciliations in progress (tests, metrics).
  size_t pending() const;

 private:
  struct Pending;
  struct Check;

  void Loop();
  // Takes `id` (whose entry is `p`) out of due_, if it is there. mu_ held.
  void UnscheduleLocked(uint64_t id, Pending& p)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Schedules `id` at `when`. mu_ held.
  void ScheduleLocked(uint64_t id, absl::Time when)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Forgets a reconciliation (the caller tells the observer, unlocked).
  void EraseLocked(uint64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StartCheck(std::shared_ptr<Check> check);
  void ListPage(std::shared_ptr<Check> check, int page);
  void GetOrder(std::shared_ptr<Check> check, std::string order_id);
  // Considers the orders the check found.
  void Decide(std::shared_ptr<Check> check);
  void ReadSubscription(std::shared_ptr<Check> check);
  void Settle(std::shared_ptr<Check> check);
  // The check ended: `resolved`, or not yet (try again later), or `drop`
  // (the record is not the unknown one any more).
  void Finish(const std::shared_ptr<Check>& check, bool resolved, bool drop);
  // Logs and counts the end of a reconciliation (mu_ not held).
  void Report(const std::string& merchant, ReconciliationResult result);
  CallOptions ReadOptions(const Check& check) const;

  const RestCodec& codec_;
  ClinkApi& inner_;
  idempotency::IdempotencyStore& store_;
  ReconciliationObserver& observer_;
  const Options options_;
  const RestMethod* list_orders_;
  const RestMethod* get_order_;
  const RestMethod* get_invoice_;

  mutable Mutex mu_;
  CondVar cv_;
  std::map<uint64_t, std::unique_ptr<Pending>> pending_ ABSL_GUARDED_BY(mu_);
  // (when, id) of every reconciliation not being checked now.
  std::multimap<absl::Time, uint64_t> due_ ABSL_GUARDED_BY(mu_);
  // (merchant, merchant_reference_id) -> id.
  std::multimap<std::pair<std::string, std::string>, uint64_t> by_reference_
      ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  size_t checks_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // Last: starts once everything above exists.
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_IDEMPOTENCY_OUTCOME_RECONCILER_H_
