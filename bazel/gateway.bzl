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

def gateway_cc_test(name, copts = [], size = "small", **kwargs):
    native.cc_test(name = name, copts = _COPTS + copts, size = size, **kwargs)
