#include "server/contract_services.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "clink/gateway/v1/rest_options.pb.h"
#include "google/protobuf/message.h"
#include "grpcpp/impl/codegen/server_callback_handlers.h"
#include "grpcpp/impl/rpc_method.h"
#include "grpcpp/impl/rpc_service_method.h"
#include "grpcpp/support/byte_buffer.h"

namespace clink_gateway::server {
namespace {

using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;

using RawHandler =
    grpc::internal::CallbackUnaryHandler<grpc::ByteBuffer, grpc::ByteBuffer>;

absl::Status CannotServe(const MethodDescriptor& method,
                         absl::string_view why) {
  return absl::FailedPreconditionError(
      absl::StrCat("RPC ", method.full_name(), " cannot be served: ", why));
}

}  // namespace

// One contract service: each method a raw (ByteBuffer) callback onto
// RpcForwarder::Serve with its table entry. grpc::Service's registration API
// is what generated services use; here it is driven by the descriptor.
class ContractServices::DescriptorService final : public grpc::Service {
 public:
  DescriptorService(const std::vector<const ServedMethod*>& methods,
                    RpcForwarder& forwarder) {
    for (size_t i = 0; i < methods.size(); ++i) {
      const ServedMethod* method = methods[i];
      auto handler = [method, &forwarder] {
        return new RawHandler(
            [method, &forwarder](grpc::CallbackServerContext* context,
                                 const grpc::ByteBuffer* request,
                                 grpc::ByteBuffer* response) {
              return forwarder.Serve(context, *method, request, response);
            });
      };
      // The path string lives in the table entry, which outlives the service.
      AddMethod(new grpc::internal::RpcServiceMethod(
          method->path.c_str(), grpc::internal::RpcMethod::NORMAL_RPC,
          handler()));
      MarkMethodRawCallback(static_cast<int>(i), handler());
    }
  }
};

ContractServices::~ContractServices() = default;

absl::StatusOr<std::vector<const ServiceDescriptor*>>
ContractServices::LinkedServices() {
  std::vector<const ServiceDescriptor*> services;
  for (const std::string& name : clink::GatewayServiceNames()) {
    services.push_back(
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name));
  }
  if (services.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("no service of package ", clink::kContractPackage,
                     " is linked into this binary"));
  }
  return services;
}

absl::StatusOr<std::unique_ptr<ContractServices>> ContractServices::Create(
    const clink::RestCodec& codec,
    const std::vector<const ServiceDescriptor*>& services,
    RpcForwarder& forwarder) {
  std::unique_ptr<ContractServices> table(new ContractServices());
  google::protobuf::MessageFactory* factory =
      google::protobuf::MessageFactory::generated_factory();
  for (const ServiceDescriptor* service : services) {
    // Served by the gateway itself (EventService: server/event_service.h),
    // registered beside these; it has no REST mapping.
    if (clink::IsGatewayServedService(service->full_name())) continue;
    std::vector<const ServedMethod*> served;
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor& method = *service->method(i);
      auto entry = std::make_unique<ServedMethod>();
      entry->path = absl::StrCat("/", service->full_name(), "/", method.name());
      entry->rest = codec.Find(method);
      if (entry->rest == nullptr) {
        return CannotServe(method, "it has no compiled REST mapping");
      }
      if (method.client_streaming() || method.server_streaming()) {
        return CannotServe(method, "streaming RPCs are not supported");
      }
      entry->request_prototype = factory->GetPrototype(method.input_type());
      entry->response_prototype = factory->GetPrototype(method.output_type());
      if (entry->request_prototype == nullptr ||
          entry->response_prototype == nullptr) {
        return CannotServe(method,
                           "its messages are not generated into this binary");
      }
      const uint32_t cap = method.options()
                               .GetExtension(::clink::gateway::v1::rest)
                               .max_request_bytes();
      if (cap > kMaxReceiveMessageBytes) {
        return CannotServe(
            method, absl::StrCat("RestRule.max_request_bytes ", cap,
                                 " exceeds the server's receive limit of ",
                                 kMaxReceiveMessageBytes, " bytes"));
      }
      if (cap > 0) entry->max_request_bytes = cap;
      if (!table->by_path_.emplace(entry->path, entry.get()).second) {
        return CannotServe(method, "its path is served twice");
      }
      served.push_back(entry.get());
      table->methods_.push_back(std::move(entry));
    }
    if (!served.empty()) {
      table->services_.push_back(
          std::make_unique<DescriptorService>(served, forwarder));
    }
  }
  return table;
}

const ServedMethod* ContractServices::Find(absl::string_view path) const {
  const auto it = by_path_.find(path);
  return it == by_path_.end() ? nullptr : it->second;
}

std::vector<const ServedMethod*> ContractServices::methods() const {
  std::vector<const ServedMethod*> out;
  out.reserve(methods_.size());
  for (const auto& m : methods_) out.push_back(m.get());
  return out;
}

std::vector<grpc::Service*> ContractServices::grpc_services() const {
  std::vector<grpc::Service*> out;
  out.reserve(services_.size());
  for (const auto& s : services_) out.push_back(s.get());
  return out;
}

}  // namespace clink_gateway::server
