// clink_emulator_server: runs the Clink emulator standalone until SIGTERM or
// SIGINT.
//
//   clink_emulator_server --tls_dir=/tmp/clink-ca
//       --api_key_file=/run/secrets/clink_api_key
//   clink_emulator_server --plaintext --listen=127.0.0.1:0
//       --port_file=/tmp/emu.port
//       --merchant_keys=acme=sk_test_a1|sk_test_a2,globex=sk_test_b1
//
// --api_key_file / --api_keys / $CLINK_API_KEY give the keys of the merchant
// account "default"; --merchant_keys adds more accounts, each with its own
// objects (see clink_emulator.h).
//
// --webhook_urls and --webhook_secret_files make the accounts deliver signed
// webhook events (see webhook_sender.h); /__emulator/webhooks changes them at
// run time.
//
// Prints exactly one line on success, "clink-emulator listening on <base_url>".
// API key values are never printed, not even in error messages.
#include <signal.h>
#include <stdio.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/test_ca.h"

ABSL_FLAG(
    std::string, listen, "127.0.0.1:8443",
    "ADDRESS:PORT to listen on; port 0 picks a free port (see --port_file)");
ABSL_FLAG(
    std::string, api_key_file, "",
    "File holding the accepted API keys, one per line ('#' starts a comment)");
ABSL_FLAG(
    std::vector<std::string>, api_keys, {},
    "Comma-separated accepted API keys. Without this and --api_key_file, the "
    "CLINK_API_KEY environment variable is used. These keys (from any of the "
    "three sources) belong to the merchant account \"default\"");
ABSL_FLAG(std::vector<std::string>, merchant_keys, {},
          "More merchant accounts, each with its own orders, customers and "
          "sessions: comma-separated NAME=KEY1|KEY2 entries, e.g. "
          "acme=sk_test_a1|sk_test_a2,globex=sk_test_b1 (two keys model a key "
          "roll). Names must be unique and not \"default\" when default keys "
          "are given; a key may belong to one account only");
ABSL_FLAG(std::string, tls_dir, "",
          "Generate a throwaway CA into DIR and serve HTTPS with a certificate "
          "it signs; "
          "clients trust DIR/ca.pem");
ABSL_FLAG(bool, plaintext, false, "Serve plain HTTP instead of HTTPS");
ABSL_FLAG(std::string, port_file, "",
          "Write the bound port to this file once listening");
ABSL_FLAG(absl::Duration, latency, absl::ZeroDuration(),
          "Latency added to every /api request, e.g. 200ms");
ABSL_FLAG(std::vector<std::string>, webhook_urls, {},
          "Where merchant accounts' webhook events are POSTed: comma-separated "
          "URL (for the account \"default\") or NAME=URL entries, e.g. "
          "http://127.0.0.1:8080/webhooks/clink,"
          "acme=http://127.0.0.1:8080/webhooks/clink/acme");
ABSL_FLAG(std::vector<std::string>, webhook_secret_files, {},
          "Each account's webhook signing secret (\"whsec_...\"): "
          "comma-separated FILE (for \"default\") or NAME=FILE entries, e.g. "
          "/run/keys/webhook-secret,acme=/run/keys/acme/webhook-secret (the "
          "gateway reads the same files). Every account in --webhook_urls "
          "needs one; secrets are never printed");
ABSL_FLAG(absl::Duration, webhook_retry_base_delay, absl::Seconds(1),
          "Wait before the first webhook retry; doubles after each failed "
          "attempt (10 attempts in all, as Clink)");
ABSL_FLAG(absl::Duration, webhook_timeout, absl::Seconds(10),
          "Longest wait for a webhook receiver's answer");
ABSL_FLAG(bool, webhook_legacy_payload, false,
          "Send events in Clink's older form (\"created\" ISO-8601, the "
          "resource directly under \"data\") instead of the current one "
          "(\"created\" in ms, the resource under \"data.object\")");
ABSL_FLAG(bool, http_status_errors, false,
          "Answer validation/business/not-found errors with HTTP 400/404 "
          "instead of HTTP 200 "
          "plus an error code in the envelope");

