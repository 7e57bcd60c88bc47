#include "server/merchant_router.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/errors/error_details.h"

namespace clink_gateway::server {

void MerchantRouter::Add(std::string merchant, clink::ClinkApi* api) {
  merchants_[std::move(merchant)] = api;
}

void MerchantRouter::Call(const clink::RestMethod& method,
                          const google::protobuf::Message& request,
                          const clink::CallOptions& options,
                          google::protobuf::Message* response, Callback done) {
  const auto it = merchants_.find(options.merchant);
  if (it == merchants_.end()) {
    clink::CallResult result;
    result.status = errors::InvalidArgumentWithViolations(
        {{"x-clink-merchant",
          absl::StrCat("unknown merchant \"", options.merchant, "\"")}},
        "INVALID_METADATA");
    result.outcome = errors::Outcome::kNotSent;
    std::move(done)(std::move(result));
    return;
  }
  it->second->Call(method, request, options, response, std::move(done));
}

}  // namespace clink_gateway::server
