// The Clink merchant REST API (everything below /api), emulated in memory.
// Transport-agnostic: ClinkEmulator feeds it requests that already passed
// authentication and fault injection.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_MERCHANT_API_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_MERCHANT_API_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "tests/emulator/clink_json.h"
#include "tests/emulator/router.h"
#include "tests/emulator/webhook_endpoints.h"

namespace clink_gateway::emulator {

// One request to the merchant API.
struct ApiRequest {
  std::string method;        // "GET", "POST", ...
  std::string path;          // Below /api, e.g. "/order/ord_1".
  std::string query_string;  // Raw, without the '?'.
  std::string body;
  std::string content_type;  // The request's Content-Type header, if any.
};

// The answer; the body is always JSON.
struct ApiResponse {
  int http_status = 200;
  std::string body;
};

// Envelope `code` values the emulator uses. Clink publishes no numeric table
// for the merchant API (clink-api.md §17), so apart from 200 and 90101401 (seen
// on Clink's agent refund API) these are the emulator's own choices.
enum ClinkCode : int {
  kCodeSuccess = 200,
  kCodeBadRequest =
      400,  // Validation: msg names the field, or CUSTOMER_NOT_FOUND /
            // CUSTOMER_IDENTIFIER_NOT_MATCHED.
  kCodeNotFound = 404,  // An id in the path or body does not exist: "<what>
                        // <id> not found".
  kCodeMethodNotAllowed = 405,  // Known path, wrong method (always HTTP 405).
  kCodeInternal = 500,
  kCodeRefundExceedsRefundable =
      90101401,  // Refund above the order's refundable balance.
  kCodeInvalidState =
      90101402,  // The resource's state forbids the operation (refund of an
                 // unpaid or fully refunded order, cancelling a cancelled
                 // subscription, QR refresh of a settled order).
};

// Ids of the fixed fixtures every emulator starts with (see SeedFixtures in the
// .cc).
inline constexpr char kSeedCustomerId[] = "cus_emu_test";
inline constexpr char kSeedCustomerEmail[] = "test@example.com";
inline constexpr char kSeedCustomerReferenceId[] = "emu-ref-test";
inline constexpr char kSeedCardInstrumentId[] =
    "pi_emu_card_visa";  // Charges succeed.
inline constexpr char kSeedDeclinedCardId[] =
    "pi_emu_card_declined";  // Charges fail (3).
inline constexpr char kSeedThreeDsCardId[] =
    "pi_emu_card_3ds";  // Need action (5).
inline constexpr char kSeedGcashInstrumentId[] =
    "pi_emu_gcash";  // Wallet, action (5).
inline constexpr char kSeedProductBasic[] = "prd_emu_basic";
inline constexpr char kSeedProductPro[] = "prd_emu_pro";
inline constexpr char kSeedProductEbook[] = "prd_emu_ebook";
inline constexpr char kSeedPriceMonthly[] =
    "price_emu_monthly";  // basic, USD 9.99/month
inline constexpr char kSeedPriceYearly[] =
    "price_emu_yearly";  // basic, USD 99.00/year
inline constexpr char kSeedPriceLegacy[] =
    "price_emu_monthly_legacy";  // basic, inactive
inline constexpr char kSeedPriceProMonthly[] =
    "price_emu_pro_monthly";  // pro, USD 29.99/month
inline constexpr char kSeedPriceProEur[] =
    "price_emu_pro_monthly_eur";  // pro, EUR 27.99/month
inline constexpr char kSeedPriceOneTime[] =
    "price_emu_onetime";  // ebook, USD 19.990

// In-memory Clink merchant API. All methods are thread-safe.
//
// Behaviour (choices where Clink's docs are silent are marked "emulator"):
//  - Amounts are stored as the exact text received and echoed with the same
//  digits; refund
//    arithmetic uses Decimal. Numbers sent as JSON strings are accepted
//    (Jackson coerces too).
//  - Customer resolution follows clink-api.md §4; unknown emails/reference ids
//  create cus_ ids.
//  - POST /payment and POST /subscription charge an instrument the customer
//  owns and whose type
//    equals paymentMethodType: pi_emu_card_visa succeeds (status 1, order
//    success), pi_emu_card_declined fails (3, order failed), pi_emu_card_3ds
//    needs a redirect (5, order requires_action); every wallet instrument needs
//    an action (5) with a QR payload (emulator). Each charge also creates a
//    checkout session whose status follows the order.
//  - QR refresh works for CASHAPP orders in requires_action (new URLs, expiry
//  now + 5 min).
//  - Refunds complete at once (status success); orders become partial_refunded
//  / refunded;
//    refundMerchantOrderId is the idempotency key.
//  - Subscriptions: active + order success + invoice paid when the first charge
//  succeeds, else
//    incomplete + invoice open. Cancel: immediately -> cancelled; otherwise
//    cancelAtPeriodEnd.
//  - Coupons and promotion codes (emulator): codes are unique per merchant
//  (a repeat is a 400); archived codes cannot change state (90101402);
//  nothing redeems them, so redemption counts stay 0.
//  - Test clocks: one live (not COMPLETED) clock per subscription, frozen at
//  creation time. Advancing runs the subscription's period ends up to the
//  target at once (the task is SUCCEEDED): each is a renewal charged to the
//  subscription's instrument (new order and invoice, elapsedCycles + 1; a
//  failed charge makes it past_due and stops), or the cancellation of a
//  cancelAtPeriodEnd subscription. A completed clock cannot advance
//  (90101402).
//  - Webhook endpoints (/webhook/endpoints, /webhook/events): see
//  webhook_endpoints.h.
//  - Lifetimes (emulator): checkout session 1 h, agent payment session 30 min,
//  portal link
//    30 min. Optional fields without a value are omitted rather than sent as
//    null.
class MerchantApi {
 public:
  struct Options {
    // Source of "now" for entity times, expiry and periods. Required.
    std::function<absl::Time()> clock;
    // false: errors are HTTP 200 with the envelope's code (what Clink is
    // believed to do). true: the same envelope with HTTP 400 (validation and
    // business errors) or 404.
    bool http_status_errors = false;
    // Hosts used in URLs the API hands out (hosted checkout, wallet actions,
    // portal). Nothing serves them; the reserved .invalid TLD keeps anyone from
    // resolving them.
    std::string checkout_base_url = "https://checkout.clink-emulator.invalid";
    std::string portal_base_url = "https://portal.clink-emulator.invalid";
    // Told of every state change Clink sends a webhook event for
    // (clink-api.md §13.1): the event type and the resource as a JSON object,
    // exactly the `data` its GET endpoint answers at that moment. Called on
    // the request's thread once the request's changes are made, in their
    // order, without this API's lock held (so it may call back, e.g. to read
    // registered webhook endpoints). Optional. Events emitted: order.created,
    // then order.succeeded / order.failed / order.next_action (payments,
    // subscription charges, renewals); refund.created, refund.succeeded;
    // session.complete (the session behind a successful charge);
    // subscription.created, subscription.activated, subscription.past_due,
    // subscription.cancelled, subscription.updated.renewed,
    // subscription.updated.cancel_at_period_end_set; invoice.open,
    // invoice.paid. (Sessions expire lazily, so no session.expired.)
    std::function<void(const std::string& type, std::string object_json)>
        on_event;
  };

