#include "server/event_service.h"

#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "adapters/events/testing/fake_event_store.h"
#include "clink/gateway/v1/events.grpc.pb.h"
#include "common/errors/error_details.h"
#include "common/sync.h"
#include "common/testing/fake_clock.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/event_payload.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;
using ::testing::ElementsAre;
using ::testing::UnorderedElementsAre;

// The BadRequest field names of a failed call.
std::vector<std::string> ViolatedFields(const grpc::Status& status) {
  std::vector<std::string> fields;
  google::rpc::Status details;
  if (!details.ParseFromString(status.error_details())) return fields;
  for (const auto& any : details.details()) {
    if (any.type_url() != errors::kBadRequestTypeUrl) continue;
    google::rpc::BadRequest bad;
    if (!bad.ParseFromString(any.value())) continue;
    for (const auto& v : bad.field_violations()) fields.push_back(v.field());
  }
  return fields;
}

// Records what the service reports.
class RecordingObserver : public EventObserver {
 public:
  void OnDelivered(absl::string_view, absl::string_view,
                   int32_t attempt) override {
    MutexLock lock(&mu_);
    attempt == 1 ? ++first_ : ++redelivered_;
  }
  void OnAcknowledged(absl::string_view, absl::string_view,
                      int count) override {
    MutexLock lock(&mu_);
    acked_ += count;
  }
  void OnStoreError(absl::string_view operation) override {
    MutexLock lock(&mu_);
    store_errors_.emplace_back(operation);
  }
  int first() {
    MutexLock lock(&mu_);
    return first_;
  }
  int redelivered() {
    MutexLock lock(&mu_);
    return redelivered_;
  }
  int acked() {
    MutexLock lock(&mu_);
    return acked_;
  }
  std::vector<std::string> store_errors() {
    MutexLock lock(&mu_);
    return store_errors_;
  }

 private:
  Mutex mu_;
  int first_ = 0, redelivered_ = 0, acked_ = 0;
  std::vector<std::string> store_errors_;
};

std::string OrderBody(absl::string_view id, absl::string_view order_id) {
  return absl::StrCat(R"({"id":")", id,
                      R"(","type":"order.succeeded","created":1750062041000,)",
                      R"("data":{"object":{"orderId":")", order_id,
                      R"(","amountTotal":12345678901234567.89}}})");
}

class EventServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(EventServiceOptions()); }

  void Start(EventServiceOptions options) {
    options.merchants = {"default", "eu"};
    options.observer = &observer_;
    options.min_poll_interval = absl::Milliseconds(1);
    options.max_poll_interval = absl::Milliseconds(20);
    auto service = EventService::Create(store_, clock_, std::move(options));
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = *std::move(service);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = v1::EventService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (service_ != nullptr) service_->Drain();
    if (server_ != nullptr) server_->Shutdown();
    service_.reset();
  }

  // Stores an event (received now) and tells the service, as the listener does.
  void Append(absl::string_view id, absl::string_view type,
              std::string body = "", absl::string_view merchant = "default") {
    events::StoredEvent e;
    e.merchant = std::string(merchant);
    e.event_id = std::string(id);
    e.type = std::string(type);
    e.receive_time = clock_.Now();
    e.body = body.empty() ? absl::StrCat(R"({"id":")", id, R"(","type":")",
                                         type, R"(","data":{"object":{}}})")
                          : std::move(body);
    ASSERT_EQ(*store_.Append(e), events::AppendResult::kStored);
    service_->OnEventStored(e);
  }

  v1::StreamEventsRequest Request(absl::string_view subscription,
                                  int ack_seconds = 600) {
    v1::StreamEventsRequest request;
    request.set_subscription(std::string(subscription));
    request.mutable_ack_deadline()->set_seconds(ack_seconds);
    request.mutable_start_time()->set_seconds(
        absl::ToUnixSeconds(clock_.Now() - absl::Hours(1)));
    return request;
  }

  grpc::Status Ack(absl::string_view subscription, std::vector<std::string> ids,
                   int* count = nullptr) {
    grpc::ClientContext context;
    v1::AcknowledgeEventsRequest request;
    request.set_subscription(std::string(subscription));
    for (auto& id : ids) request.add_event_ids(id);
    v1::AcknowledgeEventsResponse response;
    grpc::Status status =
        stub_->AcknowledgeEvents(&context, request, &response);
    if (count != nullptr) *count = response.acknowledged_count();
    return status;
  }

  // The status a stream ends with before delivering anything.
  grpc::Status StreamStatus(const v1::StreamEventsRequest& request) {
    grpc::ClientContext context;
    auto reader = stub_->StreamEvents(&context, request);
    v1::StreamEventsResponse response;
    EXPECT_FALSE(reader->Read(&response));
    return reader->Finish();
  }

  FakeClock clock_;
  events::FakeEventStore store_{clock_};
  RecordingObserver observer_;
  std::unique_ptr<EventService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::EventService::Stub> stub_;
};