namespace clink_gateway::emulator {
namespace {

struct ListenAddress {
  std::string host;
  int port = 0;
};

absl::StatusOr<ListenAddress> ParseListen(absl::string_view text) {
  const size_t colon = text.rfind(':');
  ListenAddress address;
  if (colon == absl::string_view::npos ||
      !absl::SimpleAtoi(text.substr(colon + 1), &address.port) ||
      address.port < 0 || address.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--listen must be ADDRESS:PORT, got \"", text, "\""));
  }
  absl::string_view host = text.substr(0, colon);
  if (absl::ConsumePrefix(&host, "[")) absl::ConsumeSuffix(&host, "]");
  address.host = std::string(host);
  return address;
}

absl::StatusOr<std::vector<std::string>> LoadApiKeys() {
  std::vector<std::string> keys;
  if (const std::string path = absl::GetFlag(FLAGS_api_key_file);
      !path.empty()) {
    std::ifstream file(path);
    if (!file)
      return absl::NotFoundError(
          absl::StrCat("cannot read --api_key_file ", path));
    std::string line;
    while (std::getline(file, line)) {
      absl::string_view key = absl::StripAsciiWhitespace(line);
      if (!key.empty() && key[0] != '#') keys.emplace_back(key);
    }
  }
  for (const std::string& key : absl::GetFlag(FLAGS_api_keys)) {
    if (!key.empty()) keys.push_back(key);
  }
  if (keys.empty()) {
    if (const char* env = std::getenv("CLINK_API_KEY");
        env != nullptr && env[0] != '\0') {
      keys.emplace_back(absl::StripAsciiWhitespace(env));
    }
  }
  return keys;
}

// Parses --merchant_keys. Errors name the entry by position and the merchant,
// never a key.
absl::StatusOr<std::vector<MerchantAccount>> ParseMerchantKeys(
    const std::vector<std::string>& entries) {
  std::vector<MerchantAccount> accounts;
  for (size_t i = 0; i < entries.size(); ++i) {
    const absl::string_view entry = absl::StripAsciiWhitespace(entries[i]);
    if (entry.empty()) continue;
    const size_t equals = entry.find('=');
    if (equals == absl::string_view::npos || equals == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--merchant_keys entry #", i + 1,
                       " must be NAME=KEY1|KEY2 with a non-empty NAME"));
    }
    MerchantAccount account;
    account.name =
        std::string(absl::StripAsciiWhitespace(entry.substr(0, equals)));
    for (absl::string_view key :
         absl::StrSplit(entry.substr(equals + 1), '|')) {
      key = absl::StripAsciiWhitespace(key);
      if (key.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--merchant_keys entry #", i + 1, " (merchant \"",
                         account.name, "\") has an empty key"));
      }
      account.api_keys.emplace_back(key);
    }
    accounts.push_back(std::move(account));
  }
  return accounts;
}

// Splits "NAME=VALUE" or a bare VALUE (for the account "default") entries.
// A VALUE that is a URL may contain '=' after its "://".
std::map<std::string, std::string> ParseNamedList(
    const std::vector<std::string>& entries) {
  std::map<std::string, std::string> values;
  for (const std::string& entry : entries) {
    const absl::string_view text = absl::StripAsciiWhitespace(entry);
    if (text.empty()) continue;
    const size_t equals = text.find('=');
    const bool named =
        equals != absl::string_view::npos && equals < text.find("://");
    values[named ? std::string(text.substr(0, equals)) : "default"] =
        std::string(named ? text.substr(equals + 1) : text);
  }
  return values;
}

// Reads --webhook_urls and --webhook_secret_files. Errors name the account
// and the file, never a secret.
absl::StatusOr<std::map<std::string, WebhookTarget>> LoadWebhookTargets() {
  const std::map<std::string, std::string> files =
      ParseNamedList(absl::GetFlag(FLAGS_webhook_secret_files));
  std::map<std::string, WebhookTarget> targets;
  for (const auto& [name, url] :
       ParseNamedList(absl::GetFlag(FLAGS_webhook_urls))) {
    const auto file_name = files.find(name);
    if (file_name == files.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--webhook_secret_files has no secret for merchant \"", name, "\""));
    }
    std::ifstream file(file_name->second);
    std::stringstream secret;
    if (!file || !(secret << file.rdbuf())) {
      return absl::NotFoundError(
          absl::StrCat("cannot read the webhook secret of merchant \"", name,
                       "\" (", file_name->second, ")"));
    }
    targets[name] = WebhookTarget{
        url, std::string(absl::StripAsciiWhitespace(secret.str()))};
  }
  return targets;
}

