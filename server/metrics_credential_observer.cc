// GatewayMetrics as the observer of the merchants' keys and clocks: key
// refusals and fallbacks (clink::UpstreamObserver), the clock offset
// (clink::ClockSkewObserver), key reloads and the keys in use
// (credentials::CredentialObserver).
#include <algorithm>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/sync.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "server/metrics.h"
#include "server/metrics_internal.h"

namespace clink_gateway::server {

using metrics_internal::Add;
using metrics_internal::At;

void GatewayMetrics::OnKeyRefused(absl::string_view merchant,
                                  absl::string_view key_fingerprint) {
  MerchantSeries* m = FindMerchant(merchant);
  if (m == nullptr) return;
  MutexLock lock(&m->mu);
  // Incremented under the lock: OnKeysInUse may remove the series meanwhile.
  for (const KeySeries& key : m->keys) {
    if (key.fingerprint == key_fingerprint) {
      key.refusals->Increment();
      return;
    }
  }
  // Not a key in use (a call that started before a roll): no series, so
  // that label values stay the keys configured now.
}

void GatewayMetrics::OnKeyFallback(absl::string_view merchant, bool recovered) {
  const MerchantSeries* m = FindMerchant(merchant);
  if (m == nullptr) return;
  (recovered ? m->fallback_recovered : m->fallback_refused)->Increment();
}

void GatewayMetrics::OnClockOffset(absl::string_view merchant,
                                   absl::Duration offset,
                                   clink::ClockSkewLevel level) {
  MerchantSeries* m = FindMerchant(merchant);
  if (m == nullptr) return;
  m->skew_critical->Set(level == clink::ClockSkewLevel::kCritical ? 1 : 0);
  MutexLock lock(&m->mu);
  if (m->clock_offset == nullptr) {
    m->clock_offset = &clock_offset_family_->Add({{"merchant", m->name}});
  }
  m->clock_offset->Set(absl::ToDoubleSeconds(offset));
}

void GatewayMetrics::SetLastReloadSuccess(MerchantSeries& m, absl::Time when) {
  if (m.last_reload_success == nullptr) {
    m.last_reload_success =
        &last_reload_success_family_->Add({{"merchant", m.name}});
  }
  m.last_reload_success->Set(absl::ToDoubleSeconds(when - absl::UnixEpoch()));
}

void GatewayMetrics::OnKeyReload(absl::string_view merchant,
                                 credentials::ReloadOutcome outcome,
                                 absl::Time when) {
  MerchantSeries* m = FindMerchant(merchant);
  if (m == nullptr) return;
  Add(At(m->reloads, outcome));
  if (outcome == credentials::ReloadOutcome::kApplied ||
      outcome == credentials::ReloadOutcome::kUnchanged) {
    MutexLock lock(&m->mu);
    SetLastReloadSuccess(*m, when);
  }
}

void GatewayMetrics::OnKeysInUse(absl::string_view merchant,
                                 const credentials::KeySet& keys,
                                 const credentials::KeySet* replaced) {
  MerchantSeries* m = FindMerchant(merchant);
  if (m == nullptr) return;
  const size_t n = std::min<size_t>(keys.size(), kKeySlots);
  MutexLock lock(&m->mu);
  // The first set reported (KeyWatcher::Start: what KeyRing::Load has just
  // read) is the first successful read of the directory.
  if (m->last_reload_success == nullptr) {
    SetLastReloadSuccess(*m, SystemClock().Now());
  }
  auto in_new_set = [&keys, n](const std::string& fingerprint, size_t* slot) {
    for (size_t i = 0; i < n; ++i) {
      if (keys.fingerprint(i) == fingerprint) {
        *slot = i;
        return true;
      }
    }
    return false;
  };
  // Diff against what is exported (not against `replaced`), so the series
  // always match the last set reported, even if the reports were not a
  // chain. A key that stays keeps its refusals counter; one that changes
  // slot gets a new info series.
  std::vector<KeySeries> kept;
  for (KeySeries& old : m->keys) {
    size_t slot = 0;
    if (in_new_set(old.fingerprint, &slot)) {
      if (slot != old.slot) {
        key_info_family_->Remove(old.info);
        old.info = nullptr;
      }
      kept.push_back(std::move(old));
    } else {
      key_info_family_->Remove(old.info);
      key_refusals_family_->Remove(old.refusals);
    }
  }
  std::vector<KeySeries> now;
  for (size_t i = 0; i < n; ++i) {
    const std::string& fingerprint = keys.fingerprint(i);
    KeySeries series;
    for (KeySeries& k : kept) {
      if (k.fingerprint == fingerprint) series = std::move(k);
    }
    series.fingerprint = fingerprint;
    series.slot = i;
    if (series.info == nullptr) {
      series.info =
          &key_info_family_->Add({{"merchant", m->name},
                                  {"slot", i == 0 ? "signing" : "previous"},
                                  {"key_fingerprint", fingerprint}});
      series.info->Set(1);
    }
    if (series.refusals == nullptr) {
      series.refusals = &key_refusals_family_->Add(
          {{"merchant", m->name}, {"key_fingerprint", fingerprint}});
    }
    now.push_back(std::move(series));
  }
  m->keys = std::move(now);
}

}  // namespace clink_gateway::server
