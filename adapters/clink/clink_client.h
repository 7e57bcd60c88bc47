// ClinkApi over the REST codec and an HttpTransport.
#ifndef CLINK_GATEWAY_ADAPTERS_CLINK_CLINK_CLIENT_H_
#define CLINK_GATEWAY_ADAPTERS_CLINK_CLINK_CLIENT_H_

#include <atomic>
#include <cstdint>

#include "adapters/clink/clink_api.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/http/http_transport.h"
#include "common/clock.h"

namespace clink_gateway::clink {

class ClinkClient final : public ClinkApi {
 public:
  // `codec`, `transport` and `clock` must outlive the client.
  ClinkClient(const RestCodec& codec, http::HttpTransport& transport,
              const Clock& clock);

  ClinkClient(const ClinkClient&) = delete;
  ClinkClient& operator=(const ClinkClient&) = delete;

  void Call(const google::protobuf::MethodDescriptor& method,
            const google::protobuf::Message& request,
            const CallOptions& options, google::protobuf::Message* response,
            Callback done) override;

  // Total JSON members seen in Clink responses that no proto field holds.
  int64_t unknown_fields_total() const { return unknown_fields_total_.load(); }

 private:
  const RestCodec& codec_;
  http::HttpTransport& transport_;
  const Clock& clock_;
  std::atomic<int64_t> unknown_fields_total_{0};
};

}  // namespace clink_gateway::clink

#endif  // CLINK_GATEWAY_ADAPTERS_CLINK_CLINK_CLIENT_H_
