// clink_cli: call any clink.gateway.v1 RPC from JSON and print the JSON reply.
//
// Examples:
//   clink_cli PaymentService.GetOrder '{"order_id":"ord_123"}'
//   echo '{"page_num":1}' | clink_cli BillingService.ListProducts -
//   clink_cli --target=gateway:50051 --list
//   clink_cli --target=localhost:50051 --tls_ca=ca.pem --tls_cert=client.pem \
//       --tls_key=client.key PaymentService.GetOrder '{"order_id":"ord_123"}'
//
// Request JSON uses the proto field names (snake_case) or their lowerCamelCase
// JSON names. On error, prints the gRPC code, message and rich details
// (ErrorInfo, BadRequest, RetryInfo) as JSON on stderr and exits 1.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "adapters/clink/rest_codec.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/dynamic_message.h"
#include "google/protobuf/util/json_util.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"

ABSL_FLAG(std::string, target, "localhost:50051",
          "Gateway address (host:port).");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(10), "Deadline for the call.");
ABSL_FLAG(std::vector<std::string>, metadata, {},
          "Extra request metadata as key=value pairs, comma-separated "
          "(e.g. x-request-id=abc).");
ABSL_FLAG(bool, list, false, "List the RPCs and exit.");
ABSL_FLAG(std::string, tls_ca, "",
          "PEM CA bundle to verify the gateway's certificate with. Any of "
          "--tls_ca, --tls_cert, --tls_key turns TLS on (else plaintext, for "
          "a gateway run with --grpc_insecure); an empty --tls_ca uses the "
          "system roots.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM client certificate chain to present (mutual TLS; with "
          "--tls_key). Its SPIFFE id (URI SAN) is the caller's identity.");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");

namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;

std::vector<const ServiceDescriptor*> Services() {
  std::vector<const ServiceDescriptor*> out;
  for (const std::string& name : clink_gateway::clink::GatewayServiceNames()) {
    out.push_back(DescriptorPool::generated_pool()->FindServiceByName(name));
  }
  return out;
}

// Accepts "Service.Method", "pkg.Service/Method", "pkg.Service.Method" or just
// "Method".
const MethodDescriptor* FindMethod(const std::string& name) {
  for (const ServiceDescriptor* service : Services()) {
    for (int i = 0; i < service->method_count(); ++i) {
      const MethodDescriptor* m = service->method(i);
      if (name == m->name() ||
          name == absl::StrCat(service->name(), ".", m->name()) ||
          name == absl::StrCat(service->full_name(), ".", m->name()) ||
          name == absl::StrCat(service->full_name(), "/", m->name())) {
        return m;
      }
    }
  }
  return nullptr;
}

std::string ToJson(const Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

// The whole file at `path` in `out`; false (and a message on stderr) if it
// cannot be read or is empty.
bool ReadFile(const std::string& flag, const std::string& path,
              std::string* out) {
  std::ifstream in(path, std::ios::binary);
  out->assign(std::istreambuf_iterator<char>(in),
              std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) out->clear();
  if (out->empty()) {
    std::fprintf(stderr, "clink_cli: --%s: cannot read %s (or it is empty)\n",
                 flag.c_str(), path.c_str());
    return false;
  }
  return true;
}

// Plaintext unless a --tls_* flag is set; then TLS, presenting the client
// certificate if one is given. Null (after a message) on bad flags.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials() {
  const std::string ca = absl::GetFlag(FLAGS_tls_ca);
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  if (ca.empty() && cert.empty() && key.empty()) {
    return grpc::InsecureChannelCredentials();
  }
  if (cert.empty() != key.empty()) {
    std::fprintf(stderr, "clink_cli: --tls_cert and --tls_key go together\n");
    return nullptr;
  }
  grpc::SslCredentialsOptions options;
  if ((!ca.empty() && !ReadFile("tls_ca", ca, &options.pem_root_certs)) ||
      (!cert.empty() && !ReadFile("tls_cert", cert, &options.pem_cert_chain)) ||
      (!key.empty() && !ReadFile("tls_key", key, &options.pem_private_key))) {
    return nullptr;
  }
  return grpc::SslCredentials(options);
}

