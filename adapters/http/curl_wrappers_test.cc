#include "adapters/http/curl_wrappers.h"

#include <curl/curl.h>

#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "adapters/http/http_types.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clink_gateway::http {

void PrintTo(FailureKind kind, std::ostream* os) {
  *os << FailureKindName(kind);
}

namespace {

using ::testing::HasSubstr;

struct CodeCase {
  CURLcode curl;
  absl::StatusCode expected;
};

class CurlCodeToStatusTest : public ::testing::TestWithParam<CodeCase> {};

TEST_P(CurlCodeToStatusTest, MapsCode) {
  const CodeCase& c = GetParam();
  EXPECT_EQ(CurlCodeToStatusCode(c.curl), c.expected)
      << curl_easy_strerror(c.curl);
  const absl::Status status = CurlCodeToStatus(c.curl, "GET /order");
  EXPECT_EQ(status.code(), c.expected);
  if (!status.ok()) {
    EXPECT_THAT(std::string(status.message()), HasSubstr("GET /order: "));
    EXPECT_THAT(std::string(status.message()),
                HasSubstr(curl_easy_strerror(c.curl)));
    EXPECT_THAT(std::string(status.message()),
                HasSubstr("(curl error " +
                          std::to_string(static_cast<int>(c.curl)) + ")"));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, CurlCodeToStatusTest,
    ::testing::Values(
        CodeCase{CURLE_OK, absl::StatusCode::kOk},
        // Nothing sent (the transport reports Delivery::kNotSent for these).
        CodeCase{CURLE_COULDNT_RESOLVE_HOST, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_COULDNT_RESOLVE_PROXY, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_COULDNT_CONNECT, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_SSL_CONNECT_ERROR, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_PEER_FAILED_VERIFICATION,
                 absl::StatusCode::kUnavailable},
        CodeCase{CURLE_SSL_CIPHER, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_SSL_ISSUER_ERROR, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_SSL_PINNEDPUBKEYNOTMATCH,
                 absl::StatusCode::kUnavailable},
        CodeCase{CURLE_SSL_INVALIDCERTSTATUS, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_QUIC_CONNECT_ERROR, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_PROXY, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_NO_CONNECTION_AVAILABLE, absl::StatusCode::kUnavailable},
        // Possibly sent.
        CodeCase{CURLE_SEND_ERROR, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_RECV_ERROR, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_GOT_NOTHING, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_PARTIAL_FILE, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_WEIRD_SERVER_REPLY, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_HTTP2, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_HTTP2_STREAM, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_HTTP3, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_BAD_CONTENT_ENCODING, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_SSL_SHUTDOWN_FAILED, absl::StatusCode::kUnavailable},
        CodeCase{CURLE_AGAIN, absl::StatusCode::kUnavailable},
        // Either side of sending.
        CodeCase{CURLE_OPERATION_TIMEDOUT, absl::StatusCode::kDeadlineExceeded},
        // Local.
        CodeCase{CURLE_OUT_OF_MEMORY, absl::StatusCode::kResourceExhausted},
        CodeCase{CURLE_ABORTED_BY_CALLBACK, absl::StatusCode::kCancelled},
        CodeCase{CURLE_WRITE_ERROR, absl::StatusCode::kInternal},
        CodeCase{CURLE_FILESIZE_EXCEEDED, absl::StatusCode::kInternal},
        CodeCase{CURLE_UNSUPPORTED_PROTOCOL, absl::StatusCode::kInternal},
        CodeCase{CURLE_URL_MALFORMAT, absl::StatusCode::kInternal},
        CodeCase{CURLE_FAILED_INIT, absl::StatusCode::kInternal},
        CodeCase{CURLE_NOT_BUILT_IN, absl::StatusCode::kInternal},
        CodeCase{CURLE_BAD_FUNCTION_ARGUMENT, absl::StatusCode::kInternal},
        CodeCase{CURLE_UNKNOWN_OPTION, absl::StatusCode::kInternal},
        CodeCase{CURLE_SETOPT_OPTION_SYNTAX, absl::StatusCode::kInternal},
        CodeCase{CURLE_TOO_MANY_REDIRECTS, absl::StatusCode::kInternal},
        CodeCase{CURLE_SSL_CACERT_BADFILE, absl::StatusCode::kInternal},
        CodeCase{CURLE_SSL_CERTPROBLEM, absl::StatusCode::kInternal},
        CodeCase{CURLE_SSL_CLIENTCERT, absl::StatusCode::kInternal},
        CodeCase{CURLE_SEND_FAIL_REWIND, absl::StatusCode::kInternal},
        CodeCase{CURLE_HTTP_RETURNED_ERROR, absl::StatusCode::kInternal},
        CodeCase{CURLE_RECURSIVE_API_CALL, absl::StatusCode::kInternal},
        CodeCase{CURLE_UNRECOVERABLE_POLL, absl::StatusCode::kInternal},
        CodeCase{CURLE_LOGIN_DENIED, absl::StatusCode::kInternal},
        CodeCase{CURLE_AUTH_ERROR, absl::StatusCode::kInternal},
        CodeCase{CURLE_REMOTE_ACCESS_DENIED, absl::StatusCode::kInternal},
        CodeCase{CURLE_SSH, absl::StatusCode::kInternal},
        CodeCase{CURLE_TFTP_NOTFOUND, absl::StatusCode::kInternal},
        CodeCase{CURL_LAST, absl::StatusCode::kInternal}));

TEST(CurlCodeToStatusTest, EveryFailureIsAnError) {
  for (int i = 1; i <= static_cast<int>(CURL_LAST) + 1; ++i) {
    const auto code = static_cast<CURLcode>(i);
    EXPECT_NE(CurlCodeToStatusCode(code), absl::StatusCode::kOk) << i;
    EXPECT_NE(CurlCodeToStatusCode(code), absl::StatusCode::kUnknown) << i;
  }
}

TEST(CurlCodeToStatusTest, DetailIsAppended) {
  const absl::Status status = CurlCodeToStatus(
      CURLE_COULDNT_CONNECT, "POST /checkout/session",
      "Failed to connect to 127.0.0.1 port 1: Connection refused");
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(
      status.message(),
      "POST /checkout/session: Couldn't connect to server (curl error 7): "
      "Failed to connect to 127.0.0.1 port 1: Connection refused");
}

struct KindCase {
  CURLcode curl;
  FailureKind before_sending;  // request_started = false
  FailureKind after_starting;  // request_started = true
};

class CurlCodeToFailureKindTest : public ::testing::TestWithParam<KindCase> {};

TEST_P(CurlCodeToFailureKindTest, MapsCode) {
  const KindCase& c = GetParam();
  EXPECT_EQ(CurlCodeToFailureKind(c.curl, /*request_started=*/false),
            c.before_sending)
      << curl_easy_strerror(c.curl);
  EXPECT_EQ(CurlCodeToFailureKind(c.curl, /*request_started=*/true),
            c.after_starting)
      << curl_easy_strerror(c.curl);
}

constexpr FailureKind kConnect = FailureKind::kConnect;
constexpr FailureKind kLost = FailureKind::kConnectionLost;
constexpr FailureKind kOther = FailureKind::kOther;

INSTANTIATE_TEST_SUITE_P(
    Table, CurlCodeToFailureKindTest,
    ::testing::Values(
        KindCase{CURLE_OK, FailureKind::kNone, FailureKind::kNone},
        KindCase{CURLE_OPERATION_TIMEDOUT, FailureKind::kDeadline,
                 FailureKind::kDeadline},
        // Connection setup; "lost" once the request had started (a failed
        // retry after the first connection died).
        KindCase{CURLE_COULDNT_RESOLVE_HOST, kConnect, kLost},
        KindCase{CURLE_COULDNT_RESOLVE_PROXY, kConnect, kLost},
        KindCase{CURLE_COULDNT_CONNECT, kConnect, kLost},
        KindCase{CURLE_SSL_CONNECT_ERROR, kConnect, kLost},
        KindCase{CURLE_PEER_FAILED_VERIFICATION, kConnect, kLost},
        KindCase{CURLE_SSL_CIPHER, kConnect, kLost},
        KindCase{CURLE_SSL_ISSUER_ERROR, kConnect, kLost},
        KindCase{CURLE_SSL_PINNEDPUBKEYNOTMATCH, kConnect, kLost},
        KindCase{CURLE_SSL_INVALIDCERTSTATUS, kConnect, kLost},
        KindCase{CURLE_QUIC_CONNECT_ERROR, kConnect, kLost},
        KindCase{CURLE_PROXY, kConnect, kLost},
        KindCase{CURLE_NO_CONNECTION_AVAILABLE, kConnect, kLost},
        // The connection failed under an exchange.
        KindCase{CURLE_SEND_ERROR, kConnect, kLost},
        KindCase{CURLE_RECV_ERROR, kConnect, kLost},
        KindCase{CURLE_GOT_NOTHING, kConnect, kLost},
        KindCase{CURLE_PARTIAL_FILE, kConnect, kLost},
        KindCase{CURLE_HTTP2, kConnect, kLost},
        KindCase{CURLE_HTTP2_STREAM, kConnect, kLost},
        KindCase{CURLE_HTTP3, kConnect, kLost},
        KindCase{CURLE_FILESIZE_EXCEEDED, FailureKind::kResponseTooLarge,
                 FailureKind::kResponseTooLarge},
        // Everything else.
        KindCase{CURLE_WEIRD_SERVER_REPLY, kOther, kOther},
        KindCase{CURLE_BAD_CONTENT_ENCODING, kOther, kOther},
        KindCase{CURLE_AGAIN, kOther, kOther},
        KindCase{CURLE_OUT_OF_MEMORY, kOther, kOther},
        KindCase{CURLE_ABORTED_BY_CALLBACK, kOther, kOther},
        KindCase{CURLE_WRITE_ERROR, kOther, kOther},
        KindCase{CURLE_URL_MALFORMAT, kOther, kOther},
        KindCase{CURLE_SSL_CACERT_BADFILE, kOther, kOther},
        KindCase{CURLE_UNRECOVERABLE_POLL, kOther, kOther},
        KindCase{CURL_LAST, kOther, kOther}));

TEST(CurlCodeToFailureKindTest, EveryFailureHasAKind) {
  for (int i = 1; i <= static_cast<int>(CURL_LAST) + 1; ++i) {
    const auto code = static_cast<CURLcode>(i);
    EXPECT_NE(CurlCodeToFailureKind(code, false), FailureKind::kNone) << i;
    EXPECT_NE(CurlCodeToFailureKind(code, true), FailureKind::kNone) << i;
  }
}

TEST(CurlMultiCodeToStatusTest, Maps) {
  EXPECT_TRUE(CurlMultiCodeToStatus(CURLM_OK, "x").ok());
  EXPECT_EQ(CurlMultiCodeToStatus(CURLM_OUT_OF_MEMORY, "x").code(),
            absl::StatusCode::kResourceExhausted);
  const absl::Status status =
      CurlMultiCodeToStatus(CURLM_BAD_EASY_HANDLE, "curl_multi_add_handle");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("curl_multi_add_handle: "));
}

TEST(CurlShareCodeToStatusTest, Maps) {
  EXPECT_TRUE(CurlShareCodeToStatus(CURLSHE_OK, "x").ok());
  EXPECT_EQ(CurlShareCodeToStatus(CURLSHE_NOMEM, "x").code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(CurlShareCodeToStatus(CURLSHE_BAD_OPTION, "x").code(),
            absl::StatusCode::kInternal);
}

TEST(CurlWrappersTest, SetCurlOptionReportsTheOptionName) {
  CurlEasyPtr easy = MakeCurlEasy();
  ASSERT_NE(easy, nullptr);
  EXPECT_TRUE(SetCurlOption(easy.get(), CURLOPT_NOSIGNAL, 1L).ok());
  const absl::Status status =
      SetCurlOption(easy.get(), CURLOPT_PROTOCOLS_STR, "no-such-protocol");
  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()),
              HasSubstr("CURLOPT_PROTOCOLS_STR"));
}

TEST(CurlWrappersTest, AppendHeaderLineBuildsAList) {
  CurlSlistPtr list;
  ASSERT_TRUE(AppendHeaderLine(list, "A: 1").ok());
  ASSERT_TRUE(AppendHeaderLine(list, "B: 2").ok());
  ASSERT_NE(list, nullptr);
  EXPECT_STREQ(list->data, "A: 1");
  ASSERT_NE(list->next, nullptr);
  EXPECT_STREQ(list->next->data, "B: 2");
  EXPECT_EQ(list->next->next, nullptr);
}

TEST(CurlWrappersTest, RaiiOwnersCreateHandles) {
  EXPECT_NE(MakeCurlMulti(), nullptr);
  EXPECT_NE(MakeCurlShare(), nullptr);
}

}  // namespace
}  // namespace clink_gateway::http
