// Caller authentication and authorization on the gRPC port: mutual TLS with
// certificates from a throwaway CA (tests/emulator/test_ca.h), the caller's
// identity from its certificate, the example authorization policy
// (k8s/base/authz-policy.json), the plaintext health port, and rotation of
// certificates and policy under load.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/testing/exposition.h"
#include "common/testing/http_get.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/security/credentials.h"
#include "openssl/pem.h"
#include "openssl/ssl.h"
#include "tests/emulator/merchant_api.h"
#include "tests/integration/gateway_fixture.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr char kCheckoutWeb[] =
    "spiffe://cluster.local/ns/shop/sa/checkout-web";
constexpr char kSupportTool[] =
    "spiffe://cluster.local/ns/support/sa/support-tool";
constexpr char kFinance[] = "spiffe://cluster.local/ns/finance/sa/finance";

std::string ReadFile(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// Replaces `path` by a rename, as a Secret/ConfigMap volume update does.
void WriteAtomically(const std::string& path, const std::string& content) {
  const std::string tmp = absl::StrCat(path, ".tmp");
  std::ofstream(tmp) << content;
  ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0) << path;
}

class MtlsTest : public GatewayFixture {
 protected:
  void Configure(server::GatewayOptions& options) override {
    pki_ = absl::StrCat(temp_dir_, "/pki");
    auto mesh = emulator::TestCa::Create(pki_, "mesh");
    ASSERT_TRUE(mesh.ok()) << mesh.status();
    mesh_ = *std::move(mesh);
    auto other = emulator::TestCa::Create(pki_, "other");
    ASSERT_TRUE(other.ok()) << other.status();
    other_ = *std::move(other);
    // The server's files live in a versioned directory behind a symlink, so
    // a rotation swaps key and certificate together.
    InstallServerCertificate("server-v1");
    client_ca_file_ = absl::StrCat(pki_, "/client-ca.pem");
    WriteAtomically(client_ca_file_, mesh_->cert_pem());
    policy_file_ = absl::StrCat(temp_dir_, "/authz-policy.json");
    WriteAtomically(policy_file_, ReadFile("k8s/base/authz-policy.json"));

    options.grpc_insecure = false;
    options.grpc_tls_cert_file = absl::StrCat(pki_, "/live/tls.crt");
    options.grpc_tls_key_file = absl::StrCat(pki_, "/live/tls.key");
    options.grpc_client_ca_file = client_ca_file_;
    options.tls_reload_interval = absl::Seconds(1);
    options.authz_policy_file = policy_file_;
    options.authz_reload_interval = absl::Seconds(1);
    options.health_listen = "127.0.0.1:0";
    options.metrics_listen = "127.0.0.1:0";
    // Two merchants and no default: callers name one (the policy's header
    // rules see it).
    options.merchants = {{"eu", key_volume_->dir(), ""},
                         {"us", key_volume_->dir(), ""}};
  }

  // Issues a server certificate into pki/<version>/ and points pki/live at it.
  void InstallServerCertificate(const std::string& version) {
    auto server = mesh_->Issue(version, "DNS:localhost,IP:127.0.0.1", true);
    ASSERT_TRUE(server.ok()) << server.status();
    const std::string dir = absl::StrCat(pki_, "/", version);
    ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
    std::ofstream(absl::StrCat(dir, "/tls.crt")) << server->cert_pem;
    std::ofstream(absl::StrCat(dir, "/tls.key")) << server->key_pem;
    const std::string link = absl::StrCat(pki_, "/live.tmp");
    ASSERT_EQ(symlink(version.c_str(), link.c_str()), 0);
    ASSERT_EQ(rename(link.c_str(), absl::StrCat(pki_, "/live").c_str()), 0);
    server_cert_pem_ = server->cert_pem;
  }

  emulator::IssuedCert Client(const emulator::TestCa& ca,
                              const std::string& name, const std::string& san) {
    auto cert = ca.Issue(name, san, false);
    EXPECT_TRUE(cert.ok()) << cert.status();
    return cert.ok() ? *cert : emulator::IssuedCert();
  }

