#!/usr/bin/env bash
# Checks prometheusrule.yaml with promtool: its spec passes `promtool check rules`, the unit tests
# in rules_test.yaml pass, and they fail when a rule is broken on purpose (so they test something).
# Then every alert has a severity, summary, description, a runbook section and test cases.
set -euo pipefail
dir=k8s/monitoring
promtool="$(command -v promtool || echo /usr/bin/promtool)"
if [ ! -x "$promtool" ]; then
  echo "promtool is missing (Debian package prometheus): run tools/install_deps.sh" >&2
  exit 1
fi
work="${TEST_TMPDIR:-$(mktemp -d)}/rules"
rm -rf "$work" && mkdir -p "$work"

# The spec as a plain rules file; promtool must see as many rules as monitoring_tool.py did.
n="$(python3 "$dir/monitoring_tool.py" extract-rules "$dir/prometheusrule.yaml" "$work/clink-gateway.rules.yaml")"
out="$("$promtool" check rules "$work/clink-gateway.rules.yaml" 2>&1)" || { echo "$out" >&2; exit 1; }
echo "$out"
if ! grep -q "SUCCESS: $n rules found" <<<"$out"; then
  echo "promtool and monitoring_tool.py disagree on the number of rules ($n)" >&2
  exit 1
fi

cp "$dir/rules_test.yaml" "$work/"
(cd "$work" && "$promtool" test rules rules_test.yaml)

# The unit tests must notice a broken rule: each mutation below has to make them fail.
mutations=(
  's/grpc_code!~"OK|/grpc_code!~"OK|Unavailable|/'             # a server error counted as the caller's
  's/> (14.4 \* 0.01)/> (24 * 0.01)/'                          # fast burn threshold off
  's/> (1 \* 0.01)/> (3 * 0.01)/'                              # slow burn threshold off
  's/reason="key"/reason="api_key"/'                           # wrong label value
  's/\[15m\])) > 0/[15m])) >= 0/'                              # no-traffic never fires
  's/result="store_error"}\[2m\]/result="store_error"}[10m]/'  # a store blip would page
  's/le=~"1|1\[\.\]0"/le="1"/g'                                # blind to Prometheus 3's le="1.0"
  's/{result="recovered"}\[5m\])) >= on/{result="refused"}[5m])) >= on/'  # a rescued refusal would page
  's/clink_gateway_clock_skew_critical == 1/clink_gateway_clock_skew_critical == 0/'  # pages the healthy pods
  's/outcome=~"applied|unchanged"}\[5m\]/outcome=~"applied"}[5m]/'  # one failed read among good ones would alert
  's/{result="recovered"}\[10m\])) > 0/{result="recovered"}[30m])) > 0/'  # a single fallback would alert
  's/outcome=~"missing|empty|invalid|unreadable"}\[10m\])) > 0/outcome=~"missing"}[10m])) > 0/'  # failing reads also as "stopped"
  's/result=~"bad_signature|stale_timestamp"}/result=~"bad_signature"}/'  # blind to stale or replayed deliveries
  's/{result="store_unavailable"}\[5m\])) > 0/{result="store_unavailable"}[5m])) > 1/'  # 503s below 1/s never alert
  's/(clink_gateway_event_oldest_unacked_age_seconds) > 600/(clink_gateway_event_oldest_unacked_age_seconds) > 6000/'  # a stuck consumer noticed after hours
  's/max by (namespace, job, merchant, subscription) (clink_gateway_event_oldest/sum by (namespace, job, merchant, subscription) (clink_gateway_event_oldest/'  # one store counted once per replica
  's/{result="unresolved"}\[1h\])) > 0/{result="resolved"}[1h])) > 0/'  # alerts on the reconciliations that worked
)
# One directory per mutation, run in parallel (each run replays the 26-hour case).
pids=()
for i in "${!mutations[@]}"; do
  m="${mutations[$i]}"
  mkdir -p "$work/m$i"
  sed "$m" "$work/clink-gateway.rules.yaml" >"$work/m$i/clink-gateway.rules.yaml"
  if cmp -s "$work/clink-gateway.rules.yaml" "$work/m$i/clink-gateway.rules.yaml"; then
    echo "mutation $m no longer applies to the rules: update rules_check_test.sh" >&2
    exit 1
  fi
  cp "$dir/rules_test.yaml" "$work/m$i/"
  (cd "$work/m$i" && "$promtool" test rules rules_test.yaml >/dev/null 2>&1) &
  pids+=($!)
done
for i in "${!mutations[@]}"; do
  if wait "${pids[$i]}"; then
    echo "rules_test.yaml does not catch the broken rule: sed '${mutations[$i]}'" >&2
    exit 1
  fi
done
echo "rules_test.yaml catches all ${#mutations[@]} broken rules"

alerts="$(python3 "$dir/monitoring_tool.py" check-alerts "$dir/prometheusrule.yaml" "$dir/RUNBOOK.md" "$dir/rules_test.yaml")"
echo "$alerts alerts: severity, summary, description, runbook section and unit tests present"
