#include "adapters/clink/retry_policy.h"

#include "absl/random/random.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

using http::Delivery;
using http::FailureKind;
using http::HttpResult;

HttpResult Failure(FailureKind kind, Delivery delivery) {
  HttpResult r;
  r.status = absl::UnavailableError("x");
  r.failure = kind;
  r.delivery = delivery;
  return r;
}

HttpResult Response(int status) {
  HttpResult r;
  r.delivery = Delivery::kReceived;
  r.response.status_code = status;
  return r;
}

struct Row {
  const char* name;
  bool mutating;
  bool idempotent_upstream;
  HttpResult result;
  int64_t envelope_code;
  bool retryable;
};

TEST(IsRetryableTest, FollowsThePolicyTable) {
  const Row rows[] = {
      // Nothing sent: any method.
      {"connect GET", false, false,
       Failure(FailureKind::kConnect, Delivery::kNotSent), 0, true},
      {"connect POST", true, false,
       Failure(FailureKind::kConnect, Delivery::kNotSent), 0, true},
      // A "connect" failure that may have written something is never safe.
      {"connect POST maybe sent", true, false,
       Failure(FailureKind::kConnect, Delivery::kUnknown), 0, false},
      // Lost connection: reads and Clink-deduplicated writes only.
      {"reset GET", false, false,
       Failure(FailureKind::kConnectionLost, Delivery::kUnknown), 0, true},
      {"reset POST", true, false,
       Failure(FailureKind::kConnectionLost, Delivery::kUnknown), 0, false},
      {"reset refund", true, true,
       Failure(FailureKind::kConnectionLost, Delivery::kUnknown), 0, true},
      // Never: deadline, shutdown, invalid, too large, other.
      {"deadline GET", false, false,
       Failure(FailureKind::kDeadline, Delivery::kUnknown), 0, false},
      {"shutdown GET", false, false,
       Failure(FailureKind::kShutdown, Delivery::kNotSent), 0, false},
      {"invalid GET", false, false,
       Failure(FailureKind::kInvalidRequest, Delivery::kNotSent), 0, false},
      {"too large GET", false, false,
       Failure(FailureKind::kResponseTooLarge, Delivery::kUnknown), 0, false},
      {"other GET", false, false,
       Failure(FailureKind::kOther, Delivery::kUnknown), 0, false},
      // Egress denied: nothing was sent, but the policy would refuse again.
      {"egress denied GET", false, false,
       Failure(FailureKind::kEgressDenied, Delivery::kNotSent), 0, false},
      {"egress denied POST", true, false,
       Failure(FailureKind::kEgressDenied, Delivery::kNotSent), 0, false},
      // Responses.
      {"503 GET", false, false, Response(503), 0, true},
      {"500 GET", false, false, Response(500), 0, true},
      {"429 GET", false, false, Response(429), 0, true},
      {"envelope 500 GET", false, false, Response(200), 500, true},
      {"envelope 429 GET", false, false, Response(200), 429, true},
      {"404 GET", false, false, Response(404), 0, false},
      {"400 GET", false, false, Response(400), 0, false},
      {"200 GET", false, false, Response(200), 200, false},
      {"503 POST", true, false, Response(503), 0, false},
      {"429 POST", true, false, Response(429), 0, false},
      {"503 refund", true, true, Response(503), 0, true},
      {"429 refund", true, true, Response(429), 0, true},
      {"400 refund", true, true, Response(400), 0, false},
  };
  for (const Row& row : rows) {
    EXPECT_EQ(IsRetryable(row.mutating, row.idempotent_upstream, row.result,
                          row.envelope_code),
              row.retryable)
        << row.name;
  }
}

TEST(BackoffTest, FullJitterWithinTheExponentialCeiling) {
  RetryOptions options;
  options.initial_backoff = absl::Milliseconds(10);
  options.max_backoff = absl::Milliseconds(70);
  absl::BitGen gen;
  const absl::Duration ceilings[] = {
      absl::Milliseconds(10), absl::Milliseconds(20), absl::Milliseconds(40),
      absl::Milliseconds(70), absl::Milliseconds(70)};
  for (int retry = 1; retry <= 5; ++retry) {
    absl::Duration largest = absl::ZeroDuration();
    absl::Duration smallest = absl::InfiniteDuration();
    for (int i = 0; i < 2000; ++i) {
      const absl::Duration d = Backoff(options, retry, gen);
      ASSERT_GE(d, absl::ZeroDuration());
      ASSERT_LT(d, ceilings[retry - 1]) << "retry " << retry;
      largest = std::max(largest, d);
      smallest = std::min(smallest, d);
    }
    // Jittered over the whole range, not a fixed delay.
    EXPECT_GT(largest, ceilings[retry - 1] * 3 / 4) << "retry " << retry;
    EXPECT_LT(smallest, ceilings[retry - 1] / 4) << "retry " << retry;
  }
}

TEST(RetryBudgetTest, RetriesAreABoundedShareOfCalls) {
  RetryOptions options;
  options.budget_ratio = 0.1;
  options.budget_min_per_second = 1;
  options.budget_window = absl::Seconds(10);
  RetryBudget budget(options);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 1000; ++i) budget.RecordCall(t0);
  // 10 (minimum over the window) + 10% of 1000.
  int granted = 0;
  while (granted < 1000 && budget.TryRetry(t0)) ++granted;
  EXPECT_EQ(granted, 110);
  // More calls make room for more retries.
  for (int i = 0; i < 100; ++i) budget.RecordCall(t0 + absl::Seconds(1));
  EXPECT_TRUE(budget.TryRetry(t0 + absl::Seconds(1)));
}

TEST(RetryBudgetTest, OldTrafficLeavesTheWindow) {
  RetryOptions options;
  options.budget_ratio = 0.5;
  options.budget_min_per_second = 0;
  options.budget_window = absl::Seconds(10);
  RetryBudget budget(options);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 10; ++i) budget.RecordCall(t0);
  int granted = 0;
  while (granted < 100 && budget.TryRetry(t0)) ++granted;
  EXPECT_EQ(granted, 5);
  // 10 s later those calls (and their retries) no longer count: with no live
  // traffic there is no budget.
  EXPECT_FALSE(budget.TryRetry(t0 + absl::Seconds(10)));
  for (int i = 0; i < 4; ++i) budget.RecordCall(t0 + absl::Seconds(10));
  EXPECT_TRUE(budget.TryRetry(t0 + absl::Seconds(10)));
  EXPECT_TRUE(budget.TryRetry(t0 + absl::Seconds(10)));
  EXPECT_FALSE(budget.TryRetry(t0 + absl::Seconds(10)));
}

}  // namespace
}  // namespace clink_gateway::clink
