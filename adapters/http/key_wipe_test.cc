// No per-attempt copy of the API key is freed without being wiped: neither the
// signed header value, nor the header line built for libcurl, nor libcurl's
// copy of that line in the header list.
//
// The test watches every heap block freed while a call runs: blocks the
// gateway frees (every form of ::operator delete is replaced here) and blocks
// libcurl frees (curl_global_init_mem with a free hook). A block that still
// holds the key when it is freed is counted. The call goes to a closed port,
// so libcurl never builds its own request buffer (its internal send buffer is
// libcurl's, out of reach; see the note at the end) and no test server holds
// a copy either.
#include <curl/curl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/sync.h"
#include "absl/time/time.h"
#include "adapters/http/api_key_signer.h"
#include "adapters/http/curl_http_transport.h"
#include "adapters/http/egress_policy.h"
#include "adapters/http/http_types.h"
#include "common/clock.h"
#include "common/secret.h"
#include "gtest/gtest.h"

using clink_gateway::Notification;

namespace {

// The key the test signs with; built at run time so the text appears on the
// heap only as copies made by the code under test (the literal pieces live in
// read-only data, which is never freed).
constexpr char kKeyPrefix[] = "sk_test_";
constexpr char kKeyBody[] = "WIPE_ME_9f3b2c7d1e6a4058";

std::atomic<bool> armed{false};
std::atomic<int> unwiped_blocks{0};

// Counts `block` if it still contains the key's distinctive part.
void Inspect(const void* block, size_t size) {
  if (!armed.load(std::memory_order_relaxed) || block == nullptr) return;
  const size_t needle = sizeof(kKeyBody) - 1;
  if (size < needle) return;
  if (memmem(block, size, kKeyBody, needle) != nullptr) {
    unwiped_blocks.fetch_add(1, std::memory_order_relaxed);
  }
}

void InspectAndFree(void* block) {
  if (block != nullptr) Inspect(block, malloc_usable_size(block));
  std::free(block);
}

// libcurl's allocator: everything but free is the C library's.
void* CurlMalloc(size_t size) { return std::malloc(size); }
void CurlFree(void* block) { InspectAndFree(block); }
void* CurlRealloc(void* block, size_t size) {
  if (block != nullptr) Inspect(block, malloc_usable_size(block));
  return std::realloc(block, size);
}
char* CurlStrdup(const char* text) { return strdup(text); }
void* CurlCalloc(size_t count, size_t size) { return std::calloc(count, size); }

// A port nothing listens on (bound, then closed).
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (fd < 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    if (fd >= 0) close(fd);
    return 0;
  }
  close(fd);
  return ntohs(address.sin_port);
}

TEST(KeyWipeTest, NoCopyOfTheKeyIsFreedUnwiped) {
  const int port = ClosedPort();
  ASSERT_GT(port, 0);
  clink_gateway::http::ApiKeySigner signer(
      clink_gateway::Secret(absl::StrCat(kKeyPrefix, kKeyBody)),
      clink_gateway::SystemClock());
  clink_gateway::http::CurlHttpTransport::Options options;
  options.base_url = absl::StrCat("http://127.0.0.1:", port, "/api");
  options.allow_plaintext = true;
  options.signer = &signer;
  options.clock = &clink_gateway::SystemClock();
  options.egress.allow_cidrs =
      *clink_gateway::http::ParseCidrList("127.0.0.0/8");
  auto transport = clink_gateway::http::CurlHttpTransport::Create(options);
  ASSERT_TRUE(transport.ok()) << transport.status();

  for (int attempt = 0; attempt < 3; ++attempt) {
    clink_gateway::http::HttpRequest request;
    request.method = clink_gateway::http::Method::kPost;
    request.path_and_query = "/payment";
    request.body = "{}";
    clink_gateway::http::SendOptions send;
    send.deadline = absl::Now() + absl::Seconds(10);
    send.request_id = "wipe-test";
    Notification done;
    clink_gateway::http::HttpResult result;
    armed = true;
    (*transport)
        ->Send(std::move(request), std::move(send),
               [&](clink_gateway::http::HttpResult r) {
                 result = std::move(r);
                 done.Notify();
               });
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(absl::Seconds(20)));
    // The transport frees the call (its signed request and header list)
    // before it runs the completion.
    armed = false;
    EXPECT_EQ(result.status.code(), absl::StatusCode::kUnavailable)
        << result.status;  // Connection refused: nothing was sent.
    EXPECT_EQ(result.delivery, clink_gateway::http::Delivery::kNotSent);
  }
  EXPECT_EQ(unwiped_blocks.load(), 0)
      << "heap blocks freed while still holding the API key";
}

// What stays out of reach: libcurl's own request buffer (built once a
// connection exists) and OpenSSL's record buffers are freed by those
// libraries without wiping.

}  // namespace

// Every form of the global operator delete inspects the block first.
void operator delete(void* block) noexcept { InspectAndFree(block); }
void operator delete[](void* block) noexcept { InspectAndFree(block); }
void operator delete(void* block, size_t) noexcept { InspectAndFree(block); }
void operator delete[](void* block, size_t) noexcept { InspectAndFree(block); }
void operator delete(void* block, const std::nothrow_t&) noexcept {
  InspectAndFree(block);
}
void operator delete[](void* block, const std::nothrow_t&) noexcept {
  InspectAndFree(block);
}
// The matching allocation functions (malloc-based, so free() fits them).
void* operator new(size_t size) {
  if (void* block = std::malloc(size == 0 ? 1 : size)) return block;
  throw std::bad_alloc();
}
void* operator new[](size_t size) { return ::operator new(size); }
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  return std::malloc(size == 0 ? 1 : size);
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  return std::malloc(size == 0 ? 1 : size);
}

int main(int argc, char** argv) {
  if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, &CurlMalloc, &CurlFree,
                           &CurlRealloc, &CurlStrdup,
                           &CurlCalloc) != CURLE_OK) {
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  const int result = RUN_ALL_TESTS();
  curl_global_cleanup();
  return result;
}
