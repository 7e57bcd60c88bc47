// The events feature end to end (issue 12 §6): real gateway processes with
// --webhook_listen on port 0, the Clink emulator delivering signed webhooks to
// them over HTTP, and EventService clients over gRPC. Events are stored in
// SQLite in the state directory or, with --event_redis, in a real Redis.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "adapters/webhooks/webhook_signature.h"
#include "clink/gateway/v1/events.grpc.pb.h"
#include "clink/gateway/v1/payment.grpc.pb.h"
#include "common/testing/http_get.h"
#include "google/protobuf/util/time_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/emulator/clink_emulator.h"
#include "tests/emulator/test_ca.h"
#include "tests/integration/gateway_process.h"
#include "tests/integration/payments.h"
#include "tests/redis/redis_server.h"

namespace clink_gateway::testing {
namespace {

namespace v1 = ::clink::gateway::v1;
using emulator::WebhookFault;

constexpr char kKey[] = "sk_test_events_0123456789abcdef";
constexpr char kSecret[] = "whsec_events_e2e_0123456789";
// The longest any single wait on a stream may take (the redelivery wait is
// the ack deadline, 10 s, plus the gateway's redelivery scan).
constexpr absl::Duration kStreamWait = absl::Seconds(30);

std::unique_ptr<grpc::ClientContext> Context(
    absl::Duration timeout = absl::Seconds(10)) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context->AddMetadata("x-clink-caller", "events-e2e");
  return context;
}

// One open StreamEvents call.
class Stream {
 public:
  // Opens `subscription` (created reaching one minute back, so no event of
  // the test is before it) with `ack_deadline`; the call ends after
  // kStreamWait * 2 at the latest.
  Stream(v1::EventService::Stub* stub, const std::string& subscription,
         absl::Duration ack_deadline = absl::Seconds(30))
      : context_(Context(kStreamWait * 2)) {
    v1::StreamEventsRequest request;
    request.set_subscription(subscription);
    *request.mutable_start_time() = google::protobuf::util::TimeUtil::
        SecondsToTimestamp(absl::ToUnixSeconds(absl::Now() - absl::Minutes(1)));
    *request.mutable_ack_deadline() =
        google::protobuf::util::TimeUtil::SecondsToDuration(
            absl::ToInt64Seconds(ack_deadline));
    reader_ = stub->StreamEvents(context_.get(), request);
  }
  ~Stream() {
    context_->TryCancel();
    reader_->Finish();
  }

  // The next event (reading a new batch when the last one is used up), or
  // false when the stream ends.
  bool Next(v1::Event* event) {
    while (next_ >= batch_.events_size()) {
      batch_.Clear();
      next_ = 0;
      if (!reader_->Read(&batch_)) return false;
    }
    *event = batch_.events(next_++);
    return true;
  }

  // Reads until an event `stop` says is the last, or the stream ends;
  // returns everything read.
  template <typename Stop>
  std::vector<v1::Event> ReadUntil(Stop stop) {
    std::vector<v1::Event> read;
    v1::Event event;
    while (Next(&event)) {
      read.push_back(event);
      if (stop(event)) break;
    }
    return read;
  }

  void Cancel() { context_->TryCancel(); }

