#!/usr/bin/env python3
"""Checks and derived files for the gateway's dashboard and alert rules.

Standard library only (Debian's python3, which bazel-bootstrap already depends on).
PyYAML is not assumed, so prometheusrule.yaml is read line by line; that reader
accepts only the layout this directory uses (`spec:` last at the top level,
every `expr:` either on one line or a `|`/`|-` block) and fails loudly on
anything else, and the callers cross-check its rule count against promtool's.

  extract-rules PROMETHEUSRULE OUT
      The PrometheusRule's spec as a plain Prometheus rules file (for promtool
      and for a real Prometheus server); prints the number of rules.
  dashboard-rules DASHBOARD OUT
      Validates the Grafana dashboard's shape and writes every PromQL query in
      it (panel targets and template-variable queries, with Grafana's variables
      substituted) as a throwaway recording rule; prints the number of rules.
  check-alerts PROMETHEUSRULE RUNBOOK RULES_TEST
      Every alert has a severity label, summary/description/runbook_url
      annotations, a runbook anchor that exists, and unit-test cases.
  referenced-metrics PROMETHEUSRULE DASHBOARD OUT
      Every metric the rules and dashboard read, with the label names they
      select or group by and the `le` values they pin, for the test that
      compares them with a real scrape of the gateway. Lines:
        metric NAME
        label NAME LABEL            (NAME has LABEL)
        anylabel LABEL NAME...      (one of the NAMEs has LABEL)
        value NAME LABEL VALUE      (NAME has LABEL=VALUE: an = matcher, or one
                                     word of a matcher's plain a|b|c alternation)
        match NAME LABEL REGEX      (some NAME series' LABEL fully matches REGEX)
"""

import json
import re
import sys

# Grafana's variables and the values substituted for a syntax check (and for a
# real Prometheus evaluating the queries in the scrape test, whose target has
# namespace="test" and job="clink-gateway").
GRAFANA_VARS = {
    "namespace": "test",
    "job": "clink-gateway",
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
}

# Labels the scrape (Prometheus target labels / the ServiceMonitor) adds, not
# the gateway: never expected in the gateway's own exposition.
TARGET_LABELS = {"namespace", "job", "instance", "pod", "service", "container"}

AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
    "count_values", "bottomk", "topk", "quantile",
}
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
    "group_right", "offset", "bool", "atan2", "inf", "nan",
}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}

CALLER_DATASOURCE = "${datasource}"


class Error(Exception):
    pass


# --------------------------------------------------------------------------
# PromQL: just enough lexing to find selectors and grouping labels.

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
  | (?P<num>[0-9.][0-9A-Za-z_.:]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@,{}()\[\]:])
    """,
    re.VERBOSE,
)


def tokenize(expr):
    tokens = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m:
            raise Error("cannot lex PromQL at %r in %r" % (expr[pos:pos + 20], expr))
        pos = m.end()
        if m.lastgroup != "ws":
            tokens.append((m.lastgroup, m.group()))
    return tokens


def _unquote(s):
    if s[0] == "`":
        return s[1:-1]
    escapes = {"n": "\n", "t": "\t", "r": "\r"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), s[1:-1])


def _matching(tokens, i):
    """Index of the bracket closing the one at tokens[i]."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    want = [pairs[tokens[i][1]]]
    j = i + 1
    while j < len(tokens):
        t = tokens[j][1] if tokens[j][0] == "op" else None
        if t in pairs:
            want.append(pairs[t])
        elif want and t == want[-1]:
            want.pop()
            if not want:
                return j
        j += 1
    raise Error("unbalanced brackets")


def _label_list(tokens, i):
    """Labels of the `( a, b )` list starting at tokens[i]; and its end."""
    if tokens[i][1] != "(":
        raise Error("expected a label list")
    end = _matching(tokens, i)
    return [t[1] for t in tokens[i + 1:end] if t[0] == "ident"], end