  explicit MerchantApi(Options options);
  ~MerchantApi();

  MerchantApi(const MerchantApi&) = delete;
  MerchantApi& operator=(const MerchantApi&) = delete;

  ApiResponse Handle(const ApiRequest& request);

  // The account's enabled webhook endpoints (registered through
  // /webhook/endpoints), with their current signing secrets: where a webhook
  // sender delivers this account's events. Thread-safe.
  std::vector<RegisteredWebhookEndpoint> EnabledWebhookEndpoints() const;

 private:
  struct State;
  using Params = std::vector<std::string>;
  // Returns the complete success body; an error status becomes an error
  // envelope (see ErrorResponse for the status-code-to-envelope-code table).
  // A member function pointer, or a lambda (the webhook endpoint routes).
  using Handler = std::function<absl::StatusOr<std::string>(
      MerchantApi&, const ApiRequest&, const Params&)>;

  ApiResponse ErrorResponse(const absl::Status& status) const;

  // Queues an event of `type` whose resource `write_members` writes, for
  // Handle() to pass to Options::on_event after the request.
  void Emit(const std::string& type,
            absl::FunctionRef<void(JsonWriter&)> write_members)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Emit() for one stored resource, written as its GET endpoint does.
  // order.created, then order.succeeded / order.failed / order.next_action.
  void EmitOrderEvents(const std::string& order_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitSession(const std::string& type, const std::string& session_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitSubscription(const std::string& type,
                        const std::string& subscription_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EmitInvoice(const std::string& type, const std::string& invoice_id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // One handler per endpoint; `params` holds the path's "{…}" segments.
  absl::StatusOr<std::string> CreateCheckoutSession(const ApiRequest& request,
                                                    const Params& params);
  absl::StatusOr<std::string> GetCheckoutSession(const ApiRequest& request,
                                                 const Params& params);
  absl::StatusOr<std::string> CreatePayment(const ApiRequest& request,
                                            const Params& params);
  absl::StatusOr<std::string> RefreshQrCode(const ApiRequest& request,
                                            const Params& params);
  absl::StatusOr<std::string> CreatePaymentInstrument(const ApiRequest& request,
                                                      const Params& params);
  absl::StatusOr<std::string> GetOrder(const ApiRequest& request,
                                       const Params& params);
  absl::StatusOr<std::string> ListOrders(const ApiRequest& request,
                                         const Params& params);
  absl::StatusOr<std::string> CreateRefund(const ApiRequest& request,
                                           const Params& params);
  absl::StatusOr<std::string> GetRefund(const ApiRequest& request,
                                        const Params& params);
  absl::StatusOr<std::string> CreateAgentPaymentSession(
      const ApiRequest& request, const Params& params);
  absl::StatusOr<std::string> GetAgentPaymentSession(const ApiRequest& request,
                                                     const Params& params);
  absl::StatusOr<std::string> CreateBillingSession(const ApiRequest& request,
                                                   const Params& params);
  absl::StatusOr<std::string> CreateSubscription(const ApiRequest& request,
                                                 const Params& params);
  absl::StatusOr<std::string> GetSubscription(const ApiRequest& request,
                                              const Params& params);
  absl::StatusOr<std::string> CancelSubscription(const ApiRequest& request,
                                                 const Params& params);
  absl::StatusOr<std::string> GetInvoice(const ApiRequest& request,
                                         const Params& params);
  absl::StatusOr<std::string> ListProducts(const ApiRequest& request,
                                           const Params& params);
  absl::StatusOr<std::string> GetProduct(const ApiRequest& request,
                                         const Params& params);
  absl::StatusOr<std::string> ListPrices(const ApiRequest& request,
                                         const Params& params);
  absl::StatusOr<std::string> GetPrice(const ApiRequest& request,
                                       const Params& params);
  absl::StatusOr<std::string> UploadProductImage(const ApiRequest& request,
                                                 const Params& params);
  absl::StatusOr<std::string> CreateProduct(const ApiRequest& request,
                                            const Params& params);
  absl::StatusOr<std::string> CreatePrice(const ApiRequest& request,
                                          const Params& params);
  absl::StatusOr<std::string> UpdatePrice(const ApiRequest& request,
                                          const Params& params);
  absl::StatusOr<std::string> ListCoupons(const ApiRequest& request,
                                          const Params& params);
  absl::StatusOr<std::string> CreateCoupon(const ApiRequest& request,
                                           const Params& params);
  absl::StatusOr<std::string> GetCoupon(const ApiRequest& request,
                                        const Params& params);
  absl::StatusOr<std::string> RenameCoupon(const ApiRequest& request,
                                           const Params& params);
  absl::StatusOr<std::string> ListPromotionCodes(const ApiRequest& request,
                                                 const Params& params);
  absl::StatusOr<std::string> CreatePromotionCode(const ApiRequest& request,
                                                  const Params& params);
  absl::StatusOr<std::string> GetPromotionCode(const ApiRequest& request,
                                               const Params& params);
  absl::StatusOr<std::string> ActivatePromotionCode(const ApiRequest& request,
                                                    const Params& params);
  absl::StatusOr<std::string> DeactivatePromotionCode(const ApiRequest& request,
                                                      const Params& params);
  absl::StatusOr<std::string> ListTestClocks(const ApiRequest& request,
                                             const Params& params);
  absl::StatusOr<std::string> CreateTestClock(const ApiRequest& request,
                                              const Params& params);
  absl::StatusOr<std::string> GetTestClock(const ApiRequest& request,
                                           const Params& params);
  absl::StatusOr<std::string> AdvanceTestClock(const ApiRequest& request,
                                               const Params& params);
  absl::StatusOr<std::string> CompleteTestClock(const ApiRequest& request,
                                                const Params& params);
  // Sets promotion code `id` to `status` (active or inactive).
  absl::StatusOr<std::string> SetPromotionCodeStatus(const std::string& id,
                                                     absl::string_view status);

  const Options options_;
  Router<Handler> router_;  // Built in the constructor, read-only afterwards.
  absl::Mutex mu_;
  std::unique_ptr<State> state_ ABSL_PT_GUARDED_BY(mu_);
  // /webhook/... (clink-api.md §12); locks itself.
  std::unique_ptr<WebhookEndpoints> webhooks_;
};

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_MERCHANT_API_H_
