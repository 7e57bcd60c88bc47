// The whole contract through the real gateway and the emulator: every RPC of
// every contract service is served (none answers UNIMPLEMENTED), and gRPC
// reflection lists every service. No RPC or service is named or counted here:
// both come from the descriptors, as the server's own registration does.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "adapters/clink/rest_codec.h"
#include "common/sync.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/unknown_field_set.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/client_callback.h"
#include "gtest/gtest.h"
#include "tests/integration/gateway_fixture.h"

namespace clink_gateway::testing {
namespace {

constexpr absl::Duration kWait = absl::Seconds(20);

class ContractTest : public GatewayFixture {};

TEST_F(ContractTest, EveryRpcOfTheContractIsServed) {
  grpc::GenericStub stub(channel_);
  const std::vector<std::string>& services = clink::GatewayServiceNames();
  ASSERT_FALSE(services.empty());
  int rpcs = 0;
  for (const std::string& name : services) {
    const google::protobuf::ServiceDescriptor* service =
        google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
            name);
    ASSERT_NE(service, nullptr) << name;
    for (int i = 0; i < service->method_count(); ++i) {
      const std::string path =
          absl::StrCat("/", name, "/", service->method(i)->name());
      SCOPED_TRACE(path);
      ++rpcs;
      // An empty request: whatever the answer (most refuse it as invalid,
      // some reach the emulator), it is never "no such method".
      grpc::ByteBuffer request;
      grpc::Slice empty("");
      request = grpc::ByteBuffer(&empty, 1);
      grpc::ByteBuffer response;
      std::unique_ptr<grpc::ClientContext> context = Context(kWait);
      Notification done;
      grpc::Status status;
      stub.UnaryCall(context.get(), path, grpc::StubOptions(), &request,
                     &response, [&](grpc::Status s) {
                       status = std::move(s);
                       done.Notify();
                     });
      ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
      EXPECT_NE(status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
          << status.error_message();
    }
  }
  EXPECT_GT(rpcs, 0);
}

// One grpc.reflection.v1alpha list_services exchange, as grpcurl makes it.
class ListServices final
    : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit ListServices(grpc::GenericStub& stub) {
    context_.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    // ServerReflectionRequest{list_services = ""}: field 7, length 0.
    grpc::Slice slice(std::string("\x3a\x00", 2));
    request_ = grpc::ByteBuffer(&slice, 1);
    stub.PrepareBidiStreamingCall(&context_,
                                  "/grpc.reflection.v1alpha.ServerReflection/"
                                  "ServerReflectionInfo",
                                  grpc::StubOptions(), this);
    StartWrite(&request_);
    StartRead(&response_);
    StartCall();
  }
  void OnWriteDone(bool ok) override {
    if (ok) StartWritesDone();
  }
  void OnReadDone(bool ok) override {
    if (ok) {
      std::vector<grpc::Slice> slices;
      if (response_.Dump(&slices).ok()) {
        for (const grpc::Slice& s : slices) {
          bytes_.append(reinterpret_cast<const char*>(s.begin()), s.size());
        }
      }
    }
  }
  void OnDone(const grpc::Status& status) override {
    status_ = status;
    done_.Notify();
  }

  // The listed service names, once the exchange is over.
  std::vector<std::string> Names() {
    EXPECT_TRUE(done_.WaitForNotificationWithTimeout(kWait));
    EXPECT_TRUE(status_.ok()) << status_.error_message();
    // ServerReflectionResponse.list_services_response (6) ->
    // ListServiceResponse.service (1) -> ServiceResponse.name (1).
    std::vector<std::string> names;
    google::protobuf::UnknownFieldSet response;
    if (!response.ParseFromString(bytes_)) return names;
    for (int i = 0; i < response.field_count(); ++i) {
      const auto& f = response.field(i);
      if (f.number() != 6 ||
          f.type() != google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
        continue;
      }
      google::protobuf::UnknownFieldSet list;
      if (!list.ParseFromString(f.length_delimited())) continue;
      for (int j = 0; j < list.field_count(); ++j) {
        google::protobuf::UnknownFieldSet service;
        if (list.field(j).number() != 1 ||
            !service.ParseFromString(list.field(j).length_delimited())) {
          continue;
        }
        for (int k = 0; k < service.field_count(); ++k) {
          if (service.field(k).number() == 1) {
            names.push_back(service.field(k).length_delimited());
          }
        }
      }
    }
    return names;
  }

 private:
  grpc::ClientContext context_;
  grpc::ByteBuffer request_;
  grpc::ByteBuffer response_;
  std::string bytes_;
  grpc::Status status_;
  Notification done_;
};

TEST_F(ContractTest, ReflectionListsEveryServiceOfTheContract) {
  grpc::GenericStub stub(channel_);
  ListServices call(stub);
  const std::vector<std::string> listed = call.Names();
  for (const std::string& name : clink::GatewayServiceNames()) {
    EXPECT_NE(std::find(listed.begin(), listed.end(), name), listed.end())
        << name << " is not listed";
  }
  EXPECT_NE(std::find(listed.begin(), listed.end(), "grpc.health.v1.Health"),
            listed.end());
}

}  // namespace
}  // namespace clink_gateway::testing
