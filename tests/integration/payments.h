// Requests the integration tests share: one definition instead of a copy per
// test file.
#ifndef CLINK_GATEWAY_TESTS_INTEGRATION_PAYMENTS_H_
#define CLINK_GATEWAY_TESTS_INTEGRATION_PAYMENTS_H_

#include <string>

#include "clink/gateway/v1/payment.pb.h"
#include "tests/emulator/merchant_api.h"

namespace clink_gateway::testing {

// A card payment of `amount` USD with the emulator's seeded customer and card
// (which the emulator charges at once), and `merchant_reference_id` when not
// empty.
inline ::clink::gateway::v1::CreatePaymentRequest CardPayment(
    const std::string& amount = "19.99",
    const std::string& merchant_reference_id = "order-42") {
  ::clink::gateway::v1::CreatePaymentRequest r;
  r.set_customer_id(emulator::kSeedCustomerId);
  r.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
  r.set_payment_method_type(::clink::gateway::v1::PAYMENT_METHOD_TYPE_CARD);
  r.set_return_url("https://shop.example/return");
  r.set_amount(amount);
  r.set_currency("USD");
  if (!merchant_reference_id.empty()) {
    r.set_merchant_reference_id(merchant_reference_id);
  }
  return r;
}

}  // namespace clink_gateway::testing

#endif  // CLINK_GATEWAY_TESTS_INTEGRATION_PAYMENTS_H_