 private:
  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReader<v1::StreamEventsResponse>> reader_;
  v1::StreamEventsResponse batch_;
  int next_ = 0;
};

int Acknowledge(v1::EventService::Stub* stub, const std::string& subscription,
                const std::vector<v1::Event>& events) {
  v1::AcknowledgeEventsRequest request;
  request.set_subscription(subscription);
  for (const v1::Event& event : events) request.add_event_ids(event.event_id());
  v1::AcknowledgeEventsResponse response;
  const grpc::Status status =
      stub->AcknowledgeEvents(Context().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response.acknowledged_count();
}

std::vector<v1::Event> ListAll(v1::EventService::Stub* stub) {
  v1::ListEventsRequest request;
  request.set_page_size(100);
  v1::ListEventsResponse response;
  const grpc::Status status =
      stub->ListEvents(Context().get(), request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return {response.events().begin(), response.events().end()};
}

std::multiset<std::string> IdsOf(const std::vector<v1::Event>& events) {
  std::multiset<std::string> ids;
  for (const v1::Event& event : events) ids.insert(event.event_id());
  return ids;
}

class EventsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/eventsXXXXXX");
    ASSERT_NE(mkdtemp(dir_.data()), nullptr);
    auto ca = emulator::GenerateTestCa(dir_);
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_bundle_ = ca->ca_cert_pem;
    emulator::ClinkEmulator::Options options;
    options.api_keys = {kKey};
    options.tls_cert_pem_path = ca->server_pem;
    options.webhooks.base_delay = absl::Milliseconds(10);
    options.webhooks.max_delay = absl::Milliseconds(200);
    auto emulator = emulator::ClinkEmulator::Start(options);
    ASSERT_TRUE(emulator.ok()) << emulator.status();
    emulator_ = *std::move(emulator);

    key_dir_ = absl::StrCat(dir_, "/keys");
    ASSERT_EQ(mkdir(key_dir_.c_str(), 0700), 0);
    std::ofstream(absl::StrCat(key_dir_, "/api-key")) << kKey << "\n";
    std::ofstream(absl::StrCat(key_dir_, "/webhook-secret")) << kSecret;
    state_dir_ = absl::StrCat(dir_, "/state");
    ASSERT_EQ(mkdir(state_dir_.c_str(), 0700), 0);
  }

  // Starts a gateway on the test's state directory (`extra_flags` may add
  // --event_redis) and points the emulator's webhooks at it.
  GatewayProcess* StartGateway(const std::vector<std::string>& extra_flags) {
    std::vector<std::string> flags = {
        absl::StrCat("--clink_base_url=", emulator_->base_url()),
        "--egress_allow_cidrs=127.0.0.0/8",
        absl::StrCat("--api_key_dir=", key_dir_),
        absl::StrCat("--ca_bundle=", ca_bundle_),
        "--webhook_listen=127.0.0.1:0",
    };
    flags.insert(flags.end(), extra_flags.begin(), extra_flags.end());
    if (std::none_of(flags.begin(), flags.end(), [](const std::string& f) {
          return f.rfind("--state_dir=", 0) == 0;
        })) {
      flags.push_back(absl::StrCat("--state_dir=", state_dir_));
    }
    auto gateway = GatewayProcess::Start(flags);
    EXPECT_TRUE(gateway.ok()) << gateway.status();
    if (!gateway.ok()) return nullptr;
    EXPECT_GT((*gateway)->webhook_port(), 0) << (*gateway)->output();
    gateways_.push_back(*std::move(gateway));
    GatewayProcess* started = gateways_.back().get();
    stubs_.push_back(v1::EventService::NewStub(started->NewChannel()));
    TargetEmulatorAt(*started);
    return started;
  }

  void TargetEmulatorAt(const GatewayProcess& gateway) {
    ASSERT_TRUE(emulator_
                    ->SetWebhookTarget(
                        "default",
                        {absl::StrCat("http://127.0.0.1:",
                                      gateway.webhook_port(), "/webhooks/clink"),
                         kSecret})
                    .ok());
  }

  v1::EventService::Stub* events(size_t i = 0) { return stubs_[i].get(); }

  // Emits an order.succeeded for `order_id` (delivered in the background);
  // returns its event id.
  std::string Publish(const std::string& order_id) {
    auto id = emulator_->EmitWebhookEvent(
        "default", "order.succeeded",
        absl::StrCat(R"({"orderId":")", order_id, R"(","amountTotal":"7.50"})"));
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : "";
  }

  // Publish(), then waits until the emulator has delivered everything
  // (answered 2xx or given up).
  std::string Emit(const std::string& order_id) {
    const std::string id = Publish(order_id);
    EXPECT_TRUE(emulator_->WaitForWebhooksIdle(absl::Seconds(10)));
    return id;
  }

  std::string dir_;
  std::string key_dir_;
  std::string state_dir_;
  std::string ca_bundle_;
  std::unique_ptr<emulator::ClinkEmulator> emulator_;
  std::vector<std::unique_ptr<GatewayProcess>> gateways_;
  std::vector<std::unique_ptr<v1::EventService::Stub>> stubs_;
};

// The HTTP request of one webhook delivery; the fields are what a forger may
// change.
struct Delivery {
  std::string path = "/webhooks/clink";
  std::string secret = kSecret;
  absl::Duration clock_skew;  // Added to the timestamp.
  bool timestamp_header = true;
  bool signature_header = true;
  std::string signature;        // Replaces the computed one when not empty.
  int corrupt_byte = -1;        // Body byte changed after signing, if >= 0.
};

int Deliver(int port, const std::string& body, const Delivery& d) {
  const std::string ts =
      absl::StrCat(absl::ToUnixMillis(absl::Now() + d.clock_skew));
  std::string sent = body;
  if (d.corrupt_byte >= 0) sent[d.corrupt_byte] ^= 0x01;
  const std::string signature =
      d.signature.empty() ? webhooks::SignWebhook(d.secret, ts, body)
                          : d.signature;
  std::string request =
      absl::StrCat("POST ", d.path,
                   " HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
                   "Content-Type: application/json\r\n"
                   "X-Clink-SignType: SHA256\r\n");
  if (d.timestamp_header) {
    absl::StrAppend(&request, "X-Clink-Timestamp: ", ts, "\r\n");
  }
  if (d.signature_header) {
    absl::StrAppend(&request, "X-Clink-Signature: ", signature, "\r\n");
  }
  absl::StrAppend(&request, "Content-Length: ", sent.size(), "\r\n\r\n", sent);
  const absl::StatusOr<HttpGetResponse> response = HttpExchange(port, request);
  EXPECT_TRUE(response.ok()) << response.status();
  return response.ok() ? response->status_code : 0;
}

TEST_F(EventsTest, APaymentsOrderEventsAreStreamedTypedAndCanBeReadBack) {
  GatewayProcess* gateway = StartGateway({});
  ASSERT_NE(gateway, nullptr);
  Stream stream(events(), "fulfilment");

  auto payments = v1::PaymentService::NewStub(gateway->NewChannel());
  auto context = Context();
  context->AddMetadata("idempotency-key", "pay-events-1");
  v1::CreatePaymentResponse paid;
  const grpc::Status status = payments->CreatePayment(
      context.get(), CardPayment("12.00", "cart-events"), &paid);
  ASSERT_TRUE(status.ok()) << status.error_message();

  const std::vector<v1::Event> got = stream.ReadUntil(
      [](const v1::Event& e) { return e.type() == "order.succeeded"; });
  ASSERT_FALSE(got.empty());
  const v1::Event& succeeded = got.back();
  ASSERT_EQ(succeeded.type(), "order.succeeded");
  for (const v1::Event& event : got) {
    EXPECT_EQ(event.type().rfind("order.", 0), 0u) << event.type();
    ASSERT_EQ(event.payload_case(), v1::Event::kOrder) << event.raw_json();
    EXPECT_EQ(event.order().order_id(), paid.order_id());
    EXPECT_EQ(event.merchant(), "default");
    EXPECT_EQ(event.delivery_attempt(), 1);
    EXPECT_FALSE(event.raw_json().empty());
  }
  EXPECT_EQ(succeeded.order().amount_total(), "12.00") << succeeded.raw_json();
  EXPECT_EQ(succeeded.order().merchant_reference_id(), "cart-events");
  EXPECT_EQ(Acknowledge(events(), "fulfilment", got),
            static_cast<int>(got.size()));

  // The same events, read back without a subscription.
  EXPECT_TRUE(emulator_->WaitForWebhooksIdle(absl::Seconds(10)));
  const std::multiset<std::string> listed = IdsOf(ListAll(events()));
  for (const v1::Event& event : got) {
    EXPECT_EQ(listed.count(event.event_id()), 1u) << event.event_id();
  }
  v1::GetEventRequest get;
  get.set_event_id(succeeded.event_id());
  v1::GetEventResponse one;
  ASSERT_TRUE(events()->GetEvent(Context().get(), get, &one).ok());
  EXPECT_EQ(one.event().type(), "order.succeeded");
  EXPECT_EQ(one.event().order().amount_total(), "12.00");
  EXPECT_EQ(one.event().raw_json(), succeeded.raw_json());
}

TEST_F(EventsTest, ForgedDeliveriesAreRefusedAndNeverStored) {
  GatewayProcess* gateway = StartGateway({});
  ASSERT_NE(gateway, nullptr);
  const std::string body =
      R"({"id":"evt_forged0000000000000001","type":"order.succeeded",)"
      R"("object":"event","created":1750062041000,)"
      R"("data":{"object":{"orderId":"ord_forged","amountTotal":"1000.00"}}})";
  struct Case {
    const char* name;
    Delivery delivery;
  };
  std::vector<Case> cases(8);
  cases[0] = {"wrong secret", {}};
  cases[0].delivery.secret = "whsec_not_the_merchants";
  cases[1] = {"one body byte changed", {}};
  cases[1].delivery.corrupt_byte = static_cast<int>(body.find("1000"));
  cases[2] = {"stale timestamp", {}};
  cases[2].delivery.clock_skew = -absl::Minutes(10);
  cases[3] = {"future timestamp", {}};
  cases[3].delivery.clock_skew = absl::Minutes(10);
  cases[4] = {"no signature header", {}};
  cases[4].delivery.signature_header = false;
  cases[5] = {"no timestamp header", {}};
  cases[5].delivery.timestamp_header = false;
  cases[6] = {"non-hex signature", {}};
  cases[6].delivery.signature = std::string(64, 'z');
  cases[7] = {"another merchant's path", {}};
  cases[7].delivery.path = "/webhooks/clink/other";
  for (const Case& c : cases) {
    const int code = Deliver(gateway->webhook_port(), body, c.delivery);
    EXPECT_GE(code, 400) << c.name;
    EXPECT_LT(code, 500) << c.name;
  }
  EXPECT_TRUE(ListAll(events()).empty());

  // The stream's first event is the genuine one sent after them.
  Stream stream(events(), "forgery-check");
  const std::string genuine = Emit("ord_genuine");
  v1::Event first;
  ASSERT_TRUE(stream.Next(&first));
  EXPECT_EQ(first.event_id(), genuine);
  const std::vector<v1::Event> listed = ListAll(events());
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].event_id(), genuine);
}

