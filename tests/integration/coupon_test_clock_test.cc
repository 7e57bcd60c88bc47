// CouponService and TestClockService end to end: gRPC over TLS to the
// gateway, the gateway to the Clink emulator, and back.
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "clink/gateway/v1/coupon.grpc.pb.h"
#include "clink/gateway/v1/test_clock.grpc.pb.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/emulator/merchant_api.h"
#include "tests/integration/gateway_fixture.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;
using google::protobuf::util::TimeUtil;

class CouponTestClockTest : public GatewayFixture {
 protected:
  void SetUp() override {
    GatewayFixture::SetUp();
    coupons_ = v1::CouponService::NewStub(channel_);
    clocks_ = v1::TestClockService::NewStub(channel_);
  }

  int RequestsTo(const std::string& method, const std::string& path) const {
    int n = 0;
    for (const auto& r : emulator_->requests()) {
      n += r.method == method && r.path == path;
    }
    return n;
  }

  static std::unique_ptr<grpc::ClientContext> Keyed(const std::string& key) {
    auto context = Context();
    context->AddMetadata("idempotency-key", key);
    return context;
  }

  std::unique_ptr<v1::CouponService::Stub> coupons_;
  std::unique_ptr<v1::TestClockService::Stub> clocks_;
};

TEST_F(CouponTestClockTest, CouponAndPromotionCodeLifecycle) {
  v1::CreateCouponRequest create;
  create.set_coupon_name("Loyalty");
  create.set_discount_type(v1::DISCOUNT_TYPE_FIXED_AMOUNT);
  (*create.mutable_fixed_amounts())["USD"] = "5.10";
  create.set_apply_type(v1::COUPON_APPLY_TYPE_NONE);
  create.set_duration_type(v1::COUPON_DURATION_FOREVER);
  create.add_promotion_codes()->set_code("LOYAL5");
  v1::CreateCouponResponse created;
  ASSERT_TRUE(
      coupons_->CreateCoupon(Keyed("coupon-1").get(), create, &created).ok());
  const std::string coupon_id = created.coupon().coupon_id();
  EXPECT_TRUE(absl::StartsWith(coupon_id, "coupon_")) << coupon_id;
  EXPECT_EQ(created.coupon().fixed_amounts().at("USD"), "5.10");

  // The same key again replays the first result: one coupon, one POST.
  v1::CreateCouponResponse replayed;
  ASSERT_TRUE(
      coupons_->CreateCoupon(Keyed("coupon-1").get(), create, &replayed).ok());
  EXPECT_EQ(replayed.coupon().coupon_id(), coupon_id);
  EXPECT_EQ(RequestsTo("POST", "/api/coupon"), 1);

  v1::ListCouponsRequest list;
  list.set_discount_type(v1::DISCOUNT_TYPE_FIXED_AMOUNT);
  v1::ListCouponsResponse listed;
  ASSERT_TRUE(coupons_->ListCoupons(Context().get(), list, &listed).ok());
  ASSERT_EQ(listed.coupons_size(), 1);
  EXPECT_EQ(listed.total(), 1);
  EXPECT_EQ(listed.coupons(0).terms(), "USD 5.10 off forever");

  v1::RenameCouponRequest rename;
  rename.set_coupon_id(coupon_id);
  rename.set_new_name("Loyalty 2026");
  v1::RenameCouponResponse renamed;
  const grpc::Status rename_status =
      coupons_->RenameCoupon(Keyed("rename-1").get(), rename, &renamed);
  ASSERT_TRUE(rename_status.ok()) << rename_status.error_message();
  v1::GetCouponRequest get;
  get.set_coupon_id(coupon_id);
  v1::GetCouponResponse got;
  ASSERT_TRUE(coupons_->GetCoupon(Context().get(), get, &got).ok());
  EXPECT_EQ(got.coupon().coupon_name(), "Loyalty 2026");
  EXPECT_EQ(got.coupon().amount(), "5.10");
  ASSERT_EQ(got.coupon().promotion_code_list_size(), 1);
  EXPECT_EQ(got.coupon().promotion_code_list(0).code(), "LOYAL5");

  v1::CreatePromotionCodeRequest create_code;
  create_code.set_coupon_id(coupon_id);
  create_code.set_code("LOYALJP");
  (*create_code.mutable_minimum_spend())["JPY"] = "1500";
  v1::CreatePromotionCodeResponse code;
  ASSERT_TRUE(
      coupons_->CreatePromotionCode(Keyed("code-1").get(), create_code, &code)
          .ok());
  const std::string code_id = code.promotion_code().promotion_code_id();
  EXPECT_EQ(code.promotion_code().coupon_id(), coupon_id);
  // The path carries the coupon id (Clink's POST /promotion-code/{id}).
  EXPECT_EQ(RequestsTo("POST", "/api/promotion-code/" + coupon_id), 1);

  v1::ListPromotionCodesRequest list_codes;
  list_codes.set_coupon_id(coupon_id);
  v1::ListPromotionCodesResponse codes;
  ASSERT_TRUE(
      coupons_->ListPromotionCodes(Context().get(), list_codes, &codes).ok());
  ASSERT_EQ(codes.promotion_codes_size(), 2);
  EXPECT_EQ(codes.promotion_codes(1).promotion_code_id(), code_id);

  v1::DeactivatePromotionCodeRequest deactivate;
  deactivate.set_promotion_code_id(code_id);
  v1::DeactivatePromotionCodeResponse deactivated;
  ASSERT_TRUE(coupons_
                  ->DeactivatePromotionCode(Keyed("off-1").get(), deactivate,
                                            &deactivated)
                  .ok());
  v1::GetPromotionCodeRequest get_code;
  get_code.set_promotion_code_id(code_id);
  v1::GetPromotionCodeResponse read;
  ASSERT_TRUE(
      coupons_->GetPromotionCode(Context().get(), get_code, &read).ok());
  EXPECT_EQ(read.promotion_code().status(), v1::PROMOTION_CODE_STATUS_INACTIVE);
  EXPECT_EQ(read.promotion_code().minimum_spend().at("JPY"), "1500");

  v1::ActivatePromotionCodeRequest activate;
  activate.set_promotion_code_id(code_id);
  v1::ActivatePromotionCodeResponse activated;
  ASSERT_TRUE(
      coupons_->ActivatePromotionCode(Keyed("on-1").get(), activate, &activated)
          .ok());
  ASSERT_TRUE(
      coupons_->GetPromotionCode(Context().get(), get_code, &read).ok());
  EXPECT_EQ(read.promotion_code().status(), v1::PROMOTION_CODE_STATUS_ACTIVE);
}

