// A gRPC server (in process, on 127.0.0.1:0) in front of a fake Clink: every
// write RPC leaves one audit line naming its caller, with the key's digest
// (never the key), amount, currency, Clink ids, code and outcome; reads leave
// none.
#include <stdio.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/idempotency/idempotency_store.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "common/clock.h"
#include "grpcpp/grpcpp.h"
#include "common/testing/json_lines.h"
#include "gtest/gtest.h"
#include "server/audit_log.h"
#include "server/contract_services.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;

// A payment the forwarder's validation accepts (amount and currency are set by
// each test).
v1::CreatePaymentRequest ValidPayment() {
  v1::CreatePaymentRequest r;
  r.set_customer_id("cus_1");
  r.set_payment_instrument_id("pi_1");
  r.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
  r.set_return_url("https://shop.example/return");
  return r;
}

// Answers every call from a thread of its own, as the transport does.
class FakeClinkApi final : public clink::ClinkApi {
 public:
  void Call(const clink::RestMethod& method,
            const google::protobuf::Message& request,
            const clink::CallOptions& options,
            google::protobuf::Message* response, Callback done) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    absl::Status status = next_status_;
    workers_.emplace_back([response, status, done = std::move(done)]() mutable {
      clink::CallResult result;
      result.status = status;
      result.outcome = status.ok() ? errors::Outcome::kCommitted
                                   : errors::Outcome::kUnknown;
      if (status.ok()) {
        if (auto* payment =
                dynamic_cast<v1::CreatePaymentResponse*>(response)) {
          payment->set_order_id("ord_42");
        }
      }
      std::move(done)(std::move(result));
    });
  }
  void SetNextStatus(absl::Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    next_status_ = std::move(status);
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }
  // After this, every call's Complete (audit line included) has returned.
  void JoinAll() {
    std::vector<std::thread> workers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      workers.swap(workers_);
    }
    for (std::thread& t : workers) t.join();
  }
  ~FakeClinkApi() override { JoinAll(); }

 private:
  std::mutex mu_;
  absl::Status next_status_;
  int calls_ = 0;
  std::vector<std::thread> workers_;
};

