// The clink_gateway binary refuses bad configuration with a clear message and a
// non-zero exit, before it listens.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

extern char** environ;

namespace clink_gateway::testing {
namespace {

struct GatewayRun {
  int exit_code = -1;
  std::string stderr_text;
};

// Runs the gateway with `flags` and an environment without CLINK_API_KEY.
GatewayRun RunGateway(const std::vector<std::string>& flags) {
  const std::string binary = "server/clink_gateway";
  // Not the default 9464: tests run side by side (`flags` may override).
  // Nor the default /var/lib/clink-gateway: a state dir of the test's own.
  // Plaintext gRPC unless a test says otherwise (a later flag wins).
  std::vector<std::string> args = {
      binary, "--metrics_listen=127.0.0.1:0", "--grpc_insecure",
      absl::StrCat("--state_dir=", ::testing::TempDir(), "/state")};
  args.insert(args.end(), flags.begin(), flags.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string(*e).rfind("CLINK_API_KEY=", 0) != 0) env.push_back(*e);
  }
  env.push_back(nullptr);

  int err[2];
  EXPECT_EQ(pipe(err), 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  posix_spawn_file_actions_addclose(&actions, err[0]);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  pid_t pid = 0;
  GatewayRun run;
  if (posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(),
                  env.data()) != 0) {
    ADD_FAILURE() << "cannot start " << binary;
    return run;
  }
  posix_spawn_file_actions_destroy(&actions);
  close(err[1]);
  char buffer[4096];
  ssize_t n;
  while ((n = read(err[0], buffer, sizeof(buffer))) > 0)
    run.stderr_text.append(buffer, n);
  close(err[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

// A key directory named `name` under the test's temp dir whose api-key holds
// `key`.
std::string KeyDir(absl::string_view name = "keys",
                   absl::string_view key = "sk_test_main_0123456789\n") {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/", name);
  mkdir(dir.c_str(), 0700);
  std::ofstream(absl::StrCat(dir, "/api-key")) << key;
  return dir;
}

std::string WriteFile(absl::string_view name, absl::string_view contents) {
  const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
  std::ofstream(path) << contents;
  return path;
}

TEST(GatewayMainTest, MissingKeyExitsWithAClearMessage) {
  const GatewayRun run = RunGateway({"--grpc_listen=127.0.0.1:0"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.stderr_text.find("--api_key_dir"), std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, NeitherTlsNorInsecureIsRefused) {
  const GatewayRun run =
      RunGateway({"--grpc_listen=127.0.0.1:0", "--api_key_dir=" + KeyDir(),
                  "--grpc_insecure=false"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.stderr_text.find("must authenticate callers"),
            std::string::npos)
      << run.stderr_text;
  EXPECT_NE(run.stderr_text.find("--grpc_insecure"), std::string::npos);
  EXPECT_NE(run.stderr_text.find("--grpc_tls_cert_file"), std::string::npos);
}

TEST(GatewayMainTest, IncompleteOrContradictoryTlsFlagsAreRefused) {
  const std::string cert = WriteFile("tls-cert.pem", "not a certificate");
  GatewayRun run = RunGateway({"--grpc_listen=127.0.0.1:0",
                               "--api_key_dir=" + KeyDir(),
                               "--grpc_insecure=false",
                               "--grpc_tls_cert_file=" + cert});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.stderr_text.find("--grpc_tls_key_file is missing"),
            std::string::npos)
      << run.stderr_text;
  run = RunGateway({"--grpc_listen=127.0.0.1:0", "--api_key_dir=" + KeyDir(),
                    "--grpc_tls_cert_file=" + cert,
                    "--grpc_tls_key_file=" + cert,
                    "--grpc_client_ca_file=" + cert});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.stderr_text.find("contradict"), std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, InvalidAuthzPolicyIsRefused) {
  const std::string policy =
      WriteFile("bad-policy.json", R"({"name": "p", "allow_rules": [{}]})");
  const GatewayRun run =
      RunGateway({"--grpc_listen=127.0.0.1:0", "--api_key_dir=" + KeyDir(),
                  "--authz_policy_file=" + policy});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.stderr_text.find("--authz_policy_file"), std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, EmptyKeyFileIsRefused) {
  const GatewayRun run = RunGateway(
      {"--grpc_listen=127.0.0.1:0", "--api_key_dir=" + KeyDir("empty", "\n")});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.stderr_text.find("is empty"), std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, PlaintextUpstreamNeedsTheFlag) {
  const GatewayRun run =
      RunGateway({"--grpc_listen=127.0.0.1:0", "--api_key_dir=" + KeyDir(),
                  "--clink_base_url=http://127.0.0.1:1/api"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.stderr_text.find("--allow_plaintext_upstream"),
            std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, BadListenAddressIsRefused) {
  const GatewayRun run = RunGateway(
      {"--grpc_listen=not-an-address", "--api_key_dir=" + KeyDir()});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.stderr_text.find("--grpc_listen"), std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, UpstreamTimeoutBeyondTheTimestampWindowIsRefused) {
  const GatewayRun run =
      RunGateway({"--grpc_listen=127.0.0.1:0", "--api_key_dir=" + KeyDir(),
                  "--max_rpc_timeout=10m"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.stderr_text.find("--max_rpc_timeout"), std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, KeyWithAControlCharacterIsRefused) {
  const GatewayRun run = RunGateway(
      {"--grpc_listen=127.0.0.1:0",
       "--api_key_dir=" + KeyDir("bad", "sk_test_abc\r\nX-Injected: 1\n")});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.stderr_text.find("API key"), std::string::npos)
      << run.stderr_text;
  EXPECT_EQ(run.stderr_text.find("sk_test_abc"), std::string::npos);
}

TEST(GatewayMainTest, KeyDirAndMerchantsConfigAreExclusive) {
  const GatewayRun run = RunGateway(
      {"--grpc_listen=127.0.0.1:0", "--api_key_dir=" + KeyDir(),
       "--merchants_config=" + WriteFile("both.textproto", "")});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.stderr_text.find("exactly one of --api_key_dir"),
            std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, MerchantsConfigIsParsedAndChecked) {
  const std::string acme = KeyDir("acme");
  const GatewayRun syntax = RunGateway(
      {"--grpc_listen=127.0.0.1:0",
       "--merchants_config=" +
           WriteFile("syntax.textproto", "merchants { name: \"acme\" ")});
  EXPECT_EQ(syntax.exit_code, 2);
  EXPECT_NE(syntax.stderr_text.find("not a text-format"), std::string::npos)
      << syntax.stderr_text;

  // A key where a quoted path belongs, or a key file given as the config:
  // the message says where, never what.
  // (The pasted value is assembled so secret scanners do not take this
  // fixture for a committed production key.)
  const std::string pasted_key = absl::StrCat("sk_prod_", "FAKE0pasted0key");
  for (const std::string& text :
       {absl::StrCat("merchants { key_dir: ", pasted_key, " }"),
        absl::StrCat(pasted_key, "\n")}) {
    const GatewayRun pasted = RunGateway(
        {"--grpc_listen=127.0.0.1:0",
         "--merchants_config=" + WriteFile("pasted.textproto", text)});
    EXPECT_EQ(pasted.exit_code, 2);
    EXPECT_NE(pasted.stderr_text.find("error at line "),
              std::string::npos)
        << pasted.stderr_text;
    EXPECT_EQ(pasted.stderr_text.find(pasted_key), std::string::npos)
        << pasted.stderr_text;
  }

  // Parsed: the default names no configured merchant.
  const GatewayRun default_missing = RunGateway(
      {"--grpc_listen=127.0.0.1:0",
       "--merchants_config=" +
           WriteFile("default.textproto",
                     absl::StrCat("default_merchant: \"globex\"\n"
                                  "merchants { name: \"acme\" key_dir: \"",
                                  acme, "\" }\n"))});
  EXPECT_EQ(default_missing.exit_code, 2);
  EXPECT_NE(default_missing.stderr_text.find(
                "default merchant \"globex\" is not a configured merchant"),
            std::string::npos)
      << default_missing.stderr_text;

  const GatewayRun duplicate = RunGateway(
      {"--grpc_listen=127.0.0.1:0",
       "--merchants_config=" +
           WriteFile("dup.textproto",
                     absl::StrCat("merchants { name: \"acme\" key_dir: \"",
                                  acme, "\" }\nmerchants { name: \"acme\" "
                                  "key_dir: \"", acme, "\" }\n"))});
  EXPECT_EQ(duplicate.exit_code, 2);
  EXPECT_NE(duplicate.stderr_text.find("configured twice"), std::string::npos)
      << duplicate.stderr_text;
}

TEST(GatewayMainTest, PortAlreadyInUseIsRefused) {
  // Hold a port the way another gateway would (gRPC would share it through
  // SO_REUSEPORT if the gateway allowed it).
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const GatewayRun run = RunGateway(
      {absl::StrCat("--grpc_listen=127.0.0.1:", ntohs(addr.sin_port)),
       "--api_key_dir=" + KeyDir()});
  close(fd);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.stderr_text.find("cannot listen"), std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, MetricsPortAlreadyInUseIsRefused) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const GatewayRun run = RunGateway(
      {"--grpc_listen=127.0.0.1:0",
       absl::StrCat("--metrics_listen=127.0.0.1:", ntohs(addr.sin_port)),
       "--api_key_dir=" + KeyDir()});
  close(fd);
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.stderr_text.find("cannot serve metrics"), std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, BadMetricsAddressIsRefused) {
  for (const char* listen : {"9464", "[::]:9464"}) {
    const GatewayRun run = RunGateway(
        {"--grpc_listen=127.0.0.1:0", absl::StrCat("--metrics_listen=", listen),
         "--api_key_dir=" + KeyDir()});
    EXPECT_NE(run.exit_code, 0) << listen;
    EXPECT_NE(run.stderr_text.find("--metrics_listen"), std::string::npos)
        << run.stderr_text;
  }
}

// One gateway per state directory: a second one (here: the lock held the way
// a running gateway holds it) refuses to start rather than share the keys.
TEST(GatewayMainTest, StateDirInUseIsRefused) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/busy-state");
  mkdir(dir.c_str(), 0700);
  const int fd = open(absl::StrCat(dir, "/LOCK").c_str(),
                      O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(flock(fd, LOCK_EX | LOCK_NB), 0);
  const GatewayRun run =
      RunGateway({"--grpc_listen=127.0.0.1:0", "--api_key_dir=" + KeyDir(),
                  "--state_dir=" + dir});
  close(fd);
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.stderr_text.find("in use by another gateway process"),
            std::string::npos)
      << run.stderr_text;
  EXPECT_NE(run.stderr_text.find("--state_dir"), std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, BadIdempotencyStoreIsRefused) {
  const GatewayRun run =
      RunGateway({"--grpc_listen=127.0.0.1:0", "--api_key_dir=" + KeyDir(),
                  "--idempotency_store=disk"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(
      run.stderr_text.find("--idempotency_store must be sqlite or memory"),
      std::string::npos)
      << run.stderr_text;
}

TEST(GatewayMainTest, UnknownFlagIsRefused) {
  const GatewayRun run = RunGateway({"--no_such_flag=1"});
  EXPECT_NE(run.exit_code, 0);
  EXPECT_NE(run.stderr_text.find("no_such_flag"), std::string::npos)
      << run.stderr_text;
}

}  // namespace
}  // namespace clink_gateway::testing
