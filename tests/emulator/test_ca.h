// A throwaway certificate authority for serving the Clink emulator over HTTPS
// in tests.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_TEST_CA_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_TEST_CA_H_

#include <memory>
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

// A leaf certificate TestCa::Issue wrote.
struct IssuedCert {
  std::string cert_path;  // "<dir>/<name>.crt": the certificate (PEM).
  std::string key_path;   // "<dir>/<name>.key": its private key (PEM, 0600).
  std::string cert_pem;
  std::string key_pem;
};

// A throwaway CA that keeps its key in memory to issue more certificates:
// mutual TLS tests make server and client certificates with it, and a second,
// unrelated TestCa for certificates the gateway must refuse. EC P-256, valid
// from an hour ago for 30 days.
class TestCa {
 public:
  // Makes the CA and writes its certificate to "<dir>/<name>-ca.pem" (`dir`
  // created if missing).
  static absl::StatusOr<std::unique_ptr<TestCa>> Create(
      const std::string& dir, const std::string& name);
  ~TestCa();

  // Issues a leaf certificate with common name `name` and subject alternative
  // names `san` in OpenSSL's syntax (e.g.
  // "URI:spiffe://cluster.local/ns/shop/sa/checkout-web" or
  // "DNS:localhost,IP:127.0.0.1"; empty: none), for TLS servers (`server`) or
  // clients, and writes it to <dir>/<name>.crt and .key (each replaced by a
  // rename, so re-issuing a name rotates the files atomically).
  absl::StatusOr<IssuedCert> Issue(const std::string& name,
                                   const std::string& san, bool server) const;

  const std::string& cert_path() const { return cert_path_; }
  const std::string& cert_pem() const { return cert_pem_; }

 private:
  struct Keys;
  TestCa();
  std::string dir_;
  std::string cert_path_;
  std::string cert_pem_;
  std::unique_ptr<Keys> keys_;
};

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_TEST_CA_H_
