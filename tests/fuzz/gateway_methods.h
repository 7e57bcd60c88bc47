// The gateway's REST codec and its methods for the fuzz targets: one codec for
// the process, and the methods in a fixed order (by full name), so a fuzz
// input picks one with its first byte and a corpus file keeps meaning the same
// method.
#ifndef CLINK_GATEWAY_TESTS_FUZZ_GATEWAY_METHODS_H_
#define CLINK_GATEWAY_TESTS_FUZZ_GATEWAY_METHODS_H_

#include <cstdint>
#include <vector>

#include "adapters/clink/rest_codec.h"

namespace clink_gateway::fuzz {

// The codec of every service of the public contract (GatewayServiceNames()).
// Aborts when it cannot be built (a bug in the protos, not a fuzz finding).
const clink::RestCodec& GatewayCodec();

// Every compiled method, ordered by the method's full name
// ("clink.gateway.v1.BillingService.CancelSubscription" first).
const std::vector<const clink::RestMethod*>& GatewayMethods();

// GatewayMethods()[selector % size]: how a fuzz input's first byte names its
// method (tests/fuzz/make_seeds.py writes seeds the same way).
const clink::RestMethod& MethodForSelector(uint8_t selector);

}  // namespace clink_gateway::fuzz

#endif  // CLINK_GATEWAY_TESTS_FUZZ_GATEWAY_METHODS_H_
