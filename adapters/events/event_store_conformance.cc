#include "adapters/events/event_store_conformance.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/sync.h"

namespace clink_gateway::events {
namespace {

constexpr char kMerchant[] = "m1";
// How long a test polls for a lease to expire (real-time stores) before it
// fails; never reached when the store works.
constexpr absl::Duration kPollTimeout = absl::Seconds(20);

std::vector<std::string> Ids(const std::vector<Delivery>& deliveries) {
  std::vector<std::string> ids;
  for (const Delivery& d : deliveries) ids.push_back(d.event.event_id);
  return ids;
}

std::vector<std::string> Ids(const std::vector<StoredEvent>& events) {
  std::vector<std::string> ids;
  for (const StoredEvent& e : events) ids.push_back(e.event_id);
  return ids;
}

SubscriptionSpec Spec(absl::string_view name,
                      std::vector<std::string> types = {},
                      absl::Time start = absl::InfinitePast()) {
  SubscriptionSpec spec;
  spec.merchant = kMerchant;
  spec.name = std::string(name);
  spec.event_types = std::move(types);
  spec.start_time = start;
  return spec;
}

// Claims until a call returns nothing (bounded); every delivery.
std::vector<Delivery> ClaimAll(EventStore& store, absl::string_view sub,
                               absl::string_view consumer,
                               absl::Duration deadline = absl::Minutes(10)) {
  std::vector<Delivery> all;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<std::vector<Delivery>> got =
        store.Claim(kMerchant, sub, consumer, 7, deadline);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || got->empty()) break;
    all.insert(all.end(), got->begin(), got->end());
  }
  return all;
}

}  // namespace

void EventStoreConformanceTest::SetUp() {
  absl::StatusOr<std::unique_ptr<EventStoreTestEnv>> env = GetParam().make_env();
  ASSERT_TRUE(env.ok()) << env.status();
  env_ = *std::move(env);
  // Whole milliseconds: what every store keeps exactly.
  base_time_ = absl::FromUnixMillis(absl::ToUnixMillis(env_->Now()));
  store_ = OpenStore();
  ASSERT_NE(store_, nullptr);
}

std::unique_ptr<EventStore> EventStoreConformanceTest::OpenStore(
    EventStoreTestEnv::StoreOptions options) {
  absl::StatusOr<std::unique_ptr<EventStore>> store = env_->OpenStore(options);
  EXPECT_TRUE(store.ok()) << store.status();
  return store.ok() ? *std::move(store) : nullptr;
}

StoredEvent EventStoreConformanceTest::NewEvent(absl::string_view id,
                                                absl::string_view type,
                                                absl::Duration offset) {
  StoredEvent event;
  event.merchant = kMerchant;
  event.event_id = std::string(id);
  event.type = std::string(type);
  event.create_time = absl::FromUnixMillis(1700000000123);
  event.receive_time = base_time_ + offset;
  event.body = absl::StrCat(R"({"id":")", id, R"(","type":")", type, R"("})");
  return event;
}

TEST_P(EventStoreConformanceTest, TenAppendsOfOneIdStoreOneEvent) {
  const StoredEvent event = NewEvent("evt_1");
  int stored = 0;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<AppendResult> result = store_->Append(event);
    ASSERT_TRUE(result.ok()) << result.status();
    if (*result == AppendResult::kStored) ++stored;
  }
  EXPECT_EQ(stored, 1);
  ListQuery query;
  query.merchant = kMerchant;
  absl::StatusOr<ListPage> page = store_->List(query);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(Ids(page->events), std::vector<std::string>{"evt_1"});
  // The same id of another merchant is another event.
  StoredEvent other = event;
  other.merchant = "m2";
  EXPECT_EQ(store_->Append(other).value_or(AppendResult::kDuplicate),
            AppendResult::kStored);
}

