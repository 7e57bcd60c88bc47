#include "server/event_service.h"

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "adapters/clink/clink_api.h"
#include "common/errors/error_details.h"
#include "common/logging.h"
#include "server/event_service_stream.h"
#include "server/event_validation.h"
#include "server/rpc_forwarder.h"
#include "server/status_util.h"

namespace clink_gateway::server {
namespace {

namespace v1 = ::clink::gateway::v1;

constexpr absl::string_view kServicePath = "/clink.gateway.v1.EventService/";

EventObserver& NoEventObserver() {
  static EventObserver* const observer = new EventObserver();
  return *observer;
}

}  // namespace

absl::StatusOr<std::unique_ptr<EventService>> EventService::Create(
    events::EventStore& store, const Clock& clock,
    EventServiceOptions options) {
  absl::StatusOr<std::unique_ptr<EventPayloadDecoder>> decoder =
      EventPayloadDecoder::Create();
  if (!decoder.ok()) return decoder.status();
  return std::unique_ptr<EventService>(
      new EventService(store, clock, std::move(options), *std::move(decoder)));
}

EventService::EventService(events::EventStore& store, const Clock& clock,
                           EventServiceOptions options,
                           std::unique_ptr<EventPayloadDecoder> decoder)
    : store_(store),
      clock_(clock),
      options_(std::move(options)),
      merchants_(options_.merchants.begin(), options_.merchants.end()),
      observer_(options_.observer != nullptr ? *options_.observer
                                             : NoEventObserver()),
      decoder_(std::move(decoder)),
      pool_(options_.threads) {
  pool_.PostAfter(options_.oldest_unacked_refresh,
                  [this] { RefreshOldestUnacknowledged(); });
}

absl::StatusOr<std::string> EventService::Admit(
    grpc::CallbackServerContext& context, absl::string_view method) const {
  clink::CallOptions options;
  const CallPeer peer = ReadCallPeer(context);
  // First: a caller the policy does not allow learns nothing else.
  if (absl::Status allowed =
          AuthorizeCall(options_.authz, absl::StrCat(kServicePath, method),
                        peer, context, options);
      !allowed.ok()) {
    return allowed;
  }
  if (absl::Status metadata = ReadCallMetadata(
          context, merchants_, options_.default_merchant, options);
      !metadata.ok()) {
    return metadata;
  }
  if (absl::Status identity = ApplyCallPeer(peer, options); !identity.ok()) {
    return identity;
  }
  return options.merchant;
}

absl::Status EventService::StoreError(absl::string_view operation,
                                      const absl::Status& status) const {
  absl::Status out(status.code(), absl::StrCat("event store ", operation, ": ",
                                               status.message()));
  absl::string_view reason = "EVENT_STORE_ERROR";
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      reason = "SUBSCRIPTION_NOT_FOUND";
      break;
    case absl::StatusCode::kFailedPrecondition:
      reason = "SUBSCRIPTION_MISMATCH";
      break;
    case absl::StatusCode::kResourceExhausted:
      reason = "TOO_MANY_SUBSCRIPTIONS";
      break;
    case absl::StatusCode::kInvalidArgument:
      reason = "INVALID_REQUEST";
      break;
    case absl::StatusCode::kUnavailable:
      reason = "EVENT_STORE_UNAVAILABLE";
      observer_.OnStoreError(operation);
      break;
    default:
      observer_.OnStoreError(operation);
      break;
  }
  errors::AttachErrorInfo(out, errors::kGatewayDomain, reason,
                          errors::Outcome::kNotSent);
  return out;
}

grpc::ServerUnaryReactor* EventService::RunUnary(
    grpc::CallbackServerContext* context, absl::string_view method,
    absl::Status admitted, std::function<absl::Status()> store_call) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  const absl::Time start = clock_.Now();
  auto finish = [this, reactor, start,
                 method = std::string(method)](const absl::Status& status) {
    const LogLevel level = status.ok() ? LogLevel::kInfo
                           : status.code() == absl::StatusCode::kInternal
                               ? LogLevel::kError
                               : LogLevel::kWarning;
    const absl::Duration latency = clock_.Now() - start;
    reactor->Finish(ToGrpcStatus(status));
    if (LogEnabled(level)) {
      Log(level, "rpc",
          {{"method", absl::StrCat("clink.gateway.v1.EventService.", method)},
           {"code", absl::StatusCodeToString(status.code())},
           {"latency_ms",
            absl::StrFormat("%.3f", absl::ToDoubleMilliseconds(latency))}});
    }
  };
  if (!admitted.ok()) {
    finish(admitted);
    return reactor;
  }
  pool_.Post([store_call = std::move(store_call), finish = std::move(finish)] {
    finish(store_call());
  });
  return reactor;
}

