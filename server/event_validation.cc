#include "server/event_validation.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "adapters/events/event_types.h"
#include "common/errors/error_details.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;
using Violations = std::vector<errors::FieldViolation>;

constexpr size_t kMaxSubscriptionLength = 63;
constexpr size_t kMaxEventIdLength = 255;

absl::Status Result(const Violations& violations) {
  if (violations.empty()) return absl::OkStatus();
  return errors::InvalidArgumentWithViolations(violations);
}

void CheckSubscription(const std::string& name, Violations& out) {
  const bool ok = !name.empty() && name.size() <= kMaxSubscriptionLength &&
                  absl::ascii_islower(static_cast<unsigned char>(name[0])) &&
                  std::all_of(name.begin(), name.end(), [](char c) {
                    return absl::ascii_islower(static_cast<unsigned char>(c)) ||
                           absl::ascii_isdigit(static_cast<unsigned char>(c)) ||
                           c == '-';
                  });
  if (!ok) {
    out.push_back({"subscription",
                   "must be 1-63 characters of a-z, 0-9 and '-', starting "
                   "with a letter"});
  }
}

bool IsPrintableAscii(const std::string& s, size_t max_length) {
  return !s.empty() && s.size() <= max_length &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return c >= 0x21 && c <= 0x7e; });
}

template <typename Repeated>
std::vector<std::string> CheckEventTypes(const Repeated& types,
                                         Violations& out) {
  if (types.size() > kMaxEventTypes) {
    out.push_back({"event_types", absl::StrCat("must have at most ",
                                               kMaxEventTypes, " entries")});
    return {};
  }
  for (int i = 0; i < types.size(); ++i) {
    if (!events::IsKnownEventType(types[i])) {
      // Not echoed: it may be anything the caller sent.
      out.push_back({absl::StrCat("event_types[", i, "]"),
                     "is not a Clink event type (clink-api.md §13.1)"});
    }
  }
  return std::vector<std::string>(types.begin(), types.end());
}

// A Timestamp proto's time, if it is a valid one (0001-9999, nanos in range).
bool ToTime(const google::protobuf::Timestamp& ts, absl::Time& out) {
  if (ts.seconds() < -62135596800 || ts.seconds() > 253402300799 ||
      ts.nanos() < 0 || ts.nanos() > 999999999) {
    return false;
  }
  out = absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
  return true;
}

}  // namespace

absl::Status ValidateStreamEvents(const v1::StreamEventsRequest& request,
                                  absl::Time now, absl::Duration retention,
                                  StreamParams& params) {
  Violations violations;
  CheckSubscription(request.subscription(), violations);
  params.spec.name = request.subscription();
  params.spec.event_types = CheckEventTypes(request.event_types(), violations);
  params.spec.start_time = now;
  if (request.has_start_time()) {
    absl::Time start;
    if (!ToTime(request.start_time(), start)) {
      violations.push_back({"start_time", "is not a valid timestamp"});
    } else if (start < now - retention) {
      violations.push_back(
          {"start_time",
           absl::StrCat("must be at most the event retention period (",
                        absl::FormatDuration(retention), ") back")});
    } else {
      params.spec.start_time = start;
    }
  }
  if (request.has_ack_deadline()) {
    const google::protobuf::Duration& d = request.ack_deadline();
    const absl::Duration deadline =
        absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
    if (d.nanos() < -999999999 || d.nanos() > 999999999 ||
        deadline < kMinAckDeadline || deadline > kMaxAckDeadline) {
      violations.push_back({"ack_deadline", "must be 10s to 600s"});
    } else {
      params.ack_deadline = deadline;
    }
  }
  const int32_t max = request.max_events_per_response();
  if (max < 0 || max > kMaxEventsPerResponse) {
    violations.push_back(
        {"max_events_per_response", "must be 1 to 100 (0 means 10)"});
  } else if (max > 0) {
    params.max_events = max;
  }
  return Result(violations);
}

absl::Status ValidateAcknowledgeEvents(
    const v1::AcknowledgeEventsRequest& request) {
  Violations violations;
  CheckSubscription(request.subscription(), violations);
  if (request.event_ids().empty() ||
      request.event_ids_size() > kMaxAcknowledgeIds) {
    violations.push_back({"event_ids", "must have 1 to 1000 ids"});
  } else {
    for (int i = 0; i < request.event_ids_size(); ++i) {
      if (!IsPrintableAscii(request.event_ids(i), kMaxEventIdLength)) {
        violations.push_back({absl::StrCat("event_ids[", i, "]"),
                              "must be 1-255 printable ASCII characters"});
      }
    }
  }
  return Result(violations);
}

absl::Status ValidateListEvents(const v1::ListEventsRequest& request,
                                events::ListQuery& query) {
  Violations violations;
  query.event_types = CheckEventTypes(request.event_types(), violations);
  if (request.has_start_time() &&
      !ToTime(request.start_time(), query.start_time)) {
    violations.push_back({"start_time", "is not a valid timestamp"});
  }
  if (request.has_end_time() && !ToTime(request.end_time(), query.end_time)) {
    violations.push_back({"end_time", "is not a valid timestamp"});
  }
  if (request.has_start_time() && request.has_end_time() &&
      query.start_time >= query.end_time) {
    violations.push_back({"end_time", "must be after start_time"});
  }
  if (request.page_size() < 0 || request.page_size() > kMaxListPageSize) {
    violations.push_back({"page_size", "must be 1 to 100 (0 means 20)"});
  }
  query.page_size =
      request.page_size() > 0 ? request.page_size() : kDefaultListPageSize;
  if (!request.page_token().empty() &&
      !IsPrintableAscii(request.page_token(), kMaxPageTokenBytes)) {
    violations.push_back({"page_token", "is not a token this gateway issued"});
  }
  query.page_token = request.page_token();
  return Result(violations);
}

absl::Status ValidateGetEvent(const v1::GetEventRequest& request) {
  if (IsPrintableAscii(request.event_id(), kMaxEventIdLength)) {
    return absl::OkStatus();
  }
  return errors::InvalidArgumentWithViolations(
      {{"event_id", "must be 1-255 printable ASCII characters"}});
}

}  // namespace clink_gateway::server
