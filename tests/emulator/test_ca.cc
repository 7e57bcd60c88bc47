#include "tests/emulator/test_ca.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "openssl/bio.h"
#include "openssl/err.h"
#include "openssl/evp.h"
#include "openssl/pem.h"
#include "openssl/rand.h"
#include "openssl/x509.h"
#include "openssl/x509v3.h"

namespace clink_gateway::emulator {
namespace {

constexpr long kNotBeforeSkewSeconds =
    60 * 60;  // NOLINT(runtime/int): OpenSSL's type.
constexpr long kValiditySeconds = 30L * 24 * 60 * 60;  // NOLINT(runtime/int)

using BioPtr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using KeyPtr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using CertPtr = std::unique_ptr<X509, decltype(&X509_free)>;

absl::Status OpenSslError(absl::string_view what) {
  const unsigned long error =
      ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type.
  char buffer[256] = "unknown error";
  if (error != 0) ERR_error_string_n(error, buffer, sizeof(buffer));
  return absl::InternalError(absl::StrCat(what, ": ", buffer));
}

absl::StatusOr<KeyPtr> NewP256Key() {
  KeyPtr key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  if (key == nullptr) return OpenSslError("EC P-256 key generation");
  return key;
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid,
                          const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension =
      X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  if (extension == nullptr)
    return OpenSslError(absl::StrCat("extension ", value));
  const int added = X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
  if (added != 1) return OpenSslError("X509_add_ext");
  return absl::OkStatus();
}

// Builds a certificate for `key` named `common_name`, signed by `issuer_key`;
// `issuer` is null for a self-signed certificate. A leaf (not `is_ca`) gets
// `san` (OpenSSL's syntax) and the extended key usage `usage`.
absl::StatusOr<CertPtr> NewCertificate(
    EVP_PKEY* key, const char* common_name, X509* issuer, EVP_PKEY* issuer_key,
    bool is_ca, const char* san = "DNS:localhost,IP:127.0.0.1,IP:::1",
    const char* usage = "serverAuth") {
  CertPtr cert(X509_new(), &X509_free);
  if (cert == nullptr) return OpenSslError("X509_new");
  uint64_t serial = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof(serial)) !=
      1) {
    return OpenSslError("RAND_bytes");
  }
  serial >>= 1;  // Keep it positive.
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_set_version(cert.get(), X509_VERSION_3) != 1 ||
      ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert.get()),
                      -kNotBeforeSkewSeconds) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), kValiditySeconds) ==
          nullptr ||
      X509_set_pubkey(cert.get(), key) != 1 ||
      X509_NAME_add_entry_by_txt(
          name, "O", MBSTRING_ASC,
          reinterpret_cast<const unsigned char*>("Clink emulator"), -1, -1,
          0) != 1 ||
      X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_ASC,
          reinterpret_cast<const unsigned char*>(common_name), -1, -1,
          0) != 1 ||
      X509_set_issuer_name(cert.get(), issuer != nullptr
                                           ? X509_get_subject_name(issuer)
                                           : name) != 1) {
    return OpenSslError("building certificate");
  }
  X509* const signer = issuer != nullptr ? issuer : cert.get();
  GATEWAY_RETURN_IF_ERROR(
      AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash"));
  if (is_ca) {
    GATEWAY_RETURN_IF_ERROR(AddExtension(cert.get(), signer,
                                         NID_basic_constraints,
                                         "critical,CA:TRUE,pathlen:0"));
    GATEWAY_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_key_usage,
                                         "critical,keyCertSign,cRLSign"));
  } else {
    GATEWAY_RETURN_IF_ERROR(AddExtension(
        cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE"));
    GATEWAY_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_key_usage,
                                         "critical,digitalSignature"));
    GATEWAY_RETURN_IF_ERROR(
        AddExtension(cert.get(), signer, NID_ext_key_usage, usage));
    if (san != nullptr && *san != '\0') {
      GATEWAY_RETURN_IF_ERROR(
          AddExtension(cert.get(), signer, NID_subject_alt_name, san));
    }
    GATEWAY_RETURN_IF_ERROR(AddExtension(
        cert.get(), signer, NID_authority_key_identifier, "keyid:always"));
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0)
    return OpenSslError("X509_sign");
  return cert;
}

// Serializes `cert` (and `key`, when not null) as PEM.
absl::StatusOr<std::string> ToPem(X509* cert, EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (bio == nullptr || PEM_write_bio_X509(bio.get(), cert) != 1 ||
      (key != nullptr &&
       PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr,
                                nullptr) != 1)) {
    return OpenSslError("PEM encoding");
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);  // NOLINT(runtime/int)
  return std::string(data, static_cast<size_t>(size));
}

