// The contract's services as registered from the descriptors, served by a real
// in-process gRPC server (127.0.0.1, port 0) over RpcForwarder, with a fake
// ClinkApi in place of Clink.
#include "server/contract_services.h"

#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "adapters/clink/clink_api.h"
#include "common/errors/error_details.h"
#include "clink/gateway/v1/billing.pb.h"
#include "clink/gateway/v1/events.pb.h"
#include "clink/gateway/v1/payment.pb.h"
#include "clink/gateway/v1/rest_options.pb.h"
#include "common/sync.h"
#include "common/testing/fake_clock.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr absl::Duration kWait = absl::Seconds(20);

// Records each call; answers OK at once, or, with `hold`, keeps the callback
// for Answer().
class FakeClinkApi final : public clink::ClinkApi {
 public:
  struct Seen {
    const clink::RestMethod* method = nullptr;
    clink::CallOptions options;
    std::string request_type;
  };

  void Call(const clink::RestMethod& method,
            const google::protobuf::Message& request,
            const clink::CallOptions& options,
            google::protobuf::Message* response, Callback done) override {
    {
      MutexLock lock(&mu_);
      seen_.push_back({&method, options, request.GetTypeName()});
      if (hold_) {
        held_.push_back(std::move(done));
        responses_.push_back(response);
        cv_.SignalAll();
        return;
      }
    }
    if (auto* payment = dynamic_cast<v1::CreatePaymentResponse*>(response)) {
      payment->set_order_id("ord_1");
    }
    clink::CallResult result;
    result.endpoint = method.endpoint;
    std::move(done)(std::move(result));
  }

  void Hold() {
    MutexLock lock(&mu_);
    hold_ = true;
  }
  bool WaitForHeld(size_t n) {
    MutexLock lock(&mu_);
    const absl::Time deadline = absl::Now() + kWait;
    while (held_.size() < n) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) return held_.size() >= n;
    }
    return true;
  }
  // Completes the oldest held call with `status`.
  void Answer(absl::Status status) {
    Callback done;
    {
      MutexLock lock(&mu_);
      done = std::move(held_.front());
      held_.pop_front();
      responses_.pop_front();
    }
    clink::CallResult result;
    result.status = std::move(status);
    std::move(done)(std::move(result));
  }
  std::vector<Seen> seen() const {
    MutexLock lock(&mu_);
    return seen_;
  }

 private:
  mutable Mutex mu_;
  CondVar cv_;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<Seen> seen_ ABSL_GUARDED_BY(mu_);
  std::deque<Callback> held_ ABSL_GUARDED_BY(mu_);
  std::deque<google::protobuf::Message*> responses_ ABSL_GUARDED_BY(mu_);
};

class ContractServicesTest : public testing::Test {
 protected:
  void SetUp() override {
    auto services = ContractServices::LinkedServices();
    ASSERT_TRUE(services.ok()) << services.status();
    services_ = *services;
    auto codec = clink::RestCodec::Create(services_);
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    forwarder_ = std::make_unique<RpcForwarder>(*codec_, api_, clock_,
                                                ForwarderOptions{});
    auto table = ContractServices::Create(*codec_, services_, *forwarder_);
    ASSERT_TRUE(table.ok()) << table.status();
    table_ = *std::move(table);

    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port_);
    for (grpc::Service* s : table_->grpc_services()) {
      builder.RegisterService(s);
    }
    builder.SetMaxReceiveMessageSize(static_cast<int>(kMaxReceiveMessageBytes));
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
    stub_ = std::make_unique<grpc::GenericStub>(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port_), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_ != nullptr) server_->Shutdown();
  }

  struct Reply {
    grpc::Status status;
    std::string body;
    std::string request_id;  // From the initial metadata.
  };

  // Sends `request` bytes to `path` and waits for the answer.
  Reply Send(const std::string& path, const std::string& request,
             grpc::ClientContext* context = nullptr) {
    grpc::ClientContext own;
    if (context == nullptr) context = &own;
    context->set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    grpc::Slice slice(request);
    grpc::ByteBuffer in(&slice, 1);
    grpc::ByteBuffer out;
    Notification done;
    Reply reply;
    stub_->UnaryCall(context, path, grpc::StubOptions(), &in, &out,
                     [&](grpc::Status s) {
                       reply.status = std::move(s);
                       done.Notify();
                     });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(kWait));
    std::vector<grpc::Slice> slices;
    if (reply.status.ok() && out.Dump(&slices).ok()) {
      for (const grpc::Slice& s : slices) {
        reply.body.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
    }
    const auto& md = context->GetServerInitialMetadata();
    if (auto it = md.find("x-request-id"); it != md.end()) {
      reply.request_id.assign(it->second.data(), it->second.size());
    }
    return reply;
  }

  static google::rpc::ErrorInfo ErrorInfoOf(const grpc::Status& status) {
    google::rpc::Status details;
    google::rpc::ErrorInfo info;
    if (!details.ParseFromString(status.error_details())) return info;
    for (const auto& any : details.details()) {
      if (any.UnpackTo(&info)) return info;
    }
    return info;
  }

  static v1::CreatePaymentRequest Payment() {
    v1::CreatePaymentRequest r;
    r.set_customer_id("cus_1");
    r.set_payment_instrument_id("pi_1");
    r.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
    r.set_return_url("https://shop.example/return");
    r.set_amount("19.99");
    r.set_currency("USD");
    return r;
  }

  FakeClock clock_;
  FakeClinkApi api_;
  std::vector<const google::protobuf::ServiceDescriptor*> services_;
  std::unique_ptr<clink::RestCodec> codec_;
  std::unique_ptr<RpcForwarder> forwarder_;
  std::unique_ptr<ContractServices> table_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<grpc::GenericStub> stub_;
};

