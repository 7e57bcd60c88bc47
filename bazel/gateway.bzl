"""Project macros: every C++ rule in the repo goes through these (copts, defaults in one place)."""

_COPTS = [
    "-Werror=return-type",
    "-Werror=switch",
    "-Wnon-virtual-dtor",
]

def gateway_cc_library(name, copts = [], **kwargs):
    native.cc_library(name = name, copts = _COPTS + copts, **kwargs)

def gateway_cc_binary(name, copts = [], **kwargs):
    native.cc_binary(name = name, copts = _COPTS + copts, **kwargs)

# Every test carries the TSan suppressions (read only under --config=tsan, by a path relative to
# the test's working directory: see .bazelrc).
_TEST_DATA = ["//tools:tsan_suppressions.txt"]

def gateway_cc_test(name, copts = [], size = "small", data = [], **kwargs):
    native.cc_test(name = name, copts = _COPTS + copts, size = size, data = data + _TEST_DATA, **kwargs)
