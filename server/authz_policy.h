// Per-RPC caller authorization from a gRFC A43 policy file
// (https://github.com/grpc/proposal/blob/master/A43-grpc-authorization-api.md).
//
// gRPC ships this engine as grpc::experimental::FileWatcherAuthorizationPolicy
// Provider, but Debian 12's gRPC 1.51 packages do not: libgrpc.so has the
// authorization filter but not the policy providers
// (grpc_authorization_policy_provider_*_create), and there is no
// libgrpc++_authorization_provider. So the gateway reads the same JSON format
// itself and enforces it in the RPC forwarder, before anything else looks at
// the call. A policy file written for gRPC's provider means the same here:
//
//   {"name": "...",                       required
//    "deny_rules":  [RULE, ...],          optional; any match denies
//    "allow_rules": [RULE, ...]}          required; no match denies
//   RULE = {"name": "...",                required
//           "source":  {"principals": [PATTERN, ...]},
//           "request": {"paths": [PATTERN, ...],
//                       "headers": [{"key": "...", "values": [PATTERN, ...]},
//                                   ...]}}
//
// A rule matches when every part it names matches (each list: any entry;
// headers: every entry). PATTERN: "*" matches any value (a header or principal
// that is present), "abc*" a prefix, "*abc" a suffix, else the exact value.
// Principals are the client certificate's URI SANs (SPIFFE ids) and DNS SANs;
// a call without a certificate (--grpc_insecure) has none, so it matches only
// rules that name no principals. Paths are
// "/package.Service/Method". Header keys are lower case and must not be
// pseudo-headers (":..."), "host" or "grpc-..." (as in A43); a header sent
// several times matches on its values joined with ",". Unknown fields are
// errors, so a typo cannot silently widen or narrow a policy.
#ifndef CLINK_GATEWAY_SERVER_AUTHZ_POLICY_H_
#define CLINK_GATEWAY_SERVER_AUTHZ_POLICY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/sync.h"
#include "grpcpp/support/string_ref.h"

namespace clink_gateway::server {

class AuthzPolicy {
 public:
  // INVALID_ARGUMENT naming the offending member when `json` is not a policy
  // of the shape above.
  static absl::StatusOr<std::shared_ptr<const AuthzPolicy>> Parse(
      absl::string_view json);

  // Whether a call to `path` ("/pkg.Service/Method") by a peer with
  // `principals` (URI SANs then DNS SANs; empty without a certificate)
  // carrying `metadata` is allowed: no deny rule matches and an allow rule
  // does. The name of the rule that decided (or "" for the default deny) goes
  // to `*rule` when not null.
  bool Allows(absl::string_view path,
              const std::vector<std::string>& principals,
              const std::multimap<grpc::string_ref, grpc::string_ref>& metadata,
              std::string* rule = nullptr) const;

  const std::string& name() const { return name_; }

  // Public for Parse's helpers; not part of the interface.
  struct Pattern {
    enum class Kind { kAny, kExact, kPrefix, kSuffix } kind = Kind::kExact;
    std::string text;
    bool Matches(absl::string_view value) const;
  };
  struct Header {
    std::string key;
    std::vector<Pattern> values;
  };
  struct Rule {
    std::string name;
    bool has_principals = false;
    std::vector<Pattern> principals;
    bool has_paths = false;
    std::vector<Pattern> paths;
    std::vector<Header> headers;
  };

 private:
  bool Matches(
      const Rule& rule, absl::string_view path,
      const std::vector<std::string>& principals,
      const std::multimap<grpc::string_ref, grpc::string_ref>& metadata) const;

  std::string name_;
  std::vector<Rule> deny_;
  std::vector<Rule> allow_;
};

// Follows a policy file: Current() is the last valid policy read. The file is
// re-read every `interval`; a changed file that parses replaces the policy, one
// that does not (or a missing file) leaves the last good one in force. Each
// change is logged ("authz_policy_reloaded" / "authz_policy_rejected") and
// reported to `on_reload(applied)`.
class AuthzPolicyFile {
 public:
  // Reads and parses `path` now: INVALID_ARGUMENT (naming the file) if it
  // cannot be read or is not a valid policy.
  static absl::StatusOr<std::unique_ptr<AuthzPolicyFile>> Start(
      std::string path, absl::Duration interval,
      std::function<void(bool applied)> on_reload);

  ~AuthzPolicyFile();

  // The policy in force. Lock-free for readers apart from a shared_ptr copy
  // under a mutex held for nanoseconds.
  std::shared_ptr<const AuthzPolicy> Current() const;

  // Stops following the file (joins the thread). Idempotent.
  void Stop();

 private:
  AuthzPolicyFile(std::string path, absl::Duration interval,
                  std::function<void(bool)> on_reload, std::string text,
                  std::shared_ptr<const AuthzPolicy> policy);
  void Run();

  const std::string path_;
  const absl::Duration interval_;
  const std::function<void(bool)> on_reload_;
  std::string last_text_;    // The watcher thread's only.
  bool unreadable_ = false;  // Ditto.
  mutable Mutex mu_;
  std::shared_ptr<const AuthzPolicy> policy_ ABSL_GUARDED_BY(mu_);
  Notification stop_;
  std::thread thread_;  // Last: starts once the rest is set.
};

// Reads `path` whole; INVALID_ARGUMENT when it cannot.
absl::StatusOr<std::string> ReadPolicyFile(const std::string& path);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_AUTHZ_POLICY_H_
