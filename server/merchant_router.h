// Sends each call to its merchant account's ClinkApi (one ClinkClient, with
// its own keys and connection pool, per merchant).
#ifndef CLINK_GATEWAY_SERVER_MERCHANT_ROUTER_H_
#define CLINK_GATEWAY_SERVER_MERCHANT_ROUTER_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "adapters/clink/clink_api.h"

namespace clink_gateway::server {

class MerchantRouter final : public clink::ClinkApi {
 public:
  // Registers `api` (which must outlive the router) for `merchant`. Not
  // thread-safe: add every merchant before the first Call.
  void Add(std::string merchant, clink::ClinkApi* api);

  // Forwards to CallOptions::merchant's ClinkApi. A merchant nobody added
  // (the forwarder resolves and checks names first, so a wiring bug) fails
  // inline with INVALID_ARGUMENT naming `x-clink-merchant`; nothing is sent.
  void Call(const clink::RestMethod& method,
            const google::protobuf::Message& request,
            const clink::CallOptions& options,
            google::protobuf::Message* response, Callback done) override;

 private:
  absl::flat_hash_map<std::string, clink::ClinkApi*> merchants_;
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_MERCHANT_ROUTER_H_
