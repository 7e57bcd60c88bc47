#include "adapters/clink/validation.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "clink/gateway/v1/billing.pb.h"
#include "clink/gateway/v1/checkout.pb.h"
#include "clink/gateway/v1/payment.pb.h"
#include "common/errors/error_details.h"
#include "gmock/gmock.h"
#include "google/protobuf/dynamic_message.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

namespace v1 = ::clink::gateway::v1;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// The fields ValidateCrossFieldRules names (BadRequest), in order; empty when
// the request passes. Every refusal is INVALID_ARGUMENT, not_sent.
std::vector<std::string> Violations(const google::protobuf::Message& request) {
  const absl::Status status = ValidateCrossFieldRules(request);
  std::vector<std::string> fields;
  if (status.ok()) return fields;
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  const auto info = errors::GetErrorInfo(status);
  EXPECT_TRUE(info.has_value() && info->metadata().at("outcome") == "not_sent")
      << status;
  const auto bad = errors::GetBadRequest(status);
  if (!bad.has_value()) {
    ADD_FAILURE() << "no BadRequest: " << status;
    return fields;
  }
  for (const auto& v : bad->field_violations()) fields.push_back(v.field());
  return fields;
}

v1::CreatePaymentRequest Payment() {
  v1::CreatePaymentRequest r;
  r.set_customer_id("cus_1");
  r.set_amount("10.00");
  r.set_currency("USD");
  return r;
}

TEST(ValidationTest, APlainRequestPasses) {
  EXPECT_THAT(Violations(Payment()), IsEmpty());
  // RPCs without cross-field rules always pass.
  EXPECT_THAT(Violations(v1::GetOrderRequest()), IsEmpty());
}

TEST(ValidationTest, EveryCustomerRequestNeedsACustomerIdentifier) {
  v1::CreatePaymentRequest payment = Payment();
  payment.clear_customer_id();
  EXPECT_THAT(Violations(payment), ElementsAre("customer_id"));
  v1::CreatePaymentRequest by_email = payment;
  by_email.set_customer_email("a@shop.example");
  EXPECT_THAT(Violations(by_email), IsEmpty());
  v1::CreatePaymentRequest by_reference = payment;
  by_reference.set_reference_customer_id("ref-1");
  EXPECT_THAT(Violations(by_reference), IsEmpty());
  EXPECT_THAT(Violations(v1::CreateCheckoutSessionRequest()),
              ElementsAre("customer_id"));
  EXPECT_THAT(Violations(v1::CreatePaymentInstrumentRequest()),
              ElementsAre("customer_id"));
  EXPECT_THAT(Violations(v1::CreateSubscriptionRequest()),
              ElementsAre("customer_id"));
}

TEST(ValidationTest, PriceNeedsProduct) {
  v1::CreatePaymentRequest r = Payment();
  r.set_price_id("price_1");
  EXPECT_THAT(Violations(r), ElementsAre("product_id"));
  r.set_product_id("prd_1");
  EXPECT_THAT(Violations(r), IsEmpty());

  v1::CreateCheckoutSessionRequest session;
  session.set_customer_id("cus_1");
  session.set_price_id("price_1");
  EXPECT_THAT(Violations(session), ElementsAre("product_id"));
}

TEST(ValidationTest, APaymentNeedsAPriceOrAnAmountWithItsCurrency) {
  v1::CreatePaymentRequest r = Payment();
  r.clear_amount();
  r.clear_currency();
  EXPECT_THAT(Violations(r), ElementsAre("amount"));
  r.set_amount("1.00");
  EXPECT_THAT(Violations(r), ElementsAre("currency"));
  v1::CreatePaymentRequest priced = Payment();
  priced.clear_amount();
  priced.clear_currency();
  priced.set_price_id("price_1");
  priced.set_product_id("prd_1");
  EXPECT_THAT(Violations(priced), IsEmpty());
}

TEST(ValidationTest, ElementsModeNeedsAReturnUrl) {
  v1::CreateCheckoutSessionRequest r;
  r.set_customer_id("cus_1");
  r.set_ui_mode(v1::UI_MODE_ELEMENTS);
  EXPECT_THAT(Violations(r), ElementsAre("return_url"));
  r.set_return_url("https://shop.example/back");
  EXPECT_THAT(Violations(r), IsEmpty());
}