grpc::ServerUnaryReactor* EventService::AcknowledgeEvents(
    grpc::CallbackServerContext* context,
    const v1::AcknowledgeEventsRequest* request,
    v1::AcknowledgeEventsResponse* response) {
  absl::StatusOr<std::string> merchant = Admit(*context, "AcknowledgeEvents");
  absl::Status admitted = merchant.status();
  if (admitted.ok()) admitted = ValidateAcknowledgeEvents(*request);
  return RunUnary(
      context, "AcknowledgeEvents", admitted,
      [this, merchant = merchant.value_or(""), request, response] {
        const std::vector<std::string> ids(request->event_ids().begin(),
                                           request->event_ids().end());
        absl::StatusOr<int> acked =
            store_.Acknowledge(merchant, request->subscription(), ids);
        if (!acked.ok()) return StoreError("acknowledge", acked.status());
        response->set_acknowledged_count(*acked);
        if (*acked > 0) {
          observer_.OnAcknowledged(merchant, request->subscription(), *acked);
        }
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* EventService::ListEvents(
    grpc::CallbackServerContext* context, const v1::ListEventsRequest* request,
    v1::ListEventsResponse* response) {
  absl::StatusOr<std::string> merchant = Admit(*context, "ListEvents");
  events::ListQuery query;
  absl::Status admitted = merchant.status();
  if (admitted.ok()) {
    query.merchant = *merchant;
    admitted = ValidateListEvents(*request, query);
  }
  return RunUnary(
      context, "ListEvents", admitted,
      [this, query = std::move(query), response] {
        absl::StatusOr<events::ListPage> page = store_.List(query);
        if (!page.ok()) {
          if (page.status().code() == absl::StatusCode::kInvalidArgument) {
            return errors::InvalidArgumentWithViolations(
                {{"page_token", "is not a token this gateway issued"}});
          }
          return StoreError("list", page.status());
        }
        for (const events::StoredEvent& e : page->events) {
          decoder_->Decode(e, 0, response->add_events());
        }
        response->set_next_page_token(page->next_page_token);
        return absl::OkStatus();
      });
}

grpc::ServerUnaryReactor* EventService::GetEvent(
    grpc::CallbackServerContext* context, const v1::GetEventRequest* request,
    v1::GetEventResponse* response) {
  absl::StatusOr<std::string> merchant = Admit(*context, "GetEvent");
  absl::Status admitted = merchant.status();
  if (admitted.ok()) admitted = ValidateGetEvent(*request);
  return RunUnary(context, "GetEvent", admitted,
                  [this, merchant = merchant.value_or(""), request, response] {
                    absl::StatusOr<std::optional<events::StoredEvent>> event =
                        store_.Get(merchant, request->event_id());
                    if (!event.ok()) return StoreError("get", event.status());
                    if (!event->has_value()) {
                      absl::Status missing = absl::NotFoundError(
                          "the gateway keeps no event with this event_id");
                      errors::AttachErrorInfo(missing, errors::kGatewayDomain,
                                              "EVENT_NOT_FOUND",
                                              errors::Outcome::kNotSent);
                      return missing;
                    }
                    decoder_->Decode(**event, 0, response->mutable_event());
                    return absl::OkStatus();
                  });
}

void EventService::RefreshOldestUnacknowledged() {
  std::vector<std::pair<std::string, std::string>> subscriptions;
  {
    MutexLock lock(&mu_);
    for (const auto& stream : streams_) {
      subscriptions.emplace_back(stream->merchant(), stream->subscription());
    }
  }
  std::sort(subscriptions.begin(), subscriptions.end());
  subscriptions.erase(std::unique(subscriptions.begin(), subscriptions.end()),
                      subscriptions.end());
  for (const auto& [merchant, subscription] : subscriptions) {
    absl::StatusOr<std::optional<absl::Time>> oldest =
        store_.OldestUnacknowledged(merchant, subscription);
    if (!oldest.ok()) {
      (void)StoreError("oldest_unacknowledged", oldest.status());  // Counted.
      continue;
    }
    observer_.OnOldestUnacknowledgedAge(
        merchant, subscription,
        oldest->has_value()
            ? std::max(clock_.Now() - **oldest, absl::ZeroDuration())
            : absl::ZeroDuration());
  }
  pool_.PostAfter(options_.oldest_unacked_refresh,
                  [this] { RefreshOldestUnacknowledged(); });
}

}  // namespace clink_gateway::server
