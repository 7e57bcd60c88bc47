// The egress policy end to end: the real gateway (in-process, real curl
// transport) against the emulator on 127.0.0.1, with canary listeners on
// addresses the policy denies that exist on this machine without root
// (127.0.0.2 and the rest of 127/8, ::1 when the host has IPv6 loopback).
// The policy exempts only 127.0.0.1/32 (the emulator), so every other
// loopback address is denied as "loopback".
//
// Each case asserts the stated error, the counter, and that the canary saw
// zero connections (connections that never happened cannot be observed any
// other way: the canary accepts and counts every TCP connection).
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdlib.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/credentials/testing/secret_volume.h"
#include "clink/gateway/v1/billing.grpc.pb.h"
#include "common/secret.h"
#include "common/testing/exposition.h"
#include "common/testing/http_get.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/gateway_server.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/merchant_api.h"
#include "tests/emulator/test_ca.h"
#include "tests/integration/tcp_test_server.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;
using Mode = TcpTestServer::Mode;

constexpr char kApiKey[] = "sk_test_egress_0123456789abcdef";

google::rpc::ErrorInfo ErrorInfoOf(const grpc::Status& status) {
  google::rpc::Status rich;
  google::rpc::ErrorInfo info;
  if (!rich.ParseFromString(status.error_details())) return info;
  for (const auto& any : rich.details()) {
    if (any.type_url() == "type.googleapis.com/google.rpc.ErrorInfo") {
      info.ParseFromString(any.value());
    }
  }
  return info;
}

// base64(SHA-256(DER SubjectPublicKeyInfo)) of the first certificate in a PEM
// file: the CURLOPT_PINNEDPUBLICKEY form, computed independently of curl.
std::string PublicKeyPin(const std::string& pem_path) {
  FILE* file = std::fopen(pem_path.c_str(), "r");
  if (file == nullptr) return "";
  X509* cert = PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  if (cert == nullptr) return "";
  unsigned char* der = nullptr;
  const int length = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  X509_free(cert);
  if (length <= 0) return "";
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(der, static_cast<size_t>(length), digest);
  OPENSSL_free(der);
  return absl::StrCat(
      "sha256//",
      absl::Base64Escape(absl::string_view(reinterpret_cast<char*>(digest),
                                           sizeof(digest))));
}

class EgressTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = absl::StrCat(::testing::TempDir(), "/egressXXXXXX");
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    auto ca = emulator::GenerateTestCa(pattern);
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *std::move(ca);
    emulator::ClinkEmulator::Options emulator_options;
    emulator_options.api_keys = {kApiKey};
    emulator_options.tls_cert_pem_path = ca_.server_pem;
    auto emulator = emulator::ClinkEmulator::Start(emulator_options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);
    keys_ = std::make_unique<credentials::testing::SecretVolume>(
        absl::StrCat(pattern, "/clink-key"));
    keys_->Write({{"api-key", kApiKey}});
  }

  void TearDown() override {
    if (gateway_ != nullptr) gateway_->Shutdown(absl::Seconds(2));
    gateway_.reset();
    emulator_.reset();
  }

  // What every gateway here starts from: the emulator, and an egress policy
  // that exempts only the emulator's address.
  server::GatewayOptions BaseOptions() const {
    server::GatewayOptions options;
    options.grpc_listen = "127.0.0.1:0";
    options.grpc_insecure = true;
    options.metrics_listen = "127.0.0.1:0";
    options.clink_base_url = emulator_->base_url();
    options.merchants = {{"default", keys_->dir(), ""}};
    options.ca_bundle = ca_.ca_cert_pem;
    options.upstream_connect_timeout = absl::Seconds(2);
    options.egress_allow_cidrs = "127.0.0.1/32";
    return options;
  }

  absl::Status StartGateway(server::GatewayOptions options) {
    auto gateway = server::GatewayServer::BuildAndStart(std::move(options));
    if (!gateway.ok()) return gateway.status();
    gateway_ = *std::move(gateway);
    // The test's own gRPC client must not go through the proxy variables
    // ProxyEnvironmentVariablesAreIgnored sets.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
    channel_ = grpc::CreateCustomChannel(
        absl::StrCat("127.0.0.1:", gateway_->port()),
        grpc::InsecureChannelCredentials(), args);
    billing_ = v1::BillingService::NewStub(channel_);
    return absl::OkStatus();
  }

  // The emulator's base URL with `host` instead of 127.0.0.1 (the test
  // certificate is valid for localhost, 127.0.0.1 and ::1).
  std::string UrlWithHost(absl::string_view host, int port) const {
    return absl::StrCat("https://", host, ":", port, "/api");
  }

  grpc::Status GetBasicProduct() {
    v1::GetProductRequest get;
    get.set_product_id(emulator::kSeedProductBasic);
    v1::GetProductResponse product;
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    return billing_->GetProduct(&context, get, &product);
  }

  double Metric(absl::string_view name, absl::string_view reason) {
    const absl::StatusOr<HttpGetResponse> response =
        HttpGet(gateway_->metrics_port(), "/metrics");
    EXPECT_TRUE(response.ok()) << response.status();
    if (!response.ok()) return -1;
    return Sum(ParseExposition(response->body), name,
               {{"reason", std::string(reason)}});
  }
  double Denied(absl::string_view reason) {
    return Metric("clink_gateway_egress_denied_total", reason);
  }
  double WouldDeny(absl::string_view reason) {
    return Metric("clink_gateway_egress_would_deny_total", reason);
  }

  // A canary on `address` and `port` (0: any); null (with a note) when the
  // address cannot be bound on this machine.
  static std::unique_ptr<TcpTestServer> Canary(const std::string& address,
                                               int port = 0) {
    TcpTestServer::Options options;
    options.mode = Mode::kCanary;
    options.address = address;
    options.port = port;
    auto canary = TcpTestServer::Start(options);
    if (!canary.ok()) {
      std::fprintf(stderr, "no canary on %s: %s\n", address.c_str(),
                   std::string(canary.status().message()).c_str());
      return nullptr;
    }
    return *std::move(canary);
  }

  static std::unique_ptr<TcpTestServer> Server(TcpTestServer::Options options) {
    auto server = TcpTestServer::Start(std::move(options));
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? *std::move(server) : nullptr;
  }

  void ExpectEgressDenied(const grpc::Status& status, absl::string_view reason,
                          absl::string_view address) {
    EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
        << status.error_message();
    EXPECT_NE(status.error_message().find(
                  absl::StrCat("egress denied: ", address, " is ")),
              std::string::npos)
        << status.error_message();
    const google::rpc::ErrorInfo info = ErrorInfoOf(status);
    EXPECT_EQ(info.reason(), "EGRESS_DENIED");
    EXPECT_EQ(info.domain(), "gateway.clink");
    EXPECT_EQ(info.metadata().count("outcome") ? info.metadata().at("outcome")
                                               : "",
              "not_sent");
    EXPECT_EQ(info.metadata().count("egress_reason")
                  ? info.metadata().at("egress_reason")
                  : "",
              reason);
  }

  emulator::TestCaFiles ca_;
  std::unique_ptr<emulator::ClinkEmulator> emulator_;
  std::unique_ptr<credentials::testing::SecretVolume> keys_;
  std::unique_ptr<server::GatewayServer> gateway_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::BillingService::Stub> billing_;
};

// ---------------------------------------------------------------------------
// A base URL that is a denied IP literal never starts.

