// The objects the Clink emulator stores, and their JSON form: one writer per
// API schema (OrderApiVo, RefundApiVo, ...), each writing the members of an
// already-open JSON object.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_MERCHANT_OBJECTS_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_MERCHANT_OBJECTS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/emulator/clink_json.h"
#include "tests/emulator/decimal.h"

namespace clink_gateway::emulator {

inline constexpr char kMerchantId[] = "mcht_emulator";
inline constexpr absl::Duration kWalletQrLifetime = absl::Minutes(5);
// createTime/updateTime of the seeded catalog: 2025-06-15T15:06:40Z.
inline constexpr int64_t kCatalogCreateTimeMs = 1750000000000;

// Amounts are kept as the exact decimal text the client (or the seed) supplied.

// How a charge on an instrument ends (seeded cards carry one; wallets always
// need an action).
enum class ChargeOutcome { kSucceed, kDecline, kRequireAction };

struct Customer {
  std::string id;
  std::string email;
  std::string reference_id;
  std::string name;
};

struct Instrument {
  std::string id;
  std::string customer_id;
  std::string type;         // "CARD" or a wallet type.
  std::string account_tag;  // Wallets.
  ChargeOutcome outcome =
      ChargeOutcome::kSucceed;  // Cards; wallets always need an action.
  int64_t created_ms = 0;
};

struct Product {
  std::string id;
  std::string name;
  std::string description;
  std::string default_price;
  std::string image;
  std::string tax_category;
  bool active = true;
  std::map<std::string, std::string> localized_names;
};

struct Price {
  std::string id;
  std::string snapshot_id;
  std::string product_id;
  std::string currency;
  std::string unit_amount;
  std::string price_type;  // "one_time" | "recurring"
  std::string interval;    // Recurring only.
  int64_t interval_count = 1;
  int64_t trial_period_days = 0;
  std::string pricing_model = "flat_rate";
  bool active = true;
};

struct PriceData {
  std::string name;
  std::optional<int64_t> quantity;
  std::string unit_amount;
  std::string currency;
  std::string image_url;
};

struct CheckoutSession {
  std::string id;
  std::string token;
  std::string customer_id;
  std::string amount;
  std::string currency;
  std::string merchant_reference_id;
  std::string price_id;
  std::string product_id;
  std::string ui_mode;
  std::string return_url;
  std::string success_url;
  std::string cancel_url;
  std::vector<PriceData> price_data;
  absl::Time created;
  absl::Time expires;
  // Set for the sessions behind POST /payment and POST /subscription; their
  // status follows the order's.
  std::string order_id;
  std::string subscription_id;
  std::string invoice_id;
};

struct Order {
  std::string id;
  std::string type;  // "onetime" | "recurring"
  std::string merchant_reference_id;
  std::string invoice_id;
  std::string subscription_id;  // Not in OrderApiVo; used by GET
                                // /order?subscriptionId=.
  std::string customer_id;
  std::string customer_email;
  int64_t create_time_ms = 0;
  std::string product_id;
  std::string price_id;
  std::vector<PriceData> price_data;
  std::string payment_method_type;
  std::string payment_instrument_id;
  std::string channel_transaction_id;
  std::string failure_code;
  std::string failure_message;
  std::string amount;
  std::string currency;
  std::string status;           // success, failed, requires_action, pending,
                                // partial_refunded, refunded
  int64_t payment_time_ms = 0;  // 0 until the payment is final.
  std::string session_id;
  std::map<std::string, std::string> metadata;
  Decimal refunded;  // Sum of this order's refunds.
  int qr_version = 0;
  absl::Time action_expires;
};

struct Refund {
  std::string id;
  std::string merchant_refund_id;
  std::string order_id;
  std::string customer_id;
  std::string amount;
  std::string currency;
  std::string status;
  std::optional<int64_t> reason_type;
  std::string remark;
  std::string payment_instrument_id;
  std::string arn;
  int64_t create_time_ms = 0;
};

struct Subscription {
  std::string id;
  std::string merchant_reference;
  std::string customer_id;
  std::string product_id;
  std::string price_id;
  std::string session_id;
  std::string payment_method_type;
  std::string payment_instrument_id;
  std::string status;  // incomplete, free_trial, active, incomplete_expired,
                       // past_due, cancelled
  std::string currency;
  std::string invoice_item_id;
  int64_t create_time_ms = 0;
  int64_t period_start_ms = 0;
  int64_t period_end_ms = 0;
  int64_t cancel_at_ms = 0;    // 0: not scheduled.
  int64_t canceled_at_ms = 0;  // 0: not requested.
  bool cancel_at_period_end = false;
  int64_t elapsed_cycles = 0;  // Renewals so far (test clocks advance them).
  std::string cancel_reason;
  std::map<std::string, std::string> metadata;
  std::string
      scheduled_phases_json;  // Validated input, echoed verbatim-equivalent.
};

struct Invoice {
  std::string id;
  std::string subscription_id;
  std::string order_id;
  std::string customer_id;
  std::string status;  // open, paid, void
  int64_t create_time_ms = 0;
};

struct AgentSession {
  std::string id;
  std::string customer_email;
  std::string customer_id;
  std::string amount;
  std::string currency;
  absl::Time created;
  absl::Time expires;
};

// Writes `list` as the PriceData[] member `key`.
void WritePriceDataList(JsonWriter& writer, absl::string_view key,
                        const std::vector<PriceData>& list);

// PlatformPriceApiVo.
void WritePrice(JsonWriter& writer, const Price& price);

// PlatformProductApiVo.
void WriteProduct(JsonWriter& writer, const Product& product,
                  const std::vector<Price>& prices);

// Action (CreatePaymentApiVo.action and WalletQrcodeRefreshApiVo.action).
void WriteAction(JsonWriter& writer, const Order& order,
                 absl::string_view checkout_base_url);

// OrderApiVo.
void WriteOrder(JsonWriter& writer, const Order& order);

// RefundApiVo.
void WriteRefund(JsonWriter& writer, const Refund& refund);

// PaymentInstrumentApiVo.
void WriteInstrument(JsonWriter& writer, const Instrument& instrument);

// SubApiVo.
void WriteSubscription(JsonWriter& writer, const Subscription& subscription,
                       const Price& price, const Product& product);

// InvoiceApiVo.
void WriteInvoice(JsonWriter& writer, const Invoice& invoice,
                  const Subscription& subscription, const Price& price,
                  const Product& product);

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_MERCHANT_OBJECTS_H_