TEST_F(EventServiceTest, StreamDeliversStoredEventsDecoded) {
  Append("evt_1", "order.succeeded", OrderBody("evt_1", "ord_1"));
  grpc::ClientContext context;
  auto reader = stub_->StreamEvents(&context, Request("fulfilment"));
  v1::StreamEventsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  ASSERT_EQ(response.events_size(), 1);
  const v1::Event& e = response.events(0);
  EXPECT_EQ(e.event_id(), "evt_1");
  EXPECT_EQ(e.type(), "order.succeeded");
  EXPECT_EQ(e.merchant(), "default");
  EXPECT_EQ(e.delivery_attempt(), 1);
  EXPECT_EQ(e.order().order_id(), "ord_1");
  EXPECT_EQ(e.receive_time().seconds(), absl::ToUnixSeconds(clock_.Now()));
  // Exactly Clink's text: the amount keeps every digit.
  EXPECT_EQ(e.raw_json(),
            R"({"orderId":"ord_1","amountTotal":12345678901234567.89})");
  EXPECT_FALSE(e.has_data());
  context.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(observer_.first(), 1);
}

TEST_F(EventServiceTest, NewEventWakesAnIdleStream) {
  grpc::ClientContext context;
  auto reader = stub_->StreamEvents(&context, Request("fulfilment"));
  Append("evt_1", "invoice.paid");
  v1::StreamEventsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.events(0).event_id(), "evt_1");
  context.TryCancel();
  reader->Finish();
}

TEST_F(EventServiceTest, TwoStreamsOfOneSubscriptionSplitTheEvents) {
  constexpr int kEvents = 40;
  for (int i = 0; i < kEvents; ++i) {
    Append(absl::StrCat("evt_", i), "order.succeeded");
  }
  Mutex mu;
  std::multiset<std::string> seen;
  grpc::ClientContext contexts[2];
  std::vector<std::thread> readers;
  for (grpc::ClientContext& context : contexts) {
    readers.emplace_back([&, request = [&] {
      auto r = Request("fulfilment");
      r.set_max_events_per_response(3);
      return r;
    }()] {
      auto reader = stub_->StreamEvents(&context, request);
      v1::StreamEventsResponse response;
      while (reader->Read(&response)) {
        MutexLock lock(&mu);
        for (const auto& e : response.events()) seen.insert(e.event_id());
        if (static_cast<int>(seen.size()) >= kEvents) {
          contexts[0].TryCancel();
          contexts[1].TryCancel();
        }
      }
      reader->Finish();
    });
  }
  for (auto& t : readers) t.join();
  MutexLock lock(&mu);
  EXPECT_EQ(static_cast<int>(seen.size()), kEvents);
  for (int i = 0; i < kEvents; ++i) {
    EXPECT_EQ(seen.count(absl::StrCat("evt_", i)), 1u) << i;
  }
}

