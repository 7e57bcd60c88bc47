#!/usr/bin/env bash
# Builds the libFuzzer targets (//tests/fuzz, clang-14 with ASan+UBSan: --config=fuzz) and runs
# each for a bounded time, starting from its checked-in corpus (tests/fuzz/corpus/<fuzzer>/).
# Prints the executions per target; fails when any target crashes (or leaks, times out, runs out
# of memory, or breaks one of its FUZZ_CHECK properties). Reproducers go to the artifacts
# directory printed at the end.
#
#   tools/fuzz.sh                               # every fuzzer, 30 s each (CI: about 4 min + build)
#   FUZZ_SECONDS=600 tools/fuzz.sh              # longer
#   tools/fuzz.sh rest_codec_decode_fuzzer      # some of them
#   FUZZ_JOBS=2 ...                             # libFuzzer jobs per target (default 1)
#
# Environment: FUZZ_SECONDS (20), FUZZ_MAX_LEN (65536 bytes), FUZZ_ARTIFACTS (a new temp dir),
# FUZZ_OUTPUT_BASE (the fuzz build's Bazel output base; default under ~/.cache, one per
# checkout: the clang toolchain would otherwise invalidate the normal build's every action).
# New inputs a run finds stay in $FUZZ_ARTIFACTS/corpus/<fuzzer>/; to keep the interesting ones,
# merge them into the checked-in corpus with libFuzzer's -merge=1 (see README, "Fuzzing").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${FUZZ_SECONDS:-20}"
max_len="${FUZZ_MAX_LEN:-65536}"
jobs="${FUZZ_JOBS:-1}"
artifacts="${FUZZ_ARTIFACTS:-$(mktemp -d -t clink-fuzz.XXXXXX)}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}"
output_base="${FUZZ_OUTPUT_BASE:-$cache/clink-gateway-fuzz/$(pwd -P | sha256sum | cut -c1-12)}"
# No convenience symlinks: bazel-bin & co. keep pointing at the normal build.
bazel_fuzz() {
  bazel --output_base="$output_base" --max_idle_secs=600 "$1" --config=fuzz --symlink_prefix=/ \
    "${@:2}"
}

if [ "$#" -gt 0 ]; then
  fuzzers=("$@")
else
  mapfile -t fuzzers < <(sed -n 's/^ *name = "\([a-z0-9_]*_fuzzer\)",$/\1/p' tests/fuzz/BUILD.bazel)
fi
targets=()
for f in "${fuzzers[@]}"; do targets+=("//tests/fuzz:$f"); done

echo "fuzz: building ${#fuzzers[@]} fuzzers (output base $output_base)" >&2
bazel_fuzz build "${targets[@]}"
bin="$(bazel_fuzz info bazel-bin 2>/dev/null)/tests/fuzz"

mkdir -p "$artifacts"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
summary=()
for f in "${fuzzers[@]}"; do
  corpus="tests/fuzz/corpus/$f"
  work="$artifacts/corpus/$f"
  log="$artifacts/$f.log"
  mkdir -p "$work"
  dict=()
  case "$f" in
    rest_codec_* | webhook_payload_fuzzer) dict=("-dict=tests/fuzz/dict/json.dict") ;;
    egress_policy_fuzzer) dict=("-dict=tests/fuzz/dict/egress.dict") ;;
    http_headers_fuzzer) dict=("-dict=tests/fuzz/dict/http_headers.dict") ;;
  esac
  echo "fuzz: $f for ${seconds}s" >&2
  parallel=()
  # -jobs (even -jobs=1) makes libFuzzer fork workers that log to ./fuzz-<n>.log.
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  status=0
  # New inputs go to $work (first directory); the checked-in corpus is only read.
  "$bin/$f" -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "${parallel[@]}" \
    -artifact_prefix="$artifacts/$f-" "${dict[@]}" "$work" "$corpus" >"$log" 2>&1 || status=$?
  if [ "$jobs" -gt 1 ]; then
    cat fuzz-[0-9]*.log >>"$log" 2>/dev/null || true
    rm -f fuzz-[0-9]*.log
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | awk '{s+=$1} END {print s+0}')"
  if [ "$status" -ne 0 ] || grep -qE '^(==[0-9]+==ERROR|SUMMARY: )' "$log"; then
    failed+=("$f")
    summary+=("$(printf '%-28s %12s executions  CRASH (exit %s): %s' "$f" "$runs" "$status" "$log")")
    grep -E 'FUZZ_CHECK|ERROR: |runtime error|SUMMARY|Test unit written' "$log" | head -8 >&2 || true
  else
    summary+=("$(printf '%-28s %12s executions  ok' "$f" "$runs")")
  fi
done

echo "fuzz: ${seconds}s per target, max_len $max_len; logs, new inputs and reproducers in $artifacts"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no crash in ${#fuzzers[@]} fuzzers"
