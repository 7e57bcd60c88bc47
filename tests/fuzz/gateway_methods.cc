#include "tests/fuzz/gateway_methods.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "clink/gateway/v1/billing.pb.h"
#include "clink/gateway/v1/checkout.pb.h"
#include "clink/gateway/v1/payment.pb.h"

namespace clink_gateway::fuzz {

const clink::RestCodec& GatewayCodec() {
  static const clink::RestCodec* const codec = [] {
    // Referenced so the generated descriptors are linked in (and registered in
    // the generated pool CreateForServices searches).
    (void)::clink::gateway::v1::CreateCheckoutSessionRequest::descriptor();
    (void)::clink::gateway::v1::CreatePaymentRequest::descriptor();
    (void)::clink::gateway::v1::CreateSubscriptionRequest::descriptor();
    auto created =
        clink::RestCodec::CreateForServices(clink::GatewayServiceNames());
    if (!created.ok()) {
      std::fprintf(stderr, "RestCodec: %s\n",
                   created.status().ToString().c_str());
      std::abort();
    }
    return created->release();
  }();
  return *codec;
}

const std::vector<const clink::RestMethod*>& GatewayMethods() {
  static const auto* const methods = [] {
    auto* sorted =
        new std::vector<const clink::RestMethod*>(GatewayCodec().methods());
    std::sort(sorted->begin(), sorted->end(),
              [](const clink::RestMethod* a, const clink::RestMethod* b) {
                return a->method->full_name() < b->method->full_name();
              });
    if (sorted->empty()) std::abort();
    return sorted;
  }();
  return *methods;
}

const clink::RestMethod& MethodForSelector(uint8_t selector) {
  const auto& methods = GatewayMethods();
  return *methods[selector % methods.size()];
}

}  // namespace clink_gateway::fuzz