TEST(AuditRpcTest, EveryWriteRpcLeavesOneLineNamingTheCallerAndReadsNone) {
  auto codec =
      clink::RestCodec::CreateForServices(clink::GatewayServiceNames());
  ASSERT_TRUE(codec.ok()) << codec.status();
  const char* tmp = getenv("TEST_TMPDIR");
  const std::string path =
      std::string(tmp != nullptr ? tmp : "/tmp") + "/audit-server.log";
  unlink(path.c_str());
  auto audit = AuditLog::OpenFile(path);
  ASSERT_TRUE(audit.ok()) << audit.status();
  FakeClinkApi api;
  ForwarderOptions options;
  options.audit = *std::move(audit);
  RpcForwarder forwarder(**codec, api, SystemClock(), options);
  auto services = ContractServices::LinkedServices();
  ASSERT_TRUE(services.ok()) << services.status();
  auto table = ContractServices::Create(**codec, *services, forwarder);
  ASSERT_TRUE(table.ok()) << table.status();
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  for (grpc::Service* service : (*table)->grpc_services()) {
    builder.RegisterService(service);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  auto stub = v1::PaymentService::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  const std::string key = "order-4711-someone@example.com";

  {  // A payment: committed.
    grpc::ClientContext context;
    context.AddMetadata("x-clink-caller", "checkout-web");
    context.AddMetadata("idempotency-key", key);
    context.AddMetadata("x-request-id", "req-pay");
    v1::CreatePaymentRequest request = ValidPayment();
    request.set_amount("19.99");
    request.set_currency("USD");
    v1::CreatePaymentResponse response;
    EXPECT_TRUE(stub->CreatePayment(&context, request, &response).ok());
    EXPECT_EQ(response.order_id(), "ord_42");
  }
  {  // A read: not audited.
    grpc::ClientContext context;
    context.AddMetadata("x-clink-caller", "checkout-web");
    v1::GetOrderRequest request;
    request.set_order_id("ord_42");
    v1::GetOrderResponse response;
    EXPECT_TRUE(stub->GetOrder(&context, request, &response).ok());
  }
  {  // Refused before sending (no such merchant): not_sent.
    grpc::ClientContext context;
    context.AddMetadata("x-clink-caller", "support-tool");
    context.AddMetadata("x-clink-merchant", "nope");
    context.AddMetadata("x-request-id", "req-refund");
    v1::CreateRefundRequest request;
    request.set_order_id("ord_42");
    request.set_refund_amount("5.00");
    v1::CreateRefundResponse response;
    EXPECT_EQ(stub->CreateRefund(&context, request, &response).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  api.SetNextStatus(absl::UnknownError("outcome unknown"));
  {  // Sent, answer lost: unknown, and anonymous.
    grpc::ClientContext context;
    context.AddMetadata("x-request-id", "req-lost");
    v1::CreatePaymentRequest request = ValidPayment();
    request.set_amount("1000");
    request.set_currency("JPY");
    v1::CreatePaymentResponse response;
    EXPECT_EQ(stub->CreatePayment(&context, request, &response).error_code(),
              grpc::StatusCode::UNKNOWN);
  }
  api.JoinAll();
  server->Shutdown();
  EXPECT_EQ(api.calls(), 3);  // The refused refund never reached Clink.

  const auto lines = ::clink_gateway::testing::ReadJsonLines(path);
  ASSERT_EQ(lines.size(), 3u);  // Two payments and the refund; no read.
  for (const auto& line : lines) {
    EXPECT_EQ(line.at("__line").find(key), std::string::npos)
        << line.at("__line");
  }
  std::map<std::string, std::string> paid = lines[0];
  EXPECT_EQ(paid["event"], "audit");
  EXPECT_EQ(paid["caller"], "checkout-web");
  EXPECT_EQ(paid["caller_authenticated"], "false");
  EXPECT_EQ(paid["method"], "clink.gateway.v1.PaymentService.CreatePayment");
  EXPECT_EQ(paid["merchant"], "default");
  EXPECT_EQ(paid["request_id"], "req-pay");
  EXPECT_EQ(
      paid["idempotency_key_digest"],
      (idempotency::IdempotencyKey{
           "checkout-web", "clink.gateway.v1.PaymentService.CreatePayment", key,
           "default"})
          .Digest());
  EXPECT_NE(paid["idempotency_key_digest"], key);
  EXPECT_EQ(paid["amount"], "19.99");
  EXPECT_EQ(paid["currency"], "USD");
  EXPECT_EQ(paid["clink_order_id"], "ord_42");
  EXPECT_EQ(paid["code"], "OK");
  EXPECT_EQ(paid["outcome"], "committed");

  std::map<std::string, std::string> refused = lines[1];
  EXPECT_EQ(refused["caller"], "support-tool");
  EXPECT_EQ(refused["method"], "clink.gateway.v1.PaymentService.CreateRefund");
  EXPECT_EQ(refused["request_id"], "req-refund");
  EXPECT_EQ(refused["amount"], "5.00");
  EXPECT_EQ(refused["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(refused["outcome"], "not_sent");
  EXPECT_EQ(refused["idempotency_key_digest"], "none");

  std::map<std::string, std::string> lost = lines[2];
  EXPECT_EQ(lost["caller"], "");
  EXPECT_EQ(lost["request_id"], "req-lost");
  EXPECT_EQ(lost["amount"], "1000");
  EXPECT_EQ(lost["currency"], "JPY");
  EXPECT_EQ(lost["code"], "UNKNOWN");
  EXPECT_EQ(lost["outcome"], "unknown");
  EXPECT_EQ(lost.count("clink_order_id"), 0u);
}

}  // namespace
}  // namespace clink_gateway::server
