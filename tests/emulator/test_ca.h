// A throwaway certificate authority for serving the Clink emulator over HTTPS
// in tests.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_TEST_CA_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_TEST_CA_H_

#include <string>

#include "absl/status/statusor.h"

namespace clink_gateway::emulator {

struct TestCaFiles {
  std::string
      ca_cert_pem;  // "<dir>/ca.pem": the CA certificate; clients trust this.
  std::string
      server_pem;  // "<dir>/server.pem": server certificate, then its private
                   // key (what ClinkEmulator::Options::tls_cert_pem_path
                   // expects).
};

// Generates, with fresh EC P-256 keys, a self-signed CA and a server
// certificate it signs for localhost, 127.0.0.1 and ::1, valid from an hour ago
// for 30 days, and writes them into `dir` (created if missing; server.pem is
// mode 0600). The CA's private key is never written, so nothing else can be
// signed with it.
absl::StatusOr<TestCaFiles> GenerateTestCa(const std::string& dir);

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_TEST_CA_H_
