// Each merchant's webhook signing secrets, read from its key directory (the
// Secret volume that also holds its Clink API key, see
// adapters/credentials/key_set.h) and hot-reloaded:
//   <dir>/webhook-secret           the endpoint's signing secret (whsec_…)
//   <dir>/webhook-secret-previous  optional: the secret before a rotation,
//                                  accepted too until it is deleted
// Read through one resolution of `..data` like the API keys
// (credentials::ReadSecretDirectory): surrounding whitespace is stripped; a
// file over 4 KiB, or holding anything but visible ASCII, is invalid.
//
// A merchant whose directory holds no usable webhook-secret at startup has
// no secrets: its webhook path answers 404 (never accepts an unsigned event)
// and a warning is logged, until a reload finds one. After that, a bad update
// (missing, empty, invalid or unreadable files) keeps the last good secrets
// and logs one warning per problem. Secrets are only ever logged as
// Secret::Fingerprint(). Reloads come from the KeyWatcher that follows the
// same directories (KeyWatcher::Options::on_directory_reload: inotify and its
// periodic re-read). Thread-safe.
#ifndef CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_SECRETS_H_
#define CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_SECRETS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "common/secret.h"
#include "common/sync.h"

namespace clink_gateway::webhooks {

inline constexpr absl::string_view kWebhookSecretFile = "webhook-secret";
inline constexpr absl::string_view kPreviousWebhookSecretFile =
    "webhook-secret-previous";

// One version of a merchant's secrets: the current one first, then the
// previous one (if any, and different). Immutable.
class WebhookSecretSet {
 public:
  explicit WebhookSecretSet(std::vector<Secret> secrets);

  // For VerifySignature; valid while this set lives.
  const std::vector<const Secret*>& pointers() const { return pointers_; }
  // Fingerprints, current first, comma-separated (for logs).
  const std::string& fingerprints() const { return fingerprints_; }
  // Same values in the same order (constant-time comparison).
  bool Same(const WebhookSecretSet& other) const;

 private:
  std::vector<Secret> secrets_;
  std::vector<const Secret*> pointers_;
  std::string fingerprints_;
};

class WebhookSecrets {
 public:
  struct Merchant {
    std::string name;  // The gateway's merchant name ("default", ...).
    std::string dir;   // Its key directory.
  };

  // Reads every merchant's directory now (logging "webhook_secret_missing",
  // a warning, for each merchant without usable secrets).
  explicit WebhookSecrets(const std::vector<Merchant>& merchants);

  // Whether `merchant` is one of the configured merchants.
  bool Configured(absl::string_view merchant) const;

  // The merchant's secrets in use, or null when it has none (or is not
  // configured). Hold the pointer for the whole verification.
  std::shared_ptr<const WebhookSecretSet> Current(
      absl::string_view merchant) const;

  // Re-reads the merchant's directory (ignored for a merchant not
  // configured). Logs "webhook_secrets_reloaded" (fingerprints before and
  // after) when the secrets change, "webhook_secrets_reload_failed" once per
  // problem otherwise. Reloads are serialised.
  void Reload(absl::string_view merchant);

 private:
  struct Entry {
    std::string dir;
    std::shared_ptr<const WebhookSecretSet> secrets;  // Null: none yet.
    std::string last_problem;  // Logged once until it changes.
  };

  // Serialises Reload() (a slow read must not overwrite a newer one);
  // never held by Current().
  Mutex reload_mu_;
  mutable Mutex mu_;
  // The keys are fixed at construction; the entries change under mu_.
  absl::flat_hash_map<std::string, Entry> merchants_ ABSL_GUARDED_BY(mu_);
};

}  // namespace clink_gateway::webhooks

#endif  // CLINK_GATEWAY_ADAPTERS_WEBHOOKS_WEBHOOK_SECRETS_H_