TEST_P(EventStoreConformanceTest, AppendKeepsEveryField) {
  StoredEvent event = NewEvent("evt_fields", "dispute.created");
  event.body = std::string("{\"a\":\"\xc3\xa9\\u0000\"}\n", 18);
  ASSERT_TRUE(store_->Append(event).ok());
  absl::StatusOr<std::optional<StoredEvent>> got =
      store_->Get(kMerchant, "evt_fields");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(got->has_value());
  EXPECT_EQ((*got)->merchant, kMerchant);
  EXPECT_EQ((*got)->event_id, "evt_fields");
  EXPECT_EQ((*got)->type, "dispute.created");
  EXPECT_EQ((*got)->create_time, event.create_time);
  EXPECT_EQ((*got)->receive_time, event.receive_time);
  EXPECT_EQ((*got)->body, event.body);
  absl::StatusOr<std::optional<StoredEvent>> missing =
      store_->Get(kMerchant, "evt_none");
  ASSERT_TRUE(missing.ok()) << missing.status();
  EXPECT_FALSE(missing->has_value());
}

TEST_P(EventStoreConformanceTest, DedupOutlivesThePrunedEvent) {
  ASSERT_TRUE(store_->Append(NewEvent("evt_old")).ok());
  absl::StatusOr<int64_t> pruned = store_->Prune(env_->Now() + absl::Hours(1));
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 1);
  absl::StatusOr<std::optional<StoredEvent>> gone =
      store_->Get(kMerchant, "evt_old");
  ASSERT_TRUE(gone.ok()) << gone.status();
  EXPECT_FALSE(gone->has_value());
  EXPECT_EQ(store_->Append(NewEvent("evt_old")).value_or(AppendResult::kStored),
            AppendResult::kDuplicate);
}

TEST_P(EventStoreConformanceTest, RefusesOutOfBoundsEvents) {
  StoredEvent event = NewEvent("ok");
  for (std::string id : {std::string(), std::string("has space"),
                         std::string(256, 'a'), std::string("tab\t"),
                         std::string("\xc3\xa9")}) {
    event.event_id = id;
    EXPECT_EQ(store_->Append(event).status().code(),
              absl::StatusCode::kInvalidArgument)
        << id;
  }
  event.event_id = std::string(255, 'a');
  EXPECT_TRUE(store_->Append(event).ok());
  event = NewEvent("evt_type");
  event.type = std::string(256, 't');
  EXPECT_EQ(store_->Append(event).status().code(),
            absl::StatusCode::kInvalidArgument);
  event = NewEvent("evt_big");
  event.body = std::string((1 << 20) + 1, 'x');
  EXPECT_EQ(store_->Append(event).status().code(),
            absl::StatusCode::kInvalidArgument);
  event.body.pop_back();
  EXPECT_EQ(store_->Append(event).value_or(AppendResult::kDuplicate),
            AppendResult::kStored);
  absl::StatusOr<std::optional<StoredEvent>> got =
      store_->Get(kMerchant, "evt_big");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->body.size(), size_t{1} << 20);
}

