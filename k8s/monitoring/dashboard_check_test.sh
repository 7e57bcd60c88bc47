#!/usr/bin/env bash
# Checks dashboard.json: its shape (monitoring_tool.py: schemaVersion, the datasource variable
# used by every panel, namespace/job variables every selector is scoped to), and every PromQL
# query in it (panels and variables, Grafana's variables substituted) passes
# `promtool check rules` as a recording rule. Broken copies must fail. Then the kustomization
# renders the dashboard into a ConfigMap the Grafana sidecar picks up.
set -euo pipefail
dir=k8s/monitoring
promtool="$(command -v promtool || echo /usr/bin/promtool)"
if [ ! -x "$promtool" ]; then
  echo "promtool is missing (Debian package prometheus): run tools/install_deps.sh" >&2
  exit 1
fi
work="${TEST_TMPDIR:-$(mktemp -d)}/dashboard"
rm -rf "$work" && mkdir -p "$work"

check() {  # check DASHBOARD: monitoring_tool.py's checks, then promtool on every query.
  local n out
  n="$(python3 "$dir/monitoring_tool.py" dashboard-rules "$1" "$work/dashboard.rules.yaml")" || return 1
  out="$("$promtool" check rules "$work/dashboard.rules.yaml" 2>&1)" || { echo "$out" >&2; return 1; }
  grep -q "SUCCESS: $n rules found" <<<"$out" || { echo "promtool found other than $n queries" >&2; return 1; }
  echo "$n queries"
}

echo "dashboard.json: $(check "$dir/dashboard.json")"

# Each broken copy must be refused.
mutations=(
  's/sum by (grpc_method) (rate(/sum by grpc_method (rate(/'   # PromQL syntax error
  's/, job=~\\"\$job\\"//'                                      # a selector not scoped to $job
  's/"uid": "\${datasource}"/"uid": "prometheus"/'              # a hard-coded datasource
  's/\[\$__rate_interval\]/[$__rate_intervl]/'                  # an unknown Grafana variable
  's/"schemaVersion": 38/"schemaVersion": 16/'                 # an old schema
)
for m in "${mutations[@]}"; do
  sed "$m" "$dir/dashboard.json" >"$work/broken.json"
  if cmp -s "$dir/dashboard.json" "$work/broken.json"; then
    echo "mutation $m no longer applies to dashboard.json: update dashboard_check_test.sh" >&2
    exit 1
  fi
  if check "$work/broken.json" >/dev/null 2>&1; then
    echo "a broken dashboard passed the checks: sed '$m'" >&2
    exit 1
  fi
done
echo "all ${#mutations[@]} broken dashboards refused"

# The ConfigMap for the Grafana sidecar (kustomize refuses symlinks out of its root: copy).
kubectl="$(command -v kubectl || true)"
if [ -z "$kubectl" ]; then
  echo "kubectl is missing: run tools/install_deps.sh" >&2
  exit 1
fi
mkdir -p "$work/kustomize"
cp -L "$dir/kustomization.yaml" "$dir/prometheusrule.yaml" "$dir/dashboard.json" "$work/kustomize/"
"$kubectl" kustomize "$work/kustomize" >"$work/rendered.yaml"
python3 - "$work/rendered.yaml" "$dir/dashboard.json" <<'PY'
import json, re, sys
rendered, dashboard = (open(p, encoding="utf-8").read() for p in sys.argv[1:])
docs = rendered.split("\n---\n")
cms = [d for d in docs if re.search(r"^kind: ConfigMap$", d, re.M)]
rules = [d for d in docs if re.search(r"^kind: PrometheusRule$", d, re.M)]
assert len(cms) == 1 and len(rules) == 1, "expected one ConfigMap and one PrometheusRule"
cm = cms[0]
assert re.search(r'^    grafana_dashboard: "1"$', cm, re.M), "the ConfigMap lacks grafana_dashboard: \"1\""
assert re.search(r"^  name: clink-gateway-dashboard$", cm, re.M), "unexpected ConfigMap name (hash suffix?)"
m = re.search(r"^  clink-gateway.json: \|-?\n((?:    .*\n|\n)+)", cm + "\n", re.M)
assert m, "the ConfigMap has no clink-gateway.json"
embedded = "\n".join(l[4:] for l in m.group(1).split("\n"))
assert json.loads(embedded) == json.loads(dashboard), "the ConfigMap's dashboard differs from dashboard.json"
print("kustomize: ConfigMap clink-gateway-dashboard (grafana_dashboard: \"1\") holds dashboard.json")
PY
