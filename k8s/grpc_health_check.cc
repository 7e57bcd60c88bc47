// grpc_health_check: asks a gRPC server's grpc.health.v1.Health/Check for one
// service, the way a Kubernetes gRPC probe does, and prints the status.
//   grpc_health_check --target=127.0.0.1:50051 [--service=liveness]
// Exit status: 0 when the status is SERVING, 1 for any other status (UNKNOWN,
// NOT_SERVING, SERVICE_UNKNOWN) or a failed call (the gRPC error is printed),
// 2 for bad usage. The empty service name is the server's overall health (the
// readiness probe's). Test tool of //k8s:image_test; the image has no shell.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/support/byte_buffer.h"

ABSL_FLAG(std::string, target, "", "host:port of the gRPC server (plaintext).");
ABSL_FLAG(std::string, service, "",
          "Health service name; empty: the server's overall health.");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(2), "Deadline of the call.");

namespace {

constexpr const char* kStatusNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING",
                                        "SERVICE_UNKNOWN"};

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Checks grpc.health.v1 of a server.\n"
      "Usage: grpc_health_check --target=host:port [--service=NAME]");
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string target = absl::GetFlag(FLAGS_target);
  const std::string service = absl::GetFlag(FLAGS_service);
  if (args.size() != 1 || target.empty() || service.size() > 127) {
    std::fprintf(stderr,
                 "usage: grpc_health_check --target=host:port "
                 "[--service=NAME] (--help)\n");
    return 2;
  }

  // grpc.health.v1.HealthCheckRequest{service}: field 1, length-delimited
  // (one length byte: names are shorter than 128 bytes).
  std::string request_bytes;
  if (!service.empty()) {
    request_bytes.push_back('\x0a');
    request_bytes.push_back(static_cast<char>(service.size()));
    request_bytes.append(service);
  }
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::GetFlag(FLAGS_timeout)));
  grpc::GenericStub stub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                 &request, &response, [&](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) {
    std::printf("error %d %s\n", static_cast<int>(status.error_code()),
                status.error_message().c_str());
    return 1;
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) {
    std::printf("error: unreadable response\n");
    return 1;
  }
  std::string bytes;
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  // HealthCheckResponse{status}: field 1, varint; absent means UNKNOWN (0).
  int code = 0;
  if (bytes.size() == 2 && bytes[0] == '\x08') code = bytes[1];
  if (code < 0 || code > 3) {
    std::printf("status %d\n", code);
    return 1;
  }
  std::printf("%s\n", kStatusNames[code]);
  return code == 1 ? 0 : 1;
}
