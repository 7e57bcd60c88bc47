// GatewayServer's start-up checks of the contract it serves.
#include "server/gateway_server.h"

#include <string>

#include "absl/strings/substitute.h"
#include "clink/gateway/v1/rest_options.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/descriptor.pb.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

using ::testing::HasSubstr;

// A one-RPC service in its own pool (over the generated one, for
// rest_options.proto), with `method_options` as the RPC's options.
const google::protobuf::ServiceDescriptor* OneRpcService(
    google::protobuf::DescriptorPool& pool, const std::string& method_options) {
  const std::string text = absl::Substitute(
      R"pb(
        name: "broken/broken.proto"
        package: "broken"
        syntax: "proto3"
        dependency: "clink/gateway/v1/rest_options.proto"
        message_type {
          name: "Req"
          field { name: "id" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
        }
        message_type {
          name: "Resp"
          field {
            name: "name"
            number: 1
            label: LABEL_OPTIONAL
            type: TYPE_STRING
          }
        }
        service {
          name: "Things"
          method {
            name: "GetThing"
            input_type: ".broken.Req"
            output_type: ".broken.Resp" $0
          }
        }
      )pb",
      method_options);
  google::protobuf::FileDescriptorProto file;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &file));
  const google::protobuf::FileDescriptor* built = pool.BuildFile(file);
  EXPECT_NE(built, nullptr);
  return built == nullptr ? nullptr : built->service(0);
}

GatewayOptions Options() {
  GatewayOptions options;
  options.grpc_listen = "127.0.0.1:0";
  options.grpc_insecure = true;
  // Never read: the contract is checked before any key is loaded.
  options.merchants = {{"default", "/nonexistent/clink-key", ""}};
  return options;
}

TEST(GatewayServerStartTest, AnRpcWithoutARestMappingFailsTheStart) {
  ASSERT_NE(::clink::gateway::v1::RestRule::descriptor(), nullptr);
  struct Case {
    const char* name;
    std::string method_options;
    const char* want;
  };
  const Case cases[] = {
      {"no_rule", "", "missing (clink.gateway.v1.rest) option"},
      {"no_http_method",
       R"(options { [clink.gateway.v1.rest] { path: "/things/{id}" } })",
       "HTTP method not set"},
      {"path_names_no_field",
       R"(options { [clink.gateway.v1.rest] { method: HTTP_METHOD_GET path: "/things/{nope}" } })",
       "nope"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    google::protobuf::DescriptorPool pool(
        google::protobuf::DescriptorPool::generated_pool());
    const google::protobuf::ServiceDescriptor* service =
        OneRpcService(pool, c.method_options);
    ASSERT_NE(service, nullptr);
    GatewayOptions options = Options();
    options.services_for_test = {service};
    const auto gateway = GatewayServer::BuildAndStart(std::move(options));
    ASSERT_FALSE(gateway.ok());
    EXPECT_EQ(gateway.status().code(), absl::StatusCode::kFailedPrecondition)
        << gateway.status();
    EXPECT_THAT(std::string(gateway.status().message()),
                HasSubstr("REST mapping is invalid"));
    EXPECT_THAT(std::string(gateway.status().message()),
                HasSubstr("broken.Things.GetThing"));
    EXPECT_THAT(std::string(gateway.status().message()), HasSubstr(c.want));
  }
}

}  // namespace
}  // namespace clink_gateway::server
