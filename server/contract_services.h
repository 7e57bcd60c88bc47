// The gRPC services of the contract, registered from the descriptors: no C++
// per RPC. At startup every method of every contract service
// (clink::GatewayServiceNames(): each service of package clink.gateway.v1
// linked into the binary) gets a table entry (ServedMethod: its REST mapping,
// the generated prototypes of its messages, its request size cap), and one
// grpc::Service per contract service registers every method as a raw callback
// onto RpcForwarder::Serve. A path no service declares is answered
// UNIMPLEMENTED by gRPC itself.
//
// Why named services rather than one grpc::CallbackGenericService: gRPC lists
// (for reflection, grpcurl, `clink_cli --list` against a live server) only the
// services registered by name, and a registered method skips the generic
// dispatch. The table is the same either way.
#ifndef CLINK_GATEWAY_SERVER_CONTRACT_SERVICES_H_
#define CLINK_GATEWAY_SERVER_CONTRACT_SERVICES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "adapters/clink/rest_codec.h"
#include "google/protobuf/descriptor.h"
#include "grpcpp/impl/service_type.h"
#include "server/rpc_forwarder.h"

namespace clink_gateway::server {

class ContractServices {
 public:
  // The services of the contract as linked into this binary
  // (clink::GatewayServiceNames()). FAILED_PRECONDITION when there is none.
  static absl::StatusOr<std::vector<const google::protobuf::ServiceDescriptor*>>
  LinkedServices();

  // Builds the table for every method of `services`, each served through
  // `forwarder`, skipping the services the gateway serves itself
  // (clink::IsGatewayServedService: EventService, registered on its own). FAILED_PRECONDITION, naming the RPC, when a method cannot be
  // served: `codec` has no mapping for it (compile `codec` from the same
  // services: RestCodec::Create already refuses a missing or invalid RestRule),
  // it streams, its messages are not generated into this binary (no
  // MessageFactory::generated_factory() prototype), or its
  // RestRule.max_request_bytes exceeds kMaxReceiveMessageBytes.
  // `codec` and `forwarder` must outlive the result.
  static absl::StatusOr<std::unique_ptr<ContractServices>> Create(
      const clink::RestCodec& codec,
      const std::vector<const google::protobuf::ServiceDescriptor*>& services,
      RpcForwarder& forwarder);

  ~ContractServices();
  ContractServices(const ContractServices&) = delete;
  ContractServices& operator=(const ContractServices&) = delete;

  // The entry for a gRPC method path ("/clink.gateway.v1.PaymentService/
  // CreatePayment"), or nullptr.
  const ServedMethod* Find(absl::string_view path) const;
  // Every entry, in declaration order.
  std::vector<const ServedMethod*> methods() const;
  // One grpc::Service per contract service, for ServerBuilder::RegisterService
  // (owned here; they must outlive the server).
  std::vector<grpc::Service*> grpc_services() const;

 private:
  class DescriptorService;
  ContractServices() = default;

  std::vector<std::unique_ptr<ServedMethod>> methods_;
  absl::flat_hash_map<std::string, const ServedMethod*> by_path_;
  std::vector<std::unique_ptr<grpc::Service>> services_;
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_CONTRACT_SERVICES_H_