TEST_F(EgressTest, BaseUrlOnADeniedLiteralIsRefusedAtStartup) {
  std::unique_ptr<TcpTestServer> canary = Canary("127.0.0.2");
  ASSERT_NE(canary, nullptr);
  server::GatewayOptions options = BaseOptions();
  options.clink_base_url = UrlWithHost("127.0.0.2", canary->port());
  const absl::Status status = StartGateway(std::move(options));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("--clink_base_url points at a loopback "
                                  "address"),
            std::string::npos)
      << status;
  EXPECT_NE(status.message().find("--egress_allow_cidrs=127.0.0.0/8"),
            std::string::npos)
      << status;
  // Disguised forms of the same address, IPv4-mapped IPv6 included.
  for (const char* host : {"2130706434", "0177.0.0.2", "0x7f.0.0.2",
                           "[::ffff:127.0.0.2]", "[::1]"}) {
    options = BaseOptions();
    options.clink_base_url = UrlWithHost(host, canary->port());
    EXPECT_EQ(StartGateway(std::move(options)).code(),
              absl::StatusCode::kFailedPrecondition)
        << host;
  }
  EXPECT_EQ(canary->accepted(), 0);
}

// ---------------------------------------------------------------------------
// Names that resolve to denied addresses (the test resolver override stands in
// for DNS; the checks apply to it exactly as to a DNS answer).

struct ResolvedCase {
  const char* address;  // what "localhost" resolves to
  const char* canary;   // where a canary listens (same port), or null
  const char* reason;
};

TEST_F(EgressTest, HostNameResolvingToADeniedAddressIsRefused) {
  const int port = emulator_->port();
  const ResolvedCase kCases[] = {
      {"127.0.0.2", "127.0.0.2", "loopback"},
      {"127.1.2.3", "127.1.2.3", "loopback"},
      {"::1", "::1", "loopback"},
      // IPv4-mapped: Linux would connect it to the IPv4 canary.
      {"::ffff:127.0.0.2", "127.0.0.2", "loopback"},
      // No canary possible without root; a connection attempt would time out
      // (kConnect) instead of this error.
      {"10.1.2.3", nullptr, "private"},
      {"169.254.169.254", nullptr, "link_local"},
      {"100.64.0.1", nullptr, "carrier_grade_nat"},
      {"0.0.0.0", nullptr, "unspecified"},
      {"fd00::1", nullptr, "unique_local"},
  };
  for (const ResolvedCase& c : kCases) {
    SCOPED_TRACE(c.address);
    std::unique_ptr<TcpTestServer> canary;
    if (c.canary != nullptr) {
      canary = Canary(c.canary, port);
      if (canary == nullptr) continue;  // e.g. no IPv6 loopback here
    }
    server::GatewayOptions options = BaseOptions();
    options.clink_base_url = UrlWithHost("localhost", port);
    const std::string address = absl::StrContains(c.address, ":")
                                    ? absl::StrCat("[", c.address, "]")
                                    : std::string(c.address);
    const std::string entry = absl::StrCat("localhost:", port, ":", address);
    options.egress_resolve_overrides_for_test = [entry] {
      return std::vector<std::string>{entry};
    };
    ASSERT_TRUE(StartGateway(std::move(options)).ok());
    const absl::Time start = absl::Now();
    ExpectEgressDenied(GetBasicProduct(), c.reason, c.address);
    EXPECT_LT(absl::Now() - start, absl::Seconds(1));  // refused, not timed out
    EXPECT_EQ(Denied(c.reason), 1);
    if (canary != nullptr) EXPECT_EQ(canary->accepted(), 0);
    EXPECT_TRUE(emulator_->requests().empty());
    gateway_->Shutdown(absl::ZeroDuration());
    gateway_.reset();
  }
}

TEST_F(EgressTest, MixedAnswersConnectOnlyToTheAllowedAddress) {
  const int port = emulator_->port();
  std::unique_ptr<TcpTestServer> canary = Canary("127.0.0.2", port);
  ASSERT_NE(canary, nullptr);
  server::GatewayOptions options = BaseOptions();
  options.clink_base_url = UrlWithHost("localhost", port);
  // The denied address first: libcurl would try it first.
  const std::string entry =
      absl::StrCat("localhost:", port, ":127.0.0.2,127.0.0.1");
  options.egress_resolve_overrides_for_test = [entry] {
    return std::vector<std::string>{entry};
  };
  ASSERT_TRUE(StartGateway(std::move(options)).ok());
  const grpc::Status status = GetBasicProduct();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(canary->accepted(), 0);
  EXPECT_EQ(emulator_->requests().size(), 1u);
  EXPECT_EQ(Denied("loopback"), 1);
}

