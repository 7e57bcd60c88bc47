"""Proves that the layer order holds: a dependency from a lower layer on a higher one fails to build.

The gateway's packages form layers (ARCHITECTURE.md), each using only the ones below it:

    server -> idempotency -> clink -> credentials -> http -> common

BUILD visibility makes each layer's targets visible only to the layers above it (tests and tools
excepted). `wrong_way_dep_test` checks that this bites: its target under test is a library in a
lower layer that depends on a higher layer (tagged manual, so only this test analyses it), and the
test passes only if analysing that library fails with a visibility error.
"""

_allow_failures = analysis_test_transition(
    settings = {"//command_line_option:allow_analysis_failures": "True"},
)

def _wrong_way_dep_test_impl(ctx):
    target = ctx.attr.target_under_test[0]  # A list: the attribute has a transition.
    messages = []
    if AnalysisFailureInfo in target:
        messages = [f.message for f in target[AnalysisFailureInfo].causes.to_list()]
    refused = [m for m in messages if "is not visible from target" in m]
    if refused:
        return [AnalysisTestResultInfo(success = True, message = refused[0])]
    return [AnalysisTestResultInfo(
        success = False,
        message = "%s depends the wrong way down the layers and still builds%s" % (
            target.label,
            (" (failed only with: " + "; ".join(messages) + ")") if messages else "",
        ),
    )]

wrong_way_dep_test = rule(
    implementation = _wrong_way_dep_test_impl,
    attrs = {"target_under_test": attr.label(cfg = _allow_failures, mandatory = True)},
    analysis_test = True,
    doc = "Passes iff target_under_test fails analysis with a visibility error.",
)
