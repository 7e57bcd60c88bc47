// The EventService (proto/clink/gateway/v1/events.proto): Clink's webhook
// events, as the webhook listener stored them in the EventStore, streamed to
// internal services (streaming pull with leases and acknowledgements) and
// listed or read for replay. Served by the gateway itself; nothing is sent to
// Clink.
//
// Every RPC starts with the forwarder's checks (rpc_forwarder.h: the
// authorization policy, the call metadata and its merchant, the mTLS peer
// identity), then validates the request (INVALID_ARGUMENT naming the field).
// The EventStore is blocking, so no gRPC handler thread ever calls it: the
// store calls run on the service's own worker threads (TaskPool), which
// finish the unary RPCs and write the streams.
//
// A stream: EnsureSubscription, then Claim (a consumer id unique to the
// stream, the request's ack deadline and batch size) and Write one batch at a
// time (the next Claim follows the write's completion: one write in flight,
// so a slow reader holds no more leases than one batch). With nothing to
// deliver it polls again after a backoff doubling from min_poll_interval to
// max_poll_interval, or at once when the webhook listener reports a new event
// of the stream's merchant (OnEventStored). A store error ends the stream
// (UNAVAILABLE for kUnavailable, ...): the caller reconnects with backoff and
// what it did not acknowledge comes again after its ack deadline.
#ifndef CLINK_GATEWAY_SERVER_EVENT_SERVICE_H_
#define CLINK_GATEWAY_SERVER_EVENT_SERVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/events/event_store.h"
#include "clink/gateway/v1/events.grpc.pb.h"
#include "common/clock.h"
#include "common/sync.h"
#include "server/authz_policy.h"
#include "server/event_observer.h"
#include "server/event_payload.h"
#include "server/task_pool.h"

namespace clink_gateway::server {

struct EventServiceOptions {
  // The merchants callers may name with `x-clink-merchant` and the one calls
  // without it get (as ForwarderOptions).
  std::vector<std::string> merchants = {"default"};
  std::string default_merchant = "default";
  // Checked first on every call (as ForwarderOptions::authz); null allows all.
  const AuthzPolicyFile* authz = nullptr;
  // Told about deliveries, acks and store errors; null: none.
  EventObserver* observer = nullptr;
  // Open streams at most; more get RESOURCE_EXHAUSTED.
  int max_streams = 1000;
  // Worker threads for the store calls.
  int threads = 2;
  // An idle stream's polling backoff: from min to max, doubling.
  absl::Duration min_poll_interval = absl::Milliseconds(50);
  absl::Duration max_poll_interval = absl::Seconds(1);
  // How often each subscription with open streams has its oldest
  // unacknowledged event's age refreshed (EventObserver).
  absl::Duration oldest_unacked_refresh = absl::Seconds(15);
  // How far back `start_time` may reach (the event retention period).
  absl::Duration retention = absl::Hours(168);
};

class EventService final
    : public ::clink::gateway::v1::EventService::CallbackService,
      public events::EventListener {
 public:
  // `store` and `clock` (`start_time` checks, ages) must outlive the service.
  // FAILED_PRECONDITION when the event payload messages do not compile.
  static absl::StatusOr<std::unique_ptr<EventService>> Create(
      events::EventStore& store, const Clock& clock,
      EventServiceOptions options);
  // Drain(), then stops the workers. The gRPC server must be shut down first.
  ~EventService() override;

  // Ends every open stream with UNAVAILABLE (reconnect: the unacknowledged
  // events come again after their ack deadline) and refuses new streams with
  // UNAVAILABLE. Unary RPCs keep being served. Idempotent; non-blocking.
  void Drain() ABSL_LOCKS_EXCLUDED(mu_);

  // Wakes the open streams of the event's merchant (they Claim at once).
  // Non-blocking; any thread.
  void OnEventStored(const events::StoredEvent& event) override
      ABSL_LOCKS_EXCLUDED(mu_);

  // Open streams now.
  int open_streams() const ABSL_LOCKS_EXCLUDED(mu_);

  grpc::ServerWriteReactor<::clink::gateway::v1::StreamEventsResponse>*
  StreamEvents(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::StreamEventsRequest* request) override;
  grpc::ServerUnaryReactor* AcknowledgeEvents(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::AcknowledgeEventsRequest* request,
      ::clink::gateway::v1::AcknowledgeEventsResponse* response) override;
  grpc::ServerUnaryReactor* ListEvents(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::ListEventsRequest* request,
      ::clink::gateway::v1::ListEventsResponse* response) override;
  grpc::ServerUnaryReactor* GetEvent(
      grpc::CallbackServerContext* context,
      const ::clink::gateway::v1::GetEventRequest* request,
      ::clink::gateway::v1::GetEventResponse* response) override;

 private:
  class Stream;  // One open StreamEvents (event_service_stream.cc).

  EventService(events::EventStore& store, const Clock& clock,
               EventServiceOptions options,
               std::unique_ptr<EventPayloadDecoder> decoder);

  // The forwarder's checks (authorization, metadata, peer identity) for
  // `method` ("StreamEvents"); the merchant on success.
  absl::StatusOr<std::string> Admit(grpc::CallbackServerContext& context,
                                    absl::string_view method) const;
  // Runs `store_call` (returning the RPC's status) on a worker and finishes
  // the unary RPC with it, logging one line.
  grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context,
                                     absl::string_view method,
                                     absl::Status admitted,
                                     std::function<absl::Status()> store_call);
  // The store's error as the RPC's status; counts it for the observer unless
  // it is a verdict on the request.
  absl::Status StoreError(absl::string_view operation,
                          const absl::Status& status) const;
  void Deregister(Stream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  void RefreshOldestUnacknowledged() ABSL_LOCKS_EXCLUDED(mu_);

  events::EventStore& store_;
  const Clock& clock_;
  const EventServiceOptions options_;
  const absl::flat_hash_set<std::string> merchants_;
  EventObserver& observer_;
  const std::unique_ptr<EventPayloadDecoder> decoder_;

  mutable Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  // Open streams (kept alive by their own reference until gRPC is done).
  std::vector<std::shared_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  uint64_t next_consumer_ ABSL_GUARDED_BY(mu_) = 0;

  // Last: its workers stop (in ~EventService) before the state above goes.
  TaskPool pool_;
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_EVENT_SERVICE_H_
