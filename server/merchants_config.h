// --merchants_config: the text-format clink.gateway.config.v1.MerchantsConfig
// (proto/clink/gateway/config/v1/merchants.proto) naming the merchant accounts
// a gateway serves.
#ifndef CLINK_GATEWAY_SERVER_MERCHANTS_CONFIG_H_
#define CLINK_GATEWAY_SERVER_MERCHANTS_CONFIG_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "server/gateway_server.h"

namespace clink_gateway::server {

// Parses `text`, the contents of the file `path`, appending its merchants to
// `options.merchants` and setting `options.default_merchant`. Only parses:
// names, key directories and URLs are checked by ValidateOptions.
// INVALID_ARGUMENT when `text` is not a MerchantsConfig; the message names
// `path` and the line and column (1-based) of the first error, never the text
// found there (a key pasted into the file, or a key file passed as the
// config, must not be printed). `options` is unchanged on error.
absl::Status ParseMerchantsConfig(absl::string_view text,
                                  absl::string_view path,
                                  GatewayOptions& options);

}  // namespace clink_gateway::server

#endif  // CLINK_GATEWAY_SERVER_MERCHANTS_CONFIG_H_
