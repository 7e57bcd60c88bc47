// One open StreamEvents stream (EventService::Stream): internal to the
// EventService's sources (event_service.cc, event_service_stream.cc).
#ifndef CLINK_GATEWAY_SERVER_EVENT_SERVICE_STREAM_H_
#define CLINK_GATEWAY_SERVER_EVENT_SERVICE_STREAM_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "clink/gateway/v1/events.pb.h"
#include "common/sync.h"
#include "grpcpp/support/server_callback.h"
#include "server/event_service.h"
#include "server/event_validation.h"

namespace clink_gateway::server {

// The stream's states: starting (EnsureSubscription on a worker), then
// polling (a Claim on a worker), writing (one batch in flight) or waiting (a
// delayed poll queued), until it ends. At most one of polling and writing at a
// time, so at most one store call and one write per stream. Ending (cancel,
// drain, a store error, a broken write) is requested with End; Finish is
// called once nothing is in flight. Owned by `self_` until gRPC is done with
// it (OnDone); queued tasks keep it alive with their own references.
class EventService::Stream final
    : public grpc::ServerWriteReactor<
          ::clink::gateway::v1::StreamEventsResponse> {
 public:
  Stream(EventService& service, std::string merchant, StreamParams params,
         std::string consumer);

  // Makes the new stream own itself; then exactly one of Start and Refuse.
  static std::shared_ptr<Stream> New(EventService& service,
                                     std::string merchant, StreamParams params,
                                     std::string consumer);
  // Ensures the subscription on a worker, then polls.
  void Start();
  // Finishes at once with `status` (never started).
  void Refuse(const absl::Status& status);
  // A new event of the merchant: poll now (or right after the current poll).
  void Wake() ABSL_LOCKS_EXCLUDED(mu_);
  // Ends the stream with `status` once nothing is in flight.
  void End(absl::Status status) ABSL_LOCKS_EXCLUDED(mu_);

  const std::string& merchant() const { return merchant_; }
  const std::string& subscription() const { return params_.spec.name; }

  void OnWriteDone(bool ok) override ABSL_LOCKS_EXCLUDED(mu_);
  void OnCancel() override;
  void OnDone() override;

 private:
  // Polls unless a newer poll was scheduled (`generation` is stale), the
  // stream is busy, or it ends.
  void Poll(uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  void PostPoll(absl::Duration delay) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // With nothing in flight and an end requested: marks the stream finished
  // and returns the status to Finish with (outside the lock).
  std::optional<grpc::Status> TakeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishWith(std::optional<grpc::Status> status);

  EventService& service_;
  const std::string merchant_;
  const StreamParams params_;
  const std::string consumer_;
  Mutex mu_;
  std::shared_ptr<Stream> self_ ABSL_GUARDED_BY(mu_);
  bool opened_ ABSL_GUARDED_BY(mu_) = false;  // OnStreamOpened told.
  bool polling_ ABSL_GUARDED_BY(mu_) = true;  // Starting counts.
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;  // Finish called.
  bool woken_ ABSL_GUARDED_BY(mu_) = false;     // Woken while polling.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Duration backoff_ ABSL_GUARDED_BY(mu_);
  std::optional<absl::Status> end_ ABSL_GUARDED_BY(mu_);
  int64_t delivered_ ABSL_GUARDED_BY(mu_) = 0;
  // The batch being written (StartWrite needs it until OnWriteDone).
  ::clink::gateway::v1::StreamEventsResponse response_;
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_EVENT_SERVICE_STREAM_H_