TEST(ValidationTest, EachEndpointTakesItsOwnPaymentMethods) {
  v1::CreatePaymentInstrumentRequest instrument;
  instrument.set_customer_id("cus_1");
  instrument.set_payment_instrument_type(v1::PAYMENT_METHOD_TYPE_CARD);
  EXPECT_THAT(Violations(instrument), ElementsAre("payment_instrument_type"));
  instrument.set_payment_instrument_type(v1::PAYMENT_METHOD_TYPE_GCASH);
  EXPECT_THAT(Violations(instrument), IsEmpty());

  v1::CreateSubscriptionRequest subscription;
  subscription.set_customer_id("cus_1");
  subscription.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_ALIPAY);
  EXPECT_THAT(Violations(subscription), ElementsAre("payment_method_type"));
  subscription.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_GCASH);
  EXPECT_THAT(Violations(subscription), IsEmpty());

  v1::CreatePaymentRequest payment = Payment();
  payment.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_PAYPAL);
  EXPECT_THAT(Violations(payment), ElementsAre("payment_method_type"));
  payment.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  EXPECT_THAT(Violations(payment), IsEmpty());

  v1::CreateCheckoutSessionRequest session;
  session.set_customer_id("cus_1");
  session.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_PAYPAL);
  session.add_payment_method_type_black_list(v1::PAYMENT_METHOD_TYPE_CARD);
  session.add_payment_method_type_black_list(v1::PAYMENT_METHOD_TYPE_TNG);
  session.set_direct_payment_qr_code_payment_method_type(
      v1::PAYMENT_METHOD_TYPE_WECHAT);
  EXPECT_THAT(
      Violations(session),
      UnorderedElementsAre("payment_method_type_black_list[1]",
                           "direct_payment_qr_code_payment_method_type"));
}

TEST(ValidationTest, ScheduledPhasesIncreaseAndBoundTheirMetadata) {
  v1::CreateSubscriptionRequest r;
  r.set_customer_id("cus_1");
  auto* first = r.add_scheduled_phases();
  first->set_sequence(1);
  first->set_effective_cycle(1);
  auto* second = r.add_scheduled_phases();
  second->set_sequence(2);
  second->set_effective_cycle(3);
  EXPECT_THAT(Violations(r), IsEmpty());

  second->set_sequence(1);
  second->set_effective_cycle(1);
  EXPECT_THAT(Violations(r),
              ElementsAre("scheduled_phases[1].sequence",
                          "scheduled_phases[1].effective_cycle"));

  second->set_sequence(2);
  second->set_effective_cycle(2);
  for (int i = 0; i < 11; ++i) {
    (*first->mutable_metadata())[absl::StrCat("k", i)] = "v";
  }
  EXPECT_THAT(Violations(r), ElementsAre("scheduled_phases[0].metadata"));
  first->mutable_metadata()->clear();
  (*first->mutable_metadata())[std::string(41, 'k')] = "v";
  EXPECT_THAT(Violations(r), ElementsAre("scheduled_phases[0].metadata"));
  first->mutable_metadata()->clear();
  (*first->mutable_metadata())["k"] = std::string(501, 'v');
  EXPECT_THAT(Violations(r), ElementsAre("scheduled_phases[0].metadata"));
  (*first->mutable_metadata())["k"] = std::string(500, 'v');
  EXPECT_THAT(Violations(r), IsEmpty());
}

TEST(ValidationTest, AMessageOfAnotherClassWithTheSameTypeIsStillChecked) {
  // E.g. a DynamicMessage: no rule is skipped because the C++ class differs.
  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<google::protobuf::Message> dynamic(
      factory.GetPrototype(v1::CreatePaymentRequest::descriptor())->New());
  v1::CreatePaymentRequest payment = Payment();
  payment.clear_customer_id();
  ASSERT_TRUE(dynamic->ParseFromString(payment.SerializeAsString()));
  EXPECT_THAT(Violations(*dynamic), ElementsAre("customer_id"));
}

}  // namespace
}  // namespace clink_gateway::clink