// The first answer is allowed, the next one (after the pooled connection is
// gone) is loopback: the check is on the address of each new connection, so
// the second call is refused.
TEST_F(EgressTest, RebindingResolverIsCheckedAtConnectTime) {
  TcpTestServer::Options relay_options;
  relay_options.mode = Mode::kRelay;
  relay_options.backend_port = emulator_->port();
  std::unique_ptr<TcpTestServer> relay = Server(relay_options);
  ASSERT_NE(relay, nullptr);
  const int port = relay->port();
  std::unique_ptr<TcpTestServer> canary = Canary("127.0.0.2", port);
  ASSERT_NE(canary, nullptr);

  absl::Mutex mu;
  std::string answer = "127.0.0.1";
  server::GatewayOptions options = BaseOptions();
  options.clink_base_url = UrlWithHost("localhost", port);
  options.egress_resolve_overrides_for_test = [&mu, &answer, port] {
    absl::MutexLock lock(&mu);
    return std::vector<std::string>{
        absl::StrCat("localhost:", port, ":", answer)};
  };
  ASSERT_TRUE(StartGateway(std::move(options)).ok());
  const grpc::Status first = GetBasicProduct();
  ASSERT_TRUE(first.ok()) << first.error_message();
  EXPECT_EQ(relay->accepted(), 1);
  {
    absl::MutexLock lock(&mu);
    answer = "127.0.0.2";
  }
  relay->CloseConnections();  // the pooled connection goes
  absl::SleepFor(absl::Milliseconds(100));
  ExpectEgressDenied(GetBasicProduct(), "loopback", "127.0.0.2");
  EXPECT_EQ(canary->accepted(), 0);
  EXPECT_EQ(relay->accepted(), 1);
  EXPECT_EQ(emulator_->requests().size(), 1u);
  EXPECT_EQ(Denied("loopback"), 1);
}

// A 302 to an internal address is a response, never followed.
TEST_F(EgressTest, RedirectToAnInternalAddressIsNotFollowed) {
  std::unique_ptr<TcpTestServer> canary = Canary("127.0.0.2");
  ASSERT_NE(canary, nullptr);
  TcpTestServer::Options redirect_options;
  redirect_options.mode = Mode::kRedirect;
  redirect_options.redirect_to =
      absl::StrCat("https://127.0.0.2:", canary->port(), "/api/product/x");
  std::unique_ptr<TcpTestServer> redirect = Server(redirect_options);
  ASSERT_NE(redirect, nullptr);
  server::GatewayOptions options = BaseOptions();
  options.allow_plaintext_upstream = true;
  options.clink_base_url =
      absl::StrCat("http://127.0.0.1:", redirect->port(), "/api");
  ASSERT_TRUE(StartGateway(std::move(options)).ok());
  const grpc::Status status = GetBasicProduct();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INTERNAL)
      << status.error_message();
  EXPECT_EQ(ErrorInfoOf(status).reason(), "HTTP_302");
  EXPECT_EQ(redirect->accepted(), 1);
  EXPECT_EQ(canary->accepted(), 0);
}

TEST_F(EgressTest, ProxyEnvironmentVariablesAreIgnored) {
  std::unique_ptr<TcpTestServer> canary = Canary("127.0.0.2");
  ASSERT_NE(canary, nullptr);
  const std::string proxy = absl::StrCat("http://127.0.0.2:", canary->port());
  const char* kVars[] = {"https_proxy", "HTTPS_PROXY", "http_proxy",
                         "ALL_PROXY",   "all_proxy"};
  for (const char* var : kVars) ::setenv(var, proxy.c_str(), 1);
  ::setenv("NO_PROXY", "", 1);
  const absl::Status started = StartGateway(BaseOptions());
  const grpc::Status status =
      started.ok() ? GetBasicProduct() : grpc::Status::CANCELLED;
  for (const char* var : kVars) ::unsetenv(var);
  ::unsetenv("NO_PROXY");
  ASSERT_TRUE(started.ok()) << started;
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(canary->accepted(), 0);
  EXPECT_EQ(emulator_->requests().size(), 1u);
}