TEST_F(EventsTest, DuplicatesAndReorderedDeliveriesGiveEachEventOnce) {
  GatewayProcess* gateway = StartGateway({});
  ASSERT_NE(gateway, nullptr);
  Stream stream(events(), "dedup");

  WebhookFault duplicate;
  duplicate.kind = WebhookFault::Kind::kDuplicate;
  duplicate.count = 1;
  duplicate.copies = 10;
  ASSERT_TRUE(emulator_->SetWebhookFault(duplicate).ok());
  const std::string copied = Emit("ord_dup");
  EXPECT_EQ(emulator_->webhook_stats().succeeded, 10);

  WebhookFault reorder;
  reorder.kind = WebhookFault::Kind::kOutOfOrder;
  reorder.count = 3;
  ASSERT_TRUE(emulator_->SetWebhookFault(reorder).ok());
  std::vector<std::string> reordered;
  for (int i = 0; i < 3; ++i) {
    reordered.push_back(Publish(absl::StrCat("ord_reorder_", i)));
  }
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(absl::Seconds(10)));
  // A marker last: once it is read, everything before it was.
  const std::string marker = Emit("ord_marker");
  EXPECT_EQ(emulator_->webhook_stats().succeeded, 14);

  const std::vector<v1::Event> got = stream.ReadUntil(
      [&](const v1::Event& e) { return e.event_id() == marker; });
  const std::multiset<std::string> ids = IdsOf(got);
  EXPECT_EQ(ids.count(copied), 1u);
  for (const std::string& id : reordered) EXPECT_EQ(ids.count(id), 1u) << id;
  EXPECT_EQ(ids.count(marker), 1u);
  EXPECT_EQ(got.size(), 5u);
  EXPECT_EQ(ListAll(events()).size(), 5u);
}

