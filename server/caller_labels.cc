#include "server/caller_labels.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"

namespace clink_gateway::server {

CallerLabels::CallerLabels(const std::vector<std::string>& principals) {
  std::vector<std::string> names;
  for (const std::string& p : principals) {
    if (!p.empty() && p != kAnonymousCallerLabel && p != kOtherCallerLabel) {
      names.push_back(p);
    }
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (names.size() > kMaxCallerLabels) names.resize(kMaxCallerLabels);
  values_.emplace_back(kAnonymousCallerLabel);
  values_.emplace_back(kOtherCallerLabel);
  for (std::string& name : names) {
    index_.emplace(name, values_.size());
    values_.push_back(std::move(name));
  }
}

size_t CallerLabels::Index(absl::string_view caller) const {
  if (caller.empty()) return 0;
  const auto it = index_.find(caller);
  return it == index_.end() ? 1 : it->second;
}

absl::string_view CallerLabels::Label(absl::string_view caller) const {
  return values_[Index(caller)];
}

namespace {

absl::Status AddPrincipals(const rapidjson::Value& policy, const char* rules,
                           std::vector<std::string>& out) {
  const auto it = policy.FindMember(rules);
  if (it == policy.MemberEnd()) return absl::OkStatus();
  if (!it->value.IsArray()) {
    return absl::InvalidArgumentError(
        absl::StrCat("authorization policy: ", rules, " is not an array"));
  }
  for (const rapidjson::Value& rule : it->value.GetArray()) {
    if (!rule.IsObject()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "authorization policy: an entry of ", rules, " is not an object"));
    }
    const auto source = rule.FindMember("source");
    if (source == rule.MemberEnd()) continue;
    if (!source->value.IsObject()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "authorization policy: a source in ", rules, " is not an object"));
    }
    const auto principals = source->value.FindMember("principals");
    if (principals == source->value.MemberEnd()) continue;
    if (!principals->value.IsArray()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "authorization policy: principals in ", rules, " is not an array"));
    }
    for (const rapidjson::Value& p : principals->value.GetArray()) {
      if (!p.IsString()) {
        return absl::InvalidArgumentError(
            absl::StrCat("authorization policy: a principal in ", rules,
                         " is not a string"));
      }
      std::string name(p.GetString(), p.GetStringLength());
      // A43 patterns: "*" alone, or a prefix/suffix match.
      if (name.empty() || name.find('*') != std::string::npos) continue;
      out.push_back(std::move(name));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> PrincipalsFromAuthzPolicy(
    absl::string_view json) {
  rapidjson::Document doc;
  rapidjson::MemoryStream stream(json.data(), json.size());
  constexpr unsigned kFlags =
      rapidjson::kParseIterativeFlag | rapidjson::kParseStopWhenDoneFlag;
  if (doc.ParseStream<kFlags>(stream).HasParseError()) {
    return absl::InvalidArgumentError(
        absl::StrCat("authorization policy is not JSON: ",
                     rapidjson::GetParseError_En(doc.GetParseError()),
                     " at offset ", doc.GetErrorOffset()));
  }
  if (!doc.IsObject()) {
    return absl::InvalidArgumentError(
        "authorization policy is not a JSON object");
  }
  std::vector<std::string> names;
  for (const char* rules : {"allow_rules", "deny_rules"}) {
    if (absl::Status s = AddPrincipals(doc, rules, names); !s.ok()) return s;
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  if (names.size() > kMaxCallerLabels) {
    Log(LogLevel::kWarning, "caller_labels_capped",
        {{"principals", absl::StrCat(names.size())},
         {"labelled", absl::StrCat(kMaxCallerLabels)}});
  }
  return names;
}

absl::StatusOr<std::vector<std::string>> PrincipalsFromAuthzPolicyFile(
    const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  if (!file.is_open() || (!file.good() && !file.eof())) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read the authorization policy ", path));
  }
  auto names = PrincipalsFromAuthzPolicy(text.str());
  if (!names.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", names.status().message()));
  }
  return names;
}

}  // namespace clink_gateway::server