  // A channel of its own (its own connection and handshake) presenting
  // `client` (none when null).
  std::shared_ptr<grpc::Channel> Channel(
      const emulator::IssuedCert* client) const {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = mesh_->cert_pem();
    if (client != nullptr) {
      ssl.pem_private_key = client->key_pem;
      ssl.pem_cert_chain = client->cert_pem;
    }
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride("localhost");
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()), grpc::SslCredentials(ssl),
        args);
  }

  static grpc::Status GetProduct(grpc::Channel& channel,
                                 const std::string& merchant,
                                 std::string* server_cert = nullptr,
                                 const std::string& caller = "") {
    auto stub = v1::BillingService::NewStub(
        std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
    v1::GetProductRequest request;
    request.set_product_id(emulator::kSeedProductBasic);
    v1::GetProductResponse response;
    auto context = Context();
    context->AddMetadata("x-clink-merchant", merchant);
    if (!caller.empty()) context->AddMetadata("x-clink-caller", caller);
    grpc::Status status = stub->GetProduct(context.get(), request, &response);
    if (server_cert != nullptr && context->auth_context() != nullptr) {
      const auto pem = context->auth_context()->FindPropertyValues(
          GRPC_X509_PEM_CERT_PROPERTY_NAME);
      *server_cert =
          pem.empty() ? "" : std::string(pem[0].data(), pem[0].size());
    }
    return status;
  }

  static grpc::Status CreatePayment(grpc::Channel& channel,
                                    const std::string& merchant,
                                    const std::string& idempotency_key = "",
                                    std::string* order_id = nullptr) {
    auto stub = v1::PaymentService::NewStub(
        std::shared_ptr<grpc::Channel>(&channel, [](grpc::Channel*) {}));
    v1::CreatePaymentRequest r;
    r.set_customer_id(emulator::kSeedCustomerId);
    r.set_payment_instrument_id(emulator::kSeedCardInstrumentId);
    r.set_payment_method_type(v1::PAYMENT_METHOD_TYPE_CARD);
    r.set_return_url("https://shop.example/return");
    r.set_amount("42.00");
    r.set_currency("USD");
    r.set_merchant_reference_id("order-42");
    v1::CreatePaymentResponse response;
    auto context = Context();
    context->AddMetadata("x-clink-merchant", merchant);
    if (!idempotency_key.empty()) {
      context->AddMetadata("idempotency-key", idempotency_key);
    }
    grpc::Status status = stub->CreatePayment(context.get(), r, &response);
    if (order_id != nullptr) *order_id = response.order_id();
    return status;
  }

  double Metric(absl::string_view name,
                const std::map<std::string, std::string>& labels) const {
    auto response = HttpGet(gateway_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return -1;
    return Sum(ParseExposition(response->body), name, labels);
  }

  std::string pki_;
  std::unique_ptr<emulator::TestCa> mesh_;
  std::unique_ptr<emulator::TestCa> other_;
  std::string server_cert_pem_;
  std::string client_ca_file_;
  std::string policy_file_;
};

TEST_F(MtlsTest, NoCertificateIsRefusedAndNothingIsSent) {
  auto channel = Channel(nullptr);
  const grpc::Status status = GetProduct(*channel, "eu");
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::UNAVAILABLE ||
              status.error_code() == grpc::StatusCode::UNAUTHENTICATED)
      << status.error_code() << " " << status.error_message();
  EXPECT_TRUE(emulator_->requests().empty());
}

TEST_F(MtlsTest, CertificateFromAnotherCaIsRefused) {
  // A permitted identity, but not signed by the client CA.
  const emulator::IssuedCert forged =
      Client(*other_, "forged", absl::StrCat("URI:", kFinance));
  auto channel = Channel(&forged);
  const grpc::Status status = GetProduct(*channel, "eu");
  EXPECT_FALSE(status.ok());
  EXPECT_TRUE(status.error_code() == grpc::StatusCode::UNAVAILABLE ||
              status.error_code() == grpc::StatusCode::UNAUTHENTICATED)
      << status.error_code() << " " << status.error_message();
  EXPECT_TRUE(emulator_->requests().empty());
}