TEST_F(EventsTest, AnUnacknowledgedEventIsDeliveredAgain) {
  ASSERT_NE(StartGateway({}), nullptr);
  // 10 s, the shortest ack deadline there is.
  Stream stream(events(), "forgetful", absl::Seconds(10));
  const std::string id = Emit("ord_unacked");
  v1::Event first;
  ASSERT_TRUE(stream.Next(&first));
  EXPECT_EQ(first.event_id(), id);
  EXPECT_EQ(first.delivery_attempt(), 1);
  v1::Event again;
  ASSERT_TRUE(stream.Next(&again)) << "not redelivered";
  EXPECT_EQ(again.event_id(), id);
  EXPECT_EQ(again.delivery_attempt(), 2);
  EXPECT_EQ(Acknowledge(events(), "forgetful", {again}), 1);
}

// SIGKILL after the 200, before any stream read: the restarted gateway (same
// state directory, or same Redis) delivers the event.
class EventsKillTest : public EventsTest,
                       public ::testing::WithParamInterface<bool> {
 protected:
  // --event_redis when the parameter is true, else SQLite.
  std::vector<std::string> StoreFlags() {
    if (!GetParam()) return {};
    if (redis_ == nullptr) {
      RedisServer::Options options;
      options.extra_args = {"--appendonly", "yes", "--appendfsync", "always"};
      auto redis = RedisServer::Create(options);
      EXPECT_TRUE(redis.ok()) << redis.status();
      if (redis.ok()) redis_ = *std::move(redis);
    }
    return {absl::StrCat("--event_redis=", redis_->address())};
  }
  std::unique_ptr<RedisServer> redis_;
};