TEST_F(CouponTestClockTest,
       BadAmountIsInvalidArgumentNamingTheEntryAndNotSent) {
  v1::CreateCouponRequest create;
  create.set_coupon_name("Loyalty");
  create.set_discount_type(v1::DISCOUNT_TYPE_FIXED_AMOUNT);
  (*create.mutable_fixed_amounts())["JPY"] = "5.5";  // JPY has no minor unit.
  create.set_apply_type(v1::COUPON_APPLY_TYPE_NONE);
  create.set_duration_type(v1::COUPON_DURATION_ONCE);
  v1::CreateCouponResponse created;
  const grpc::Status status =
      coupons_->CreateCoupon(Context().get(), create, &created);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(BadRequestOf(status).field_violations_size(), 1);
  EXPECT_EQ(BadRequestOf(status).field_violations(0).field(),
            "fixed_amounts[\"JPY\"]");
  EXPECT_EQ(RequestsTo("POST", "/api/coupon"), 0);
}

TEST_F(CouponTestClockTest, AdvancingATestClockRenewsTheSubscription) {
  auto billing = v1::BillingService::NewStub(channel_);
  v1::CreateSubscriptionRequest subscribe;
  subscribe.set_customer_id(emulator::kSeedCustomerId);
  subscribe.set_product_id(emulator::kSeedProductBasic);
  subscribe.set_price_id(emulator::kSeedPriceMonthly);
  subscribe.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
  subscribe.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  subscribe.set_payment_currency("USD");
  subscribe.set_return_url("https://shop.example/return");
  v1::CreateSubscriptionResponse subscribed;
  const grpc::Status subscribe_status =
      billing->CreateSubscription(Context().get(), subscribe, &subscribed);
  ASSERT_TRUE(subscribe_status.ok()) << subscribe_status.error_message();
  v1::GetSubscriptionRequest get_subscription;
  get_subscription.set_subscription_id(subscribed.subscription_id());
  v1::GetSubscriptionResponse before;
  ASSERT_TRUE(
      billing->GetSubscription(Context().get(), get_subscription, &before)
          .ok());

  v1::CreateTestClockRequest create;
  create.set_name("Renewals");
  create.set_subscription_id(subscribed.subscription_id());
  create.set_metadata(R"({"suite":"renewals"})");
  v1::CreateTestClockResponse clock;
  ASSERT_TRUE(
      clocks_->CreateTestClock(Keyed("clock-1").get(), create, &clock).ok());
  const std::string clock_id = clock.test_clock().clock_id();
  EXPECT_EQ(clock.test_clock().status(), v1::TEST_CLOCK_STATUS_READY);
  EXPECT_EQ(clock.test_clock().metadata(), R"({"suite":"renewals"})");

  v1::ListTestClocksResponse listed;
  ASSERT_TRUE(clocks_
                  ->ListTestClocks(Context().get(), v1::ListTestClocksRequest(),
                                   &listed)
                  .ok());
  ASSERT_EQ(listed.test_clocks_size(), 1);
  EXPECT_EQ(listed.test_clocks(0).clock_id(), clock_id);

  // One day past the end of the first period: one renewal.
  v1::AdvanceTestClockRequest advance;
  advance.set_clock_id(clock_id);
  *advance.mutable_target_frozen_time() =
      before.subscription().current_period_end() +
      TimeUtil::HoursToDuration(24);
  v1::AdvanceTestClockResponse task;
  const grpc::Status advance_status =
      clocks_->AdvanceTestClock(Keyed("advance-1").get(), advance, &task);
  ASSERT_TRUE(advance_status.ok()) << advance_status.error_message();
  EXPECT_EQ(task.task().status(), v1::TEST_CLOCK_TASK_STATUS_SUCCEEDED);
  EXPECT_EQ(task.task().to_time(), advance.target_frozen_time());
  EXPECT_EQ(task.task().summary(), "1 renewal");

  v1::GetTestClockRequest get;
  get.set_clock_id(clock_id);
  v1::GetTestClockResponse advanced;
  ASSERT_TRUE(clocks_->GetTestClock(Context().get(), get, &advanced).ok());
  EXPECT_EQ(advanced.test_clock().frozen_time(), advance.target_frozen_time());
  v1::GetSubscriptionResponse after;
  ASSERT_TRUE(
      billing->GetSubscription(Context().get(), get_subscription, &after).ok());
  EXPECT_EQ(after.subscription().elapsed_cycles(), 1);
  EXPECT_EQ(after.subscription().current_period_start(),
            before.subscription().current_period_end());

  v1::CompleteTestClockRequest complete;
  complete.set_clock_id(clock_id);
  complete.set_reason("suite finished");
  v1::CompleteTestClockResponse completed;
  ASSERT_TRUE(
      clocks_
          ->CompleteTestClock(Keyed("complete-1").get(), complete, &completed)
          .ok());
  EXPECT_EQ(completed.test_clock().status(), v1::TEST_CLOCK_STATUS_COMPLETED);

  // A completed clock cannot advance: Clink's answer, not the gateway's.
  *advance.mutable_target_frozen_time() =
      advance.target_frozen_time() + TimeUtil::HoursToDuration(24);
  const grpc::Status refused =
      clocks_->AdvanceTestClock(Keyed("advance-2").get(), advance, &task);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
      << refused.error_message();
}

}  // namespace
}  // namespace clink_gateway::testing
