#include "server/authz_policy.h"

#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "rapidjson/document.h"

namespace clink_gateway::server {
namespace {

// Policies are small; a bound keeps a runaway file from being parsed.
constexpr size_t kMaxPolicyBytes = 1 << 20;

using Metadata = std::multimap<grpc::string_ref, grpc::string_ref>;

absl::Status Invalid(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

// Only `allowed` members may appear in `object`.
absl::Status OnlyMembers(const rapidjson::Value& object,
                         std::initializer_list<absl::string_view> allowed,
                         absl::string_view where) {
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    const absl::string_view name(it->name.GetString(),
                                 it->name.GetStringLength());
    if (std::find(allowed.begin(), allowed.end(), name) == allowed.end()) {
      return Invalid(where, absl::StrCat("unknown member \"", name, "\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<AuthzPolicy::Pattern> ParsePattern(const rapidjson::Value& v,
                                                  absl::string_view where) {
  if (!v.IsString()) return Invalid(where, "must be strings");
  const absl::string_view text(v.GetString(), v.GetStringLength());
  AuthzPolicy::Pattern p;
  if (text == "*") {
    p.kind = AuthzPolicy::Pattern::Kind::kAny;
  } else if (absl::EndsWith(text, "*")) {
    p.kind = AuthzPolicy::Pattern::Kind::kPrefix;
    p.text = std::string(text.substr(0, text.size() - 1));
  } else if (absl::StartsWith(text, "*")) {
    p.kind = AuthzPolicy::Pattern::Kind::kSuffix;
    p.text = std::string(text.substr(1));
  } else {
    p.text = std::string(text);
  }
  if (p.text.find('*') != std::string::npos) {
    return Invalid(where, "\"*\" only as a whole value, prefix or suffix");
  }
  return p;
}

absl::StatusOr<std::vector<AuthzPolicy::Pattern>> ParsePatterns(
    const rapidjson::Value& v, absl::string_view where) {
  if (!v.IsArray()) return Invalid(where, "must be a list");
  std::vector<AuthzPolicy::Pattern> out;
  for (const rapidjson::Value& item : v.GetArray()) {
    absl::StatusOr<AuthzPolicy::Pattern> p = ParsePattern(item, where);
    if (!p.ok()) return p.status();
    out.push_back(*std::move(p));
  }
  return out;
}

absl::StatusOr<AuthzPolicy::Rule> ParseRule(const rapidjson::Value& v,
                                            absl::string_view list,
                                            size_t index) {
  std::string where = absl::StrCat(list, "[", index, "]");
  if (!v.IsObject()) return Invalid(where, "must be an object");
  if (absl::Status s = OnlyMembers(v, {"name", "source", "request"}, where);
      !s.ok()) {
    return s;
  }
  AuthzPolicy::Rule rule;
  if (!v.HasMember("name") || !v["name"].IsString() ||
      v["name"].GetStringLength() == 0) {
    return Invalid(where, "\"name\" must be a non-empty string");
  }
  rule.name = v["name"].GetString();
  where = absl::StrCat(list, " rule \"", rule.name, "\"");
  if (v.HasMember("source")) {
    const rapidjson::Value& source = v["source"];
    if (!source.IsObject()) return Invalid(where, "source must be an object");
    if (absl::Status s = OnlyMembers(source, {"principals"}, where); !s.ok()) {
      return s;
    }
    if (source.HasMember("principals")) {
      absl::StatusOr<std::vector<AuthzPolicy::Pattern>> principals =
          ParsePatterns(source["principals"], where + " source.principals");
      if (!principals.ok()) return principals.status();
      rule.has_principals = true;
      rule.principals = *std::move(principals);
    }
  }
  if (v.HasMember("request")) {
    const rapidjson::Value& request = v["request"];
    if (!request.IsObject()) return Invalid(where, "request must be an object");
    if (absl::Status s = OnlyMembers(request, {"paths", "headers"}, where);
        !s.ok()) {
      return s;
    }
    if (request.HasMember("paths")) {
      absl::StatusOr<std::vector<AuthzPolicy::Pattern>> paths =
          ParsePatterns(request["paths"], where + " request.paths");
      if (!paths.ok()) return paths.status();
      rule.has_paths = true;
      rule.paths = *std::move(paths);
    }
    if (request.HasMember("headers")) {
      const rapidjson::Value& headers = request["headers"];
      if (!headers.IsArray()) {
        return Invalid(where, "request.headers must be a list");
      }
      for (const rapidjson::Value& h : headers.GetArray()) {
        if (!h.IsObject()) {
          return Invalid(where, "request.headers entries must be objects");
        }
        if (absl::Status s = OnlyMembers(h, {"key", "values"}, where);
            !s.ok()) {
          return s;
        }
        if (!h.HasMember("key") || !h["key"].IsString() ||
            !h.HasMember("values")) {
          return Invalid(where, "each header needs \"key\" and \"values\"");
        }
        AuthzPolicy::Header header;
        header.key = h["key"].GetString();
        if (header.key.empty() ||
            header.key != absl::AsciiStrToLower(header.key) ||
            header.key[0] == ':' || header.key == "host" ||
            absl::StartsWith(header.key, "grpc-")) {
          return Invalid(where, absl::StrCat("header key \"", header.key,
                                             "\" must be lower case and not a "
                                             "pseudo-header, host or grpc-*"));
        }
        absl::StatusOr<std::vector<AuthzPolicy::Pattern>> values =
            ParsePatterns(h["values"], where + " header values");
        if (!values.ok()) return values.status();
        if (values->empty()) return Invalid(where, "header values is empty");
        header.values = *std::move(values);
        rule.headers.push_back(std::move(header));
      }
    }
  }
  return rule;
}

absl::StatusOr<std::vector<AuthzPolicy::Rule>> ParseRules(
    const rapidjson::Value& v, absl::string_view list) {
  if (!v.IsArray()) return Invalid(list, "must be a list");
  std::vector<AuthzPolicy::Rule> rules;
  for (size_t i = 0; i < v.Size(); ++i) {
    absl::StatusOr<AuthzPolicy::Rule> rule = ParseRule(v[i], list, i);
    if (!rule.ok()) return rule.status();
    rules.push_back(*std::move(rule));
  }
  return rules;
}

bool AnyMatches(const std::vector<AuthzPolicy::Pattern>& patterns,
                absl::string_view value) {
  for (const AuthzPolicy::Pattern& p : patterns) {
    if (p.Matches(value)) return true;
  }
  return false;
}

}  // namespace

bool AuthzPolicy::Pattern::Matches(absl::string_view value) const {
  switch (kind) {
    case Kind::kAny:
      return true;
    case Kind::kExact:
      return value == text;
    case Kind::kPrefix:
      return absl::StartsWith(value, text);
    case Kind::kSuffix:
      return absl::EndsWith(value, text);
  }
  return false;
}

absl::StatusOr<std::shared_ptr<const AuthzPolicy>> AuthzPolicy::Parse(
    absl::string_view json) {
  if (json.size() > kMaxPolicyBytes) {
    return absl::InvalidArgumentError("policy larger than 1 MiB");
  }
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("not JSON (error at offset ", doc.GetErrorOffset(), ")"));
  }
  if (!doc.IsObject()) return Invalid("policy", "must be a JSON object");
  if (absl::Status s =
          OnlyMembers(doc, {"name", "deny_rules", "allow_rules"}, "policy");
      !s.ok()) {
    return s;
  }
  auto policy = std::make_shared<AuthzPolicy>();
  if (!doc.HasMember("name") || !doc["name"].IsString() ||
      doc["name"].GetStringLength() == 0) {
    return Invalid("policy", "\"name\" must be a non-empty string");
  }
  policy->name_ = doc["name"].GetString();
  if (!doc.HasMember("allow_rules")) {
    return Invalid("policy", "\"allow_rules\" is required");
  }
  absl::StatusOr<std::vector<Rule>> allow =
      ParseRules(doc["allow_rules"], "allow_rules");
  if (!allow.ok()) return allow.status();
  policy->allow_ = *std::move(allow);
  if (doc.HasMember("deny_rules")) {
    absl::StatusOr<std::vector<Rule>> deny =
        ParseRules(doc["deny_rules"], "deny_rules");
    if (!deny.ok()) return deny.status();
    policy->deny_ = *std::move(deny);
  }
  return std::shared_ptr<const AuthzPolicy>(std::move(policy));
}

bool AuthzPolicy::Matches(const Rule& rule, absl::string_view path,
                          const std::vector<std::string>& principals,
                          const Metadata& metadata) const {
  if (rule.has_principals) {
    // An empty list matches any caller (as in gRPC's translation).
    if (!rule.principals.empty()) {
      bool any = false;
      for (const std::string& principal : principals) {
        if (AnyMatches(rule.principals, principal)) {
          any = true;
          break;
        }
      }
      if (!any) return false;
    }
  }
  if (rule.has_paths && !rule.paths.empty() && !AnyMatches(rule.paths, path)) {
    return false;
  }
  for (const Header& header : rule.headers) {
    const auto [begin, end] = metadata.equal_range(
        grpc::string_ref(header.key.data(), header.key.size()));
    if (begin == end) return false;
    std::string joined;
    for (auto it = begin; it != end; ++it) {
      if (it != begin) joined += ',';
      joined.append(it->second.data(), it->second.size());
    }
    if (!AnyMatches(header.values, joined)) return false;
  }
  return true;
}

bool AuthzPolicy::Allows(absl::string_view path,
                         const std::vector<std::string>& principals,
                         const Metadata& metadata, std::string* rule) const {
  for (const Rule& r : deny_) {
    if (Matches(r, path, principals, metadata)) {
      if (rule != nullptr) *rule = r.name;
      return false;
    }
  }
  for (const Rule& r : allow_) {
    if (Matches(r, path, principals, metadata)) {
      if (rule != nullptr) *rule = r.name;
      return true;
    }
  }
  if (rule != nullptr) rule->clear();
  return false;
}

absl::StatusOr<std::string> ReadPolicyFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file.good()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  }
  std::stringstream text;
  text << file.rdbuf();
  if (file.bad()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path));
  }
  return text.str();
}