// Writes `port` to `path` through a temporary file, so readers never see a
// partial file.
absl::Status WritePortFile(const std::string& path, int port) {
  const std::string temporary = absl::StrCat(path, ".tmp");
  {
    std::ofstream file(temporary, std::ios::trunc);
    file << port << "\n";
    if (!file.flush())
      return absl::UnavailableError(absl::StrCat("cannot write ", temporary));
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot rename ", temporary, " to ", path));
  }
  return absl::OkStatus();
}

absl::Status Run() {
  const bool plaintext = absl::GetFlag(FLAGS_plaintext);
  const std::string tls_dir = absl::GetFlag(FLAGS_tls_dir);
  if (plaintext == !tls_dir.empty()) {
    return absl::InvalidArgumentError(
        "pass exactly one of --tls_dir=DIR or --plaintext");
  }
  GATEWAY_ASSIGN_OR_RETURN(ListenAddress listen,
                           ParseListen(absl::GetFlag(FLAGS_listen)));
  ClinkEmulator::Options options;
  options.listen_address = listen.host;
  options.port = listen.port;
  options.http_status_errors = absl::GetFlag(FLAGS_http_status_errors);
  GATEWAY_ASSIGN_OR_RETURN(options.api_keys, LoadApiKeys());
  GATEWAY_ASSIGN_OR_RETURN(
      options.merchants, ParseMerchantKeys(absl::GetFlag(FLAGS_merchant_keys)));
  if (options.api_keys.empty() && options.merchants.empty()) {
    return absl::InvalidArgumentError(
        "no API key: pass --api_key_file, --api_keys or --merchant_keys, or "
        "set CLINK_API_KEY");
  }
  GATEWAY_ASSIGN_OR_RETURN(options.webhook_targets, LoadWebhookTargets());
  options.webhooks.base_delay = absl::GetFlag(FLAGS_webhook_retry_base_delay);
  options.webhooks.timeout = absl::GetFlag(FLAGS_webhook_timeout);
  if (absl::GetFlag(FLAGS_webhook_legacy_payload)) {
    options.webhooks.form = WebhookPayloadForm::kLegacy;
  }
  if (!tls_dir.empty()) {
    GATEWAY_ASSIGN_OR_RETURN(TestCaFiles ca, GenerateTestCa(tls_dir));
    options.tls_cert_pem_path = ca.server_pem;
  }

  // Block the stop signals before any thread starts, so every thread inherits
  // the mask and sigwait() below is the only receiver.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  GATEWAY_ASSIGN_OR_RETURN(std::unique_ptr<ClinkEmulator> emulator,
                           ClinkEmulator::Start(std::move(options)));
  if (const absl::Duration latency = absl::GetFlag(FLAGS_latency);
      latency > absl::ZeroDuration()) {
    Fault fault;
    fault.kind = Fault::Kind::kLatency;
    fault.count = -1;
    fault.latency = latency;
    emulator->SetFault(fault);
  }
  if (const std::string port_file = absl::GetFlag(FLAGS_port_file);
      !port_file.empty()) {
    GATEWAY_RETURN_IF_ERROR(WritePortFile(port_file, emulator->port()));
  }
  printf("clink-emulator listening on %s\n", emulator->base_url().c_str());
  fflush(stdout);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  return absl::OkStatus();
}

}  // namespace
}  // namespace clink_gateway::emulator

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "In-memory emulator of Clink's merchant REST API, for tests and local "
      "runs.");
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = clink_gateway::emulator::Run();
  if (!status.ok()) {
    fprintf(stderr, "clink-emulator: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