def analyse(expr):
    """Selectors [(metric, [(label, op, value)])] and grouping requirements
    [(labels, [metrics in the aggregated expression])] of one PromQL expression."""
    tokens = tokenize(expr)
    selectors = []  # (token index, metric, matchers)
    groupings = []  # (labels, start, end) token span of the aggregated argument
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else None
        if kind == "ident" and text.lower() in AGGREGATIONS and nxt in ("(", "by", "without"):
            j = i + 1
            labels = None
            if tokens[j][1] in ("by", "without"):
                ls, end = _label_list(tokens, j + 1)
                labels = ls if tokens[j][1] == "by" else []
                j = end + 1
            arg_end = _matching(tokens, j)
            if labels is None and arg_end + 1 < len(tokens) and tokens[arg_end + 1][1] in ("by", "without"):
                ls, _ = _label_list(tokens, arg_end + 2)
                labels = ls if tokens[arg_end + 1][1] == "by" else []
            groupings.append((labels or [], j, arg_end))
            i += 1
            continue
        if kind == "ident" and text.lower() in GROUPING:
            if nxt == "(":
                _, end = _label_list(tokens, i + 1)
                i = end + 1
            else:
                i += 1
            continue
        if kind == "ident" and (text.lower() in KEYWORDS or text.lower() in AGGREGATIONS):
            i += 1
            continue
        if kind == "ident" and nxt == "(":  # a function
            i += 1
            continue
        if kind == "ident" or (kind == "op" and text == "{"):
            metric = text if kind == "ident" else None
            matchers = []
            j = i + 1 if kind == "ident" else i
            if j < len(tokens) and tokens[j][1] == "{":
                end = _matching(tokens, j)
                body = tokens[j + 1:end]
                k = 0
                while k < len(body):
                    if body[k][1] == ",":
                        k += 1
                        continue
                    if k + 2 >= len(body) or body[k][0] != "ident" or body[k + 2][0] != "str":
                        raise Error("cannot read the matchers of %r" % expr)
                    matchers.append((body[k][1], body[k + 1][1], _unquote(body[k + 2][1])))
                    k += 3
                j = end + 1
            if metric is None:
                names = [v for (l, op, v) in matchers if l == "__name__" and op == "="]
                if not names:
                    raise Error("a selector without a metric name in %r" % expr)
                metric = names[0]
            selectors.append((i, metric, matchers))
            i = j
            continue
        i += 1
    grouped = []
    for labels, start, end in groupings:
        metrics = [m for (at, m, _) in selectors if start < at < end]
        grouped.append((labels, metrics))
    return [(m, ms) for (_, m, ms) in selectors], grouped


# --------------------------------------------------------------------------
# prometheusrule.yaml, read line by line.

def read_rule_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")


def extract_spec(lines):
    head = [l for l in lines if l and not l.startswith((" ", "#"))]
    if "apiVersion: monitoring.coreos.com/v1" not in head or "kind: PrometheusRule" not in head:
        raise Error("not a monitoring.coreos.com/v1 PrometheusRule")
    if head[-1] != "spec:":
        raise Error("`spec:` must be the last top-level key")
    start = lines.index("spec:") + 1
    out = []
    for l in lines[start:]:
        if l.strip() and not l.startswith("  "):
            raise Error("unexpected line after spec: %r" % l)
        out.append(l[2:] if l.startswith("  ") else l)
    return "\n".join(out)


def rules_of(lines):
    """[(kind, name, expr, block lines)] for every rule, in order."""
    rules = []
    rule_start = re.compile(r"^(\s*)- (alert|record): *(\S+)\s*$")
    i = 0
    while i < len(lines):
        m = rule_start.match(lines[i])
        if not m:
            if re.match(r"^\s*-?\s*(alert|record|expr):", lines[i]):
                raise Error("unsupported rule layout at line %d: %r" % (i + 1, lines[i]))
            i += 1
            continue
        indent = len(m.group(1)) + 2
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) >= indent):
            j += 1
        block = lines[i:j]
        expr = None
        for k, l in enumerate(block[1:], start=1):
            em = re.match(r"^(\s*)expr: *(.*)$", l)
            if not em:
                continue
            value = em.group(2).strip()
            if value in ("|", "|-"):
                body = []
                for b in block[k + 1:]:
                    if b.strip() and len(b) - len(b.lstrip()) <= len(em.group(1)):
                        break
                    body.append(b.strip())
                expr = "\n".join(body).strip()
            elif value and value[0] not in "'\"|>&*!{[":
                expr = value
            else:
                raise Error("unsupported expr layout in rule %s: %r" % (m.group(3), l))
        if not expr:
            raise Error("rule %s has no expr" % m.group(3))
        rules.append((m.group(2), m.group(3), expr, block))
        i = j
    return rules


# --------------------------------------------------------------------------
# The dashboard.

