// Cross-field rules the proto annotations cannot express. Field-local rules
// (required, decimal syntax, positive, max_length) are declared in the protos
// and checked by RestCodec::Validate; this is the only per-RPC validation code.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_VALIDATION_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_VALIDATION_H_

#include "absl/status/status.h"
#include "adapters/clink/rest_codec.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"

namespace clink_gateway::clink {

// INVALID_ARGUMENT (with a google.rpc.BadRequest naming each field) when
// `request` (an RPC's request message) breaks a rule; OK for RPCs without
// cross-field rules. The rules, per Clink's docs:
// - Checkout session, payment, payment instrument, subscription: at least one
//   of customer_id, customer_email, reference_customer_id (else Clink answers
//   CUSTOMER_NOT_FOUND).
// - Checkout session, payment: price_id needs product_id.
// - Payment: amount is required without price_id; amount needs currency.
// - Checkout session: return_url is required when ui_mode is UI_MODE_ELEMENTS;
//   direct_payment_qr_code_payment_method_type only takes CASHAPP;
//   scheduled_phases need price_id (subscription sessions only).
// - The payment method types each endpoint accepts (no CARD for payment
//   instruments; only CARD or GCASH for subscriptions).
// - Scheduled phases: sequence and effective_cycle strictly increasing;
//   metadata of at most 10 keys, keys up to 40 characters, values up to 500.
absl::Status ValidateCrossFieldRules(const google::protobuf::Message& request);

// Everything the gateway checks before a request may go to Clink: the field
// rules declared on `method`'s messages (RestCodec::Validate), then the
// cross-field rules above.
absl::Status ValidateRequest(const RestCodec& codec, const RestMethod& method,
                             const google::protobuf::Message& request);

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_VALIDATION_H_
