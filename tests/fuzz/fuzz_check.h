// FUZZ_CHECK: the property checks of the fuzz targets. Unlike assert(), active
// in every build (the fuzz build and the corpus replay tests are optimised,
// with NDEBUG): a broken property prints where and why, then aborts, which
// libFuzzer reports as a crash and a replay test as a failure.
#ifndef CLINK_GATEWAY_TESTS_FUZZ_FUZZ_CHECK_H_
#define CLINK_GATEWAY_TESTS_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(condition, ...)                                     \
  do {                                                                 \
    if (!(condition)) {                                                \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed: ", __FILE__, \
                   __LINE__, #condition);                              \
      std::fprintf(stderr, __VA_ARGS__);                               \
      std::fprintf(stderr, "\n");                                      \
      std::abort();                                                    \
    }                                                                  \
  } while (false)

#endif  // CLINK_GATEWAY_TESTS_FUZZ_FUZZ_CHECK_H_
