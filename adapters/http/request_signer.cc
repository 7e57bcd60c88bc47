#include "adapters/http/request_signer.h"

namespace clink_gateway::http {

RequestSigner::~RequestSigner() = default;

}  // namespace clink_gateway::http
