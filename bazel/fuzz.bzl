"""libFuzzer targets that are also ordinary tests.

gateway_cc_fuzzer(name = "x_fuzzer", srcs = ["x_fuzzer.cc"], deps = [...]) defines:
  :x_fuzzer              under --config=fuzz (clang-14, ASan+UBSan, coverage): the libFuzzer
                         binary that tools/fuzz.sh runs; in any other build, a replay binary
                         (tests/fuzz/replay_main.cc) that feeds it the files or directories named on
                         its command line.
  :x_fuzzer_corpus_test  a cc_test (built with the normal toolchain) that replays every file of
                         corpus/x_fuzzer/ through LLVMFuzzerTestOneInput, so `bazel test //...`
                         checks the checked-in corpus, crash reproducers included.
  :x_fuzzer_known_crashes_test  (manual) only when crashes/x_fuzzer/ holds files: reproducers
                         of crashes not fixed yet. Once fixed, move them into the corpus.
srcs define `extern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t)` and check their
properties with FUZZ_CHECK (tests/fuzz/fuzz_check.h), which aborts in both builds.
"""

load("//bazel:gateway.bzl", "gateway_cc_binary", "gateway_cc_library", "gateway_cc_test")

def gateway_cc_fuzzer(name, srcs, deps = [], **kwargs):
    gateway_cc_library(
        name = name + "_lib",
        testonly = True,
        srcs = srcs,
        deps = deps + ["//tests/fuzz:fuzz_check"],
        alwayslink = True,
    )
    gateway_cc_binary(
        name = name,
        testonly = True,
        deps = [":" + name + "_lib"] + select({
            "//bazel:fuzzing": [],
            "//conditions:default": ["//tests/fuzz:replay_main"],
        }),
        linkopts = select({
            "//bazel:fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["fuzzer"],
        **kwargs
    )
    corpus = "corpus/" + name
    gateway_cc_test(
        name = name + "_corpus_test",
        size = "small",
        deps = [":" + name + "_lib", "//tests/fuzz:replay_main"],
        data = native.glob([corpus + "/**"]),
        args = [native.package_name() + "/" + corpus],
    )

    # Reproducers of known, not yet fixed crashes: run on demand
    # (bazel test //tests/fuzz:x_fuzzer_known_crashes_test), never by //...
    crashes = native.glob(["crashes/" + name + "/**"])
    if crashes:
        gateway_cc_test(
            name = name + "_known_crashes_test",
            size = "small",
            deps = [":" + name + "_lib", "//tests/fuzz:replay_main"],
            data = crashes,
            args = [native.package_name() + "/crashes/" + name],
            tags = ["manual"],
        )
