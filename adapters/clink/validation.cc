#include "adapters/clink/validation.h"

#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "clink/gateway/v1/billing.pb.h"
#include "clink/gateway/v1/checkout.pb.h"
#include "clink/gateway/v1/common.pb.h"
#include "clink/gateway/v1/payment.pb.h"
#include "common/errors/error_details.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;
using Violations = std::vector<errors::FieldViolation>;
using MethodSet = absl::flat_hash_set<int>;

template <typename Request>
void RequireCustomer(const Request& r, Violations* out) {
  if (r.customer_id().empty() && r.customer_email().empty() &&
      r.reference_customer_id().empty()) {
    out->push_back({"customer_id",
                    "one of customer_id, customer_email or "
                    "reference_customer_id is required"});
  }
}

template <typename Request>
void PriceNeedsProduct(const Request& r, Violations* out) {
  if (!r.price_id().empty() && r.product_id().empty()) {
    out->push_back({"product_id", "is required when price_id is set"});
  }
}

void AllowedMethod(int value, const MethodSet& allowed,
                   const std::string& field, Violations* out) {
  if (value != v1::PAYMENT_METHOD_TYPE_UNSPECIFIED &&
      !allowed.contains(value)) {
    out->push_back({field, absl::StrCat(v1::PaymentMethodType_Name(value),
                                        " is not accepted by this endpoint")});
  }
}

void ScheduledPhases(
    const google::protobuf::RepeatedPtrField<v1::ScheduledPhase>& phases,
    Violations* out) {
  for (int i = 0; i < phases.size(); ++i) {
    const v1::ScheduledPhase& p = phases[i];
    const std::string path = absl::StrCat("scheduled_phases[", i, "]");
    if (i > 0 && p.sequence() <= phases[i - 1].sequence()) {
      out->push_back({path + ".sequence", "must be strictly increasing"});
    }
    if (i > 0 && p.effective_cycle() <= phases[i - 1].effective_cycle()) {
      out->push_back(
          {path + ".effective_cycle", "must be strictly increasing"});
    }
    if (p.metadata_size() > 10)
      out->push_back({path + ".metadata", "at most 10 keys"});
    for (const auto& [key, value] : p.metadata()) {
      if (key.size() > 40 || value.size() > 500) {
        out->push_back(
            {path + ".metadata", "keys are at most 40 characters, values 500"});
        break;
      }
    }
  }
}

// Payment method types per endpoint, from Clink's OpenAPI enums.
const MethodSet& CheckoutMethods() {
  static const auto* const s = new MethodSet{
      v1::PAYMENT_METHOD_TYPE_CARD,      v1::PAYMENT_METHOD_TYPE_CASHAPP,
      v1::PAYMENT_METHOD_TYPE_WECHAT,    v1::PAYMENT_METHOD_TYPE_KAKAO,
      v1::PAYMENT_METHOD_TYPE_PIX,       v1::PAYMENT_METHOD_TYPE_ALIPAY,
      v1::PAYMENT_METHOD_TYPE_UPI,       v1::PAYMENT_METHOD_TYPE_PAYPAL,
      v1::PAYMENT_METHOD_TYPE_GOOGLEPAY, v1::PAYMENT_METHOD_TYPE_APPLEPAY,
      v1::PAYMENT_METHOD_TYPE_QRIS,      v1::PAYMENT_METHOD_TYPE_GCASH};
  return *s;
}
const MethodSet& InstrumentMethods() {
  static const auto* const s = new MethodSet{
      v1::PAYMENT_METHOD_TYPE_ALIPAY,    v1::PAYMENT_METHOD_TYPE_CASHAPP,
      v1::PAYMENT_METHOD_TYPE_GCASH,     v1::PAYMENT_METHOD_TYPE_KAKAO,
      v1::PAYMENT_METHOD_TYPE_PROMPTPAY, v1::PAYMENT_METHOD_TYPE_QRIS,
      v1::PAYMENT_METHOD_TYPE_TNG,       v1::PAYMENT_METHOD_TYPE_WECHAT};
  return *s;
}
const MethodSet& PaymentMethods() {
  static const auto* const s = [] {
    auto* set = new MethodSet(InstrumentMethods());
    set->insert(v1::PAYMENT_METHOD_TYPE_CARD);
    return set;
  }();
  return *s;
}

