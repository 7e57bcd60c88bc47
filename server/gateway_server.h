// Owns and wires every component of the gateway: the Clink transport, the REST
// codec, the gRPC services, health checking and reflection. main.cc only turns
// flags into GatewayOptions.
#ifndef CLINK_GATEWAY_SERVER_GATEWAY_SERVER_H_
#define CLINK_GATEWAY_SERVER_GATEWAY_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "adapters/clink/clink_client.h"
#include "adapters/clink/clock_skew_monitor.h"
#include "adapters/events/event_store.h"
#include "common/clock.h"
#include "google/protobuf/descriptor.h"
#include "server/gateway_options.h"

namespace clink_gateway::server {

class GatewayServer {
 public:
  // Validates `options`, builds every component and starts serving; health is
  // SERVING on return. Every RPC of every contract service is served (see
  // server/contract_services.h); one without a complete, valid REST mapping
  // (RestCodec::Create's checks) fails the start with FAILED_PRECONDITION
  // naming it.
  static absl::StatusOr<std::unique_ptr<GatewayServer>> BuildAndStart(
      GatewayOptions options);

  ~GatewayServer();
  GatewayServer(const GatewayServer&) = delete;
  GatewayServer& operator=(const GatewayServer&) = delete;

  // The bound gRPC port.
  int port() const;
  // The EventService (GatewayOptions::event_store set) as the listener the
  // webhook listener tells about each newly stored event, so that open
  // streams of its merchant deliver it at once; null without one.
  events::EventListener* event_listener() const;
  // The bound metrics port, or 0 when GatewayOptions::metrics_listen is empty.
  int metrics_port() const;
  // The bound health-only port, or 0 when GatewayOptions::health_listen is
  // empty.
  int health_port() const;
  // The bound webhook port, or 0 when GatewayOptions::webhook_listen is
  // empty.
  int webhook_port() const;

  // Where stored webhook events go so that unknown payment outcomes resolve
  // themselves (the outcome reconciler: it watches `order.*` events; see
  // adapters/idempotency/outcome_reconciler.h). Register it with the event
  // store's appender (the webhook listener); its OnEventStored never blocks.
  // Null when --reconcile_window is 0. Valid while this server exists.
  events::EventListener* outcome_event_listener() const;

  // gRPC health service names. kReadinessService ("", the server's overall
  // status) is SERVING while the gateway should get traffic: not while
  // draining, nor while the clock is critically skewed against Clink's.
  // kLivenessService ("liveness") stays SERVING until shutdown: a skewed clock
  // is not cured by a restart.
  static constexpr char kReadinessService[] = "";
  static constexpr char kLivenessService[] = "liveness";

  // Graceful stop: health goes NOT_SERVING and new RPCs are refused; in-flight
  // RPCs get up to `drain` to finish. Then the Clink transport is shut down, so
  // every RPC still waiting on Clink finishes with the gateway's own status
  // (UNKNOWN, outcome "unknown", for a write that may have reached Clink), and
  // gRPC gets 2 s more to deliver those statuses before cancelling the rest.
  // Idempotent; returns within `drain` + 2 s.
  void Shutdown(absl::Duration drain);

 private:
  struct Components;
  explicit GatewayServer(std::unique_ptr<Components> components);
  std::unique_ptr<Components> c_;
};

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_GATEWAY_SERVER_H_
