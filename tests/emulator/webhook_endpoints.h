// The emulated webhook endpoint management API (clink-api.md §12): endpoints
// registered through /webhook/endpoints, with Clink's rules, and the event
// catalog of /webhook/events (§13.1). Part of MerchantApi (one per merchant
// account), which routes the requests here.
#ifndef CLINK_GATEWAY_TESTS_EMULATOR_WEBHOOK_ENDPOINTS_H_
#define CLINK_GATEWAY_TESTS_EMULATOR_WEBHOOK_ENDPOINTS_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/sync.h"

namespace clink_gateway::emulator {

struct ApiRequest;

// A registered endpoint as a webhook sender needs it: where to deliver, what,
// and the key to sign with.
struct RegisteredWebhookEndpoint {
  std::string id;                   // "whk_..."
  std::string url;                  // https, public host.
  std::vector<std::string> events;  // §13.1 names.
  std::string signing_secret;       // The current plaintext "whsec_...".
};

// The §13.1 event names, in catalog order (index + 1 is the dashboard code).
const std::vector<std::string>& WebhookEventNames();

// Clink's rules, as the emulator applies them (choices where Clink's docs are
// silent are marked "emulator"):
//  - url: required on create and ensure, https only, at most 512 characters,
//    and on a public host: localhost (and *.localhost), IP literals that are
//    loopback, private, link-local, multicast or unspecified are refused
//    (400). The emulator resolves no names (emulator).
//  - events: required (at least 1), each a §13.1 name; numeric codes and
//    unknown names are refused (400).
//  - description: at most 512 characters; "" on update clears it.
//  - enabled: true unless the request says otherwise.
//  - The plaintext secret ("whsec_" + 32 random characters) is in the answer
//    to create, rotate-secret and an ensure that created or rotated; list, get,
//    update, enable and disable send `signingSecret: null` and only
//    `maskedSigningSecret` ("whsec_...last4"). Rotating replaces the secret at
//    once (no overlap).
//  - ensure is keyed by url: it creates (source "created"), or updates the
//    events, description and enabled state of the endpoint with that url
//    ("updated", or "unchanged" when nothing changed: emulator), rotating when
//    rotateSecret, or when returnSigningSecret and rotateSecretIfUnavailable
//    ("rotated" / "updated_rotated"). An existing secret is never returned:
//    with returnSigningSecret and no rotation, signingSecretAvailable is false
//    with EXISTING_SECRET_NOT_RETURNABLE and nextAction
//    CALL_ROTATE_SECRET_OR_RETRY_ENSURE_WITH_ROTATE_SECRET_IF_UNAVAILABLE.
//  - DELETE answers `data: null`; an unknown id is 404.
//  - List: pageNum (1), pageSize (20, capped at 100), `enabled` filter, `url`
//    exact-match filter; newest last (emulator).
// Thread-safe.
class WebhookEndpoints {
 public:
  using Params = std::vector<std::string>;

  // `clock` gives createdAt/updatedAt.
  explicit WebhookEndpoints(std::function<absl::Time()> clock);

  // The handlers: `params[0]` is the endpoint id where the path has one.
  // Each returns the complete success body, or InvalidArgument (400) /
  // NotFound (404) naming the field or id.
  absl::StatusOr<std::string> Create(const ApiRequest& request,
                                     const Params& params);
  absl::StatusOr<std::string> List(const ApiRequest& request,
                                   const Params& params);
  absl::StatusOr<std::string> Get(const ApiRequest& request,
                                  const Params& params);
  absl::StatusOr<std::string> Update(const ApiRequest& request,
                                     const Params& params);
  absl::StatusOr<std::string> Delete(const ApiRequest& request,
                                     const Params& params);
  absl::StatusOr<std::string> Enable(const ApiRequest& request,
                                     const Params& params);
  absl::StatusOr<std::string> Disable(const ApiRequest& request,
                                      const Params& params);
  absl::StatusOr<std::string> RotateSecret(const ApiRequest& request,
                                           const Params& params);
  absl::StatusOr<std::string> Ensure(const ApiRequest& request,
                                     const Params& params);
  absl::StatusOr<std::string> EventTypes(const ApiRequest& request,
                                         const Params& params);

  // The enabled endpoints, in registration order, with their current secrets:
  // what a webhook sender delivers to. A copy, consistent at the time of the
  // call.
  std::vector<RegisteredWebhookEndpoint> Enabled() const;

 private:
  struct Endpoint {
    std::string id;
    std::string url;
    std::vector<std::string> events;
    bool enabled = true;
    std::string secret;
    std::string description;
    int64_t created_at_ms = 0;
    int64_t updated_at_ms = 0;
  };

  absl::StatusOr<std::string> SetEnabled(const std::string& id, bool enabled);
  // A new random secret for `endpoint`. Requires mu_.
  void Rotate(Endpoint& endpoint) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Endpoint* Find(const std::string& id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::function<absl::Time()> clock_;
  mutable Mutex mu_;
  absl::BitGen bitgen_ ABSL_GUARDED_BY(mu_);
  std::vector<Endpoint> endpoints_ ABSL_GUARDED_BY(mu_);  // Creation order.
};

}  // namespace clink_gateway::emulator

#endif  // CLINK_GATEWAY_TESTS_EMULATOR_WEBHOOK_ENDPOINTS_H_