TEST_P(EventsKillTest, AnEventAcceptedBeforeAKillIsDeliveredAfterTheRestart) {
  GatewayProcess* first = StartGateway(StoreFlags());
  ASSERT_NE(first, nullptr);
  const std::string id = Emit("ord_before_kill");
  ASSERT_EQ(emulator_->webhook_stats().succeeded, 1);  // Answered 200.
  const int wstatus = first->Kill();
  ASSERT_TRUE(WIFSIGNALED(wstatus));
  EXPECT_EQ(WTERMSIG(wstatus), SIGKILL);

  ASSERT_NE(StartGateway(StoreFlags()), nullptr);
  Stream stream(events(1), "after-restart");
  v1::Event event;
  ASSERT_TRUE(stream.Next(&event));
  EXPECT_EQ(event.event_id(), id);
  EXPECT_EQ(event.order().order_id(), "ord_before_kill");
  EXPECT_EQ(Acknowledge(events(1), "after-restart", {event}), 1);
}

INSTANTIATE_TEST_SUITE_P(Stores, EventsKillTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Redis" : "Sqlite";
                         });

TEST_F(EventsTest, TwoGatewaysOnOneRedisHandleEachEventOnce) {
  RedisServer::Options redis_options;
  auto redis = RedisServer::Create(redis_options);
  ASSERT_TRUE(redis.ok()) << redis.status();
  const std::string flag = absl::StrCat("--event_redis=", (*redis)->address());
  // Each its own state directory (one process per SQLite file).
  for (int i = 0; i < 2; ++i) {
    const std::string state = absl::StrCat(dir_, "/state-", i);
    ASSERT_EQ(mkdir(state.c_str(), 0700), 0);
    ASSERT_NE(StartGateway({flag, absl::StrCat("--state_dir=", state)}),
              nullptr);
  }
  constexpr int kEvents = 20;
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < 2; ++i) {
    streams.push_back(std::make_unique<Stream>(events(i), "ledger"));
  }
  std::set<std::string> emitted;
  for (int i = 0; i < kEvents; ++i) {
    // Alternate the receiving replica too.
    TargetEmulatorAt(*gateways_[i % 2]);
    emitted.insert(Publish(absl::StrCat("ord_fleet_", i)));
  }
  ASSERT_TRUE(emulator_->WaitForWebhooksIdle(absl::Seconds(10)));

  // Each consumer acknowledges what it gets; both stop once all were seen.
  std::atomic<int> handled{0};
  std::vector<std::vector<v1::Event>> got(2);
  std::vector<std::thread> consumers;
  for (int i = 0; i < 2; ++i) {
    consumers.emplace_back([&, i] {
      v1::Event event;
      while (streams[i]->Next(&event)) {
        EXPECT_EQ(Acknowledge(events(i), "ledger", {event}), 1);
        got[i].push_back(event);
        if (++handled >= kEvents) {
          for (auto& stream : streams) stream->Cancel();
        }
      }
    });
  }
  for (std::thread& consumer : consumers) consumer.join();
  std::vector<v1::Event> all = got[0];
  all.insert(all.end(), got[1].begin(), got[1].end());
  const std::multiset<std::string> ids = IdsOf(all);
  EXPECT_EQ(all.size(), static_cast<size_t>(kEvents));
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()), emitted);
  for (const std::string& id : emitted) EXPECT_EQ(ids.count(id), 1u) << id;
}

}  // namespace
}  // namespace clink_gateway::testing