TEST_F(EventServiceTest, UnacknowledgedIsRedeliveredAndAckStopsIt) {
  Append("evt_1", "order.succeeded");
  grpc::ClientContext context;
  auto reader = stub_->StreamEvents(&context, Request("fulfilment", 10));
  v1::StreamEventsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(response.events(0).delivery_attempt(), 1);
  clock_.Advance(absl::Seconds(11));  // The lease expires unacknowledged.
  ASSERT_TRUE(reader->Read(&response));
  ASSERT_EQ(response.events_size(), 1);
  EXPECT_EQ(response.events(0).event_id(), "evt_1");
  EXPECT_EQ(response.events(0).delivery_attempt(), 2);
  EXPECT_EQ(observer_.redelivered(), 1);

  int acked = 0;
  ASSERT_TRUE(Ack("fulfilment", {"evt_1", "evt_unknown"}, &acked).ok());
  EXPECT_EQ(acked, 1);
  EXPECT_EQ(observer_.acked(), 1);
  clock_.Advance(absl::Seconds(11));
  Append("evt_2", "order.succeeded");
  ASSERT_TRUE(reader->Read(&response));
  ASSERT_EQ(response.events_size(), 1);  // evt_1 does not come again.
  EXPECT_EQ(response.events(0).event_id(), "evt_2");
  EXPECT_EQ(response.events(0).delivery_attempt(), 1);
  context.TryCancel();
  reader->Finish();
}

