#include "tests/emulator/merchant_objects.h"

#include "absl/strings/str_cat.h"

namespace clink_gateway::emulator {
namespace {

constexpr const char* kRefundReasons[] = {"Duplicate payment",
                                          "Fraudulent activity",
                                          "Customer Initiated Refund", "Other"};

void WriteRecurring(JsonWriter& writer, absl::string_view key,
                    const Price& price) {
  WriteKey(writer, key);
  writer.StartObject();
  WriteString(writer, "interval", price.interval);
  WriteInt(writer, "trialPeriodDays", price.trial_period_days);
  WriteString(writer, "pricingModel", price.pricing_model);
  WriteInt(writer, "intervalCount", price.interval_count);
  writer.EndObject();
}

// InvoiceItem, for the subscription's current period.
void WriteInvoiceItem(JsonWriter& writer, const Subscription& subscription,
                      const Price& price, const Product& product) {
  writer.StartObject();
  WriteString(writer, "invoiceItemId", subscription.invoice_item_id);
  WriteAmount(writer, "amount", price.unit_amount);
  WriteString(writer, "currency", price.currency);
  WriteString(writer, "description", absl::StrCat("1 x ", product.name));
  WriteInt(writer, "periodStart", subscription.period_start_ms);
  WriteInt(writer, "periodEnd", subscription.period_end_ms);
  WriteBool(writer, "proration", false);
  WriteKey(writer, "price");
  writer.StartObject();
  WriteString(writer, "productId", product.id);
  WriteString(writer, "productName", product.name);
  WriteString(writer, "priceId", price.id);
  WriteString(writer, "priceSnapshotId", price.snapshot_id);
  WriteAmount(writer, "unitAmount", price.unit_amount);
  WriteInt(writer, "quantity", 1);
  WriteRecurring(writer, "recurring", price);
  writer.EndObject();
  writer.EndObject();
}

}  // namespace

void WritePriceDataList(JsonWriter& writer, absl::string_view key,
                        const std::vector<PriceData>& list) {
  WriteKey(writer, key);
  writer.StartArray();
  for (const PriceData& data : list) {
    writer.StartObject();
    WriteString(writer, "name", data.name);
    if (data.quantity.has_value()) WriteInt(writer, "quantity", *data.quantity);
    WriteAmount(writer, "unitAmount", data.unit_amount);
    WriteStringIfSet(writer, "currency", data.currency);
    WriteStringIfSet(writer, "imageUrl", data.image_url);
    writer.EndObject();
  }
  writer.EndArray();
}

// PlatformPriceApiVo.
void WritePrice(JsonWriter& writer, const Price& price) {
  WriteString(writer, "priceId", price.id);
  WriteString(writer, "priceSnapshotId", price.snapshot_id);
  WriteString(writer, "productId", price.product_id);
  WriteString(writer, "currency", price.currency);
  WriteAmount(writer, "unitAmount", price.unit_amount);
  WriteString(writer, "priceType", price.price_type);
  if (price.price_type == "recurring")
    WriteRecurring(writer, "recurring", price);
  WriteBool(writer, "active", price.active);
  WriteInt(writer, "createTime", kCatalogCreateTimeMs);
}

// PlatformProductApiVo.
void WriteProduct(JsonWriter& writer, const Product& product,
                  const std::vector<Price>& prices) {
  WriteString(writer, "productId", product.id);
  WriteString(writer, "name", product.name);
  WriteBool(writer, "active", product.active);
  WriteString(writer, "description", product.description);
  WriteString(writer, "defaultPrice", product.default_price);
  WriteString(writer, "image", product.image);
  WriteString(writer, "taxCategory", product.tax_category);
  WriteKey(writer, "priceList");
  writer.StartArray();
  for (const Price& price : prices) {
    if (price.product_id != product.id) continue;
    writer.StartObject();
    WritePrice(writer, price);
    writer.EndObject();
  }
  writer.EndArray();
  WriteInt(writer, "createTime", kCatalogCreateTimeMs);
  WriteInt(writer, "updateTime", kCatalogCreateTimeMs);
  WriteStringMap(writer, "localizedNames", product.localized_names);
}

// Action (CreatePaymentApiVo.action and WalletQrcodeRefreshApiVo.action).
void WriteAction(JsonWriter& writer, const Order& order,
                 absl::string_view checkout_base_url) {
  const std::string base =
      absl::StrCat(checkout_base_url, "/action/", order.id);
  WriteKey(writer, "action");
  writer.StartObject();
  WriteString(writer, "redirectUrl",
              absl::StrCat(base, "?v=", order.qr_version));
  WriteString(writer, "method", "GET");
  WriteString(writer, "type", order.payment_method_type);
  WriteString(writer, "paymentMethodType", order.payment_method_type);
  if (order.payment_method_type != "CARD") {
    WriteKey(writer, "walletHandleRedirectOrDisplayQrCode");
    writer.StartObject();
    WriteString(writer, "imageUrlPng",
                absl::StrCat(base, "/qr-", order.qr_version, ".png"));
    WriteString(writer, "imageUrlSvg",
                absl::StrCat(base, "/qr-", order.qr_version, ".svg"));
    WriteString(writer, "hostedInstructionsUrl",
                absl::StrCat(base, "/instructions"));
    WriteString(writer, "mobileAuthUrl",
                absl::StrCat(base, "/mobile?v=", order.qr_version));
    WriteString(writer, "fallbackUrl", absl::StrCat(base, "/fallback"));
    WriteInt(writer, "expiresAt", absl::ToUnixSeconds(order.action_expires));
    WriteInt(writer, "expiresSecond", absl::ToInt64Seconds(kWalletQrLifetime));
    writer.EndObject();
  }
  writer.EndObject();
}

// OrderApiVo.
void WriteOrder(JsonWriter& writer, const Order& order) {
  WriteString(writer, "orderId", order.id);
  WriteString(writer, "type", order.type);
  WriteStringIfSet(writer, "merchantReferenceId", order.merchant_reference_id);
  WriteStringIfSet(writer, "invoiceId", order.invoice_id);
  WriteString(writer, "customerId", order.customer_id);
  WriteStringIfSet(writer, "customerEmail", order.customer_email);
  WriteInt(writer, "createTime", order.create_time_ms);
  WriteStringIfSet(writer, "productId", order.product_id);
  WriteStringIfSet(writer, "priceId", order.price_id);
  if (!order.price_data.empty())
    WritePriceDataList(writer, "priceDataList", order.price_data);
  WriteKey(writer, "paymentMethod");
  writer.StartObject();
  WriteString(writer, "paymentMethodType", order.payment_method_type);
  WriteString(writer, "paymentInstrumentId", order.payment_instrument_id);
  writer.EndObject();
  WriteKey(writer, "paymentExecutionDetails");
  writer.StartArray();
  writer.StartObject();
  WriteString(writer, "channelCode", "EMULATOR");
  WriteString(writer, "channelTransactionId", order.channel_transaction_id);
  WriteStringIfSet(writer, "originalFailureCode", order.failure_code);
  WriteStringIfSet(writer, "originalFailureMessage", order.failure_message);
  writer.EndObject();
  writer.EndArray();
  WriteAmount(writer, "amountSubtotal", order.amount);
  WriteAmount(writer, "amountTotal", order.amount);
  WriteString(writer, "paymentCurrency", order.currency);
  WriteString(writer, "originalCurrency", order.currency);
  WriteString(writer, "status", order.status);
  if (order.payment_time_ms != 0)
    WriteInt(writer, "paymentTime", order.payment_time_ms);
  WriteString(writer, "sessionId", order.session_id);
  if (!order.metadata.empty())
    WriteStringMap(writer, "metadata", order.metadata);
  WriteString(writer, "riskLevel", "normal");
}

// RefundApiVo.
void WriteRefund(JsonWriter& writer, const Refund& refund) {
  WriteInt(writer, "createTime", refund.create_time_ms);
  WriteString(writer, "refundId", refund.id);
  WriteString(writer, "orderId", refund.order_id);
  WriteString(writer, "customerId", refund.customer_id);
  WriteAmount(writer, "refundAmount", refund.amount);
  WriteString(writer, "refundCurrency", refund.currency);
  WriteString(writer, "status", refund.status);
  if (refund.reason_type.has_value()) {
    WriteString(writer, "refundReason", kRefundReasons[*refund.reason_type]);
  }
  WriteStringMap(writer, "metadata",
                 {{"arn", refund.arn},
                  {"merchantReferenceId", refund.merchant_refund_id}});
  WriteString(writer, "paymentInstrumentId", refund.payment_instrument_id);
}

// PaymentInstrumentApiVo.
void WriteInstrument(JsonWriter& writer, const Instrument& instrument) {
  WriteString(writer, "id", instrument.id);
  WriteString(writer, "customerId", instrument.customer_id);
  WriteString(writer, "type", instrument.type);
  WriteKey(writer, "wallet");
  writer.StartObject();
  WriteString(writer, "accountTag", instrument.account_tag);
  writer.EndObject();
  WriteInt(writer, "created", instrument.created_ms);
}

// SubApiVo.
void WriteSubscription(JsonWriter& writer, const Subscription& subscription,
                       const Price& price, const Product& product) {
  WriteStringIfSet(writer, "merchantReference",
                   subscription.merchant_reference);
  WriteString(writer, "subscriptionId", subscription.id);
  WriteString(writer, "customerId", subscription.customer_id);
  WriteString(writer, "productId", subscription.product_id);
  WriteString(writer, "priceId", subscription.price_id);
  WriteString(writer, "priceSnapshotId", price.snapshot_id);
  WriteInt(writer, "createTime", subscription.create_time_ms);
  WriteInt(writer, "quantity", 1);
  WriteString(writer, "paymentMethodType", subscription.payment_method_type);
  WriteString(writer, "paymentInstrumentId",
              subscription.payment_instrument_id);
  WriteInt(writer, "currentPeriodStart", subscription.period_start_ms);
  WriteInt(writer, "currentPeriodEnd", subscription.period_end_ms);
  if (subscription.cancel_at_ms != 0)
    WriteInt(writer, "cancelAt", subscription.cancel_at_ms);
  WriteBool(writer, "cancelAtPeriodEnd", subscription.cancel_at_period_end);
  if (subscription.canceled_at_ms != 0) {
    WriteInt(writer, "canceledAt", subscription.canceled_at_ms);
  }
  WriteStringIfSet(writer, "cancelReason", subscription.cancel_reason);
  WriteString(writer, "status", subscription.status);
  WriteString(writer, "billing", "charge_automatically");
  WriteString(writer, "currency", subscription.currency);
  WriteKey(writer, "recurringInvoiceItem");
  WriteInvoiceItem(writer, subscription, price, product);
  if (!subscription.scheduled_phases_json.empty()) {
    WriteKey(writer, "scheduledPhases");
    writer.RawValue(subscription.scheduled_phases_json.data(),
                    subscription.scheduled_phases_json.size(),
                    rapidjson::kArrayType);
  }
  WriteInt(writer, "elapsedCycles", subscription.elapsed_cycles);
  WriteString(writer, "sessionId", subscription.session_id);
  if (!subscription.metadata.empty())
    WriteStringMap(writer, "metadata", subscription.metadata);
}

// InvoiceApiVo.
void WriteInvoice(JsonWriter& writer, const Invoice& invoice,
                  const Subscription& subscription, const Price& price,
                  const Product& product) {
  WriteString(writer, "invoiceId", invoice.id);
  WriteString(writer, "subscriptionId", invoice.subscription_id);
  WriteString(writer, "orderId", invoice.order_id);
  WriteString(writer, "customerId", invoice.customer_id);
  WriteString(writer, "merchantId", kMerchantId);
  WriteString(writer, "status", invoice.status);
  WriteInt(writer, "createTime", invoice.create_time_ms);
  WriteInt(writer, "currentPeriodStart", subscription.period_start_ms);
  WriteInt(writer, "currentPeriodEnd", subscription.period_end_ms);
  WriteAmount(writer, "originalAmount", price.unit_amount);
  WriteString(writer, "originalCurrency", price.currency);
  WriteString(writer, "billing", "charge_automatically");
  WriteKey(writer, "items");
  writer.StartArray();
  WriteInvoiceItem(writer, subscription, price, product);
  writer.EndArray();
}

}  // namespace clink_gateway::emulator
