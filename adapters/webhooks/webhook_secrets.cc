#include "adapters/webhooks/webhook_secrets.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "adapters/credentials/key_set.h"
#include "common/logging.h"

namespace clink_gateway::webhooks {
namespace {

// The directory's secrets: the key-file reader's checks, then visible ASCII
// only (a secret is an HMAC key typed into a Secret; anything else is a
// broken file). Messages name files, never values.
absl::StatusOr<std::vector<Secret>> ReadSecrets(const std::string& dir) {
  absl::StatusOr<std::vector<Secret>> secrets =
      credentials::ReadSecretDirectory(dir, kWebhookSecretFile,
                                       kPreviousWebhookSecretFile);
  if (!secrets.ok()) return secrets.status();
  for (size_t i = 0; i < secrets->size(); ++i) {
    for (char c : (*secrets)[i].Reveal()) {
      if (c < 0x21 || c > 0x7e) {
        return absl::InvalidArgumentError(absl::StrCat(
            dir, "/", i == 0 ? kWebhookSecretFile : kPreviousWebhookSecretFile,
            " holds characters other than visible ASCII"));
      }
    }
  }
  return secrets;
}

}  // namespace

WebhookSecretSet::WebhookSecretSet(std::vector<Secret> secrets)
    : secrets_(std::move(secrets)) {
  if (secrets_.size() == 2 && secrets_[1].Equals(secrets_[0])) {
    secrets_.pop_back();
  }
  std::vector<std::string> fingerprints;
  for (const Secret& secret : secrets_) {
    pointers_.push_back(&secret);
    fingerprints.push_back(secret.Fingerprint());
  }
  fingerprints_ = absl::StrJoin(fingerprints, ",");
}

bool WebhookSecretSet::Same(const WebhookSecretSet& other) const {
  if (secrets_.size() != other.secrets_.size()) return false;
  for (size_t i = 0; i < secrets_.size(); ++i) {
    if (!secrets_[i].Equals(other.secrets_[i])) return false;
  }
  return true;
}

WebhookSecrets::WebhookSecrets(const std::vector<Merchant>& merchants) {
  {
    MutexLock lock(&mu_);
    for (const Merchant& m : merchants) merchants_[m.name].dir = m.dir;
  }
  for (const Merchant& m : merchants) Reload(m.name);
}

bool WebhookSecrets::Configured(absl::string_view merchant) const {
  MutexLock lock(&mu_);
  return merchants_.contains(merchant);
}

std::shared_ptr<const WebhookSecretSet> WebhookSecrets::Current(
    absl::string_view merchant) const {
  MutexLock lock(&mu_);
  const auto it = merchants_.find(merchant);
  return it == merchants_.end() ? nullptr : it->second.secrets;
}

void WebhookSecrets::Reload(absl::string_view merchant) {
  MutexLock reload_lock(&reload_mu_);
  std::string dir;
  {
    MutexLock lock(&mu_);
    const auto it = merchants_.find(merchant);
    if (it == merchants_.end()) return;
    dir = it->second.dir;
  }
  // Read without the lock: verifications go on meanwhile.
  absl::StatusOr<std::vector<Secret>> read = ReadSecrets(dir);
  MutexLock lock(&mu_);
  Entry& entry = merchants_[merchant];
  if (!read.ok()) {
    const std::string problem = read.status().ToString();
    if (problem == entry.last_problem) return;
    entry.last_problem = problem;
    if (entry.secrets == nullptr) {
      Log(LogLevel::kWarning, "webhook_secret_missing",
          {{"merchant", merchant},
           {"dir", dir},
           {"error", read.status().message()},
           {"effect", "its webhook path answers 404"}});
    } else {
      Log(LogLevel::kWarning, "webhook_secrets_reload_failed",
          {{"merchant", merchant},
           {"dir", dir},
           {"error", read.status().message()},
           {"kept_secret_fingerprints", entry.secrets->fingerprints()}});
    }
    return;
  }
  entry.last_problem.clear();
  auto fresh = std::make_shared<const WebhookSecretSet>(*std::move(read));
  if (entry.secrets != nullptr && entry.secrets->Same(*fresh)) return;
  Log(LogLevel::kInfo, "webhook_secrets_reloaded",
      {{"merchant", merchant},
       {"dir", dir},
       {"secret_fingerprints", fresh->fingerprints()},
       {"replaced_secret_fingerprints",
        entry.secrets == nullptr ? "" : entry.secrets->fingerprints()}});
  entry.secrets = std::move(fresh);
}

}  // namespace clink_gateway::webhooks
