#include "tests/integration/gateway_fixture.h"

#include <stdlib.h>

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/rpc/status.pb.h"

namespace clink_gateway::testing {

void GatewayFixture::SetUp() {
  std::string pattern = absl::StrCat(::testing::TempDir(), "/gatewayXXXXXX");
  ASSERT_NE(mkdtemp(pattern.data()), nullptr);
  temp_dir_ = pattern;
  auto ca = emulator::GenerateTestCa(temp_dir_);
  ASSERT_TRUE(ca.ok()) << ca.status();
  ca_ = *std::move(ca);

  emulator::ClinkEmulator::Options emulator_options;
  emulator_options.api_keys = {kTestApiKey};
  emulator_options.tls_cert_pem_path = ca_.server_pem;
  emulator_options.clock = [this] {
    return absl::Now() + absl::Milliseconds(emulator_clock_offset_ms_.load());
  };
  auto emulator = emulator::ClinkEmulator::Start(emulator_options);
  ASSERT_TRUE(emulator.ok()) << emulator.status();
  emulator_ = *std::move(emulator);

  server::GatewayOptions options;
  options.grpc_listen = "127.0.0.1:0";
  options.clink_base_url = emulator_->base_url();
  // The emulator listens on loopback, which the egress policy denies.
  options.egress_allow_cidrs = "127.0.0.0/8";
  options.api_key = Secret(kTestApiKey);
  options.ca_bundle = ca_.ca_cert_pem;
  options.max_upstream_connections = kPoolSize;
  Configure(options);
  auto gateway = server::GatewayServer::BuildAndStart(std::move(options));
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  gateway_ = *std::move(gateway);

  channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", gateway_->port()),
                                 grpc::InsecureChannelCredentials());
  checkout_ = ::clink::gateway::v1::CheckoutService::NewStub(channel_);
  payment_ = ::clink::gateway::v1::PaymentService::NewStub(channel_);
  billing_ = ::clink::gateway::v1::BillingService::NewStub(channel_);
}

void GatewayFixture::TearDown() {
  if (gateway_ != nullptr) gateway_->Shutdown(absl::Seconds(5));
  gateway_.reset();
  emulator_.reset();
}

std::unique_ptr<grpc::ClientContext> GatewayFixture::Context(
    absl::Duration timeout) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

namespace {

template <typename T>
T DetailOf(const grpc::Status& status, absl::string_view type_url,
           bool* found) {
  T out;
  google::rpc::Status rich;
  *found = false;
  if (!rich.ParseFromString(status.error_details())) return out;
  for (const auto& any : rich.details()) {
    if (any.type_url() == type_url && out.ParseFromString(any.value()))
      *found = true;
  }
  return out;
}

}  // namespace

google::rpc::ErrorInfo GatewayFixture::ErrorInfoOf(const grpc::Status& status) {
  bool found;
  return DetailOf<google::rpc::ErrorInfo>(
      status, "type.googleapis.com/google.rpc.ErrorInfo", &found);
}

bool GatewayFixture::HasRetryInfo(const grpc::Status& status) {
  bool found;
  DetailOf<google::rpc::RetryInfo>(
      status, "type.googleapis.com/google.rpc.RetryInfo", &found);
  return found;
}

google::rpc::BadRequest GatewayFixture::BadRequestOf(
    const grpc::Status& status) {
  bool found;
  return DetailOf<google::rpc::BadRequest>(
      status, "type.googleapis.com/google.rpc.BadRequest", &found);
}

}  // namespace clink_gateway::testing
