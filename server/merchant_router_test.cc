#include "server/merchant_router.h"

#include <string>
#include <vector>

#include "adapters/clink/rest_codec.h"
#include "clink/gateway/v1/payment.pb.h"
#include "common/errors/error_details.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;

// Records the merchant of each call it gets and answers OK inline.
class RecordingApi final : public clink::ClinkApi {
 public:
  explicit RecordingApi(std::vector<std::string>* log, std::string name)
      : log_(log), name_(std::move(name)) {}
  void Call(const clink::RestMethod& method,
            const google::protobuf::Message& request,
            const clink::CallOptions& options,
            google::protobuf::Message* response, Callback done) override {
    log_->push_back(name_ + ":" + options.merchant + ":" + method.method->name());
    clink::CallResult result;
    result.outcome = errors::Outcome::kCommitted;
    std::move(done)(std::move(result));
  }

 private:
  std::vector<std::string>* log_;
  std::string name_;
};

const clink::RestMethod& CreatePayment() {
  static const clink::RestCodec* const codec =
      clink::RestCodec::CreateForServices(clink::GatewayServiceNames())
          ->release();
  return *codec->Find(*v1::CreatePaymentRequest::descriptor()
                           ->file()
                           ->FindServiceByName("PaymentService")
                           ->FindMethodByName("CreatePayment"));
}

clink::CallResult Route(MerchantRouter& router, const std::string& merchant) {
  clink::CallOptions options;
  options.merchant = merchant;
  v1::CreatePaymentRequest request;
  v1::CreatePaymentResponse response;
  clink::CallResult got;
  bool called = false;
  router.Call(CreatePayment(), request, options, &response,
              [&](clink::CallResult r) {
                got = std::move(r);
                called = true;
              });
  EXPECT_TRUE(called) << "done must run (inline, for these fakes)";
  return got;
}

TEST(MerchantRouterTest, SendsEachCallToItsMerchantsApi) {
  std::vector<std::string> log;
  RecordingApi acme(&log, "acme_api"), globex(&log, "globex_api");
  MerchantRouter router;
  router.Add("acme", &acme);
  router.Add("globex", &globex);
  EXPECT_TRUE(Route(router, "globex").status.ok());
  EXPECT_TRUE(Route(router, "acme").status.ok());
  EXPECT_EQ(log, (std::vector<std::string>{"globex_api:globex:CreatePayment",
                                           "acme_api:acme:CreatePayment"}));
}

TEST(MerchantRouterTest, AnUnknownMerchantIsRefusedInlineAndNothingIsSent) {
  std::vector<std::string> log;
  RecordingApi acme(&log, "acme_api");
  MerchantRouter router;
  router.Add("acme", &acme);
  const clink::CallResult result = Route(router, "initech");
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(result.status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.outcome, errors::Outcome::kNotSent);
  const auto bad = errors::GetBadRequest(result.status);
  ASSERT_TRUE(bad.has_value());
  ASSERT_EQ(bad->field_violations_size(), 1);
  EXPECT_EQ(bad->field_violations(0).field(), "x-clink-merchant");
  const auto info = errors::GetErrorInfo(result.status);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->reason(), "INVALID_METADATA");
  EXPECT_EQ(info->metadata().at("outcome"), "not_sent");
  // A merchant added later (before any call, as the wiring does) is found.
  RecordingApi initech(&log, "initech_api");
  router.Add("initech", &initech);
  EXPECT_TRUE(Route(router, "initech").status.ok());
}

}  // namespace
}  // namespace clink_gateway::server