// ---------------------------------------------------------------------------
// --egress_proxy: a real CONNECT proxy.

TEST_F(EgressTest, ExplicitProxyCarriesTheCallThroughConnect) {
  TcpTestServer::Options proxy_options;
  proxy_options.mode = Mode::kConnectProxy;
  std::unique_ptr<TcpTestServer> proxy = Server(proxy_options);
  ASSERT_NE(proxy, nullptr);
  server::GatewayOptions options = BaseOptions();
  // The proxy under its own name, so its allow-listing is its own.
  options.egress_proxy = absl::StrCat("http://proxy.test:", proxy->port());
  options.egress_allow_hosts = {"proxy.test"};
  const std::string entry =
      absl::StrCat("proxy.test:", proxy->port(), ":127.0.0.1");
  options.egress_resolve_overrides_for_test = [entry] {
    return std::vector<std::string>{entry};
  };
  ASSERT_TRUE(StartGateway(std::move(options)).ok());
  const grpc::Status status = GetBasicProduct();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(proxy->accepted(), 1);
  EXPECT_EQ(proxy->connect_targets(),
            std::vector<std::string>{
                absl::StrCat("127.0.0.1:", emulator_->port())});
  EXPECT_EQ(emulator_->requests().size(), 1u);
}

TEST_F(EgressTest, ProxyNotOnTheAllowListIsRefusedAtStartup) {
  TcpTestServer::Options proxy_options;
  proxy_options.mode = Mode::kConnectProxy;
  std::unique_ptr<TcpTestServer> proxy = Server(proxy_options);
  ASSERT_NE(proxy, nullptr);
  server::GatewayOptions options = BaseOptions();
  options.egress_proxy = absl::StrCat("http://proxy.test:", proxy->port());
  const absl::Status status = StartGateway(std::move(options));
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("--egress_allow_hosts"), std::string::npos)
      << status;
  EXPECT_EQ(proxy->accepted(), 0);
}

// An allow-listed proxy name that resolves to a denied address: the addresses
// checked with a proxy are the proxy's.
TEST_F(EgressTest, ProxyOnADeniedAddressIsRefused) {
  std::unique_ptr<TcpTestServer> canary = Canary("127.0.0.2");
  ASSERT_NE(canary, nullptr);
  server::GatewayOptions options = BaseOptions();
  options.egress_proxy = absl::StrCat("http://proxy.test:", canary->port());
  options.egress_allow_hosts = {"proxy.test"};
  const std::string entry =
      absl::StrCat("proxy.test:", canary->port(), ":127.0.0.2");
  options.egress_resolve_overrides_for_test = [entry] {
    return std::vector<std::string>{entry};
  };
  ASSERT_TRUE(StartGateway(std::move(options)).ok());
  ExpectEgressDenied(GetBasicProduct(), "loopback", "127.0.0.2");
  EXPECT_EQ(canary->accepted(), 0);
  EXPECT_EQ(Denied("loopback"), 1);
}

// ---------------------------------------------------------------------------
// --egress_source_address.

TEST_F(EgressTest, SourceAddressIsTheOneTheServerSees) {
  TcpTestServer::Options relay_options;
  relay_options.mode = Mode::kRelay;
  relay_options.backend_port = emulator_->port();
  std::unique_ptr<TcpTestServer> relay = Server(relay_options);
  ASSERT_NE(relay, nullptr);
  server::GatewayOptions options = BaseOptions();
  options.clink_base_url = UrlWithHost("127.0.0.1", relay->port());
  options.egress_source_address = "host!127.0.0.3";
  ASSERT_TRUE(StartGateway(std::move(options)).ok());
  const grpc::Status status = GetBasicProduct();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(relay->peers(), std::vector<std::string>{"127.0.0.3"});
}