TEST_F(ContractServicesTest, EveryRpcOfTheContractIsRegistered) {
  size_t declared = 0;
  for (const google::protobuf::ServiceDescriptor* s : services_) {
    declared += s->method_count();
  }
  ASSERT_GT(declared, 0u);
  EXPECT_EQ(table_->methods().size(), declared);
  EXPECT_EQ(table_->grpc_services().size(), services_.size());
  for (const google::protobuf::ServiceDescriptor* s : services_) {
    for (int i = 0; i < s->method_count(); ++i) {
      const std::string path =
          absl::StrCat("/", s->full_name(), "/", s->method(i)->name());
      const ServedMethod* entry = table_->Find(path);
      ASSERT_NE(entry, nullptr) << path;
      EXPECT_EQ(entry->rest, codec_->Find(*s->method(i))) << path;
      const uint32_t declared_max =
          s->method(i)
              ->options()
              .GetExtension(::clink::gateway::v1::rest)
              .max_request_bytes();
      EXPECT_EQ(entry->max_request_bytes,
                declared_max == 0 ? kDefaultMaxRequestBytes : declared_max)
          << path;
      // Served: an empty request gets some answer, never UNIMPLEMENTED.
      const Reply reply = Send(path, "");
      EXPECT_NE(reply.status.error_code(), grpc::StatusCode::UNIMPLEMENTED)
          << path << ": " << reply.status.error_message();
    }
  }
}

// EventService is linked in (events_cc_proto) but served by the gateway itself:
// not a forwarded service, and skipped when named.
TEST_F(ContractServicesTest, TheGatewayServedEventServiceIsSkipped) {
  const google::protobuf::ServiceDescriptor* events =
      ::clink::gateway::v1::Event::descriptor()->file()->FindServiceByName(
          "EventService");
  ASSERT_NE(events, nullptr);
  ASSERT_TRUE(clink::IsGatewayServedService(events->full_name()));
  for (const google::protobuf::ServiceDescriptor* s : services_) {
    EXPECT_NE(s, events);
  }
  std::vector<const google::protobuf::ServiceDescriptor*> with_events =
      services_;
  with_events.push_back(events);
  auto table = ContractServices::Create(*codec_, with_events, *forwarder_);
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ((*table)->methods().size(), table_->methods().size());
  EXPECT_EQ((*table)->Find("/clink.gateway.v1.EventService/GetEvent"),
            nullptr);
}

