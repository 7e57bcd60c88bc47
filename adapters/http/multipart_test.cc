#include "adapters/http/multipart.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace clink_gateway::http {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Hands out `boundaries` in turn (then the last one again).
class Boundaries {
 public:
  explicit Boundaries(std::vector<std::string> boundaries)
      : boundaries_(std::move(boundaries)) {}
  std::string operator()() {
    ++draws_;
    return boundaries_[std::min(next_++, boundaries_.size() - 1)];
  }
  int draws() const { return draws_; }

 private:
  std::vector<std::string> boundaries_;
  size_t next_ = 0;
  int draws_ = 0;
};

TEST(MultipartTest, BuildsTheExactRfc7578Body) {
  Boundaries source({"b0undary"});
  const std::string image("\x89PNG\r\n\x1a\n\0\r\n--x", 15);
  const absl::StatusOr<MultipartBody> body = BuildMultipartFormData(
      {{"file", "logo.png", "image/png", image}, {"note", "", "", "hi"}},
      [&] { return source(); });
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(body->content_type, "multipart/form-data; boundary=b0undary");
  EXPECT_EQ(body->body,
            absl::StrCat("--b0undary\r\n"
                         "Content-Disposition: form-data; name=\"file\"; "
                         "filename=\"logo.png\"\r\n"
                         "Content-Type: image/png\r\n"
                         "\r\n",
                         image,
                         "\r\n"
                         "--b0undary\r\n"
                         "Content-Disposition: form-data; name=\"note\"\r\n"
                         "\r\n"
                         "hi\r\n"
                         "--b0undary--\r\n"));
}

// Data that holds the boundary would end its part early (or forge a part): the
// boundary is drawn again until it occurs nowhere in the parts.
TEST(MultipartTest, ABoundaryFoundInTheDataIsDrawnAgain) {
  Boundaries source({"AAAA", "BBBB", "CCCC"});
  const absl::StatusOr<MultipartBody> body = BuildMultipartFormData(
      {{"file", "a.gif", "image/gif", "GIF89a\r\n--AAAA\r\n"},
       {"BBBB", "", "", "x"}},
      [&] { return source(); });
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(source.draws(), 3);
  EXPECT_EQ(body->content_type, "multipart/form-data; boundary=CCCC");
  EXPECT_THAT(body->body, StartsWith("--CCCC\r\n"));
}

TEST(MultipartTest, ASourceThatKeepsCollidingOrIsInvalidFails) {
  Boundaries colliding({"x"});
  EXPECT_EQ(BuildMultipartFormData({{"file", "", "", "xyz"}},
                                   [&] { return colliding(); })
                .status()
                .code(),
            absl::StatusCode::kInternal);
  Boundaries invalid({"has space", std::string(71, 'a'), ""});
  EXPECT_EQ(
      BuildMultipartFormData({{"file", "", "", "1"}}, [&] { return invalid(); })
          .status()
          .code(),
      absl::StatusCode::kInternal);
}

TEST(MultipartTest, NamesThatCannotBeQuotedAreRefused) {
  const std::vector<FormPart> bad = {
      {"", "", "", "x"},
      {"fi\"le", "", "", "x"},
      {"file", "a\r\nX-Injected: 1.png", "image/png", "x"},
      {"file", "a\".png", "image/png", "x"},
      {"file", "a\\b.png", "image/png", "x"},
      {"file", "a.png", "image/png\r\nX: y", "x"},
  };
  for (const FormPart& part : bad) {
    const absl::StatusOr<MultipartBody> body = BuildMultipartFormData({part});
    EXPECT_EQ(body.status().code(), absl::StatusCode::kInvalidArgument)
        << part.name << " / " << part.filename;
  }
  // UTF-8 file names are sent as they are.
  const absl::StatusOr<MultipartBody> body =
      BuildMultipartFormData({{"file", "caf\xc3\xa9.png", "image/png", "x"}});
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(body->body, HasSubstr("filename=\"caf\xc3\xa9.png\""));
}

TEST(MultipartTest, RandomBoundariesAreLongValidAndDiffer) {
  const std::string a = RandomBoundary();
  const std::string b = RandomBoundary();
  EXPECT_EQ(a.size(), 46u);
  EXPECT_THAT(a, StartsWith("clink-"));
  EXPECT_NE(a, b);
  const absl::StatusOr<MultipartBody> body =
      BuildMultipartFormData({{"file", "a.png", "image/png", "x"}});
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_THAT(body->content_type,
              StartsWith("multipart/form-data; boundary=clink-"));
}

}  // namespace
}  // namespace clink_gateway::http
