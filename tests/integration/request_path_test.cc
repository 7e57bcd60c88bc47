// No field value may change which Clink endpoint is called. For every path
// parameter of every RPC (taken from the compiled REST mapping, not a list
// here), a request goes through the real stack (ClinkClient, RestCodec,
// CurlHttpTransport, libcurl) to a raw HTTP server that records the request
// line as it arrived: a Clink id lands on exactly the template's path, and a
// value that could move the request elsewhere (dot segments, also
// percent-encoded, separators, escapes) is refused with INVALID_ARGUMENT
// naming the field, with nothing sent.
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "adapters/clink/clink_client.h"
#include "adapters/clink/rest_codec.h"
#include "adapters/http/api_key_signer.h"
#include "adapters/http/curl_http_transport.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/testing/raw_http_server.h"
#include "common/clock.h"
#include "common/errors/error_details.h"
#include "common/secret.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "gtest/gtest.h"

namespace clink_gateway::clink {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MessageFactory;
using google::protobuf::Reflection;
using http::testing::RawHttpServer;
using ::testing::ElementsAre;

std::unique_ptr<Message> NewMessage(const Descriptor* type) {
  return std::unique_ptr<Message>(
      MessageFactory::generated_factory()->GetPrototype(type)->New());
}

// Sets every field the contract marks required to a plausible value, so that
// the path parameter is the only thing a test varies.
void FillRequired(Message* m) {
  const Descriptor* d = m->GetDescriptor();
  const Reflection* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const v1::FieldRule& rule = f->options().GetExtension(v1::field);
    if (!rule.required() || f->is_repeated()) continue;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING:
        r->SetString(
            m, f, rule.encoding() == v1::VALUE_ENCODING_DECIMAL ? "1" : "x1");
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        r->SetEnum(m, f, f->enum_type()->value(1));
        break;
      case FieldDescriptor::CPPTYPE_INT32:
        r->SetInt32(m, f, 1);
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        r->SetInt64(m, f, 1);
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        r->SetBool(m, f, true);
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        FillRequired(r->MutableMessage(m, f));
        break;
      default:
        break;
    }
  }
}

// Every path parameter of every RPC.
struct PathParameter {
  const RestMethod* rest;
  const FieldDescriptor* field;
};

class RequestPathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto codec = RestCodec::CreateForServices(GatewayServiceNames());
    ASSERT_TRUE(codec.ok()) << codec.status();
    codec_ = *std::move(codec);
    auto server =
        RawHttpServer::Start([](const http::testing::RecordedRequest&) {
          RawHttpServer::Reply reply;
          reply.body = R"({"code":200,"msg":"success","data":{}})";
          return reply;
        });
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);

    http::CurlHttpTransport::Options options;
    options.base_url = absl::StrCat(server_->base_url(), "/api");
    options.allow_plaintext = true;
    options.signer = &signer_;
    options.clock = &SystemClock();
    options.egress.allow_cidrs = *http::ParseCidrList("127.0.0.0/8");
    auto transport = http::CurlHttpTransport::Create(options);
    ASSERT_TRUE(transport.ok()) << transport.status();
    transport_ = *std::move(transport);
    client_ =
        std::make_unique<ClinkClient>(*codec_, *transport_, SystemClock());

    for (const RestMethod* rest : codec_->methods()) {
      for (const PathSegment& segment : rest->path) {
        if (segment.field != nullptr) params_.push_back({rest, segment.field});
      }
    }
  }

  void TearDown() override {
    client_.reset();
    if (transport_ != nullptr) transport_->Shutdown();
  }

  // Calls `param`'s RPC with `value` in the path parameter (every other
  // required field filled in) and waits for the answer.
  absl::Status Call(const PathParameter& param, const std::string& value) {
    std::unique_ptr<Message> request =
        NewMessage(param.rest->method->input_type());
    FillRequired(request.get());
    request->GetReflection()->SetString(request.get(), param.field, value);
    std::unique_ptr<Message> response =
        NewMessage(param.rest->method->output_type());
    CallOptions options;
    options.deadline = absl::Now() + absl::Seconds(10);
    absl::Notification done;
    absl::Status result;
    client_->Call(*param.rest, *request, options, response.get(),
                  [&](CallResult call) {
                    result = std::move(call.status);
                    done.Notify();
                  });
    EXPECT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
    return result;
  }

  std::unique_ptr<RestCodec> codec_;
  std::unique_ptr<RawHttpServer> server_;
  http::ApiKeySigner signer_{Secret("sk_test_request_path_0123456789"),
                             SystemClock()};
  std::unique_ptr<http::CurlHttpTransport> transport_;
  std::unique_ptr<ClinkClient> client_;
  std::vector<PathParameter> params_;
};

TEST_F(RequestPathTest, ClinkReceivesTheTemplatesRequestLine) {
  ASSERT_GE(params_.size(), 9u);
  for (const PathParameter& p : params_) {
    for (const std::string& id :
         {std::string("sess_abc123xyz"), std::string("order_def456uvw"),
          std::string("a.b~c-d_1")}) {
      SCOPED_TRACE(absl::StrCat(p.rest->endpoint, " ", id));
      const size_t before = server_->requests().size();
      (void)Call(p, id);  // The answer's shape does not matter here.
      const std::vector<http::testing::RecordedRequest> requests =
          server_->requests();
      ASSERT_EQ(requests.size(), before + 1);
      std::string expected = "/api";
      for (const PathSegment& segment : p.rest->path) {
        expected += segment.field == nullptr ? segment.literal : id;
      }
      EXPECT_EQ(requests.back().method,
                std::string(http::MethodName(p.rest->http_method)));
      EXPECT_EQ(requests.back().path, expected);
    }
  }
}

TEST_F(RequestPathTest, ValuesThatCouldChangeTheEndpointAreRefusedUnsent) {
  const std::vector<std::string> hostile = {
      ".",          "..",   "%2e",   "%2E%2e", ".%2E",    "%2e.",
      "%252e%252e", "../x", "..%2F", "a/b",    "..\\",    "a;b",
      "a?b",        "a#b",  "a%2fb", "a b",    "\xC3\xA9"};
  for (const PathParameter& p : params_) {
    for (const std::string& value : hostile) {
      SCOPED_TRACE(
          absl::StrCat(p.rest->endpoint, " ", absl::CHexEscape(value)));
      const absl::Status status = Call(p, value);
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
      const absl::optional<google::rpc::BadRequest> bad =
          errors::GetBadRequest(status);
      if (!bad.has_value()) {
        ADD_FAILURE() << "no BadRequest: " << status;
        continue;
      }
      std::vector<std::string> fields;
      for (const auto& v : bad->field_violations()) fields.push_back(v.field());
      EXPECT_THAT(fields, ElementsAre(p.field->name()));
    }
  }
  EXPECT_EQ(server_->requests().size(), 0u);  // Nothing reached "Clink".
}

}  // namespace
}  // namespace clink_gateway::clink