absl::Status WriteFile(const std::string& path, const std::string& content,
                       mode_t mode) {
  const int fd =
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
  fchmod(fd, mode);  // In case the file already existed with other permissions.
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n =
        write(fd, content.data() + written, content.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    written += static_cast<size_t>(n);
  }
  const bool ok = written == content.size() && close(fd) == 0;
  if (!ok) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace

struct TestCa::Keys {
  KeyPtr key{nullptr, &EVP_PKEY_free};
  CertPtr cert{nullptr, &X509_free};
};

TestCa::TestCa() = default;
TestCa::~TestCa() = default;

absl::StatusOr<std::unique_ptr<TestCa>> TestCa::Create(
    const std::string& dir, const std::string& name) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", dir, ": ", std::strerror(errno)));
  }
  std::unique_ptr<TestCa> ca(new TestCa());
  ca->dir_ = dir;
  ca->keys_ = std::make_unique<Keys>();
  GATEWAY_ASSIGN_OR_RETURN(ca->keys_->key, NewP256Key());
  GATEWAY_ASSIGN_OR_RETURN(ca->keys_->cert,
                           NewCertificate(ca->keys_->key.get(), name.c_str(),
                                          nullptr, ca->keys_->key.get(), true));
  GATEWAY_ASSIGN_OR_RETURN(std::string pem,
                           ToPem(ca->keys_->cert.get(), nullptr));
  ca->cert_pem_ = std::move(pem);
  ca->cert_path_ = absl::StrCat(dir, "/", name, "-ca.pem");
  GATEWAY_RETURN_IF_ERROR(WriteFile(ca->cert_path_, ca->cert_pem_, 0644));
  return ca;
}

absl::StatusOr<IssuedCert> TestCa::Issue(const std::string& name,
                                         const std::string& san,
                                         bool server) const {
  GATEWAY_ASSIGN_OR_RETURN(KeyPtr key, NewP256Key());
  GATEWAY_ASSIGN_OR_RETURN(
      CertPtr cert, NewCertificate(key.get(), name.c_str(), keys_->cert.get(),
                                   keys_->key.get(), false, san.c_str(),
                                   server ? "serverAuth" : "clientAuth"));
  IssuedCert out;
  GATEWAY_ASSIGN_OR_RETURN(out.cert_pem, ToPem(cert.get(), nullptr));
  GATEWAY_ASSIGN_OR_RETURN(std::string both, ToPem(cert.get(), key.get()));
  out.key_pem = both.substr(out.cert_pem.size());
  out.cert_path = absl::StrCat(dir_, "/", name, ".crt");
  out.key_path = absl::StrCat(dir_, "/", name, ".key");
  // Written under temporary names and renamed into place, so a watcher never
  // reads a half-written file.
  for (const auto& [path, content, mode] :
       {std::tuple<const std::string&, const std::string&, mode_t>{
            out.key_path, out.key_pem, 0600},
        {out.cert_path, out.cert_pem, 0644}}) {
    const std::string tmp = absl::StrCat(path, ".tmp");
    GATEWAY_RETURN_IF_ERROR(WriteFile(tmp, content, mode));
    if (rename(tmp.c_str(), path.c_str()) != 0) {
      return absl::UnavailableError(absl::StrCat("cannot rename to ", path));
    }
  }
  return out;
}

absl::StatusOr<TestCaFiles> GenerateTestCa(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::UnavailableError(
        absl::StrCat("cannot create ", dir, ": ", std::strerror(errno)));
  }
  GATEWAY_ASSIGN_OR_RETURN(KeyPtr ca_key, NewP256Key());
  GATEWAY_ASSIGN_OR_RETURN(
      CertPtr ca_cert, NewCertificate(ca_key.get(), "Clink emulator test CA",
                                      nullptr, ca_key.get(), true));
  GATEWAY_ASSIGN_OR_RETURN(KeyPtr server_key, NewP256Key());
  GATEWAY_ASSIGN_OR_RETURN(CertPtr server_cert,
                           NewCertificate(server_key.get(), "localhost",
                                          ca_cert.get(), ca_key.get(), false));

  GATEWAY_ASSIGN_OR_RETURN(std::string ca_pem, ToPem(ca_cert.get(), nullptr));
  GATEWAY_ASSIGN_OR_RETURN(std::string server_pem,
                           ToPem(server_cert.get(), server_key.get()));
  TestCaFiles files{absl::StrCat(dir, "/ca.pem"),
                    absl::StrCat(dir, "/server.pem")};
  GATEWAY_RETURN_IF_ERROR(WriteFile(files.ca_cert_pem, ca_pem, 0644));
  GATEWAY_RETURN_IF_ERROR(WriteFile(files.server_pem, server_pem, 0600));
  return files;
}

}  // namespace clink_gateway::emulator
