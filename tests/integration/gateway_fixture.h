// An in-process gateway in front of an in-process Clink emulator speaking TLS
// with a throwaway CA, reached through generated gRPC stubs on 127.0.0.1: what
// integration tests run against.
#ifndef CLINK_GATEWAY_TESTS_INTEGRATION_GATEWAY_FIXTURE_H_
#define CLINK_GATEWAY_TESTS_INTEGRATION_GATEWAY_FIXTURE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/time/time.h"
#include "adapters/credentials/testing/secret_volume.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "clink/gateway/v1/checkout.grpc.pb.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "google/rpc/error_details.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/gateway_server.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/test_ca.h"

namespace clink_gateway::testing {

inline constexpr char kTestApiKey[] = "sk_test_integration_0123456789abcdef";

class GatewayFixture : public ::testing::Test {
 protected:
  // Starts the emulator (TLS) and the gateway; the pool size is kept small so
  // tests can see it.
  void SetUp() override;
  void TearDown() override;

  // Lets a test change the gateway's options before it starts.
  virtual void Configure(server::GatewayOptions& options) {}
  // Lets a test change the emulator's options before it starts.
  virtual void ConfigureEmulator(emulator::ClinkEmulator::Options& options) {}

  // A context with a deadline `timeout` from now.
  static std::unique_ptr<grpc::ClientContext> Context(
      absl::Duration timeout = absl::Seconds(10));

  // The google.rpc.ErrorInfo in a failed status's details, if any.
  static google::rpc::ErrorInfo ErrorInfoOf(const grpc::Status& status);
  static bool HasRetryInfo(const grpc::Status& status);
  static google::rpc::BadRequest BadRequestOf(const grpc::Status& status);

  // grpc.health.v1 Check of `service` on the gateway: 1 (SERVING),
  // 2 (NOT_SERVING), or -1 when the call fails.
  int HealthStatus(const std::string& service = "") const;

  static constexpr int kPoolSize = 4;

  std::string temp_dir_;
  // The "default" merchant's key directory (a Secret volume holding
  // kTestApiKey), created before Configure().
  std::unique_ptr<credentials::testing::SecretVolume> key_volume_;
  emulator::TestCaFiles ca_;
  std::unique_ptr<emulator::ClinkEmulator> emulator_;
  std::unique_ptr<server::GatewayServer> gateway_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::clink::gateway::v1::CheckoutService::Stub> checkout_;
  std::unique_ptr<::clink::gateway::v1::PaymentService::Stub> payment_;
  std::unique_ptr<::clink::gateway::v1::BillingService::Stub> billing_;
  // Shifts the emulator's clock, in ms (to make the gateway's timestamps look
  // stale).
  std::atomic<int64_t> emulator_clock_offset_ms_{0};
};

}  // namespace clink_gateway::testing

#endif  // CLINK_GATEWAY_TESTS_INTEGRATION_GATEWAY_FIXTURE_H_