TEST_P(EventStoreConformanceTest, SubscriptionsAreFixedAndCapped) {
  std::unique_ptr<EventStore> store = OpenStore({3});
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->EnsureSubscription(Spec("a", {"x", "y"})).ok());
  // The same set, in another order: the same subscription.
  EXPECT_TRUE(store->EnsureSubscription(Spec("a", {"y", "x", "x"})).ok());
  EXPECT_EQ(store->EnsureSubscription(Spec("a", {"x"})).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store->EnsureSubscription(Spec("a")).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(store->EnsureSubscription(Spec("b")).ok());
  EXPECT_TRUE(store->EnsureSubscription(Spec("c")).ok());
  EXPECT_EQ(store->EnsureSubscription(Spec("d")).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(store->EnsureSubscription(Spec("c")).ok());
  SubscriptionSpec elsewhere = Spec("d");
  elsewhere.merchant = "m2";
  EXPECT_TRUE(store->EnsureSubscription(elsewhere).ok());
}

TEST_P(EventStoreConformanceTest, UnknownSubscriptionIsNotFound) {
  EXPECT_EQ(store_->Claim(kMerchant, "nope", "c1", 10, absl::Minutes(1))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Acknowledge(kMerchant, "nope", {"evt"}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->OldestUnacknowledged(kMerchant, "nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(EventStoreConformanceTest, TwoSubscriptionsEachSeeEveryEvent) {
  ASSERT_TRUE(store_->EnsureSubscription(Spec("s1")).ok());
  ASSERT_TRUE(store_->EnsureSubscription(Spec("s2")).ok());
  std::vector<std::string> ids;
  for (int i = 0; i < 12; ++i) {
    ids.push_back(absl::StrCat("evt_", i));
    ASSERT_TRUE(store_->Append(NewEvent(ids.back())).ok());
  }
  std::vector<Delivery> s1 = ClaimAll(*store_, "s1", "c1");
  std::vector<Delivery> s2 = ClaimAll(*store_, "s2", "c2");
  EXPECT_EQ(Ids(s1), ids);
  EXPECT_EQ(Ids(s2), ids);
  for (const Delivery& d : s1) EXPECT_EQ(d.delivery_attempt, 1);
  // Events of another merchant are not theirs.
  StoredEvent other = NewEvent("evt_other");
  other.merchant = "m2";
  ASSERT_TRUE(store_->Append(other).ok());
  EXPECT_TRUE(ClaimAll(*store_, "s1", "c1").empty());
}

TEST_P(EventStoreConformanceTest, ConsumersOfOneSubscriptionShareItsEvents) {
  // Two replicas (two stores) with a consumer each, claiming concurrently.
  std::unique_ptr<EventStore> replica = OpenStore();
  ASSERT_NE(replica, nullptr);
  ASSERT_TRUE(store_->EnsureSubscription(Spec("shared")).ok());
  ASSERT_TRUE(replica->EnsureSubscription(Spec("shared")).ok());
  constexpr int kEvents = 60;
  for (int i = 0; i < kEvents; ++i) {
    ASSERT_TRUE(store_->Append(NewEvent(absl::StrCat("evt_", i))).ok());
  }
  Mutex mu;
  std::map<std::string, int> seen;  // Guarded by mu.
  std::vector<std::string> by_a, by_b;
  auto consume = [&](EventStore* store, std::string consumer,
                     std::vector<std::string>* mine) {
    for (int round = 0; round < 200; ++round) {
      absl::StatusOr<std::vector<Delivery>> got = store->Claim(
          kMerchant, "shared", consumer, 4, absl::Minutes(10));
      ASSERT_TRUE(got.ok()) << got.status();
      if (got->empty()) return;
      std::vector<std::string> ids = Ids(*got);
      {
        MutexLock lock(&mu);
        for (const std::string& id : ids) ++seen[id];
      }
      mine->insert(mine->end(), ids.begin(), ids.end());
      ASSERT_TRUE(store->Acknowledge(kMerchant, "shared", ids).ok());
    }
  };
  std::thread a(consume, store_.get(), "consumer-a", &by_a);
  std::thread b(consume, replica.get(), "consumer-b", &by_b);
  a.join();
  b.join();
  MutexLock lock(&mu);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kEvents));
  for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << id;
  EXPECT_EQ(by_a.size() + by_b.size(), static_cast<size_t>(kEvents));
}

TEST_P(EventStoreConformanceTest, ExpiredLeaseIsRedeliveredWithNextAttempt) {
  ASSERT_TRUE(store_->EnsureSubscription(Spec("s")).ok());
  ASSERT_TRUE(store_->Append(NewEvent("evt_kept")).ok());
  ASSERT_TRUE(store_->Append(NewEvent("evt_acked")).ok());
  const absl::Duration deadline = env_->ShortAckDeadline();
  absl::StatusOr<std::vector<Delivery>> first =
      store_->Claim(kMerchant, "s", "c1", 10, deadline);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(Ids(*first), (std::vector<std::string>{"evt_kept", "evt_acked"}));
  // Acknowledged: never delivered again. Unknown ids are ignored.
  absl::StatusOr<int> acked =
      store_->Acknowledge(kMerchant, "s", {"evt_acked", "evt_unknown"});
  ASSERT_TRUE(acked.ok()) << acked.status();
  EXPECT_EQ(*acked, 1);
  EXPECT_EQ(store_->Acknowledge(kMerchant, "s", {"evt_acked"}).value_or(-1), 0);
  // Within its lease the event is nobody else's.
  absl::StatusOr<std::vector<Delivery>> early =
      store_->Claim(kMerchant, "s", "c2", 10, deadline);
  ASSERT_TRUE(early.ok());
  if (!early->empty()) {
    // Only possible when the real-time lease already ran out (a slow
    // machine): then it must be the second attempt.
    EXPECT_EQ(Ids(*early), std::vector<std::string>{"evt_kept"});
    EXPECT_EQ((*early)[0].delivery_attempt, 2);
    return;
  }
  env_->Advance(deadline * 2);
  std::vector<Delivery> again;
  const absl::Time give_up = absl::Now() + kPollTimeout;
  // Every Claim of a subscription uses the same ack deadline (stores may
  // time leases by the claiming call's deadline).
  while (again.empty() && absl::Now() < give_up) {
    absl::StatusOr<std::vector<Delivery>> got =
        store_->Claim(kMerchant, "s", "c2", 10, deadline);
    ASSERT_TRUE(got.ok()) << got.status();
    again = *got;
  }
  ASSERT_EQ(Ids(again), std::vector<std::string>{"evt_kept"});
  EXPECT_EQ(again[0].delivery_attempt, 2);
  EXPECT_EQ(again[0].event.body, NewEvent("evt_kept").body);
}

TEST_P(EventStoreConformanceTest, EventTypeFilter) {
  ASSERT_TRUE(
      store_->EnsureSubscription(Spec("orders", {"order.succeeded"})).ok());
  ASSERT_TRUE(store_->Append(NewEvent("e1", "order.succeeded")).ok());
  ASSERT_TRUE(store_->Append(NewEvent("e2", "refund.created")).ok());
  ASSERT_TRUE(store_->Append(NewEvent("e3", "order.succeeded")).ok());
  ASSERT_TRUE(store_->Append(NewEvent("e4", "refund.created")).ok());
  std::vector<Delivery> got = ClaimAll(*store_, "orders", "c1");
  EXPECT_EQ(Ids(got), (std::vector<std::string>{"e1", "e3"}));
  ASSERT_TRUE(store_->Acknowledge(kMerchant, "orders", {"e1", "e3"}).ok());
  // Skipped events are not waiting for anyone.
  absl::StatusOr<std::optional<absl::Time>> oldest =
      store_->OldestUnacknowledged(kMerchant, "orders");
  ASSERT_TRUE(oldest.ok()) << oldest.status();
  EXPECT_FALSE(oldest->has_value());
}

TEST_P(EventStoreConformanceTest, StartTimeSkipsEarlierEvents) {
  ASSERT_TRUE(store_->Append(NewEvent("before", "t", -absl::Seconds(10))).ok());
  ASSERT_TRUE(store_->Append(NewEvent("after", "t", absl::Seconds(10))).ok());
  ASSERT_TRUE(store_->EnsureSubscription(Spec("late", {}, env_->Now())).ok());
  ASSERT_TRUE(store_->EnsureSubscription(Spec("all")).ok());
  EXPECT_EQ(Ids(ClaimAll(*store_, "late", "c1")),
            std::vector<std::string>{"after"});
  EXPECT_EQ(Ids(ClaimAll(*store_, "all", "c1")),
            (std::vector<std::string>{"before", "after"}));
}

TEST_P(EventStoreConformanceTest, ListPagesNewestFirstWithFilters) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_
                    ->Append(NewEvent(absl::StrCat("e", i),
                                      i % 2 == 0 ? "even" : "odd",
                                      absl::Seconds(i)))
                    .ok());
  }
  ListQuery query;
  query.merchant = kMerchant;
  query.page_size = 2;
  std::vector<std::string> all;
  int pages = 0;
  do {
    absl::StatusOr<ListPage> page = store_->List(query);
    ASSERT_TRUE(page.ok()) << page.status();
    ASSERT_LE(page->events.size(), 2u);
    for (const StoredEvent& e : page->events) all.push_back(e.event_id);
    query.page_token = page->next_page_token;
    ASSERT_LT(++pages, 10);
  } while (!query.page_token.empty());
  EXPECT_EQ(all, (std::vector<std::string>{"e4", "e3", "e2", "e1", "e0"}));

  query = ListQuery();
  query.merchant = kMerchant;
  query.event_types = {"even"};
  EXPECT_EQ(Ids(store_->List(query).value_or(ListPage()).events),
            (std::vector<std::string>{"e4", "e2", "e0"}));
  query.event_types.clear();
  query.start_time = NewEvent("x", "t", absl::Seconds(1)).receive_time;
  query.end_time = NewEvent("x", "t", absl::Seconds(3)).receive_time;
  EXPECT_EQ(Ids(store_->List(query).value_or(ListPage()).events),
            (std::vector<std::string>{"e2", "e1"}));

  query = ListQuery();
  query.merchant = kMerchant;
  query.page_token = "not-a-token";
  EXPECT_EQ(store_->List(query).status().code(),
            absl::StatusCode::kInvalidArgument);
  query.page_token.clear();
  query.page_size = 0;
  EXPECT_EQ(store_->List(query).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(EventStoreConformanceTest, OldestUnacknowledged) {
  ASSERT_TRUE(store_->EnsureSubscription(Spec("s")).ok());
  auto oldest = [&]() -> std::optional<absl::Time> {
    absl::StatusOr<std::optional<absl::Time>> got =
        store_->OldestUnacknowledged(kMerchant, "s");
    EXPECT_TRUE(got.ok()) << got.status();
    return got.value_or(std::nullopt);
  };
  EXPECT_EQ(oldest(), std::nullopt);
  const StoredEvent e1 = NewEvent("e1", "t", absl::Seconds(1));
  const StoredEvent e2 = NewEvent("e2", "t", absl::Seconds(2));
  ASSERT_TRUE(store_->Append(e1).ok());
  ASSERT_TRUE(store_->Append(e2).ok());
  EXPECT_EQ(oldest(), e1.receive_time);  // Neither delivered.
  absl::StatusOr<std::vector<Delivery>> got =
      store_->Claim(kMerchant, "s", "c1", 1, absl::Minutes(10));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(oldest(), e1.receive_time);  // e1 delivered, not acknowledged.
  ASSERT_TRUE(store_->Acknowledge(kMerchant, "s", {"e1"}).ok());
  EXPECT_EQ(oldest(), e2.receive_time);  // e2 not delivered yet.
  ASSERT_EQ(Ids(ClaimAll(*store_, "s", "c1")), std::vector<std::string>{"e2"});
  EXPECT_EQ(oldest(), e2.receive_time);
  ASSERT_TRUE(store_->Acknowledge(kMerchant, "s", {"e2"}).ok());
  EXPECT_EQ(oldest(), std::nullopt);
}

TEST_P(EventStoreConformanceTest, SurvivesReopenWithUnacknowledgedEvents) {
  ASSERT_TRUE(store_->EnsureSubscription(Spec("s")).ok());
  for (const char* id : {"e1", "e2", "e3"}) {
    ASSERT_TRUE(store_->Append(NewEvent(id)).ok());
  }
  const absl::Duration deadline = env_->ShortAckDeadline();
  absl::StatusOr<std::vector<Delivery>> first =
      store_->Claim(kMerchant, "s", "c1", 1, deadline);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(Ids(*first), std::vector<std::string>{"e1"});
  store_.reset();  // The process stops: e1 unacknowledged, e2 and e3 new.
  store_ = OpenStore();
  ASSERT_NE(store_, nullptr);
  EXPECT_EQ(store_->Append(NewEvent("e2")).value_or(AppendResult::kStored),
            AppendResult::kDuplicate);
  ASSERT_TRUE(store_->Get(kMerchant, "e3").value_or(std::nullopt).has_value());
  env_->Advance(deadline * 2);
  std::map<std::string, int> attempts;
  const absl::Time give_up = absl::Now() + kPollTimeout;
  while (attempts.size() < 3 && absl::Now() < give_up) {
    absl::StatusOr<std::vector<Delivery>> got =
        store_->Claim(kMerchant, "s", "c2", 10, deadline);
    ASSERT_TRUE(got.ok()) << got.status();
    for (const Delivery& d : *got) {
      attempts.emplace(d.event.event_id, d.delivery_attempt);
      ASSERT_TRUE(store_->Acknowledge(kMerchant, "s", {d.event.event_id}).ok());
    }
  }
  EXPECT_EQ(attempts,
            (std::map<std::string, int>{{"e1", 2}, {"e2", 1}, {"e3", 1}}));
}

}  // namespace clink_gateway::events