absl::StatusOr<std::unique_ptr<AuthzPolicyFile>> AuthzPolicyFile::Start(
    std::string path, absl::Duration interval,
    std::function<void(bool)> on_reload) {
  absl::StatusOr<std::string> text = ReadPolicyFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<std::shared_ptr<const AuthzPolicy>> policy =
      AuthzPolicy::Parse(*text);
  if (!policy.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", policy.status().message()));
  }
  return std::unique_ptr<AuthzPolicyFile>(
      new AuthzPolicyFile(std::move(path), interval, std::move(on_reload),
                          *std::move(text), *std::move(policy)));
}

AuthzPolicyFile::AuthzPolicyFile(std::string path, absl::Duration interval,
                                 std::function<void(bool)> on_reload,
                                 std::string text,
                                 std::shared_ptr<const AuthzPolicy> policy)
    : path_(std::move(path)),
      interval_(interval),
      on_reload_(std::move(on_reload)),
      last_text_(std::move(text)),
      policy_(std::move(policy)),
      thread_([this] { Run(); }) {}

AuthzPolicyFile::~AuthzPolicyFile() { Stop(); }

void AuthzPolicyFile::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const AuthzPolicy> AuthzPolicyFile::Current() const {
  MutexLock lock(&mu_);
  return policy_;
}