void PrintError(const grpc::Status& status) {
  std::string details = "[]";
  google::rpc::Status rich;
  if (!status.error_details().empty() &&
      rich.ParseFromString(status.error_details())) {
    details = "[";
    for (int i = 0; i < rich.details_size(); ++i) {
      const auto& any = rich.details(i);
      std::unique_ptr<Message> detail;
      if (any.type_url() == "type.googleapis.com/google.rpc.ErrorInfo") {
        detail = std::make_unique<google::rpc::ErrorInfo>();
      } else if (any.type_url() ==
                 "type.googleapis.com/google.rpc.BadRequest") {
        detail = std::make_unique<google::rpc::BadRequest>();
      } else if (any.type_url() == "type.googleapis.com/google.rpc.RetryInfo") {
        detail = std::make_unique<google::rpc::RetryInfo>();
      }
      std::string json = "null";
      if (detail != nullptr && detail->ParseFromString(any.value()))
        json = ToJson(*detail);
      absl::StrAppend(&details, i ? ",\n" : "\n", "{\"@type\": \"",
                      any.type_url(), "\", \"value\": ", json, "}");
    }
    details += "]";
  }
  std::string message;
  google::rpc::Status plain;
  plain.set_message(status.error_message());
  google::protobuf::util::JsonPrintOptions options;
  (void)google::protobuf::util::MessageToJsonString(plain, &message, options);
  std::fprintf(stderr, "{\"code\": %d, \"status\": %s, \"details\": %s}\n",
               static_cast<int>(status.error_code()), message.c_str(),
               details.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Calls a clink-gateway RPC with a JSON request and prints the JSON "
      "reply.\n"
      "Usage: clink_cli [--target=host:port] Service.Method '<json>' (or - for "
      "stdin)");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);

  if (absl::GetFlag(FLAGS_list)) {
    for (const ServiceDescriptor* service : Services()) {
      for (int i = 0; i < service->method_count(); ++i) {
        std::printf("%s.%s\n", service->name().c_str(),
                    service->method(i)->name().c_str());
      }
    }
    return 0;
  }
  if (args.size() != 3) {
    std::fprintf(
        stderr,
        "usage: clink_cli [flags] Service.Method '<json>'|-  (--help)\n");
    return 2;
  }
  const MethodDescriptor* method = FindMethod(args[1]);
  if (method == nullptr) {
    std::fprintf(stderr, "clink_cli: unknown RPC %s (see --list)\n", args[1]);
    return 2;
  }
  std::string json = args[2];
  if (json == "-") {
    json.assign(std::istreambuf_iterator<char>(std::cin),
                std::istreambuf_iterator<char>());
  }

  google::protobuf::DynamicMessageFactory factory;
  std::unique_ptr<Message> request(
      factory.GetPrototype(method->input_type())->New());
  std::unique_ptr<Message> response(
      factory.GetPrototype(method->output_type())->New());
  const auto parsed =
      google::protobuf::util::JsonStringToMessage(json, request.get());
  if (!parsed.ok()) {
    std::fprintf(stderr, "clink_cli: request is not a valid %s: %s\n",
                 method->input_type()->full_name().c_str(),
                 parsed.ToString().c_str());
    return 2;
  }

  std::shared_ptr<grpc::ChannelCredentials> credentials = ChannelCredentials();
  if (credentials == nullptr) return 2;
  auto channel = grpc::CreateChannel(absl::GetFlag(FLAGS_target), credentials);
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
  for (const std::string& kv : absl::GetFlag(FLAGS_metadata)) {
    std::vector<std::string> parts =
        absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (parts.size() != 2) {
      std::fprintf(stderr, "clink_cli: --metadata wants key=value, got %s\n",
                   kv.c_str());
      return 2;
    }
    context.AddMetadata(parts[0], parts[1]);
  }

  const std::string serialized = request->SerializeAsString();
  grpc::Slice slice(serialized);
  grpc::ByteBuffer request_buffer(&slice, 1);
  grpc::ByteBuffer response_buffer;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(
      &context,
      absl::StrCat("/", method->service()->full_name(), "/", method->name()),
      grpc::StubOptions(), &request_buffer, &response_buffer,
      [&](grpc::Status s) {
        status = std::move(s);
        done.Notify();
      });
  done.WaitForNotification();
  if (!status.ok()) {
    PrintError(status);
    return 1;
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (response_buffer.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices)
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (!response->ParseFromString(bytes)) {
    std::fprintf(stderr, "clink_cli: could not parse the %s reply\n",
                 method->output_type()->full_name().c_str());
    return 1;
  }
  std::printf("%s\n", ToJson(*response).c_str());
  return 0;
}
