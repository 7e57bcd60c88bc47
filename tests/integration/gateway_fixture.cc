#include "tests/integration/gateway_fixture.h"

#include <stdlib.h>

#include <atomic>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/generic/generic_stub.h"
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
  // Plaintext; tests of mutual TLS set the TLS files (and clear this) in
  // Configure().
  options.grpc_insecure = true;
  options.clink_base_url = emulator_->base_url();
  // The emulator listens on loopback, which the egress policy denies.
  options.egress_allow_cidrs = "127.0.0.0/8";
  // The key as the kubelet mounts a Secret; tests may rotate it.
  key_volume_ = std::make_unique<credentials::testing::SecretVolume>(
      absl::StrCat(temp_dir_, "/clink-key"));
  key_volume_->Write({{"api-key", kTestApiKey}});
  options.merchants = {{"default", key_volume_->dir(), ""}};
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

int GatewayFixture::HealthStatus(const std::string& service) const {
  grpc::GenericStub stub(channel_);
  // grpc.health.v1.HealthCheckRequest{service}: field 1, length-delimited.
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes = absl::StrCat("\x0a", std::string(1, static_cast<char>(
                                                            service.size())),
                                 service);
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return -1;
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return -1;
  std::string bytes;
  for (const auto& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // HealthCheckResponse{status}: field 1, varint; absent means UNKNOWN (0).
  return bytes.size() == 2 && bytes[0] == '\x08' ? bytes[1] : 0;
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
