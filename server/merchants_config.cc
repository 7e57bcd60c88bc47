#include "server/merchants_config.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "clink/gateway/config/v1/merchants.pb.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace clink_gateway::server {
namespace {

// Keeps where the merchants config stopped parsing, not what the parser saw
// there: a key pasted into the file (or the file being a key) would otherwise
// be printed in the message.
class PositionOnlyErrors final : public google::protobuf::io::ErrorCollector {
 public:
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    if (line_ < 0) {
      line_ = line;
      column_ = column;
    }
  }
  // "line L, column C" (1-based) of the first error.
  std::string Where() const {
    return absl::StrCat("line ", line_ + 1, ", column ", column_ + 1);
  }

 private:
  int line_ = -1;
  int column_ = -1;
};

}  // namespace

absl::Status ParseMerchantsConfig(absl::string_view text,
                                  absl::string_view path,
                                  GatewayOptions& options) {
  ::clink::gateway::config::v1::MerchantsConfig config;
  google::protobuf::TextFormat::Parser parser;
  PositionOnlyErrors errors;
  parser.RecordErrorsTo(&errors);
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--merchants_config ", path,
        " is not a text-format clink.gateway.config.v1.MerchantsConfig "
        "(proto/clink/gateway/config/v1/merchants.proto): error at ",
        errors.Where()));
  }
  for (const auto& merchant : config.merchants()) {
    options.merchants.push_back(
        {merchant.name(), merchant.key_dir(), merchant.clink_base_url()});
  }
  options.default_merchant = config.default_merchant();
  return absl::OkStatus();
}

}  // namespace clink_gateway::server