void AuthzPolicyFile::Run() {
  while (!stop_.WaitForNotificationWithTimeout(interval_)) {
    absl::StatusOr<std::string> text = ReadPolicyFile(path_);
    if (!text.ok()) {
      // Usually a ConfigMap/Secret swap in progress; logged once per spell.
      if (!unreadable_) {
        Log(LogLevel::kWarning, "authz_policy_unreadable",
            {{"file", path_}, {"warning", "the last good policy stays"}});
      }
      unreadable_ = true;
      continue;
    }
    unreadable_ = false;
    if (*text == last_text_) continue;
    last_text_ = *std::move(text);
    absl::StatusOr<std::shared_ptr<const AuthzPolicy>> policy =
        AuthzPolicy::Parse(last_text_);
    if (policy.ok()) {
      const std::string name = (*policy)->name();
      {
        MutexLock lock(&mu_);
        policy_ = *std::move(policy);
      }
      Log(LogLevel::kInfo, "authz_policy_reloaded",
          {{"file", path_}, {"policy", name}});
    } else {
      Log(LogLevel::kError, "authz_policy_rejected",
          {{"file", path_},
           {"error", policy.status().message()},
           {"warning", "the last good policy stays in force"}});
    }
    if (on_reload_) on_reload_(policy.ok());
  }
}

}  // namespace clink_gateway::server
