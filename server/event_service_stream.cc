// EventService::StreamEvents and its streams (event_service_stream.h).
#include "server/event_service_stream.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/errors/error_details.h"
#include "common/logging.h"
#include "server/status_util.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;

absl::Status Unavailable(absl::string_view message, absl::string_view reason) {
  absl::Status status = absl::UnavailableError(message);
  errors::AttachErrorInfo(status, errors::kGatewayDomain, reason,
                          errors::Outcome::kNotSent);
  return status;
}

}  // namespace

// --- EventService: the streams' side

grpc::ServerWriteReactor<v1::StreamEventsResponse>* EventService::StreamEvents(
    grpc::CallbackServerContext* context,
    const v1::StreamEventsRequest* request) {
  absl::StatusOr<std::string> merchant = Admit(*context, "StreamEvents");
  StreamParams params;
  absl::Status admitted = merchant.status();
  if (admitted.ok()) {
    admitted = ValidateStreamEvents(*request, clock_.Now(), options_.retention,
                                    params);
    params.spec.merchant = *merchant;
  }
  std::string consumer;
  if (admitted.ok()) {
    MutexLock lock(&mu_);
    if (draining_) {
      admitted = Unavailable("the gateway is draining: reconnect", "DRAINING");
    } else if (static_cast<int>(streams_.size()) >= options_.max_streams) {
      admitted = absl::ResourceExhaustedError(
          absl::StrCat("this gateway serves at most ", options_.max_streams,
                       " open event streams"));
      errors::AttachErrorInfo(admitted, errors::kGatewayDomain,
                              "TOO_MANY_STREAMS", errors::Outcome::kNotSent);
    } else {
      // Unique per stream, across replicas and restarts of this process.
      consumer = absl::StrCat(absl::ToUnixNanos(absl::Now()), "-",
                              reinterpret_cast<uintptr_t>(this), "-",
                              next_consumer_++);
    }
  }
  std::shared_ptr<Stream> stream =
      Stream::New(*this, merchant.value_or(""), std::move(params), consumer);
  if (!admitted.ok()) {
    stream->Refuse(admitted);
    return stream.get();
  }
  {
    MutexLock lock(&mu_);
    streams_.push_back(stream);
  }
  stream->Start();
  return stream.get();
}

void EventService::Drain() {
  std::vector<std::shared_ptr<Stream>> streams;
  {
    MutexLock lock(&mu_);
    draining_ = true;
    streams = streams_;
  }
  for (const auto& stream : streams) {
    stream->End(Unavailable(
        "the gateway is draining: reconnect; unacknowledged events are "
        "delivered again after their ack deadline",
        "DRAINING"));
  }
}

void EventService::OnEventStored(const events::StoredEvent& event) {
  std::vector<std::shared_ptr<Stream>> woken;
  {
    MutexLock lock(&mu_);
    for (const auto& stream : streams_) {
      if (stream->merchant() == event.merchant) woken.push_back(stream);
    }
  }
  for (const auto& stream : woken) stream->Wake();
}