TEST_F(ContractServicesTest, AnUnknownMethodIsUnimplemented) {
  EXPECT_EQ(table_->Find("/clink.gateway.v1.PaymentService/NoSuchRpc"),
            nullptr);
  EXPECT_EQ(Send("/clink.gateway.v1.PaymentService/NoSuchRpc", "")
                .status.error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_EQ(
      Send("/clink.gateway.v1.NoSuchService/GetOrder", "").status.error_code(),
      grpc::StatusCode::UNIMPLEMENTED);
  EXPECT_TRUE(api_.seen().empty());
}

TEST_F(ContractServicesTest, ForwardsWithTheMappingResolvedOnce) {
  grpc::ClientContext context;
  context.AddMetadata("x-request-id", "trace-1");
  const Reply reply = Send("/clink.gateway.v1.PaymentService/CreatePayment",
                           Payment().SerializeAsString(), &context);
  ASSERT_TRUE(reply.status.ok()) << reply.status.error_message();
  v1::CreatePaymentResponse response;
  ASSERT_TRUE(response.ParseFromString(reply.body));
  EXPECT_EQ(response.order_id(), "ord_1");
  EXPECT_EQ(reply.request_id, "trace-1");
  const auto seen = api_.seen();
  ASSERT_EQ(seen.size(), 1u);
  // The table's mapping itself is handed down: no look-up by type below.
  EXPECT_EQ(
      seen[0].method,
      table_->Find("/clink.gateway.v1.PaymentService/CreatePayment")->rest);
  EXPECT_EQ(seen[0].request_type, "clink.gateway.v1.CreatePaymentRequest");
  EXPECT_EQ(seen[0].options.request_id, "trace-1");
  // A write carries no cancellation: it is never aborted.
  EXPECT_EQ(seen[0].options.cancelled, nullptr);
}

TEST_F(ContractServicesTest, AnInvalidRequestIsRefusedBeforeClinkApi) {
  v1::CreatePaymentRequest request = Payment();
  request.clear_currency();
  const Reply reply = Send("/clink.gateway.v1.PaymentService/CreatePayment",
                           request.SerializeAsString());
  EXPECT_EQ(reply.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(reply.status.error_message().find("currency"), std::string::npos);
  // Bytes that are no CreatePaymentRequest at all.
  const Reply garbage =
      Send("/clink.gateway.v1.PaymentService/CreatePayment", "\xff\xff\xff");
  EXPECT_EQ(garbage.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(api_.seen().empty());
}

TEST_F(ContractServicesTest, ARequestOverItsCapIsRefusedNamingTheSize) {
  v1::CreatePaymentRequest request = Payment();
  request.set_return_url(std::string(kDefaultMaxRequestBytes + 1, 'u'));
  const std::string bytes = request.SerializeAsString();
  // Within the server-wide limit, over the method's own 1 MiB.
  ASSERT_LT(bytes.size(), kMaxReceiveMessageBytes);
  const Reply reply =
      Send("/clink.gateway.v1.PaymentService/CreatePayment", bytes);
  EXPECT_EQ(reply.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(reply.status.error_message().find(absl::StrCat(bytes.size())),
            std::string::npos)
      << reply.status.error_message();
  const google::rpc::ErrorInfo info = ErrorInfoOf(reply.status);
  EXPECT_EQ(info.reason(), "REQUEST_TOO_LARGE");
  EXPECT_EQ(info.metadata().at("outcome"), "not_sent");
  EXPECT_EQ(info.metadata().at("max_request_bytes"),
            absl::StrCat(kDefaultMaxRequestBytes));
  EXPECT_TRUE(api_.seen().empty());
}

// A caller that gives up on a read: its upstream call is told (and aborted by
// the transport); on a write: nothing is aborted, the call runs to its end.
TEST_F(ContractServicesTest, CancellingAbortsAReadButNeverAWrite) {
  api_.Hold();
  v1::GetOrderRequest read;
  read.set_order_id("ord_1");
  grpc::ClientContext read_context;
  read_context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  grpc::Slice read_slice(read.SerializeAsString());
  grpc::ByteBuffer read_in(&read_slice, 1);
  grpc::ByteBuffer read_out;
  Notification read_done;
  grpc::Status read_status;
  stub_->UnaryCall(&read_context, "/clink.gateway.v1.PaymentService/GetOrder",
                   grpc::StubOptions(), &read_in, &read_out,
                   [&](grpc::Status s) {
                     read_status = std::move(s);
                     read_done.Notify();
                   });
  ASSERT_TRUE(api_.WaitForHeld(1));

  grpc::ClientContext write_context;
  write_context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  grpc::Slice write_slice(Payment().SerializeAsString());
  grpc::ByteBuffer write_in(&write_slice, 1);
  grpc::ByteBuffer write_out;
  Notification write_done;
  stub_->UnaryCall(&write_context,
                   "/clink.gateway.v1.PaymentService/CreatePayment",
                   grpc::StubOptions(), &write_in, &write_out,
                   [&](grpc::Status) { write_done.Notify(); });
  ASSERT_TRUE(api_.WaitForHeld(2));

  const auto seen = api_.seen();
  ASSERT_EQ(seen.size(), 2u);
  ASSERT_NE(seen[0].options.cancelled, nullptr);
  EXPECT_FALSE(seen[0].options.cancelled->HasBeenNotified());
  EXPECT_EQ(seen[1].options.cancelled, nullptr);

  read_context.TryCancel();
  write_context.TryCancel();
  ASSERT_TRUE(read_done.WaitForNotificationWithTimeout(kWait));
  ASSERT_TRUE(write_done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(read_status.error_code(), grpc::StatusCode::CANCELLED);
  // The server saw the read's cancellation and passed it down.
  EXPECT_TRUE(seen[0].options.cancelled->WaitForNotificationWithTimeout(kWait));

  // Both upstream calls still complete exactly once (the write with its real
  // result, which the idempotency layer stores for the key).
  api_.Answer(absl::CancelledError("aborted"));
  api_.Answer(absl::OkStatus());
  EXPECT_EQ(api_.seen().size(), 2u);
}

}  // namespace
}  // namespace clink_gateway::server