void CheckCheckoutSession(const v1::CreateCheckoutSessionRequest& r,
                          Violations* out) {
  RequireCustomer(r, out);
  PriceNeedsProduct(r, out);
  if (r.ui_mode() == v1::UI_MODE_ELEMENTS && r.return_url().empty()) {
    out->push_back(
        {"return_url", "is required when ui_mode is UI_MODE_ELEMENTS"});
  }
  AllowedMethod(r.payment_method_type(), CheckoutMethods(),
                "payment_method_type", out);
  for (int i = 0; i < r.payment_method_type_black_list_size(); ++i) {
    AllowedMethod(r.payment_method_type_black_list(i), CheckoutMethods(),
                  absl::StrCat("payment_method_type_black_list[", i, "]"), out);
  }
  AllowedMethod(r.direct_payment_qr_code_payment_method_type(),
                MethodSet{v1::PAYMENT_METHOD_TYPE_CASHAPP},
                "direct_payment_qr_code_payment_method_type", out);
  ScheduledPhases(r.scheduled_phases(), out);
}

void CheckPayment(const v1::CreatePaymentRequest& r, Violations* out) {
  RequireCustomer(r, out);
  PriceNeedsProduct(r, out);
  // Either a dashboard price, or a direct amount with its currency.
  if (r.price_id().empty() && r.amount().empty()) {
    out->push_back({"amount", "is required when price_id is not set"});
  }
  if (!r.amount().empty() && r.currency().empty()) {
    out->push_back({"currency", "is required with amount"});
  }
  AllowedMethod(r.payment_method_type(), PaymentMethods(),
                "payment_method_type", out);
}

void CheckPaymentInstrument(const v1::CreatePaymentInstrumentRequest& r,
                            Violations* out) {
  RequireCustomer(r, out);
  AllowedMethod(r.payment_instrument_type(), InstrumentMethods(),
                "payment_instrument_type", out);
}

void CheckSubscription(const v1::CreateSubscriptionRequest& r,
                       Violations* out) {
  RequireCustomer(r, out);
  AllowedMethod(
      r.payment_method_type(),
      MethodSet{v1::PAYMENT_METHOD_TYPE_CARD, v1::PAYMENT_METHOD_TYPE_GCASH},
      "payment_method_type", out);
  ScheduledPhases(r.scheduled_phases(), out);
}

// Runs `check` on `request`, a message of type `Request`: the generated class
// (what the server passes), or any other message with the same descriptor
// (checked through a generated copy, so no rule is ever skipped).
template <typename Request>
void Run(void (*check)(const Request&, Violations*),
         const google::protobuf::Message& request, Violations* out) {
  if (const auto* typed = dynamic_cast<const Request*>(&request)) {
    check(*typed, out);
    return;
  }
  Request copy;
  copy.CopyFrom(request);
  check(copy, out);
}

}  // namespace

absl::Status ValidateCrossFieldRules(const google::protobuf::Message& request) {
  Violations violations;
  const google::protobuf::Descriptor* type = request.GetDescriptor();
  if (type == v1::CreateCheckoutSessionRequest::descriptor()) {
    Run(&CheckCheckoutSession, request, &violations);
  } else if (type == v1::CreatePaymentRequest::descriptor()) {
    Run(&CheckPayment, request, &violations);
  } else if (type == v1::CreatePaymentInstrumentRequest::descriptor()) {
    Run(&CheckPaymentInstrument, request, &violations);
  } else if (type == v1::CreateSubscriptionRequest::descriptor()) {
    Run(&CheckSubscription, request, &violations);
  }
  if (violations.empty()) return absl::OkStatus();
  return errors::InvalidArgumentWithViolations(violations);
}

absl::Status ValidateRequest(const RestCodec& codec, const RestMethod& method,
                             const google::protobuf::Message& request) {
  absl::Status status = codec.Validate(method, request);
  if (status.ok()) status = ValidateCrossFieldRules(request);
  return status;
}

}  // namespace clink_gateway::clink