int EventService::open_streams() const {
  MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

void EventService::Deregister(Stream* stream) {
  std::shared_ptr<Stream> gone;  // Released after the lock.
  MutexLock lock(&mu_);
  const auto it =
      std::find_if(streams_.begin(), streams_.end(),
                   [stream](const auto& s) { return s.get() == stream; });
  if (it != streams_.end()) {
    gone = std::move(*it);
    streams_.erase(it);
  }
}

EventService::~EventService() {
  Drain();
  pool_.Stop();
}

// --- Stream

EventService::Stream::Stream(EventService& service, std::string merchant,
                             StreamParams params, std::string consumer)
    : service_(service),
      merchant_(std::move(merchant)),
      params_(std::move(params)),
      consumer_(std::move(consumer)),
      backoff_(service.options_.min_poll_interval) {}

std::shared_ptr<EventService::Stream> EventService::Stream::New(
    EventService& service, std::string merchant, StreamParams params,
    std::string consumer) {
  auto stream = std::make_shared<Stream>(
      service, std::move(merchant), std::move(params), std::move(consumer));
  MutexLock lock(&stream->mu_);
  stream->self_ = stream;
  return stream;
}

void EventService::Stream::Refuse(const absl::Status& status) {
  {
    MutexLock lock(&mu_);
    finished_ = true;
    polling_ = false;
  }
  Finish(ToGrpcStatus(status));
}

void EventService::Stream::Start() {
  std::shared_ptr<Stream> self;
  {
    MutexLock lock(&mu_);
    self = self_;
  }
  service_.pool_.Post([self] {
    const absl::Status ensured =
        self->service_.store_.EnsureSubscription(self->params_.spec);
    uint64_t generation = 0;
    std::optional<grpc::Status> finish;
    {
      MutexLock lock(&self->mu_);
      if (!ensured.ok()) {
        if (!self->end_.has_value()) {
          self->end_ =
              self->service_.StoreError("ensure_subscription", ensured);
        }
      } else {
        self->opened_ = true;
        self->service_.observer_.OnStreamOpened(self->merchant_,
                                                self->subscription());
      }
      self->polling_ = false;
      generation = self->generation_;
      finish = self->TakeFinish();  // When an end was requested.
    }
    if (finish.has_value()) {
      self->FinishWith(std::move(finish));
      return;
    }
    self->Poll(generation);
  });
}

void EventService::Stream::PostPoll(absl::Duration delay) {
  std::shared_ptr<Stream> self = self_;
  const uint64_t generation = generation_;
  if (self == nullptr) return;  // gRPC is done with it.
  auto task = [self, generation] { self->Poll(generation); };
  if (delay <= absl::ZeroDuration()) {
    service_.pool_.Post(std::move(task));
  } else {
    service_.pool_.PostAfter(delay, std::move(task));
  }
}

void EventService::Stream::Poll(uint64_t generation) {
  {
    MutexLock lock(&mu_);
    if (finished_ || polling_ || writing_ || generation != generation_) {
      return;  // Stale: another poll or a write took over.
    }
    if (end_.has_value())
      return;       // Whoever set it finishes: nothing is in flight.
    ++generation_;  // Any other queued poll is stale now.
    polling_ = true;
    woken_ = false;
  }
  absl::StatusOr<std::vector<events::Delivery>> claimed =
      service_.store_.Claim(merchant_, subscription(), consumer_,
                            params_.max_events, params_.ack_deadline);
  std::optional<grpc::Status> finish;
  bool write = false;
  {
    MutexLock lock(&mu_);
    polling_ = false;
    if (!claimed.ok()) {
      if (!end_.has_value())
        end_ = service_.StoreError("claim", claimed.status());
    } else if (end_.has_value()) {
      // Claimed but not sent: delivered again after the ack deadline.
    } else if (claimed->empty()) {
      if (woken_) {
        PostPoll(absl::ZeroDuration());
      } else {
        PostPoll(backoff_);
        backoff_ = std::min(backoff_ * 2, service_.options_.max_poll_interval);
      }
    } else {
      response_.Clear();
      for (const events::Delivery& d : *claimed) {
        service_.decoder_->Decode(d.event, d.delivery_attempt,
                                  response_.add_events());
        service_.observer_.OnDelivered(merchant_, subscription(),
                                       d.delivery_attempt);
      }
      delivered_ += static_cast<int64_t>(claimed->size());
      backoff_ = service_.options_.min_poll_interval;
      writing_ = true;
      write = true;
    }
    if (end_.has_value()) finish = TakeFinish();
  }
  if (write) StartWrite(&response_);
  FinishWith(std::move(finish));
}

void EventService::Stream::OnWriteDone(bool ok) {
  std::optional<grpc::Status> finish;
  {
    MutexLock lock(&mu_);
    writing_ = false;
    if (!ok && !end_.has_value()) {
      end_ = absl::CancelledError("the stream broke while writing");
    }
    if (end_.has_value()) {
      finish = TakeFinish();
    } else {
      PostPoll(absl::ZeroDuration());  // Flow control: the next batch now.
    }
  }
  FinishWith(std::move(finish));
}

void EventService::Stream::Wake() {
  MutexLock lock(&mu_);
  if (finished_ || end_.has_value()) return;
  if (polling_) {
    woken_ = true;  // The poll in progress may have missed the event.
  } else if (!writing_) {
    backoff_ = service_.options_.min_poll_interval;
    PostPoll(absl::ZeroDuration());
  }
}

void EventService::Stream::End(absl::Status status) {
  std::optional<grpc::Status> finish;
  {
    MutexLock lock(&mu_);
    if (!end_.has_value()) end_ = std::move(status);
    finish = TakeFinish();
  }
  FinishWith(std::move(finish));
}

void EventService::Stream::OnCancel() {
  End(absl::CancelledError("the caller cancelled the stream"));
}

std::optional<grpc::Status> EventService::Stream::TakeFinish() {
  if (finished_ || polling_ || writing_ || !end_.has_value()) {
    return std::nullopt;
  }
  finished_ = true;
  return ToGrpcStatus(*end_);
}

void EventService::Stream::FinishWith(std::optional<grpc::Status> status) {
  if (status.has_value()) Finish(*std::move(status));
}

void EventService::Stream::OnDone() {
  std::shared_ptr<Stream> self;  // Freed at the end.
  bool opened;
  int64_t delivered;
  absl::StatusCode code = absl::StatusCode::kOk;
  {
    MutexLock lock(&mu_);
    self = std::move(self_);
    opened = opened_;
    delivered = delivered_;
    if (end_.has_value()) code = end_->code();
  }
  if (opened) service_.observer_.OnStreamClosed(merchant_, subscription());
  if (LogEnabled(LogLevel::kInfo)) {
    Log(LogLevel::kInfo, "event_stream",
        {{"merchant", merchant_},
         {"subscription", subscription()},
         {"code", absl::StatusCodeToString(code)},
         {"delivered", absl::StrCat(delivered)}});
  }
  service_.Deregister(this);
}

}  // namespace clink_gateway::server
