// The audit trail: AuditLog's field rules, its file, and a gRPC server whose
// write RPCs each leave one audit line naming the caller (and reads none).
#include "server/audit_log.h"

#include <stdio.h>
#include <unistd.h>

#include <fstream>
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
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "server/services.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;

std::string TempPath(const std::string& name) {
  const char* dir = getenv("TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : "/tmp") + "/" + name;
}

std::vector<std::string> ReadLines(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    if (!line.empty()) lines.emplace_back(line);
  }
  return lines;
}

// The line's members (all strings), or an empty map if it is not a flat JSON
// object of strings.
std::map<std::string, std::string> Fields(const std::string& line) {
  rapidjson::Document doc;
  doc.Parse(line.c_str());
  std::map<std::string, std::string> fields;
  if (doc.HasParseError() || !doc.IsObject()) return fields;
  for (const auto& m : doc.GetObject()) {
    if (!m.value.IsString()) return {};
    fields[m.name.GetString()] = m.value.GetString();
  }
  return fields;
}

class AuditLogTest : public testing::Test {
 protected:
  void SetUp() override {
    auto codec =
        clink::RestCodec::CreateForServices(clink::GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
  }
  const clink::RestMethod& Method(const google::protobuf::Descriptor& request) {
    const clink::RestMethod* m = codec_->FindByRequestType(request);
    EXPECT_NE(m, nullptr);
    return *m;
  }
  std::unique_ptr<clink::RestCodec> codec_;
};

TEST_F(AuditLogTest, AWriteRecordsMoneyByFieldRuleAndDigestsTheKey) {
  v1::CreatePaymentRequest request;
  request.set_amount("19.99");
  request.set_currency("USD");
  request.set_customer_email("someone@example.com");
  clink::CallOptions options;
  options.caller = "checkout-web";
  options.merchant = "eu";
  options.request_id = "req-1";
  options.idempotency_key = "order-4711-someone@example.com";
  const clink::RestMethod& method =
      Method(*v1::CreatePaymentRequest::descriptor());
  AuditEntry entry = AuditLog::Start(method, request, options);
  EXPECT_TRUE(entry.write);
  EXPECT_EQ(entry.amount, "19.99");
  EXPECT_EQ(entry.amount_field, "amount");
  EXPECT_EQ(entry.currency, "USD");
  EXPECT_EQ(entry.caller, "checkout-web");
  EXPECT_FALSE(entry.caller_authenticated);
  idempotency::IdempotencyKey key{
      "checkout-web", "clink.gateway.v1.PaymentService.CreatePayment",
      options.idempotency_key, "eu"};
  EXPECT_EQ(entry.key_digest, key.Digest());
  EXPECT_EQ(entry.key_digest.find("order-4711"), std::string::npos);

  v1::CreatePaymentResponse response;
  response.set_order_id("ord_1");
  response.set_session_id("sess_9");
  AuditLog::Settle(method, &response, absl::OkStatus(), false, entry);
  EXPECT_EQ(entry.code, "OK");
  EXPECT_EQ(entry.outcome, "committed");
  ASSERT_GE(entry.ids.size(), 2u);
  std::map<std::string, std::string> ids(entry.ids.begin(), entry.ids.end());
  EXPECT_EQ(ids["clink_order_id"], "ord_1");
  EXPECT_EQ(ids["clink_session_id"], "sess_9");
}

TEST_F(AuditLogTest, IdsComeFromThePayloadMessage) {
  // CreateRefund's payload is the `refund` field (RestRule.response_body).
  const clink::RestMethod& method =
      Method(*v1::CreateRefundRequest::descriptor());
  v1::CreateRefundRequest request;
  request.set_order_id("ord_1");
  request.set_refund_amount("5.00");
  AuditEntry entry = AuditLog::Start(method, request, clink::CallOptions());
  EXPECT_EQ(entry.amount, "5.00");
  EXPECT_EQ(entry.amount_field, "refund_amount");
  EXPECT_EQ(entry.currency, "");  // The order's: the request names none.
  EXPECT_EQ(entry.key_digest, "none");
  v1::CreateRefundResponse response;
  response.mutable_refund()->set_refund_id("rfd_1");
  response.mutable_refund()->set_order_id("ord_1");
  AuditLog::Settle(method, &response, absl::OkStatus(), true, entry);
  std::map<std::string, std::string> ids(entry.ids.begin(), entry.ids.end());
  EXPECT_EQ(ids["clink_refund_id"], "rfd_1");
  EXPECT_EQ(ids["clink_order_id"], "ord_1");
  EXPECT_TRUE(entry.replayed);
}

TEST_F(AuditLogTest, ARefusalBeforeSendingIsNotSentWhateverTheCode) {
  const clink::RestMethod& method =
      Method(*v1::CreatePaymentRequest::descriptor());
  AuditEntry entry =
      AuditLog::Start(method, v1::CreatePaymentRequest(), clink::CallOptions());
  AuditLog::Settle(method, nullptr, absl::PermissionDeniedError("not you"),
                   false, entry);
  EXPECT_EQ(entry.outcome, "unknown");  // The status alone says nothing.
  entry.refused_before_sending = true;
  AuditLog::Settle(method, nullptr, absl::PermissionDeniedError("not you"),
                   false, entry);
  EXPECT_EQ(entry.code, "PERMISSION_DENIED");
  EXPECT_EQ(entry.outcome, "not_sent");
}

TEST_F(AuditLogTest, ReadsAreNotAudited) {
  const clink::RestMethod& method = Method(*v1::GetOrderRequest::descriptor());
  AuditEntry entry =
      AuditLog::Start(method, v1::GetOrderRequest(), clink::CallOptions());
  EXPECT_FALSE(entry.write);
}

TEST(AuditLogFileTest, AppendsAndReopensWhenTheFileIsReplaced) {
  const std::string path = TempPath("audit-rotate.log");
  unlink(path.c_str());
  auto log = AuditLog::OpenFile(path);
  ASSERT_TRUE(log.ok()) << log.status();
  AuditEntry entry;
  entry.write = true;
  entry.caller = "first";
  (*log)->Write(entry);
  ASSERT_EQ(rename(path.c_str(), (path + ".1").c_str()), 0);
  entry.caller = "second";
  (*log)->Write(entry);
  const std::vector<std::string> rotated = ReadLines(path + ".1");
  const std::vector<std::string> fresh = ReadLines(path);
  ASSERT_EQ(rotated.size(), 1u);
  ASSERT_EQ(fresh.size(), 1u);
  EXPECT_EQ(Fields(rotated[0])["caller"], "first");
  EXPECT_EQ(Fields(fresh[0])["caller"], "second");
  EXPECT_EQ(Fields(fresh[0])["event"], "audit");
  EXPECT_EQ((*log)->failed_writes(), 0);
}

TEST(AuditLogFileTest, AFileThatCannotBeOpenedIsAnError) {
  const auto log = AuditLog::OpenFile("/nonexistent-dir/audit.log");
  EXPECT_EQ(log.status().code(), absl::StatusCode::kInvalidArgument);
}

// Answers every call from a thread of its own, as the transport does.
class FakeClinkApi final : public clink::ClinkApi {
 public:
  void Call(const google::protobuf::MethodDescriptor& method,
            const google::protobuf::Message& request,
            const clink::CallOptions& options,
            google::protobuf::Message* response, Callback done) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++calls_;
    absl::Status status = next_status_;
    workers_.emplace_back([response, status, done = std::move(done)]() mutable {
      clink::CallResult result;
      result.status = status;
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

TEST_F(AuditLogTest, EveryWriteRpcLeavesOneLineNamingTheCallerAndReadsNone) {
  const std::string path = TempPath("audit-server.log");
  unlink(path.c_str());
  auto audit = AuditLog::OpenFile(path);
  ASSERT_TRUE(audit.ok()) << audit.status();
  FakeClinkApi api;
  ForwarderOptions options;
  options.audit = *std::move(audit);
  RpcForwarder forwarder(*codec_, api, SystemClock(), options);
  PaymentServiceImpl service(forwarder);
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
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
    v1::CreatePaymentRequest request;
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
    v1::CreatePaymentRequest request;
    request.set_amount("1000");
    request.set_currency("JPY");
    v1::CreatePaymentResponse response;
    EXPECT_EQ(stub->CreatePayment(&context, request, &response).error_code(),
              grpc::StatusCode::UNKNOWN);
  }
  api.JoinAll();
  server->Shutdown();
  EXPECT_EQ(api.calls(), 3);  // The refused refund never reached Clink.

  const std::vector<std::string> lines = ReadLines(path);
  ASSERT_EQ(lines.size(), 3u);  // Two payments and the refund; no read.
  for (const std::string& line : lines) {
    EXPECT_EQ(line.find(key), std::string::npos) << line;
  }
  std::map<std::string, std::string> paid = Fields(lines[0]);
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

  std::map<std::string, std::string> refused = Fields(lines[1]);
  EXPECT_EQ(refused["caller"], "support-tool");
  EXPECT_EQ(refused["method"], "clink.gateway.v1.PaymentService.CreateRefund");
  EXPECT_EQ(refused["request_id"], "req-refund");
  EXPECT_EQ(refused["amount"], "5.00");
  EXPECT_EQ(refused["code"], "INVALID_ARGUMENT");
  EXPECT_EQ(refused["outcome"], "not_sent");
  EXPECT_EQ(refused["idempotency_key_digest"], "none");

  std::map<std::string, std::string> lost = Fields(lines[2]);
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