TEST_F(EgressTest, MissingSourceAddressFailsClosed) {
  TcpTestServer::Options relay_options;
  relay_options.mode = Mode::kRelay;
  relay_options.backend_port = emulator_->port();
  std::unique_ptr<TcpTestServer> relay = Server(relay_options);
  ASSERT_NE(relay, nullptr);
  for (const char* source : {"host!192.0.2.1", "192.0.2.1", "if!nosuchif0"}) {
    SCOPED_TRACE(source);
    server::GatewayOptions options = BaseOptions();
    options.clink_base_url = UrlWithHost("127.0.0.1", relay->port());
    options.egress_source_address = source;
    ASSERT_TRUE(StartGateway(std::move(options)).ok());
    const grpc::Status status = GetBasicProduct();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE)
        << status.error_message();
    EXPECT_NE(status.error_message().find("cannot bind the source address"),
              std::string::npos)
        << status.error_message();
    EXPECT_EQ(ErrorInfoOf(status).metadata().at("outcome"), "not_sent");
    gateway_->Shutdown(absl::ZeroDuration());
    gateway_.reset();
  }
  EXPECT_EQ(relay->accepted(), 0);  // no fallback to another source
  EXPECT_TRUE(emulator_->requests().empty());
}

// ---------------------------------------------------------------------------
// --clink_pinned_public_key.

TEST_F(EgressTest, PinnedPublicKeyMustMatchTheServers) {
  const std::string pin = PublicKeyPin(ca_.server_pem);
  ASSERT_FALSE(pin.empty());
  server::GatewayOptions options = BaseOptions();
  // Another key first: any listed key may match.
  options.clink_pinned_public_key = absl::StrCat(
      "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=;", pin);
  ASSERT_TRUE(StartGateway(std::move(options)).ok());
  const grpc::Status ok = GetBasicProduct();
  EXPECT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_EQ(emulator_->requests().size(), 1u);
  gateway_->Shutdown(absl::ZeroDuration());
  gateway_.reset();

  // The CA's key is not the server's: refused, nothing sent.
  options = BaseOptions();
  options.clink_pinned_public_key = PublicKeyPin(ca_.ca_cert_pem);
  ASSERT_TRUE(StartGateway(std::move(options)).ok());
  const grpc::Status wrong = GetBasicProduct();
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAVAILABLE)
      << wrong.error_message();
  EXPECT_NE(wrong.error_message().find("does not match the pinned key"),
            std::string::npos)
      << wrong.error_message();
  EXPECT_EQ(ErrorInfoOf(wrong).metadata().at("outcome"), "not_sent");
  EXPECT_EQ(emulator_->requests().size(), 1u);
}

// ---------------------------------------------------------------------------
// Report-only mode.

TEST_F(EgressTest, ReportOnlyLetsADeniedCallThroughAndCountsIt) {
  const int port = emulator_->port();
  server::GatewayOptions options = BaseOptions();
  options.egress_allow_cidrs = "";  // the emulator's 127.0.0.1 is denied too
  options.egress_report_only = true;
  // One upstream shard: each shard's transport checks the base URL's host
  // once when it is created, and this test counts that check.
  options.upstream_shards = 1;
  ASSERT_TRUE(StartGateway(std::move(options)).ok());
  // Create's host check on the 127.0.0.1 base URL.
  EXPECT_EQ(WouldDeny("loopback"), 1);
  const grpc::Status status = GetBasicProduct();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(emulator_->requests().size(), 1u);
  EXPECT_EQ(WouldDeny("loopback"), 2);
  EXPECT_EQ(Denied("loopback"), 0);
  (void)port;
}

}  // namespace
}  // namespace clink_gateway::testing
