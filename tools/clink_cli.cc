// clink_cli: call any clink.gateway.v1 RPC from JSON and print the JSON reply.
//
// Examples:
//   clink_cli PaymentService.GetOrder '{"order_id":"ord_123"}'
//   echo '{"page_num":1}' | clink_cli BillingService.ListProducts -
//   clink_cli --target=gateway:50051 --list
//   clink_cli --target=localhost:50051 --tls_ca=ca.pem --tls_cert=client.pem \
//       --tls_key=client.key PaymentService.GetOrder '{"order_id":"ord_123"}'
//   clink_cli --consume=fulfilment --event_types=order.succeeded,invoice.paid
//   clink_cli EventService.GetEvent '{"event_id":"evt_123"}'
//
// --consume=<subscription> streams the subscription's events (StreamEvents),
// prints each event as one JSON line on stdout, and acknowledges each batch
// (AcknowledgeEvents) once it is printed and flushed; it runs until
// interrupted, the gateway ends the stream (exit 1 with the status), or
// --max_events were printed.
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
#include "clink/gateway/v1/events.grpc.pb.h"
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
ABSL_FLAG(std::string, consume, "",
          "Stream this event subscription (EventService.StreamEvents), print "
          "each event as one JSON line and acknowledge what was printed.");
ABSL_FLAG(std::vector<std::string>, event_types, {},
          "With --consume: the Clink event types of a new subscription "
          "(comma-separated; empty: all).");
ABSL_FLAG(absl::Duration, ack_deadline, absl::Seconds(30),
          "With --consume: how long an event may stay unacknowledged before "
          "it is delivered again (10s-600s).");
ABSL_FLAG(int, max_events, 0,
          "With --consume: stop after printing this many events (0: never).");
ABSL_FLAG(bool, ack, true,
          "With --consume: acknowledge the printed events (false: they come "
          "again after the ack deadline).");

namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::Message;
using google::protobuf::MethodDescriptor;
using google::protobuf::ServiceDescriptor;

namespace v1 = ::clink::gateway::v1;

std::vector<const ServiceDescriptor*> Services() {
  std::vector<const ServiceDescriptor*> out;
  for (const std::string& name : clink_gateway::clink::GatewayServiceNames()) {
    out.push_back(DescriptorPool::generated_pool()->FindServiceByName(name));
  }
  // Served by the gateway itself (not in GatewayServiceNames()).
  out.push_back(DescriptorPool::generated_pool()->FindServiceByName(
      v1::EventService::service_full_name()));
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

// Adds --metadata to `context`; false (and a message) when malformed.
bool AddMetadata(grpc::ClientContext& context) {
  for (const std::string& kv : absl::GetFlag(FLAGS_metadata)) {
    std::vector<std::string> parts =
        absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (parts.size() != 2) {
      std::fprintf(stderr, "clink_cli: --metadata wants key=value, got %s\n",
                   kv.c_str());
      return false;
    }
    context.AddMetadata(parts[0], parts[1]);
  }
  return true;
}

// --consume: one JSON line per event on stdout; each batch acknowledged once
// printed. Returns the exit code.
int Consume(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::EventService::NewStub(channel);
  v1::StreamEventsRequest request;
  request.set_subscription(absl::GetFlag(FLAGS_consume));
  for (const std::string& type : absl::GetFlag(FLAGS_event_types)) {
    request.add_event_types(type);
  }
  const absl::Duration ack_deadline = absl::GetFlag(FLAGS_ack_deadline);
  request.mutable_ack_deadline()->set_seconds(
      absl::ToInt64Seconds(ack_deadline));
  grpc::ClientContext context;  // No deadline: a stream runs until stopped.
  if (!AddMetadata(context)) return 2;
  const int max_events = absl::GetFlag(FLAGS_max_events);
  int printed = 0;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;  // One line: no whitespace.
  auto reader = stub->StreamEvents(&context, request);
  v1::StreamEventsResponse response;
  while (reader->Read(&response)) {
    v1::AcknowledgeEventsRequest ack;
    ack.set_subscription(request.subscription());
    for (const v1::Event& event : response.events()) {
      if (max_events > 0 && printed >= max_events) break;
      std::string line;
      (void)google::protobuf::util::MessageToJsonString(event, &line, options);
      std::printf("%s\n", line.c_str());
      ack.add_event_ids(event.event_id());
      ++printed;
    }
    std::fflush(stdout);  // Printed before acknowledged.
    if (absl::GetFlag(FLAGS_ack) && ack.event_ids_size() > 0) {
      grpc::ClientContext ack_context;
      ack_context.set_deadline(
          absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
      if (!AddMetadata(ack_context)) return 2;
      v1::AcknowledgeEventsResponse acked;
      if (grpc::Status status =
              stub->AcknowledgeEvents(&ack_context, ack, &acked);
          !status.ok()) {
        PrintError(status);  // Unacknowledged: they come again.
        context.TryCancel();
        reader->Finish();
        return 1;
      }
    }
    if (max_events > 0 && printed >= max_events) {
      context.TryCancel();
      reader->Finish();
      return 0;
    }
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    PrintError(status);
    return 1;
  }
  return 0;
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
  if (!absl::GetFlag(FLAGS_consume).empty()) {
    if (args.size() != 1) {
      std::fprintf(stderr, "usage: clink_cli [flags] --consume=subscription\n");
      return 2;
    }
    std::shared_ptr<grpc::ChannelCredentials> credentials =
        ChannelCredentials();
    if (credentials == nullptr) return 2;
    return Consume(
        grpc::CreateChannel(absl::GetFlag(FLAGS_target), credentials));
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
  if (method->server_streaming() || method->client_streaming()) {
    std::fprintf(stderr, "clink_cli: %s streams: use --consume\n", args[1]);
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
  if (!AddMetadata(context)) return 2;

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