TEST_F(EventServiceTest, EventTypesFilterTheSubscription) {
  Append("evt_1", "order.succeeded");
  Append("evt_2", "invoice.paid");
  auto request = Request("renewals");
  request.add_event_types("invoice.paid");
  grpc::ClientContext context;
  auto reader = stub_->StreamEvents(&context, request);
  v1::StreamEventsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  ASSERT_EQ(response.events_size(), 1);
  EXPECT_EQ(response.events(0).event_id(), "evt_2");
  context.TryCancel();
  reader->Finish();

  // The same subscription with other types: FAILED_PRECONDITION.
  request.clear_event_types();
  request.add_event_types("order.succeeded");
  EXPECT_EQ(StreamStatus(request).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(EventServiceTest, ListPagesNewestFirstAndFilters) {
  Append("evt_1", "order.succeeded");
  clock_.Advance(absl::Seconds(1));
  Append("evt_2", "invoice.paid");
  clock_.Advance(absl::Seconds(1));
  Append("evt_3", "order.succeeded");
  std::vector<std::string> ids;
  std::string token;
  for (int page = 0; page < 3; ++page) {
    grpc::ClientContext context;
    v1::ListEventsRequest request;
    request.set_page_size(2);
    request.set_page_token(token);
    v1::ListEventsResponse response;
    ASSERT_TRUE(stub_->ListEvents(&context, request, &response).ok());
    for (const auto& e : response.events()) {
      ids.push_back(e.event_id());
      EXPECT_EQ(e.delivery_attempt(), 0);
    }
    token = response.next_page_token();
    if (token.empty()) break;
  }
  EXPECT_THAT(ids, ElementsAre("evt_3", "evt_2", "evt_1"));

  grpc::ClientContext context;
  v1::ListEventsRequest request;
  request.add_event_types("order.succeeded");
  v1::ListEventsResponse response;
  ASSERT_TRUE(stub_->ListEvents(&context, request, &response).ok());
  ASSERT_EQ(response.events_size(), 2);
  EXPECT_EQ(response.events(0).event_id(), "evt_3");
  EXPECT_EQ(response.events(1).event_id(), "evt_1");
}

TEST_F(EventServiceTest, GetFindsTheMerchantsEventOnly) {
  Append("evt_1", "order.succeeded", OrderBody("evt_1", "ord_9"));
  {
    grpc::ClientContext context;
    v1::GetEventRequest request;
    request.set_event_id("evt_1");
    v1::GetEventResponse response;
    ASSERT_TRUE(stub_->GetEvent(&context, request, &response).ok());
    EXPECT_EQ(response.event().order().order_id(), "ord_9");
  }
  grpc::ClientContext context;
  context.AddMetadata("x-clink-merchant", "eu");
  v1::GetEventRequest request;
  request.set_event_id("evt_1");
  v1::GetEventResponse response;
  EXPECT_EQ(stub_->GetEvent(&context, request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(EventServiceTest, InvalidRequestsNameTheField) {
  auto stream = Request("9-starts-with-a-digit");
  EXPECT_THAT(ViolatedFields(StreamStatus(stream)),
              ElementsAre("subscription"));
  stream = Request("ok", 5);
  EXPECT_THAT(ViolatedFields(StreamStatus(stream)),
              ElementsAre("ack_deadline"));
  stream = Request("ok");
  stream.add_event_types("order.succeeded");
  stream.add_event_types("order.exploded");
  stream.set_max_events_per_response(101);
  EXPECT_THAT(
      ViolatedFields(StreamStatus(stream)),
      UnorderedElementsAre("event_types[1]", "max_events_per_response"));
  stream = Request("ok");
  stream.mutable_start_time()->set_seconds(
      absl::ToUnixSeconds(clock_.Now() - absl::Hours(169)));
  EXPECT_THAT(ViolatedFields(StreamStatus(stream)), ElementsAre("start_time"));

  EXPECT_THAT(ViolatedFields(Ack("ok", {})), ElementsAre("event_ids"));
  EXPECT_THAT(ViolatedFields(Ack("ok", {"evt_1", ""})),
              ElementsAre("event_ids[1]"));
  {
    grpc::ClientContext context;
    v1::ListEventsRequest request;
    request.set_page_size(101);
    request.mutable_start_time()->set_seconds(200);
    request.mutable_end_time()->set_seconds(100);
    v1::ListEventsResponse response;
    EXPECT_THAT(ViolatedFields(stub_->ListEvents(&context, request, &response)),
                UnorderedElementsAre("end_time", "page_size"));
  }
  {
    grpc::ClientContext context;
    v1::ListEventsRequest request;
    request.set_page_token("not-issued");
    v1::ListEventsResponse response;
    EXPECT_THAT(ViolatedFields(stub_->ListEvents(&context, request, &response)),
                ElementsAre("page_token"));
  }
  grpc::ClientContext context;
  v1::GetEventResponse response;
  EXPECT_THAT(ViolatedFields(
                  stub_->GetEvent(&context, v1::GetEventRequest(), &response)),
              ElementsAre("event_id"));
  grpc::ClientContext unknown_merchant;
  unknown_merchant.AddMetadata("x-clink-merchant", "nowhere");
  v1::GetEventRequest get;
  get.set_event_id("evt_1");
  EXPECT_THAT(
      ViolatedFields(stub_->GetEvent(&unknown_merchant, get, &response)),
      ElementsAre("x-clink-merchant"));
  EXPECT_EQ(store_.claim_calls(), 0);  // Nothing reached the store.
}

TEST_F(EventServiceTest, StoreDownIsUnavailable) {
  store_.SetUnavailable(true);
  EXPECT_EQ(StreamStatus(Request("fulfilment")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  grpc::ClientContext context;
  v1::GetEventRequest request;
  request.set_event_id("evt_1");
  v1::GetEventResponse response;
  EXPECT_EQ(stub_->GetEvent(&context, request, &response).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Ack("fulfilment", {"evt_1"}).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(observer_.store_errors(),
              ElementsAre("ensure_subscription", "get", "acknowledge"));
}

TEST_F(EventServiceTest, StoreFailingMidStreamEndsItUnavailable) {
  Append("evt_1", "order.succeeded");
  grpc::ClientContext context;
  auto reader = stub_->StreamEvents(&context, Request("fulfilment"));
  v1::StreamEventsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  store_.SetUnavailable(true);
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(EventServiceTest, DrainEndsStreamsUnavailableAndRefusesNewOnes) {
  Append("evt_1", "order.succeeded");
  grpc::ClientContext context;
  auto reader = stub_->StreamEvents(&context, Request("fulfilment"));
  v1::StreamEventsResponse response;
  ASSERT_TRUE(reader->Read(&response));  // Open and delivering.
  service_->Drain();
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(StreamStatus(Request("fulfilment")).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(EventServiceTest, TooManyStreamsIsResourceExhausted) {
  TearDown();
  EventServiceOptions options;
  options.max_streams = 1;
  Start(options);
  Append("evt_1", "order.succeeded");
  grpc::ClientContext context;
  auto reader = stub_->StreamEvents(&context, Request("fulfilment"));
  v1::StreamEventsResponse response;
  ASSERT_TRUE(reader->Read(&response));
  EXPECT_EQ(StreamStatus(Request("fulfilment")).error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  context.TryCancel();
  reader->Finish();
}

// --- Payload decoding

class EventPayloadTest : public ::testing::Test {
 protected:
  v1::Event Decode(absl::string_view type, absl::string_view data) {
    events::StoredEvent stored;
    stored.merchant = "default";
    stored.event_id = "evt_1";
    stored.type = std::string(type);
    stored.body = absl::StrCat(R"({"id":"evt_1","type":")", type,
                               R"(","data":)", data, "}");
    v1::Event event;
    decoder_->Decode(stored, 0, &event);
    return event;
  }
  std::unique_ptr<EventPayloadDecoder> decoder_ =
      *EventPayloadDecoder::Create();
};

TEST_F(EventPayloadTest, EachTypePrefixDecodesIntoItsMessage) {
  EXPECT_EQ(Decode("order.failed", R"({"object":{"orderId":"o1"}})")
                .order()
                .order_id(),
            "o1");
  // Legacy form: `data` is the resource itself.
  const v1::Event refund =
      Decode("refund.succeeded", R"({"refundId":"r1","refundAmount":19.99})");
  EXPECT_EQ(refund.refund().refund_id(), "r1");
  EXPECT_EQ(refund.refund().refund_amount(), "19.99");
  EXPECT_EQ(Decode("session.complete", R"({"object":{"sessionId":"s1"}})")
                .checkout_session()
                .session_id(),
            "s1");
  EXPECT_EQ(Decode("subscription.updated.renewed",
                   R"({"object":{"subscriptionId":"sub1"}})")
                .subscription()
                .subscription_id(),
            "sub1");
  EXPECT_EQ(Decode("invoice.paid", R"({"object":{"invoiceId":"in1"}})")
                .invoice()
                .invoice_id(),
            "in1");
  const v1::Event dispute = Decode(
      "dispute.lost",
      R"({"object":{"chargeBackId":"cb1","disputeAmount":100000000000000000.01,)"
      R"("status":4,"channelDisputeTime":"2025-06-16T08:20:41Z"}})");
  EXPECT_EQ(dispute.dispute().charge_back_id(), "cb1");
  EXPECT_EQ(dispute.dispute().dispute_amount(), "100000000000000000.01");
  EXPECT_EQ(dispute.dispute().status(), v1::DISPUTE_STATUS_LOST);
  EXPECT_GT(dispute.dispute().channel_dispute_time().seconds(), 0);
  EXPECT_EQ(Decode("customer.verify",
                   R"({"object":{"customerEmail":"a@b.c","customerId":"c1"}})")
                .customer_verification()
                .customer_id(),
            "c1");
}

TEST_F(EventPayloadTest, UnknownTypeGetsDataAndRawJson) {
  const v1::Event e =
      Decode("risk_rule.updated", R"({"object":{"ruleId":"r","n":[1,2]}})");
  EXPECT_EQ(e.payload_case(), v1::Event::PAYLOAD_NOT_SET);
  EXPECT_EQ(e.raw_json(), R"({"ruleId":"r","n":[1,2]})");
  EXPECT_EQ(e.data().fields().at("ruleId").string_value(), "r");
}

TEST_F(EventPayloadTest, UndecodableResourceFallsBackToData) {
  // An amount that is not a number cannot be read exactly.
  const v1::Event e =
      Decode("refund.failed", R"({"object":{"refundAmount":{"x":1}}})");
  EXPECT_EQ(e.payload_case(), v1::Event::PAYLOAD_NOT_SET);
  EXPECT_TRUE(e.data().fields().contains("refundAmount"));
  EXPECT_EQ(e.raw_json(), R"({"refundAmount":{"x":1}})");
}

TEST_F(EventPayloadTest, HostileBodiesYieldEnvelopeOnly) {
  for (const std::string& data :
       {std::string("[1]"), std::string("\"x\""), std::string(200, '['),
        std::string("{\"object\":") + std::string(100, '[')}) {
    const v1::Event e = Decode("order.created", data);
    EXPECT_EQ(e.event_id(), "evt_1");
    EXPECT_EQ(e.payload_case(), v1::Event::PAYLOAD_NOT_SET);
    EXPECT_TRUE(e.raw_json().empty());
  }
}

}  // namespace
}  // namespace clink_gateway::server