TEST_F(MtlsTest, PermittedIdentityIsServed) {
  const emulator::IssuedCert checkout =
      Client(*mesh_, "checkout-web", absl::StrCat("URI:", kCheckoutWeb));
  auto channel = Channel(&checkout);
  grpc::Status status = GetProduct(*channel, "eu");
  EXPECT_TRUE(status.ok()) << status.error_message();
  status = CreatePayment(*channel, "eu");
  EXPECT_TRUE(status.ok()) << status.error_message();
  const emulator::IssuedCert finance =
      Client(*mesh_, "finance", absl::StrCat("URI:", kFinance));
  status = GetProduct(*Channel(&finance), "us");
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(MtlsTest, ForbiddenRpcOrMerchantIsDeniedBeforeAnythingIsSent) {
  const emulator::IssuedCert checkout =
      Client(*mesh_, "checkout-web", absl::StrCat("URI:", kCheckoutWeb));
  const emulator::IssuedCert finance =
      Client(*mesh_, "finance", absl::StrCat("URI:", kFinance));
  // Signed by the right CA, named in no rule.
  const emulator::IssuedCert stranger =
      Client(*mesh_, "stranger", "DNS:batch.internal");
  auto checkout_channel = Channel(&checkout);
  // checkout-web may pay for "eu" only; finance may only read; strangers
  // nothing.
  for (const grpc::Status& status : {CreatePayment(*checkout_channel, "us"),
                                     CreatePayment(*Channel(&finance), "eu"),
                                     CreatePayment(*Channel(&stranger), "eu"),
                                     GetProduct(*Channel(&stranger), "eu")}) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << status.error_message();
  }
  // CreateRefund: not checkout-web's.
  auto payments = v1::PaymentService::NewStub(checkout_channel);
  v1::CreateRefundRequest refund;
  refund.set_order_id("ord_1");
  refund.set_refund_amount("1.00");
  v1::CreateRefundResponse refunded;
  auto context = Context();
  context->AddMetadata("x-clink-merchant", "eu");
  EXPECT_EQ(
      payments->CreateRefund(context.get(), refund, &refunded).error_code(),
      grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_TRUE(emulator_->requests().empty());
  const std::map<std::string, std::string> create_payment = {
      {"grpc_service", "clink.gateway.v1.PaymentService"},
      {"grpc_method", "CreatePayment"}};
  EXPECT_EQ(Metric("clink_gateway_authz_denied_total", create_payment), 3);
  auto denied = create_payment;
  denied["grpc_code"] = "PermissionDenied";
  EXPECT_EQ(Metric("grpc_server_handled_total", denied), 3);
}

TEST_F(MtlsTest, CallerHeaderMustMatchTheCertificate) {
  const emulator::IssuedCert checkout =
      Client(*mesh_, "checkout-web", absl::StrCat("URI:", kCheckoutWeb));
  auto channel = Channel(&checkout);
  grpc::Status status =
      GetProduct(*channel, "eu", nullptr, "spiffe://cluster.local/ns/x/sa/y");
  EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << status.error_message();
  EXPECT_NE(status.error_message().find("x-clink-caller"), std::string::npos);
  EXPECT_TRUE(emulator_->requests().empty());
  status = GetProduct(*channel, "eu", nullptr, kCheckoutWeb);
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(MtlsTest, HealthPortServesOnlyHealthWithoutACertificate) {
  ASSERT_NE(gateway_->health_port(), 0);
  channel_ =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", gateway_->health_port()),
                          grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(""), 1);
  EXPECT_EQ(HealthStatus("liveness"), 1);
  // No API, no reflection.
  v1::GetProductRequest request;
  v1::GetProductResponse response;
  auto context = Context();
  EXPECT_EQ(v1::BillingService::NewStub(channel_)
                ->GetProduct(context.get(), request, &response)
                .error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  grpc::GenericStub generic(channel_);
  grpc::Slice nothing("");
  grpc::ByteBuffer empty(&nothing, 1);
  grpc::ByteBuffer reply;
  grpc::ClientContext reflection;
  reflection.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  std::promise<grpc::Status> done;
  generic.UnaryCall(&reflection,
                    "/grpc.reflection.v1alpha.ServerReflection/"
                    "ServerReflectionInfo",
                    grpc::StubOptions(), &empty, &reply,
                    [&](grpc::Status s) { done.set_value(std::move(s)); });
  EXPECT_EQ(done.get_future().get().error_code(),
            grpc::StatusCode::UNIMPLEMENTED);
  // The API port still requires a certificate for the same call.
  EXPECT_FALSE(GetProduct(*Channel(nullptr), "eu").ok());
}

// No authorization policy: any certificate from the client CA may call.
class MtlsWithoutPolicyTest : public MtlsTest {
 protected:
  void Configure(server::GatewayOptions& options) override {
    MtlsTest::Configure(options);
    options.authz_policy_file.clear();
  }
};

// The certificate's identity is the idempotency scope: the same key from two
// services is two payments, from two certificates of one service one.
TEST_F(MtlsWithoutPolicyTest, TheIdentityIsTheIdempotencyScope) {
  const emulator::IssuedCert checkout =
      Client(*mesh_, "checkout-web", absl::StrCat("URI:", kCheckoutWeb));
  const emulator::IssuedCert checkout_renewed = Client(
      *mesh_, "checkout-web-renewed", absl::StrCat("URI:", kCheckoutWeb));
  const emulator::IssuedCert batch =
      Client(*mesh_, "batch", "DNS:batch.payments.svc,DNS:other.svc");
  std::string first, renewed, other;
  ASSERT_TRUE(CreatePayment(*Channel(&checkout), "eu", "order-7", &first).ok());
  ASSERT_TRUE(
      CreatePayment(*Channel(&checkout_renewed), "eu", "order-7", &renewed)
          .ok());
  EXPECT_EQ(renewed, first);  // Replayed: one scope.
  EXPECT_EQ(emulator_->requests().size(), 1u);
  ASSERT_TRUE(CreatePayment(*Channel(&batch), "eu", "order-7", &other).ok());
  EXPECT_NE(other, first);  // Another caller's key: its own payment.
  EXPECT_EQ(emulator_->requests().size(), 2u);
}

// Whether a TLS handshake with the gateway's gRPC port succeeds when the
// client offers only protocol versions [min_version, max_version] and
// presents `client`.
bool HandshakeSucceeds(int port, int min_version, int max_version,
                       const emulator::IssuedCert& client) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(ctx, 0);  // Let the client offer TLS 1.0/1.1.
  SSL_CTX_set_min_proto_version(ctx, min_version);
  SSL_CTX_set_max_proto_version(ctx, max_version);
  SSL_CTX_set_cipher_list(ctx, "ALL:@SECLEVEL=0");
  BIO* cert_bio = BIO_new_mem_buf(client.cert_pem.data(),
                                  static_cast<int>(client.cert_pem.size()));
  BIO* key_bio = BIO_new_mem_buf(client.key_pem.data(),
                                 static_cast<int>(client.key_pem.size()));
  X509* cert = PEM_read_bio_X509(cert_bio, nullptr, nullptr, nullptr);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio, nullptr, nullptr, nullptr);
  SSL_CTX_use_certificate(ctx, cert);
  SSL_CTX_use_PrivateKey(ctx, key);
  static const unsigned char kH2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx, kH2, sizeof(kH2));
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    SSL* ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    ok = SSL_connect(ssl) == 1;
    SSL_free(ssl);
  }
  close(fd);
  X509_free(cert);
  EVP_PKEY_free(key);
  BIO_free(cert_bio);
  BIO_free(key_bio);
  SSL_CTX_free(ctx);
  return ok;
}