def substitute(expr):
    def var(m):
        name = m.group(1) or m.group(2)
        if name not in GRAFANA_VARS:
            raise Error("unknown Grafana variable $%s in %r" % (name, expr))
        return GRAFANA_VARS[name]
    out = re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", var, expr)
    if "$" in out:
        raise Error("unsubstituted variable in %r" % expr)
    return out


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))


def dashboard_queries(path):
    """[(where, raw expr, substituted PromQL)] after checking the dashboard."""
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    problems = []
    if not isinstance(d.get("schemaVersion"), int) or d["schemaVersion"] < 36:
        problems.append("schemaVersion must be 36 or later")
    for key in ("uid", "title"):
        if not d.get(key):
            problems.append("the dashboard needs a %s" % key)
    variables = {v.get("name"): v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("a `datasource` variable of type datasource (query prometheus) is required")
    queries = []
    for name in ("namespace", "job"):
        v = variables.get(name)
        if not v or v.get("type") != "query":
            problems.append("a `%s` query variable is required" % name)
            continue
        if (v.get("datasource") or {}).get("uid") != CALLER_DATASOURCE:
            problems.append("variable %s must use ${datasource}" % name)
        q = v.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        m = re.match(r"^label_values\((.*),\s*([A-Za-z_][A-Za-z0-9_]*)\)$", q or "")
        if not m:
            problems.append("variable %s: expected label_values(selector, label), got %r" % (name, q))
            continue
        queries.append(("variable " + name, q, "group by (%s) (%s)" % (m.group(2), substitute(m.group(1)))))
    ids = set()
    for p in all_panels(d.get("panels", [])):
        if p.get("type") == "row":
            continue
        title = p.get("title") or "?"
        if p.get("id") in ids:
            problems.append("duplicate panel id %s" % p.get("id"))
        ids.add(p.get("id"))
        if "gridPos" not in p:
            problems.append("panel %r has no gridPos" % title)
        if (p.get("datasource") or {}).get("uid") != CALLER_DATASOURCE:
            problems.append("panel %r must use the ${datasource} variable" % title)
        targets = p.get("targets") or []
        if not targets:
            problems.append("panel %r has no query" % title)
        for t in targets:
            where = "panel %r target %s" % (title, t.get("refId"))
            if (t.get("datasource") or {}).get("uid") != CALLER_DATASOURCE:
                problems.append(where + " must use the ${datasource} variable")
            raw = t.get("expr") or ""
            if not raw.strip():
                problems.append(where + " has no expr")
                continue
            # Every selector is scoped to the chosen namespace and job, and the
            # gRPC ones to the gateway's own services (not health/reflection).
            for metric, matchers in analyse(raw)[0]:
                got = {(l, op, v) for (l, op, v) in matchers}
                for need in (("namespace", "=~", "$namespace"), ("job", "=~", "$job")):
                    if need not in got:
                        problems.append('%s: %s lacks %s%s"%s"' % ((where, metric) + need))
                if metric.startswith("grpc_server_") and not any(l == "grpc_service" for (l, _, _) in matchers):
                    problems.append("%s: %s lacks a grpc_service matcher" % (where, metric))
            queries.append((where, raw, substitute(raw)))
    if problems:
        raise Error("dashboard %s:\n  " % path + "\n  ".join(problems))
    return queries


def yaml_quote(s):
    return json.dumps(s)  # A JSON string is a valid YAML double-quoted scalar.


# --------------------------------------------------------------------------
# Commands.

def cmd_extract_rules(src, out):
    lines = read_rule_lines(src)
    spec = extract_spec(lines)
    n = len(rules_of(spec.split("\n")))
    with open(out, "w", encoding="utf-8") as f:
        f.write("# Generated from %s by monitoring_tool.py: the PrometheusRule's spec.\n" % src)
        f.write(spec)
    print(n)


def cmd_dashboard_rules(src, out):
    queries = dashboard_queries(src)
    with open(out, "w", encoding="utf-8") as f:
        f.write("# Generated from %s by monitoring_tool.py: every query as a recording rule.\n" % src)
        f.write("groups:\n- name: dashboard\n  rules:\n")
        for n, (where, _, expr) in enumerate(queries):
            f.write("  # %s\n" % where.replace("\n", " "))
            f.write("  - record: dashboard:query:%d\n    expr: %s\n" % (n, yaml_quote(expr)))
    print(len(queries))


def cmd_check_alerts(rule_file, runbook, rules_test):
    lines = extract_spec(read_rule_lines(rule_file)).split("\n")
    with open(runbook, encoding="utf-8") as f:
        anchors = {re.sub(r"[^a-z0-9_ -]", "", h.strip().lower()).replace(" ", "-")
                   for h in re.findall(r"^#+ (.*)$", f.read(), re.M)}
    with open(rules_test, encoding="utf-8") as f:
        tested = re.findall(r"^\s*-?\s*alertname:\s*(\S+)\s*$", f.read(), re.M)
    problems = []
    alerts = [r for r in rules_of(lines) if r[0] == "alert"]
    if not alerts:
        problems.append("no alerts")
    for _, name, expr, block in alerts:
        text = "\n".join(block)
        sev = re.search(r"^\s*severity: *(\S+)\s*$", text, re.M)
        if not sev or sev.group(1) not in ("critical", "warning", "info"):
            problems.append("%s: severity must be critical, warning or info" % name)
        for key in ("summary", "description", "runbook_url"):
            if not re.search(r"^\s*%s: *\S" % key, text, re.M):
                problems.append("%s: no %s annotation" % (name, key))
        url = re.search(r"^\s*runbook_url: *\"?([^\"\s]+)", text, re.M)
        if url:
            anchor = url.group(1).partition("#")[2]
            if not url.group(1).split("#")[0].endswith("k8s/monitoring/RUNBOOK.md") or anchor not in anchors:
                problems.append("%s: runbook_url %s has no section in RUNBOOK.md" % (name, url.group(1)))
        # A case where it fires and one where it does not, at least.
        if tested.count(name) < 2:
            problems.append("%s: rules_test.yaml needs a firing and a non-firing case" % name)
    if problems:
        raise Error("alerts:\n  " + "\n  ".join(problems))
    print(len(alerts))


# Series Prometheus makes itself for every target, not exported by the gateway.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def cmd_referenced_metrics(rule_file, dashboard, out):
    spec_lines = extract_spec(read_rule_lines(rule_file)).split("\n")
    rules = rules_of(spec_lines)
    recorded = {name for (kind, name, _, _) in rules if kind == "record"}
    exprs = [("rule " + name, expr) for (_, name, expr, _) in rules]
    exprs += [(where, sub) for (where, _, sub) in dashboard_queries(dashboard)]
    lines = set()
    for where, expr in exprs:
        selectors, grouped = analyse(expr)
        for metric, matchers in selectors:
            if metric in recorded or metric in SYNTHETIC:
                continue
            lines.add("metric %s" % metric)
            for label, op, value in matchers:
                if label in TARGET_LABELS or label == "__name__":
                    continue
                lines.add("label %s %s" % (metric, label))
                if op == "=":
                    lines.add("value %s %s %s" % (metric, label, value))
                elif re.fullmatch(r"[A-Za-z0-9_.]+(\|[A-Za-z0-9_.]+)*", value):
                    # A plain alternation: each is a value it expects to see.
                    for v in value.split("|"):
                        lines.add("value %s %s %s" % (metric, label, v))
                elif op == "=~":
                    lines.add("match %s %s %s" % (metric, label, value))
        for labels, metrics in grouped:
            raw = [m for m in metrics if m not in recorded and m not in SYNTHETIC]
            if not raw:
                continue
            for label in labels:
                if label in TARGET_LABELS:
                    continue
                # At least one metric under the aggregation must carry it (for
                # le: one of its _bucket series).
                candidates = sorted({m for m in raw if label != "le" or m.endswith("_bucket")})
                if not candidates:
                    raise Error("%s: groups by le over no _bucket series" % where)
                if len(candidates) == 1:
                    lines.add("label %s %s" % (candidates[0], label))
                else:
                    lines.add("anylabel %s %s" % (label, " ".join(candidates)))
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(sorted(lines)) + "\n")
    print(len([l for l in lines if l.startswith("metric ")]))


def main(argv):
    commands = {
        "extract-rules": (cmd_extract_rules, 2),
        "dashboard-rules": (cmd_dashboard_rules, 2),
        "check-alerts": (cmd_check_alerts, 3),
        "referenced-metrics": (cmd_referenced_metrics, 3),
    }
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        sys.stderr.write(__doc__)
        return 2
    try:
        commands[argv[1]][0](*argv[2:])
    except (Error, OSError, ValueError) as e:
        sys.stderr.write("monitoring_tool %s: %s\n" % (argv[1], e))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