TEST_F(MtlsTest, OnlyTls12AndNewerAreAccepted) {
  const emulator::IssuedCert finance =
      Client(*mesh_, "finance", absl::StrCat("URI:", kFinance));
  EXPECT_TRUE(HandshakeSucceeds(gateway_->port(), TLS1_2_VERSION,
                                TLS1_2_VERSION, finance));
  EXPECT_TRUE(HandshakeSucceeds(gateway_->port(), TLS1_3_VERSION,
                                TLS1_3_VERSION, finance));
  EXPECT_FALSE(HandshakeSucceeds(gateway_->port(), TLS1_VERSION, TLS1_1_VERSION,
                                 finance));
}

// The health port follows the drain like the API port's health service: a
// kubelet probing it sees NOT_SERVING as soon as SIGTERM's drain starts.
TEST_F(MtlsTest, HealthPortGoesNotServingWhileDraining) {
  const emulator::IssuedCert finance =
      Client(*mesh_, "finance", absl::StrCat("URI:", kFinance));
  emulator::Fault slow;
  slow.kind = emulator::Fault::Kind::kLatency;
  slow.latency = absl::Seconds(2);
  emulator_->SetFault(slow);
  auto channel = Channel(&finance);
  std::thread in_flight([&] { GetProduct(*channel, "eu"); });
  ASSERT_TRUE(emulator_->WaitForRequests(1, absl::Seconds(10)));
  channel_ =
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", gateway_->health_port()),
                          grpc::InsecureChannelCredentials());
  EXPECT_EQ(HealthStatus(""), 1);
  std::thread drain([&] { gateway_->Shutdown(absl::Seconds(5)); });
  int status = 1;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (status == 1 && absl::Now() < deadline) status = HealthStatus("");
  EXPECT_EQ(status, 2);
  EXPECT_EQ(HealthStatus("liveness"), 2);
  drain.join();
  in_flight.join();
}

// Certificates (the server's, the client CA bundle) and the policy change
// while a client keeps calling, on its connection and on new ones: no call
// fails. Each reload is awaited through what it changes, not by sleeping.
TEST_F(MtlsTest, CertificatesAndPolicyRotateUnderLoadWithoutAFailedCall) {
  const emulator::IssuedCert finance =
      Client(*mesh_, "finance", absl::StrCat("URI:", kFinance));
  const emulator::IssuedCert support =
      Client(*mesh_, "support-tool", absl::StrCat("URI:", kSupportTool));
  std::atomic<bool> stop{false};
  std::atomic<int> calls{0};
  std::atomic<int> failures{0};
  std::string first_failure;
  std::thread load([&] {
    auto channel = Channel(&finance);
    for (int i = 0; !stop.load(); ++i) {
      // Every 5th call on a new connection (a new handshake).
      if (i % 5 == 0) channel = Channel(&finance);
      const grpc::Status status = GetProduct(*channel, "eu");
      calls.fetch_add(1);
      if (!status.ok() && failures.fetch_add(1) == 0) {
        first_failure = status.error_message();
      }
    }
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(30);

  // 1. A new server certificate: new connections get it.
  const std::string old_cert = server_cert_pem_;
  InstallServerCertificate("server-v2");
  std::string seen;
  while (absl::Now() < deadline) {
    ASSERT_TRUE(GetProduct(*Channel(&finance), "eu", &seen).ok());
    if (seen == server_cert_pem_) break;
    EXPECT_EQ(seen, old_cert);
  }
  EXPECT_EQ(seen, server_cert_pem_);

  // 2. The policy lets support-tool read products too.
  auto support_channel = Channel(&support);
  EXPECT_EQ(GetProduct(*support_channel, "eu").error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  std::string policy = ReadFile(policy_file_);
  const std::string widened = absl::StrReplaceAll(
      policy, {{"\"/clink.gateway.v1.PaymentService/ListOrders\"",
                "\"/clink.gateway.v1.PaymentService/ListOrders\", "
                "\"/clink.gateway.v1.BillingService/GetProduct\""}});
  ASSERT_NE(widened, policy);
  WriteAtomically(policy_file_, widened);
  while (absl::Now() < deadline && !GetProduct(*support_channel, "eu").ok()) {
  }
  EXPECT_TRUE(GetProduct(*support_channel, "eu").ok());
  EXPECT_EQ(Metric("clink_gateway_authz_policy_reloads_total",
                   {{"result", "applied"}}),
            1);

  // 3. A broken policy: counted and ignored, the last good one stays.
  WriteAtomically(policy_file_, "{\"name\": \"broken\", \"allow_rules\": [");
  while (absl::Now() < deadline &&
         Metric("clink_gateway_authz_policy_reloads_total",
                {{"result", "rejected"}}) < 1) {
    ASSERT_TRUE(GetProduct(*support_channel, "eu").ok());
  }
  EXPECT_EQ(Metric("clink_gateway_authz_policy_reloads_total",
                   {{"result", "rejected"}}),
            1);
  EXPECT_TRUE(GetProduct(*support_channel, "eu").ok());

  // 4. A second client CA joins the bundle: its clients get in.
  auto next = emulator::TestCa::Create(pki_, "mesh-next");
  ASSERT_TRUE(next.ok()) << next.status();
  const emulator::IssuedCert rotated =
      Client(**next, "finance-next", absl::StrCat("URI:", kFinance));
  WriteAtomically(client_ca_file_,
                  absl::StrCat(mesh_->cert_pem(), (*next)->cert_pem()));
  while (absl::Now() < deadline && !GetProduct(*Channel(&rotated), "eu").ok()) {
  }
  EXPECT_TRUE(GetProduct(*Channel(&rotated), "eu").ok());

  stop.store(true);
  load.join();
  EXPECT_GT(calls.load(), 10);
  EXPECT_EQ(failures.load(), 0) << first_failure;
}

}  // namespace
}  // namespace clink_gateway::testing
