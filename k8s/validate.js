#!/usr/bin/env node
// Validates rendered Kubernetes manifests (the output of `kubectl kustomize`) offline:
//
//  1. Schemas. Every object is checked against its Kubernetes, prometheus-operator or cert-manager JSON schema
//     with the npm `kubernetes-models` family (tools/install_deps.sh installs it in
//     tools/node_modules). An apiVersion/kind the models do not know is an error, and so is a field
//     the schema does not know (a typo such as `readinesProbe` would otherwise pass: the generated
//     validators do not reject unknown properties, so the fields each validator reads are
//     recorded and the rest reported).
//  2. Policy, for the targets that deploy the gateway (`--policy`): what the schemas cannot
//     express (security context, probes, drain arithmetic, Secret handling, flags the binary
//     really has, network policy, cross-references between objects, per-environment settings).
//     Every rule is listed in RULES; `--self-test` breaks the manifests once per rule and checks
//     that the rule notices.
//
// Usage:
//   node k8s/validate.js [--flags=FILE] [--legacy=NAME=FILE ...] [--policy=NAME ...]
//                        [--self-test] [--print-args=NAME] [--print-listen=NAME]
//                        [--print-merchants-config=NAME]
//                        NAME=FILE ...
//   NAME=FILE      a rendered target (e.g. prod=/tmp/prod.yaml); NAME picks the per-environment
//                  expectations (base, uat, prod).
//   --flags=FILE   the output of `clink_gateway --helpfull`: the flags the container may pass.
//   --policy=NAME  apply the policy rules to target NAME (default: base, uat and prod if given).
//   --legacy=NAME=FILE  the same target rendered by another kustomize (kubectl 1.20's v2.0.3):
//                  must hold the same objects (generated names' hash suffixes aside).
//   --print-args=NAME   print the container's args for NAME with $(VARS) resolved, one per line.
//   --print-listen=NAME print NAME's --grpc_listen and --metrics_listen (the binary's defaults
//                  where the args leave them out), one per line: the ports a deployed pod binds.
//   --print-merchants-config=NAME  print the text of NAME's --merchants_config file (from its
//                  ConfigMap), or nothing when NAME uses --api_key_dir.
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

const toolsRequire = createRequire(
  path.join(process.env.CLINK_TOOLS_DIR || path.resolve(__dirname, '..', 'tools'), 'noop.js'));
const yaml = toolsRequire('js-yaml');

// ---------------------------------------------------------------------------------------------
// Constants of the deployment, shared with the manifests and the Dockerfile.

const GATEWAY = 'clink-gateway';
const GRPC_PORT = 50051;
// gRPC health services: "" (readiness) is NOT_SERVING while draining and while the clock is
// critically skewed against Clink's; "liveness" stays SERVING until shutdown.
const READINESS_SERVICE = '';
const LIVENESS_SERVICE = 'liveness';
// The files of a key directory (--api_key_dir, a merchant's key_dir).
const KEY_FILE = 'api-key';
const PREVIOUS_KEY_FILE = 'api-key-previous';
// Clink's webhook deliveries (--webhook_listen): the signing secrets live in the same key
// directories (webhook-secret, and webhook-secret-previous while rotating), the listener on the
// container port `webhook`, behind its own Service and the Ingress, which routes only WEBHOOK_PATH
// (POST /webhooks/clink and /webhooks/clink/{merchant}).
const WEBHOOK_SECRET_FILES = ['webhook-secret', 'webhook-secret-previous'];
const WEBHOOK_PORT = 8080;
const WEBHOOK_PORT_NAME = 'webhook';
const WEBHOOK_SERVICE = 'clink-gateway-webhook';
const WEBHOOK_PATH = '/webhooks/clink';
// The ingress controller's namespace: the only peer the NetworkPolicy admits to the webhook port.
const INGRESS_NAMESPACE = 'ingress-nginx';
// The cluster-internal CA of the gRPC port's certificate (base/certificate.yaml): Clink does not
// trust it, so the public Ingress certificate must come from another (public) issuer.
const INTERNAL_ISSUER = 'clink-gateway-ca';
// base/ingress.yaml's placeholder host: .invalid never resolves (RFC 2606), so an overlay must
// set its own.
const PLACEHOLDER_HOST = /\.invalid$/;
const DEFAULT_METRICS_PORT = 9464; // --metrics_listen's default, 0.0.0.0:9464
const DEFAULT_DRAIN_SECONDS = 20; // --drain_timeout's default
const EXIT_GRACE_SECONDS = 2; // the gateway exits within drain + 2 s
const SANDBOX_URL = 'https://uat-api.clinkbill.com/api';
const PRODUCTION_URL = 'https://api.clinkbill.com/api';
const CLIENT_NAMESPACE_LABEL = ['clink-gateway/client', 'true'];
const MONITORING_NAMESPACE = 'monitoring';
// Binaries a preStop exec may run: coreutils is Essential in Debian, so in the runtime image.
const RUNTIME_IMAGE_BINARIES = new Set(['/bin/sleep', '/usr/bin/sleep']);
// Egress the gateway needs: DNS, Clink over HTTPS, Redis for shared idempotency keys.
const ALLOWED_EGRESS = new Set(['53/UDP', '53/TCP', '443/TCP', '6379/TCP']);
// Per-environment expectations.
const TARGETS = {
  base: { baseUrl: SANDBOX_URL },
  uat: { baseUrl: SANDBOX_URL, namespace: true, webhookHost: true },
  prod: { baseUrl: PRODUCTION_URL, namespace: true, webhookHost: true },
};

const RULES = {
  'kind-known': 'every apiVersion/kind has a schema',
  schema: 'every object validates against its schema',
  'strict-fields': 'no field the schema does not define',
  deployment: 'one Deployment clink-gateway with a clink-gateway container',
  replicas: 'at least 2 replicas (the HPA\'s minReplicas), and no spec.replicas an apply would reset the HPA\'s count with',
  hpa: 'an autoscaling/v2 HorizontalPodAutoscaler on CPU for the Deployment, minReplicas >= 2',
  pdb: 'a PodDisruptionBudget that keeps a pod up and still lets a drain evict one',
  'pod-security': 'runAsNonRoot, fixed non-root UID/GID, seccomp RuntimeDefault, no host namespaces, no token',
  'container-security': 'no privilege escalation, read-only root, all capabilities dropped',
  resources: 'cpu and memory requests and limits, requests <= limits',
  probes: 'startup, readiness and liveness probes, all native gRPC on the health port (--health_listen; else the gRPC port)',
  'liveness-service': 'liveness and startup probes ask health service "liveness", readiness the default "" (a skewed clock must not restart pods)',
  'liveness-window': 'liveness tolerates a drain (period x failures > drain + 2 s)',
  prestop: 'a preStop pause with a binary the image has (no shell)',
  'grace-period': 'terminationGracePeriodSeconds > preStop + drain + 2 s',
  drain: 'the drain covers the longest upstream call (--drain_timeout >= --max_rpc_timeout)',
  'secret-mount': 'keys come from whole Secret volumes mounted as directories (--api_key_dir, every merchant key_dir, key files): read-only, no subPath, no items, not world-readable',
  merchants: 'a --merchants_config file comes from a ConfigMap in the manifests, and excludes --api_key_dir',
  'no-secrets': 'no Secret objects and no secret-looking values in the manifests',
  flags: 'every container flag is one the gateway binary defines',
  config: 'every $(VAR) resolves from the ConfigMap; https upstream; no plaintext or egress overrides',
  service: 'a ClusterIP Service with ports grpc (appProtocol grpc) and http-metrics',
  networkpolicy: 'ingress only from client namespaces (gRPC), monitoring (metrics), the ingress controller\'s namespace (webhook port) and, for the kubelet\'s probes, anywhere to the health port alone; egress only 53/443/6379',
  webhook: `the webhook listener is on (--webhook_listen on port ${WEBHOOK_PORT}, all interfaces) as container port ${WEBHOOK_PORT_NAME}, behind a ClusterIP Service ${WEBHOOK_SERVICE} with that port alone`,
  'webhook-secret': `the webhook secrets (${WEBHOOK_SECRET_FILES.join(', ')}) come from the whole key Secrets mounted as the key directories, never from an env var or a file mounted on its own`,
  ingress: `one networking.k8s.io/v1 Ingress, routing only the path prefix ${WEBHOOK_PATH} to the ${WEBHOOK_PORT_NAME} port of ${WEBHOOK_SERVICE} (no other path, backend or defaultBackend: gRPC, metrics and health stay private), TLS for every host from a public cert-manager issuer`,
  'ingress-host': 'every overlay sets its own webhook host (not the base\'s .invalid placeholder), in the rule and the TLS hosts; uat and prod differ',
  servicemonitor: 'a ServiceMonitor scraping the Service http-metrics port at /metrics',
  spread: 'replicas spread over nodes',
  rollout: 'rolling updates never go below capacity (maxUnavailable 0)',
  image: 'the image has a tag or digest, not latest',
  namespace: 'an overlay puts every object in one namespace',
  environment: 'the environment talks to its Clink (sandbox or production)',
  redis: 'with production money, idempotency keys are in Redis and egress to it is allowed',
  'shared-store': 'an overlay that can run more than one pod (replicas, HPA minReplicas or maxReplicas > 1) keeps idempotency keys in a shared Redis over TCP (--idempotency_redis), not in a per-pod store; and its events too (--event_redis, when set, is such a Redis: an event one pod received must reach a stream on any)',
  mtls: 'the gRPC port requires client certificates (--grpc_tls_* from the Secret of a cert-manager Certificate in the manifests, no --grpc_insecure), calls are authorized (--authz_policy_file from a ConfigMap in the manifests, a gRFC A43 policy), and the probes have a plaintext --health_listen port',
  'cross-env': 'production runs more replicas, with more CPU and memory each, than UAT',
  legacy: 'kustomize v2.0.3 (kubectl 1.20) renders the same objects',
};

// ---------------------------------------------------------------------------------------------
// Schema validation.

const MODEL_PACKAGES = ['kubernetes-models', '@kubernetes-models/prometheus-operator', '@kubernetes-models/cert-manager'];

function modelFor(apiVersion, kind) {
  if (typeof apiVersion !== 'string' || typeof kind !== 'string') return null;
  const groupVersion = apiVersion.includes('/') ? apiVersion : `${apiVersion}`;
  for (const pkg of MODEL_PACKAGES) {
    let mod;
    try {
      mod = toolsRequire(`${pkg}/${groupVersion}`);
    } catch (e) {
      if (e.code !== 'MODULE_NOT_FOUND' && e.code !== 'ERR_PACKAGE_PATH_NOT_EXPORTED') throw e;
      continue;
    }
    const Model = mod[kind];
    if (typeof Model === 'function' && Model.apiVersion === apiVersion && Model.kind === kind) {
      return Model;
    }
  }
  return null;
}

// Runs the model's validator over a copy of `obj` whose every object is a Proxy recording the
// properties the validator reads. A struct-like object (one the validator read at least one
// property of, without enumerating it as a map) with a key the validator never read has a field
// the schema does not define. Objects the schema leaves free-form are never read and never
// reported.
function unknownFields(Model, obj) {
  const records = [];
  function wrap(value, at) {
    if (Array.isArray(value)) return value.map((v, i) => wrap(v, `${at}[${i}]`));
    if (value === null || typeof value !== 'object') return value;
    const target = {};
    for (const [k, v] of Object.entries(value)) target[k] = wrap(v, at ? `${at}.${k}` : k);
    const record = { at, keys: Object.keys(value), read: new Set(), enumerated: false };
    records.push(record);
    return new Proxy(target, {
      get(t, key, receiver) {
        if (typeof key === 'string') record.read.add(key);
        return Reflect.get(t, key, receiver);
      },
      has(t, key) {
        if (typeof key === 'string') record.read.add(key);
        return Reflect.has(t, key);
      },
      ownKeys(t) {
        record.enumerated = true;
        return Reflect.ownKeys(t);
      },
    });
  }
  try {
    Model.prototype.validate.call(wrap(obj, ''));
  } catch (e) {
    // Schema errors are reported by the plain validation.
  }
  const unknown = [];
  for (const r of records) {
    if (r.enumerated || r.read.size === 0) continue;
    for (const k of r.keys) {
      if (!r.read.has(k)) unknown.push(r.at ? `${r.at}.${k}` : k);
    }
  }
  return unknown;
}

function validateSchemas(objs, fail) {
  for (const obj of objs) {
    const id = describe(obj);
    const Model = modelFor(obj && obj.apiVersion, obj && obj.kind);
    if (!Model) {
      fail('kind-known', `${id}: no schema for apiVersion ${obj && obj.apiVersion} kind ${obj && obj.kind}`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      const details = (e.errors || []).map((x) => `${x.instancePath || '/'} ${x.message}`).join('; ');
      fail('schema', `${id}: ${details || e.message}`);
    }
    for (const field of unknownFields(Model, obj)) {
      fail('strict-fields', `${id}: unknown field ${field}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

function describe(obj) {
  if (!obj || typeof obj !== 'object') return String(obj);
  const ns = obj.metadata && obj.metadata.namespace ? `${obj.metadata.namespace}/` : '';
  return `${obj.kind}/${ns}${obj.metadata && obj.metadata.name}`;
}

function ofKind(objs, kind) {
  return objs.filter((o) => o && o.kind === kind);
}

function named(objs, kind, name) {
  return objs.find((o) => o && o.kind === kind && o.metadata && o.metadata.name === name);
}

function selectorMatches(selector, labels) {
  if (!selector) return false;
  labels = labels || {};
  const ml = selector.matchLabels || {};
  const me = selector.matchExpressions || [];
  if (Object.keys(ml).length === 0 && me.length === 0) return true;
  for (const [k, v] of Object.entries(ml)) if (labels[k] !== v) return false;
  for (const e of me) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const values = e.values || [];
    if (e.operator === 'In' && !(has && values.includes(labels[e.key]))) return false;
    if (e.operator === 'NotIn' && has && values.includes(labels[e.key])) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

// Kubernetes quantities (cpu "250m", "1"; memory "512Mi", "1G") as numbers.
function quantity(q) {
  if (typeof q === 'number') return q;
  const m = /^([0-9.]+)([a-zA-Z]*)$/.exec(String(q));
  if (!m) return NaN;
  const units = {
    '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12,
    Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4,
  };
  return m[2] in units ? parseFloat(m[1]) * units[m[2]] : NaN;
}

// absl::Duration flag syntax: "20s", "1m30s", "500ms", "0", "inf".
function durationSeconds(text) {
  if (text === '0') return 0;
  if (text === 'inf') return Infinity;
  const units = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, ns: 1e-9 };
  const re = /([0-9]*\.?[0-9]+)(ms|us|ns|h|m|s)/gy;
  let total = 0;
  let end = 0;
  let m;
  while ((m = re.exec(text)) !== null) {
    total += parseFloat(m[1]) * units[m[2]];
    end = re.lastIndex;
  }
  return end === text.length && end > 0 ? total : NaN;
}

// Kubernetes' $(VAR) expansion in command/args: $$ escapes, unknown references stay literal.
function expand(text, env, unresolved) {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (all, name) => {
    if (all === '$$') return '$';
    if (Object.prototype.hasOwnProperty.call(env, name)) return env[name];
    unresolved.push(name);
    return all;
  });
}

function portOf(address) {
  const m = /:([0-9]+)$/.exec(address || '');
  return m ? Number(m[1]) : NaN;
}

function allStrings(value, visit, at = '') {
  if (typeof value === 'string') visit(value, at);
  else if (Array.isArray(value)) value.forEach((v, i) => allStrings(v, visit, `${at}[${i}]`));
  else if (value && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      visit(k, `${at}.${k}(key)`);
      allStrings(v, visit, `${at}.${k}`);
    }
  }
}

// The string fields of a text-format clink.gateway.config.v1.MerchantsConfig (merchants.proto),
// by field name: {name: [...], key_dir: [...], clink_base_url: [...], default_merchant: [...]}.
// Enough to cross-check the manifests; the gateway's own parser is the real one.
function parseMerchantsConfig(text) {
  const str = String.raw`"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'`;
  const code = text.replace(new RegExp(String.raw`(${str})|#[^\n]*`, 'g'), (all, quoted) => quoted || '');
  const fields = { name: [], key_dir: [], clink_base_url: [], default_merchant: [] };
  for (const m of code.matchAll(new RegExp(String.raw`\b([a-z_]+)\s*:\s*(${str})`, 'g'))) {
    if (fields[m[1]]) fields[m[1]].push(m[2].slice(1, -1).replace(/\\(.)/g, '$1'));
  }
  return fields;
}

const SECRET_PATTERNS = [
  /\bsk_(live|prod|test)_[A-Za-z0-9]/,
  // A webhook endpoint's signing secret (Clink's whsec_ prefix).
  /\bwhsec_[A-Za-z0-9]/,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----/,
];

// ---------------------------------------------------------------------------------------------
// Policy for one rendered target: the Deployment's checks, then each check of POLICY_CHECKS
// (one per section of the policy) on a shared context. Returns facts other checks (cross-env) use.
//
// The context every policy check shares: the target's name, its rendered objects, the options
// (opts: the binary's flags and defaults), fail(rule, message), the facts returned for cross-env
// checks, the TARGETS expectations, the gateway's Deployment, pod spec and container; and the
// values earlier checks derived (checkConfig's flags, drain, ...), added with Object.assign.
function checkPolicy(name, objs, opts, fail) {
  const facts = {};
  const expect = TARGETS[name] || {};

  const deployments = ofKind(objs, 'Deployment').filter((d) => d.metadata.name === GATEWAY);
  if (deployments.length !== 1) {
    fail('deployment', `expected exactly one Deployment ${GATEWAY}, found ${deployments.length}`);
    return facts;
  }
  const deploy = deployments[0];
  const spec = deploy.spec || {};
  const template = spec.template || {};
  const pod = template.spec || {};
  const podLabels = (template.metadata && template.metadata.labels) || {};
  const containers = pod.containers || [];
  const c = containers.find((x) => x.name === GATEWAY);
  if (!c) {
    fail('deployment', `Deployment ${GATEWAY} has no container named ${GATEWAY}`);
    return facts;
  }
  if (!selectorMatches(spec.selector, podLabels)) {
    fail('deployment', 'the Deployment selector does not match its pod template labels');
  }
  const ctx = { name, objs, opts, fail, facts, expect, deploy, spec, template, pod, podLabels, containers, c };
  for (const check of POLICY_CHECKS) check(ctx);
  return facts;
}

// Replicas and the autoscaler.
function checkReplicas(ctx) {
  const { objs, fail, facts, spec } = ctx;
  const hpas = ofKind(objs, 'HorizontalPodAutoscaler').filter(
    (h) => h.spec && h.spec.scaleTargetRef && h.spec.scaleTargetRef.kind === 'Deployment' &&
      h.spec.scaleTargetRef.name === GATEWAY);
  // With an HPA the Deployment leaves spec.replicas out: every `kubectl apply` (or GitOps sync)
  // of a manifest that sets it would scale the fleet back to that number, whatever the HPA chose.
  if (spec.replicas !== undefined && hpas.length > 0) {
    fail('replicas', `Deployment sets replicas: ${spec.replicas} next to its HorizontalPodAutoscaler: each apply would reset the HPA's count (leave spec.replicas out)`);
  }
  const hpaMin = hpas.length === 1 && hpas[0].spec.minReplicas !== undefined ? hpas[0].spec.minReplicas : 1;
  const replicas = spec.replicas !== undefined ? spec.replicas : hpaMin;
  if (!(replicas >= 2)) fail('replicas', `Deployment runs ${replicas} replica(s), must be >= 2`);
  let minReplicas = replicas;
  if (hpas.length !== 1) {
    fail('hpa', `expected one HorizontalPodAutoscaler for Deployment ${GATEWAY}, found ${hpas.length}`);
  } else {
    const h = hpas[0];
    minReplicas = h.spec.minReplicas === undefined ? 1 : h.spec.minReplicas;
    if (h.apiVersion !== 'autoscaling/v2') fail('hpa', `HPA apiVersion is ${h.apiVersion}, want autoscaling/v2`);
    if (!(minReplicas >= 2)) fail('hpa', `HPA minReplicas ${minReplicas} < 2`);
    if (!(h.spec.maxReplicas >= minReplicas)) fail('hpa', 'HPA maxReplicas < minReplicas');
    if (replicas < minReplicas || replicas > h.spec.maxReplicas) {
      fail('hpa', `Deployment replicas ${replicas} outside the HPA's [${minReplicas}, ${h.spec.maxReplicas}]`);
    }
    const cpu = (h.spec.metrics || []).some(
      (m) => m.type === 'Resource' && m.resource && m.resource.name === 'cpu' &&
        m.resource.target && m.resource.target.type === 'Utilization' &&
        m.resource.target.averageUtilization > 0 && m.resource.target.averageUtilization <= 90);
    if (!cpu) fail('hpa', 'HPA has no CPU Utilization target (1-90%)');
    facts.minReplicas = minReplicas;
  }
  // The most pods that can serve at once: spec.replicas and every HPA bound (shared-store).
  facts.maxPods = Math.max(spec.replicas !== undefined ? spec.replicas : 1,
    ...hpas.map((h) => Math.max(h.spec.minReplicas || 1, h.spec.maxReplicas || 1)));
  Object.assign(ctx, { minReplicas });
}

// The PodDisruptionBudget, against the autoscaler's floor.
function checkDisruptionBudget(ctx) {
  const { objs, fail, podLabels, minReplicas } = ctx;
  const pdbs = ofKind(objs, 'PodDisruptionBudget').filter((p) => selectorMatches(p.spec && p.spec.selector, podLabels));
  if (pdbs.length !== 1) {
    fail('pdb', `expected one PodDisruptionBudget selecting the gateway pods, found ${pdbs.length}`);
  } else {
    const p = pdbs[0].spec;
    const pct = (v) => (typeof v === 'string' && v.endsWith('%') ? Math.ceil((parseFloat(v) / 100) * minReplicas) : v);
    if (p.minAvailable !== undefined) {
      const min = pct(p.minAvailable);
      if (!(min >= 1)) fail('pdb', `PDB minAvailable ${p.minAvailable} protects nothing`);
      if (!(min < minReplicas)) fail('pdb', `PDB minAvailable ${p.minAvailable} >= minReplicas ${minReplicas}: no pod could ever be evicted`);
    } else if (p.maxUnavailable !== undefined) {
      const max = pct(p.maxUnavailable);
      if (!(max >= 1 && max < minReplicas)) fail('pdb', `PDB maxUnavailable ${p.maxUnavailable} must be >= 1 and < ${minReplicas}`);
    } else {
      fail('pdb', 'PDB sets neither minAvailable nor maxUnavailable');
    }
  }
}

// Pod and container security.
function checkPodSecurity(ctx) {
  const { fail, facts, pod, containers, c } = ctx;
  const psc = pod.securityContext || {};
  const csc = c.securityContext || {};
  const runAsUser = csc.runAsUser !== undefined ? csc.runAsUser : psc.runAsUser;
  const runAsGroup = csc.runAsGroup !== undefined ? csc.runAsGroup : psc.runAsGroup;
  const runAsNonRoot = csc.runAsNonRoot !== undefined ? csc.runAsNonRoot : psc.runAsNonRoot;
  if (runAsNonRoot !== true) fail('pod-security', 'runAsNonRoot is not true');
  if (!(Number.isInteger(runAsUser) && runAsUser > 0)) fail('pod-security', `runAsUser ${runAsUser} is not a fixed non-root UID`);
  if (!(Number.isInteger(runAsGroup) && runAsGroup > 0)) fail('pod-security', `runAsGroup ${runAsGroup} is not a fixed non-root GID`);
  const seccomp = (csc.seccompProfile || psc.seccompProfile || {}).type;
  if (seccomp !== 'RuntimeDefault') fail('pod-security', `seccomp profile is ${seccomp}, want RuntimeDefault`);
  for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (pod[f]) fail('pod-security', `${f} is set`);
  if (pod.automountServiceAccountToken !== false) fail('pod-security', 'automountServiceAccountToken is not false');
  facts.runAsUser = runAsUser;
  facts.runAsGroup = runAsGroup;
  for (const x of [...containers, ...(pod.initContainers || [])]) {
    const s = x.securityContext || {};
    const who = `container ${x.name}`;
    if (s.allowPrivilegeEscalation !== false) fail('container-security', `${who}: allowPrivilegeEscalation is not false`);
    if (s.readOnlyRootFilesystem !== true) fail('container-security', `${who}: readOnlyRootFilesystem is not true`);
    if (s.privileged) fail('container-security', `${who}: privileged`);
    const caps = s.capabilities || {};
    if (!(caps.drop || []).includes('ALL')) fail('container-security', `${who}: capabilities.drop lacks ALL`);
    if ((caps.add || []).length) fail('container-security', `${who}: adds capabilities ${caps.add}`);
    if (s.runAsUser === 0) fail('container-security', `${who}: runAsUser 0`);
  }
  Object.assign(ctx, { psc, runAsUser });
}

// Resources.
function checkResources(ctx) {
  const { fail, facts, c } = ctx;
  const res = c.resources || {};
  for (const r of ['cpu', 'memory']) {
    const req = res.requests && res.requests[r];
    const lim = res.limits && res.limits[r];
    if (req === undefined || lim === undefined) {
      fail('resources', `${r}: request ${req}, limit ${lim}; both are required`);
    } else if (!(quantity(req) <= quantity(lim))) {
      fail('resources', `${r}: request ${req} exceeds limit ${lim}`);
    }
  }
  facts.requests = res.requests || {};
}

// Config: args, env, flags.
function checkConfig(ctx) {
  const { name, objs, opts, fail, facts, expect, c } = ctx;
  const env = {};
  for (const ef of c.envFrom || []) {
    if (ef.configMapRef) {
      const cm = named(objs, 'ConfigMap', ef.configMapRef.name);
      if (!cm) {
        fail('config', `envFrom ConfigMap ${ef.configMapRef.name} is not in the manifests`);
        continue;
      }
      for (const [k, v] of Object.entries(cm.data || {})) env[(ef.prefix || '') + k] = v;
    } else if (ef.secretRef) {
      fail('config', `envFrom Secret ${ef.secretRef.name}: keys must come from files (--*_file flags)`);
    }
  }
  for (const e of c.env || []) {
    if (e.valueFrom && e.valueFrom.secretKeyRef) {
      fail('no-secrets', `env ${e.name} comes from a Secret; mount it as a file instead`);
    }
    if (e.valueFrom && e.valueFrom.configMapKeyRef) {
      const cm = named(objs, 'ConfigMap', e.valueFrom.configMapKeyRef.name);
      const v = cm && cm.data && cm.data[e.valueFrom.configMapKeyRef.key];
      if (v === undefined) fail('config', `env ${e.name}: ConfigMap key not in the manifests`);
      else env[e.name] = v;
    } else if (e.value !== undefined) {
      env[e.name] = expand(e.value, env, []);
    }
    // The gateway no longer reads CLINK_API_KEY: such a variable only puts the key in the pod's
    // environment (and `kubectl describe`, /proc/<pid>/environ) for nothing.
    if (/^CLINK_API_KEY/.test(e.name)) fail('no-secrets', `${e.name} set in the environment: the gateway reads keys only from --api_key_dir (a Secret volume)`);
  }
  if (c.command) fail('config', 'command overrides the image ENTRYPOINT; pass flags in args');
  const flags = {};
  for (const arg of c.args || []) {
    const unresolved = [];
    const resolved = expand(arg, env, unresolved);
    if (unresolved.length) fail('config', `${arg}: $(${unresolved.join('), $(')}) not defined by env or the ConfigMap`);
    const m = /^--?([A-Za-z0-9_]+)(?:=(.*))?$/s.exec(resolved);
    if (!m) {
      fail('flags', `argument ${arg} is not a --flag=value`);
      continue;
    }
    const [, flag, value] = m;
    if (opts.flags && !opts.flags.has(flag)) fail('flags', `--${flag} is not a flag of clink_gateway`);
    flags[flag] = value === undefined ? 'true' : value;
  }
  facts.args = (c.args || []).map((a) => expand(a, env, []));
  facts.flags = flags;
  // Flags left out take the binary's defaults (from --helpfull, else the documented ones).
  const defaults = opts.defaults || {};
  const baseUrl = flags.clink_base_url === undefined ? (defaults.clink_base_url || SANDBOX_URL) : flags.clink_base_url;
  if (!baseUrl.startsWith('https://')) fail('config', `--clink_base_url ${baseUrl} is not https`);
  if (flags.allow_plaintext_upstream !== undefined && !/^(false|0|no)$/i.test(flags.allow_plaintext_upstream)) {
    fail('config', '--allow_plaintext_upstream is for the emulator only');
  }
  // The egress policy's escape hatches are for tests and roll-outs, never a deployed gateway.
  if (flags.egress_allow_cidrs !== undefined && flags.egress_allow_cidrs !== '') {
    fail('config', '--egress_allow_cidrs exempts internal ranges from the egress policy (tests only)');
  }
  if (flags.egress_report_only !== undefined && !/^(false|0|no)$/i.test(flags.egress_report_only)) {
    fail('config', '--egress_report_only turns the egress policy off (roll-out only)');
  }
  if (expect.baseUrl && baseUrl !== expect.baseUrl) {
    fail('environment', `${name} talks to ${baseUrl}, expected ${expect.baseUrl}`);
  }
  const flagOr = (f, fallback) => (flags[f] !== undefined ? flags[f] : defaults[f] !== undefined ? defaults[f] : fallback);
  const grpcListen = flagOr('grpc_listen', `[::]:${GRPC_PORT}`);
  const metricsListen = flagOr('metrics_listen', `0.0.0.0:${DEFAULT_METRICS_PORT}`);
  const metricsPort = portOf(metricsListen);
  // What the gateway would bind, defaults resolved: manifests_test.sh runs the binary with the
  // same hosts on port 0 (a test never binds the deployment's fixed ports).
  facts.listen = { grpc_listen: grpcListen, metrics_listen: metricsListen };
  if (metricsListen === '') fail('config', '--metrics_listen is empty: the gateway would export no metrics');
  const drain = durationSeconds(flagOr('drain_timeout', `${DEFAULT_DRAIN_SECONDS}s`));
  if (!Number.isFinite(drain)) fail('config', `--drain_timeout ${flagOr('drain_timeout')} is not a finite duration`);
  const maxRpc = durationSeconds(flagOr('max_rpc_timeout', '30s'));
  if (!(drain >= maxRpc)) {
    fail('drain', `--drain_timeout ${drain} s < --max_rpc_timeout ${maxRpc} s: a rollout would cut payments still waiting on Clink (UNKNOWN outcomes)`);
  }
  if (portOf(grpcListen) !== GRPC_PORT) fail('config', `--grpc_listen ${grpcListen} is not port ${GRPC_PORT}`);
  Object.assign(ctx, { baseUrl, drain, flagOr, flags, metricsPort });
}

// Container ports.
function checkContainerPorts(ctx) {
  const { fail, facts, c, flagOr, metricsPort } = ctx;
  const cports = {};
  for (const p of c.ports || []) cports[p.name] = p.containerPort;
  if (cports.grpc !== GRPC_PORT) fail('service', `container port grpc is ${cports.grpc}, want ${GRPC_PORT}`);
  if (cports['http-metrics'] !== metricsPort) {
    fail('service', `container port http-metrics is ${cports['http-metrics']}, the gateway serves metrics on ${metricsPort}`);
  }
  const resolvePort = (p) => (typeof p === 'string' ? cports[p] : p);
  // The plaintext health-only port the probes use when the gRPC port requires client certificates.
  const healthListen = flagOr('health_listen', '');
  const healthPort = healthListen ? portOf(healthListen) : undefined;
  if (healthListen) {
    facts.listen.health_listen = healthListen;
    if (cports['grpc-health'] !== healthPort) {
      fail('service', `container port grpc-health is ${cports['grpc-health']}, --health_listen is port ${healthPort}`);
    }
  }
  const probePort = healthPort || GRPC_PORT;
  // The webhook listener (rule webhook): its port is a fixed one manifests_test.sh replaces too.
  const webhookListen = flagOr('webhook_listen', '');
  const webhookPort = webhookListen ? portOf(webhookListen) : undefined;
  if (webhookListen) facts.listen.webhook_listen = webhookListen;
  if (!webhookListen) {
    fail('webhook', '--webhook_listen is not set: Clink\'s webhook deliveries have nowhere to go (events are only as fresh as a poll)');
  } else {
    if (webhookPort !== WEBHOOK_PORT) fail('webhook', `--webhook_listen ${webhookListen} is not port ${WEBHOOK_PORT}`);
    if (/^(127\.|\[::1\]|localhost)/.test(webhookListen)) {
      fail('webhook', `--webhook_listen ${webhookListen} is loopback: the ingress controller connects from another pod`);
    }
    if (cports[WEBHOOK_PORT_NAME] !== webhookPort) {
      fail('webhook', `container port ${WEBHOOK_PORT_NAME} is ${cports[WEBHOOK_PORT_NAME]}, --webhook_listen is port ${webhookPort}`);
    }
  }
  Object.assign(ctx, { healthListen, healthPort, probePort, resolvePort, webhookPort });
}

// Probes.
function checkProbes(ctx) {
  const { fail, c, drain, healthPort, probePort } = ctx;
  for (const kind of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
    const probe = c[kind];
    if (!probe) {
      fail('probes', `${kind} is missing`);
      continue;
    }
    const handlers = ['grpc', 'httpGet', 'tcpSocket', 'exec'].filter((h) => probe[h]);
    if (handlers.length !== 1 || handlers[0] !== 'grpc') {
      fail('probes', `${kind} uses ${handlers.join('+') || 'nothing'}, want grpc (grpc.health.v1)`);
    } else if (probe.grpc.port !== probePort) {
      fail('probes', `${kind} probes port ${probe.grpc.port}, the gateway's ${healthPort ? 'health port (--health_listen)' : 'gRPC port'} is ${probePort}`);
    }
  }
  // Which health service each probe asks. A probe whose failure restarts the container (liveness,
  // and startup, which kills it just the same) must ask "liveness": on "" a node whose clock is
  // critically skewed would get its pods restarted in a loop, which cures nothing.
  const serviceOf = (probe) => (probe && probe.grpc ? probe.grpc.service || '' : undefined);
  for (const [kind, want, why] of [
    ['livenessProbe', LIVENESS_SERVICE, 'a skewed clock would get the pod restarted in a loop'],
    ['startupProbe', LIVENESS_SERVICE, 'a failing startup probe kills the container like liveness does'],
    ['readinessProbe', READINESS_SERVICE, 'only "" follows draining and clock skew'],
  ]) {
    const service = serviceOf(c[kind]);
    if (service !== undefined && service !== want) {
      fail('liveness-service', `${kind} asks health service "${service}", want "${want}": ${why}`);
    }
  }
  if (c.livenessProbe) {
    const window = (c.livenessProbe.periodSeconds || 10) * (c.livenessProbe.failureThreshold || 3);
    if (!(window > drain + EXIT_GRACE_SECONDS)) {
      fail('liveness-window', `liveness fails a pod after ${window} s of NOT_SERVING, not more than drain ${drain} s + ${EXIT_GRACE_SECONDS} s: it would kill draining pods`);
    }
  }
}

// Shutdown: preStop and grace period.
function checkShutdown(ctx) {
  const { fail, facts, pod, c, drain } = ctx;
  const preStop = c.lifecycle && c.lifecycle.preStop;
  let preStopSeconds = NaN;
  if (!preStop) {
    fail('prestop', 'no preStop hook');
  } else if (preStop.exec) {
    const cmd = preStop.exec.command || [];
    if (!RUNTIME_IMAGE_BINARIES.has(cmd[0]) || cmd.length !== 2 || !/^[0-9]+$/.test(cmd[1])) {
      fail('prestop', `preStop exec ${JSON.stringify(cmd)}: want ["/bin/sleep", "<seconds>"] (the image has no shell)`);
    } else {
      preStopSeconds = Number(cmd[1]);
    }
  } else if (preStop.sleep) {
    preStopSeconds = preStop.sleep.seconds;
  } else {
    fail('prestop', 'preStop is neither an exec sleep nor a sleep action');
  }
  if (!(preStopSeconds >= 1)) fail('prestop', `preStop pauses ${preStopSeconds} s`);
  const grace = pod.terminationGracePeriodSeconds === undefined ? 30 : pod.terminationGracePeriodSeconds;
  const needed = (preStopSeconds || 0) + drain + EXIT_GRACE_SECONDS;
  if (!(grace > needed)) {
    fail('grace-period', `terminationGracePeriodSeconds ${grace} <= preStop ${preStopSeconds} + drain ${drain} + ${EXIT_GRACE_SECONDS}`);
  }
  facts.shutdown = { preStopSeconds, drain, grace };
}

// Secrets as files and directories.
function checkSecretMounts(ctx) {
  const { name, objs, fail, facts, expect, pod, containers, c, psc, runAsUser, flags, healthListen } = ctx;
  const volumes = {};
  for (const v of pod.volumes || []) volumes[v.name] = v;
  for (const x of [...containers, ...(pod.initContainers || [])]) {
    for (const m of x.volumeMounts || []) {
      if (m.subPath !== undefined || m.subPathExpr !== undefined) {
        fail('secret-mount', `container ${x.name} mounts ${m.name} with subPath: a subPath mount never receives updates (a key roll would not reach the pod)`);
      }
    }
  }
  const dirOf = (p) => path.posix.normalize(String(p)).replace(/(.)\/+$/, '$1');
  // The Secret volume behind `mount`, checked; null when it is not a Secret.
  const secretVolume = (what, mount) => {
    const vol = volumes[mount.name];
    if (!vol || !vol.secret) {
      fail('secret-mount', `${what}: volume ${mount.name} is not a Secret`);
      return null;
    }
    if (mount.readOnly !== true) fail('secret-mount', `volume ${mount.name} is not mounted readOnly`);
    const mode = vol.secret.defaultMode === undefined ? 0o644 : vol.secret.defaultMode;
    if (mode & 0o007) fail('secret-mount', `Secret volume ${mount.name} is world-readable (mode ${mode.toString(8)})`);
    if (mode & 0o222) fail('secret-mount', `Secret volume ${mount.name} mode ${mode.toString(8)} is writable (want 0440)`);
    if (!(mode & 0o040) && !(mode & 0o400 && runAsUser === 0)) {
      fail('secret-mount', `Secret volume ${mount.name} mode ${mode.toString(8)} is not group-readable (the gateway reads it through fsGroup)`);
    }
    if (!(psc.fsGroup > 0)) fail('secret-mount', 'no fsGroup: the non-root gateway cannot read the Secret files');
    return vol;
  };
  // A key directory (--api_key_dir, a merchant's key_dir): exactly a whole Secret's mountPath.
  const keyDirs = [];
  const keyDir = (what, dir) => {
    keyDirs.push(dir);
    if (!String(dir).startsWith('/')) {
      fail('secret-mount', `${what} ${dir} is not an absolute path`);
      return;
    }
    const mount = (c.volumeMounts || []).find((m) => dirOf(m.mountPath) === dirOf(dir));
    if (!mount) {
      fail('secret-mount', `${what} ${dir} is not the mountPath of a volume: mount the key Secret as that directory`);
      return;
    }
    const vol = secretVolume(`${what} ${dir}`, mount);
    if (!vol) return;
    // Secret volume `items` either leave api-key-previous out (it never arrives during a key
    // roll) or name it (then the mount fails whenever the Secret has no previous key).
    if (vol.secret.items) {
      fail('secret-mount', `${what} ${dir}: Secret volume ${mount.name} lists items (${vol.secret.items.map((i) => i.key)}): mount the whole Secret, so that ${PREVIOUS_KEY_FILE} comes and goes with it`);
    }
    if (vol.secret.optional === true) {
      fail('secret-mount', `${what} ${dir}: Secret volume ${mount.name} is optional: without the Secret the pod would start with an empty key directory`);
    }
  };
  // A key file (password, CA bundle): directly inside a Secret volume's directory.
  const secretFile = (flag, required) => {
    const file = flags[flag];
    if (file === undefined || file === '') {
      if (required) fail('secret-mount', `--${flag} is not set`);
      return;
    }
    const mount = (c.volumeMounts || []).find((m) => path.posix.dirname(file) === dirOf(m.mountPath));
    if (!mount) {
      fail('secret-mount', `--${flag}=${file} is not directly inside a mounted directory`);
      return;
    }
    const vol = secretVolume(`--${flag}=${file}`, mount);
    if (!vol) return;
    const key = path.posix.basename(file);
    const items = vol.secret.items;
    if (items && !items.some((i) => i.path === key)) fail('secret-mount', `Secret volume ${mount.name} has no item ${key}`);
  };
  const apiKeyDir = flags.api_key_dir || '';
  const merchantsConfig = flags.merchants_config || '';
  const merchantUrls = [];
  if (apiKeyDir && merchantsConfig) {
    fail('merchants', 'both --api_key_dir and --merchants_config: the gateway refuses to start (one merchant, or several)');
  } else if (!apiKeyDir && !merchantsConfig) {
    fail('secret-mount', 'neither --api_key_dir nor --merchants_config: the gateway has no Clink key');
  }
  if (apiKeyDir) keyDir('--api_key_dir', apiKeyDir);
  if (merchantsConfig) {
    // The file comes from a ConfigMap in these manifests (generated, so that a change rolls the
    // pods: the gateway reads it at start), and every merchant's key_dir is a key directory.
    const mount = (c.volumeMounts || []).find((m) => path.posix.dirname(merchantsConfig) === dirOf(m.mountPath));
    const vol = mount && volumes[mount.name];
    if (!mount) {
      fail('merchants', `--merchants_config=${merchantsConfig} is not directly inside a mounted directory`);
    } else if (!vol || !vol.configMap) {
      fail('merchants', `--merchants_config=${merchantsConfig}: volume ${mount.name} is not a ConfigMap`);
    } else {
      const cmName = vol.configMap.name;
      const cmObj = named(objs, 'ConfigMap', cmName);
      const base = path.posix.basename(merchantsConfig);
      const item = (vol.configMap.items || []).find((i) => i.path === base);
      const key = vol.configMap.items ? item && item.key : base;
      const text = cmObj && key !== undefined ? (cmObj.data || {})[key] : undefined;
      if (!cmObj) {
        fail('merchants', `--merchants_config: ConfigMap ${cmName} is not in the manifests (generate it with configMapGenerator)`);
      } else if (text === undefined) {
        fail('merchants', `--merchants_config=${merchantsConfig}: ConfigMap ${cmName} has no such file`);
      } else {
        facts.merchantsConfig = text;
        const config = parseMerchantsConfig(text);
        if (!config.key_dir.length) fail('merchants', `--merchants_config=${merchantsConfig} names no merchant key_dir`);
        if (config.key_dir.length !== config.name.length) {
          fail('merchants', `--merchants_config=${merchantsConfig}: ${config.name.length} merchant name(s) for ${config.key_dir.length} key_dir(s)`);
        }
        for (const dir of config.key_dir) {
          if (keyDirs.includes(dir)) fail('merchants', `key_dir ${dir} is shared by two merchants`);
          keyDir('merchant key_dir', dir);
        }
        for (const url of config.clink_base_url) {
          merchantUrls.push(url);
          if (!url.startsWith('https://')) fail('config', `merchant clink_base_url ${url} is not https`);
          if (expect.baseUrl && url !== expect.baseUrl) {
            fail('environment', `${name} has a merchant on ${url}, expected ${expect.baseUrl}`);
          }
        }
      }
    }
  }
  secretFile('idempotency_redis_password_file', false);
  secretFile('ca_bundle', false);
  for (const f of ['grpc_tls_cert_file', 'grpc_tls_key_file', 'grpc_client_ca_file']) secretFile(f, false);
  checkMtls(objs, c, flags, volumes, healthListen, fail);
  facts.keyDirs = keyDirs;
  Object.assign(ctx, { merchantUrls });
}

// No secret material in the repository.
function checkNoSecrets(ctx) {
  const { objs, fail } = ctx;
  for (const s of ofKind(objs, 'Secret')) {
    fail('no-secrets', `${describe(s)} is in the manifests: Secrets are created outside the repository`);
  }
  for (const o of ofKind(objs, 'ConfigMap')) {
    for (const [k, v] of Object.entries(o.data || {})) {
      if (/(PASSWORD|SECRET|TOKEN|API_?KEY)$/i.test(k) && v !== '') {
        fail('no-secrets', `${describe(o)} key ${k} holds a value: secrets go in Secrets, passed as files`);
      }
    }
  }
  for (const o of objs) {
    allStrings(o, (text, at) => {
      const decoded = [text];
      if (o.kind === 'Secret' && /^[A-Za-z0-9+/=\s]+$/.test(text)) decoded.push(Buffer.from(text, 'base64').toString('latin1'));
      for (const t of decoded) {
        if (SECRET_PATTERNS.some((re) => re.test(t))) fail('no-secrets', `${describe(o)} ${at} holds a secret-looking value`);
      }
    });
  }
}

// Services.
function checkServices(ctx) {
  const { objs, fail, podLabels, metricsPort, resolvePort, webhookPort } = ctx;
  const services = ofKind(objs, 'Service').filter((s) => s.spec && selectorMatches(s.spec.selector, podLabels) && s.spec.selector && Object.keys(s.spec.selector).length);
  const svc = services.find((s) => s.metadata.name === GATEWAY);
  if (!svc) fail('service', `no Service ${GATEWAY} selecting the gateway pods`);
  for (const s of services) {
    const type = s.spec.type || 'ClusterIP';
    if (type !== 'ClusterIP') fail('service', `${describe(s)} is ${type}: the unauthenticated gRPC port must stay inside the cluster`);
    for (const p of s.spec.ports || []) {
      const target = resolvePort(p.targetPort === undefined ? p.port : p.targetPort);
      if (p.name === 'grpc') {
        if (p.appProtocol !== 'grpc') fail('service', `${describe(s)} port grpc lacks appProtocol grpc`);
        if (target !== GRPC_PORT) fail('service', `${describe(s)} port grpc targets ${p.targetPort}`);
      } else if (p.name === 'http-metrics') {
        if (target !== metricsPort) fail('service', `${describe(s)} port http-metrics targets ${p.targetPort}`);
      } else if (p.name === WEBHOOK_PORT_NAME) {
        if (target !== webhookPort) fail('webhook', `${describe(s)} port ${p.name} targets ${p.targetPort}, not the webhook listener`);
      } else {
        fail('service', `${describe(s)} port ${p.name}: ports are named grpc and http-metrics (protocol detection)`);
      }
      // The webhook port only on the webhook Service, which has no other: the Service an Ingress
      // may point at can reach nothing but the listener.
      const webhookTarget = webhookPort !== undefined && target === webhookPort;
      if (webhookTarget !== (s.metadata.name === WEBHOOK_SERVICE)) {
        fail('webhook', `${describe(s)} port ${p.name} (-> ${p.targetPort}): only Service ${WEBHOOK_SERVICE} may have a port, and only to the webhook listener`);
      }
      if (target === undefined) fail('service', `${describe(s)} port ${p.name} targets no container port`);
    }
  }
  if (svc) {
    const names = (svc.spec.ports || []).map((p) => p.name);
    if (!names.includes('grpc') || !names.includes('http-metrics')) {
      fail('service', `Service ${GATEWAY} ports are ${names}, want grpc and http-metrics`);
    }
  }
  const webhookSvc = services.find((s) => s.metadata.name === WEBHOOK_SERVICE);
  if (webhookPort !== undefined && !(webhookSvc && (webhookSvc.spec.ports || []).some((p) => p.name === WEBHOOK_PORT_NAME))) {
    fail('webhook', `no Service ${WEBHOOK_SERVICE} with a port ${WEBHOOK_PORT_NAME} selecting the gateway pods: the Ingress has nothing to route to`);
  }
  Object.assign(ctx, { svc, webhookSvc });
}

// ServiceMonitor.
function checkServiceMonitor(ctx) {
  const { objs, fail, svc } = ctx;
  const monitors = ofKind(objs, 'ServiceMonitor');
  const sm = monitors.find((m) => svc && selectorMatches(m.spec && m.spec.selector, svc.metadata.labels));
  if (!sm) {
    fail('servicemonitor', `no ServiceMonitor selecting Service ${GATEWAY}`);
  } else {
    const eps = sm.spec.endpoints || [];
    const ok = eps.some((e) => e.port === 'http-metrics' && (e.path || '/metrics') === '/metrics');
    if (!ok) fail('servicemonitor', `${describe(sm)} does not scrape port http-metrics at /metrics`);
    // The gateway labels its upstream series `endpoint`; the operator's own `endpoint` target label
    // must be dropped or Prometheus renames the gateway's to `exported_endpoint`.
    const dropsEndpoint = eps.every((e) => (e.relabelings || []).some(
        (r) => r.action === 'labeldrop' && new RegExp(`^(?:${r.regex})$`).test('endpoint')));
    if (!dropsEndpoint) {
      fail('servicemonitor', `${describe(sm)} keeps the operator's endpoint label, which shadows the gateway's`);
    }
    if (sm.spec.namespaceSelector && !sm.spec.namespaceSelector.any && sm.metadata.namespace &&
        !(sm.spec.namespaceSelector.matchNames || []).includes(sm.metadata.namespace)) {
      fail('servicemonitor', `${describe(sm)} looks in other namespaces than its own`);
    }
  }
}

// NetworkPolicy.
function checkNetworkPolicy(ctx) {
  const { objs, fail, podLabels, metricsPort, healthPort, resolvePort, webhookPort } = ctx;
  const policies = ofKind(objs, 'NetworkPolicy').filter((p) => selectorMatches(p.spec && p.spec.podSelector, podLabels));
  // A policy's rules apply only for the types it lists (unset: Ingress, plus Egress when it has
  // egress rules). Egress rules of a policy typed [Ingress] allow nothing: with another policy
  // isolating egress (the Redis one), such a pod could reach neither DNS nor Clink.
  const typesOf = (p) => new Set(p.spec.policyTypes || (p.spec.egress ? ['Ingress', 'Egress'] : ['Ingress']));
  const types = new Set(policies.flatMap((p) => [...typesOf(p)]));
  if (!types.has('Ingress') || !types.has('Egress')) {
    fail('networkpolicy', `the gateway pods are not isolated for ${['Ingress', 'Egress'].filter((t) => !types.has(t))}`);
  }
  const egressPorts = new Set();
  // Whether the ingress controller can reach the webhook port at all (default deny otherwise).
  let webhookOpen = false;
  const peerIs = (peer, key, value) => {
    const ns = peer.namespaceSelector;
    return ns && !peer.ipBlock && ns.matchLabels && ns.matchLabels[key] === value;
  };
  for (const p of policies) {
    for (const rule of typesOf(p).has('Ingress') ? p.spec.ingress || [] : []) {
      const ports = rule.ports || [];
      const from = rule.from || [];
      // The health port alone may be open to every peer: the kubelet probes from the node.
      const healthOnly = ports.length && ports.every((port) => healthPort && resolvePort(port.port) === healthPort);
      if (!ports.length || (!from.length && !healthOnly)) {
        fail('networkpolicy', `${describe(p)}: an ingress rule without ports or without from allows everything`);
        continue;
      }
      for (const port of ports) {
        const n = resolvePort(port.port);
        const peers = healthOnly ? true : n === GRPC_PORT ? from.every((f) => peerIs(f, ...CLIENT_NAMESPACE_LABEL))
          : n === metricsPort ? from.every((f) => peerIs(f, 'kubernetes.io/metadata.name', MONITORING_NAMESPACE))
            : n !== undefined && n === webhookPort ? from.every((f) => peerIs(f, 'kubernetes.io/metadata.name', INGRESS_NAMESPACE))
              : false;
        if (!peers) {
          fail('networkpolicy', `${describe(p)}: ingress to port ${port.port} from ${JSON.stringify(from)}; gRPC only from namespaces labelled ${CLIENT_NAMESPACE_LABEL.join('=')}, metrics only from ${MONITORING_NAMESPACE}, webhooks only from ${INGRESS_NAMESPACE}`);
        }
        if (n !== undefined && n === webhookPort) webhookOpen = true;
      }
    }
    for (const rule of typesOf(p).has('Egress') ? p.spec.egress || [] : []) {
      const ports = rule.ports || [];
      if (!ports.length) {
        fail('networkpolicy', `${describe(p)}: an egress rule without ports allows every port`);
        continue;
      }
      for (const port of ports) {
        const key = `${port.port}/${port.protocol || 'TCP'}`;
        if (!ALLOWED_EGRESS.has(key) || port.endPort !== undefined) {
          fail('networkpolicy', `${describe(p)}: egress to ${key}${port.endPort ? `-${port.endPort}` : ''}; only DNS (53), HTTPS (443) and Redis (6379)`);
        }
        egressPorts.add(key);
        if (port.port === 6379) {
          const to = rule.to || [];
          if (!to.length || to.some((t) => t.ipBlock && /\/0$/.test(t.ipBlock.cidr))) {
            fail('networkpolicy', `${describe(p)}: Redis egress must name the Redis (selector or its address), not everything`);
          }
        }
      }
    }
  }
  for (const k of ['53/UDP', '53/TCP', '443/TCP']) {
    if (!egressPorts.has(k)) fail('networkpolicy', `no egress to ${k}`);
  }
  if (webhookPort !== undefined && !webhookOpen) {
    fail('networkpolicy', `no ingress rule admits ${INGRESS_NAMESPACE} to the webhook port ${webhookPort}: every delivery would time out at the Ingress`);
  }
  Object.assign(ctx, { egressPorts });
}

// Spread, rollout, image.
function checkSpreadRolloutImage(ctx) {
  const { fail, spec, pod, podLabels, c } = ctx;
  const spreads = (pod.topologySpreadConstraints || []).some(
    (t) => t.topologyKey === 'kubernetes.io/hostname' && t.whenUnsatisfiable === 'DoNotSchedule' &&
      t.maxSkew === 1 && selectorMatches(t.labelSelector, podLabels));
  const anti = ((((pod.affinity || {}).podAntiAffinity || {}).requiredDuringSchedulingIgnoredDuringExecution) || []).some(
    (t) => t.topologyKey === 'kubernetes.io/hostname' && selectorMatches(t.labelSelector, podLabels));
  if (!spreads && !anti) fail('spread', 'no hard spread of the replicas over nodes (kubernetes.io/hostname)');
  const strategy = spec.strategy || {};
  const ru = strategy.rollingUpdate || {};
  if (strategy.type === 'Recreate' || !(ru.maxUnavailable === 0 || ru.maxUnavailable === '0%')) {
    fail('rollout', `rolling update maxUnavailable is ${ru.maxUnavailable}, want 0`);
  }
  const image = c.image || '';
  const tagged = /@sha256:[0-9a-f]{64}$/.test(image) || /:[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(image.split('/').pop());
  if (!tagged || /:latest$/.test(image)) fail('image', `image ${image} has no fixed tag or digest`);
}

// Namespace.
function checkNamespace(ctx) {
  const { objs, fail, expect } = ctx;
  if (expect.namespace) {
    const namespaces = new Set(objs.map((o) => o.metadata && o.metadata.namespace));
    if (namespaces.size !== 1 || namespaces.has(undefined) || namespaces.has('')) {
      fail('namespace', `objects are in namespaces ${[...namespaces]}; an overlay sets one`);
    }
  }
}

// Production money needs a shared idempotency store.
function checkSharedStore(ctx) {
  const { name, fail, facts, baseUrl, flags, merchantUrls, egressPorts, webhookPort } = ctx;
  const redis = flags.idempotency_redis || '';
  facts.redis = redis;
  if ([baseUrl, ...merchantUrls].includes(PRODUCTION_URL) && redis === '') {
    fail('redis', 'production with the in-memory idempotency store: replicas do not share keys (double charges on retries)');
  }
  if (redis && !redis.startsWith('unix:')) {
    const port = portOf(redis);
    if (!egressPorts.has(`${port}/TCP`)) fail('redis', `no egress allowed to Redis port ${port}`);
  }
  // An idempotency key protects a payment only if every pod that can receive the retry sees it.
  // A per-pod store (memory, a local file, a Redis on a unix socket in the pod) does not: the
  // retry that lands on another replica is sent to Clink again. Any Deployment that can run two
  // pods at once therefore needs the shared Redis, sandbox or not (base/ itself is not deployed:
  // it has no namespace and no registry image; every overlay is checked).
  if (name !== 'base' && facts.maxPods > 1 && (redis === '' || redis.startsWith('unix:'))) {
    const store = redis === '' ? 'the default per-pod idempotency store' : `a per-pod Redis (${redis})`;
    fail('shared-store', `${name} can run ${facts.maxPods} pods with ${store}: a retry that lands on another pod is sent to Clink again (set IDEMPOTENCY_REDIS to the shared Redis, as overlays/prod does)`);
  }
  // Events follow the idempotency Redis unless --event_redis names another (contract: the default
  // is --idempotency_redis). A webhook the Ingress hands to one pod must reach a StreamEvents
  // call served by any other, so with several pods that store is shared too.
  const eventRedis = flags.event_redis || '';
  if (eventRedis && !eventRedis.startsWith('unix:') && !egressPorts.has(`${portOf(eventRedis)}/TCP`)) {
    fail('redis', `no egress allowed to the event Redis port ${portOf(eventRedis)}`);
  }
  if (name !== 'base' && webhookPort !== undefined && facts.maxPods > 1 && eventRedis.startsWith('unix:')) {
    fail('shared-store', `${name} can run ${facts.maxPods} pods with a per-pod event store (${eventRedis}): a delivery stored on one pod would never reach streams served by the others`);
  }
}

// The webhook secrets (webhook-secret, webhook-secret-previous) sit beside each merchant's API key:
// the listener reads them from the key directories, which must therefore be the whole Secret
// (checkSecretMounts checks the mounts themselves). A copy anywhere else would not follow a
// rotation, or would put the secret where the process environment shows it.
function checkWebhookSecrets(ctx) {
  const { fail, pod, containers, c, facts, webhookPort } = ctx;
  if (webhookPort === undefined) return;
  const volumes = {};
  for (const v of pod.volumes || []) volumes[v.name] = v;
  for (const x of [...containers, ...(pod.initContainers || [])]) {
    for (const e of x.env || []) {
      if (/WEBHOOK.*SECRET|WHSEC/i.test(e.name)) {
        fail('webhook-secret', `container ${x.name} env ${e.name}: the gateway reads webhook secrets only from the key directory (${WEBHOOK_SECRET_FILES.join(', ')})`);
      }
    }
    for (const m of x.volumeMounts || []) {
      const file = path.posix.basename(String(m.subPath || m.mountPath));
      if (WEBHOOK_SECRET_FILES.includes(file)) {
        fail('webhook-secret', `container ${x.name} mounts ${m.mountPath}${m.subPath ? ` (subPath ${m.subPath})` : ''} on its own: a copy outside the key directory misses every rotation`);
      }
    }
  }
  const dirOf = (p) => path.posix.normalize(String(p)).replace(/(.)\/+$/, '$1');
  for (const dir of facts.keyDirs || []) {
    const mount = (c.volumeMounts || []).find((m) => dirOf(m.mountPath) === dirOf(dir));
    const vol = mount && volumes[mount.name];
    if (!vol || !vol.secret) {
      fail('webhook-secret', `key directory ${dir} is not a Secret volume: no ${WEBHOOK_SECRET_FILES[0]} for the listener`);
    } else if (vol.secret.items && !WEBHOOK_SECRET_FILES.every((f) => vol.secret.items.some((i) => i.path === f))) {
      fail('webhook-secret', `key directory ${dir}: Secret volume ${mount.name} lists items without ${WEBHOOK_SECRET_FILES.join(' and ')}: the listener would never see them`);
    }
  }
}

// The Ingress: the only public way in, for Clink's webhook deliveries and nothing else.
function checkIngress(ctx) {
  const { objs, fail, facts, expect, webhookPort, webhookSvc } = ctx;
  const ingresses = ofKind(objs, 'Ingress');
  if (webhookPort !== undefined && ingresses.length !== 1) {
    fail('ingress', `expected one Ingress for the webhook path ${WEBHOOK_PATH}, found ${ingresses.length}`);
  }
  const webhookServicePort = ((webhookSvc && webhookSvc.spec.ports) || []).find((p) => p.name === WEBHOOK_PORT_NAME);
  const hosts = [];
  for (const ing of ingresses) {
    const id = describe(ing);
    const spec = ing.spec || {};
    const annotations = (ing.metadata && ing.metadata.annotations) || {};
    if (ing.apiVersion !== 'networking.k8s.io/v1') fail('ingress', `${id}: apiVersion ${ing.apiVersion}, want networking.k8s.io/v1`);
    if (!spec.ingressClassName) fail('ingress', `${id}: no ingressClassName (which controller serves it, and whose namespace the NetworkPolicy admits, would be a guess)`);
    if (spec.defaultBackend) fail('ingress', `${id}: a defaultBackend publishes every path`);
    // Annotations that let the controller serve more than the rules say (ingress-nginx snippets
    // add locations; use-regex turns the path into a pattern) or change the path the gateway sees.
    for (const key of Object.keys(annotations)) {
      if (/-snippet$|\/use-regex$|\/rewrite-target$|\/default-backend$|\/custom-http-errors$/.test(key)) {
        fail('ingress', `${id}: annotation ${key} routes or rewrites beyond the rules`);
      }
    }
    for (const rule of spec.rules || []) {
      if (!rule.host || rule.host.includes('*')) fail('ingress', `${id}: a rule without a fixed host (${rule.host || 'any'})`);
      else hosts.push(rule.host);
      const paths = (rule.http && rule.http.paths) || [];
      if (!paths.length) fail('ingress', `${id}: rule for ${rule.host} has no paths`);
      for (const p of paths) {
        const b = p.backend || {};
        const port = (b.service && b.service.port) || {};
        if (p.path !== WEBHOOK_PATH || p.pathType !== 'Prefix') {
          fail('ingress', `${id}: path ${p.path} (${p.pathType}); only ${WEBHOOK_PATH} (Prefix: /webhooks/clink and /webhooks/clink/{merchant}) is public`);
        }
        const toWebhook = b.service && b.service.name === WEBHOOK_SERVICE && webhookServicePort &&
          (port.name === WEBHOOK_PORT_NAME || port.number === webhookServicePort.port);
        if (!toWebhook) {
          fail('ingress', `${id}: path ${p.path} goes to ${JSON.stringify(b)}, not port ${WEBHOOK_PORT_NAME} of Service ${WEBHOOK_SERVICE}`);
        }
      }
    }
    // TLS for every host, from a certificate cert-manager issues and renews, by a public issuer.
    const issuer = annotations['cert-manager.io/cluster-issuer'] || annotations['cert-manager.io/issuer'];
    for (const host of hosts) {
      if (!(spec.tls || []).some((t) => (t.hosts || []).includes(host))) fail('ingress', `${id}: host ${host} has no TLS: webhook bodies would cross the internet in clear`);
    }
    for (const t of spec.tls || []) {
      if (!t.secretName) {
        fail('ingress', `${id}: a TLS entry without secretName (the controller's default certificate is not for ${t.hosts})`);
        continue;
      }
      const cert = ofKind(objs, 'Certificate').find((x) => x.spec && x.spec.secretName === t.secretName);
      const by = cert ? cert.spec.issuerRef && cert.spec.issuerRef.name : issuer;
      if (!by) fail('ingress', `${id}: TLS Secret ${t.secretName} comes from no cert-manager issuer (annotation cert-manager.io/cluster-issuer or a Certificate): nothing would renew it`);
      else if (by === INTERNAL_ISSUER) fail('ingress', `${id}: TLS Secret ${t.secretName} from ${INTERNAL_ISSUER}, the cluster-internal CA, which Clink does not trust`);
    }
  }
  if (expect.webhookHost) {
    for (const host of hosts) {
      if (PLACEHOLDER_HOST.test(host)) fail('ingress-host', `webhook host ${host} is the base's placeholder: set the environment's host (overlay ingress-patch.yaml)`);
    }
  }
  facts.webhookHosts = hosts;
}

// Each section of the policy, in order: a check reads the rendered objects and what earlier
// checks put in the context (e.g. checkConfig's flags), and may add to it.
const POLICY_CHECKS = [
  checkReplicas,
  checkDisruptionBudget,
  checkPodSecurity,
  checkResources,
  checkConfig,
  checkContainerPorts,
  checkProbes,
  checkShutdown,
  checkSecretMounts,
  checkNoSecrets,
  checkServices,
  checkServiceMonitor,
  checkNetworkPolicy,
  checkSpreadRolloutImage,
  checkNamespace,
  checkSharedStore,
  checkWebhookSecrets,
  checkIngress,
];

// The gRPC port authenticates and authorizes its callers (rule mtls).
function checkMtls(objs, c, flags, volumes, healthListen, fail) {
  if (flags.grpc_insecure !== undefined && !/^(false|0|no)$/i.test(flags.grpc_insecure)) {
    fail('mtls', '--grpc_insecure: the gRPC port would serve anyone without a client certificate');
  }
  const mountOf = (file) => (c.volumeMounts || []).find((m) => path.posix.dirname(String(file)) === path.posix.normalize(m.mountPath));
  const tlsSecrets = new Set();
  for (const flag of ['grpc_tls_cert_file', 'grpc_tls_key_file', 'grpc_client_ca_file']) {
    const vol = flags[flag] ? volumes[(mountOf(flags[flag]) || {}).name] : undefined;
    if (!flags[flag]) fail('mtls', `--${flag} is not set: the gRPC port must require client certificates`);
    else if (vol && vol.secret) tlsSecrets.add(vol.secret.secretName);
  }
  for (const secretName of tlsSecrets) {
    if (!ofKind(objs, 'Certificate').some((x) => x.apiVersion === 'cert-manager.io/v1' && x.spec && x.spec.secretName === secretName)) {
      fail('mtls', `Secret ${secretName} (--grpc_tls_*) is written by no cert-manager Certificate in the manifests: nothing would renew it`);
    }
  }
  const policyFile = flags.authz_policy_file;
  const mount = policyFile ? mountOf(policyFile) : undefined;
  const vol = mount && volumes[mount.name];
  const cmObj = vol && vol.configMap && named(objs, 'ConfigMap', vol.configMap.name);
  const text = cmObj && !vol.configMap.items ? (cmObj.data || {})[path.posix.basename(policyFile)] : undefined;
  let policy;
  try {
    policy = text === undefined ? undefined : JSON.parse(text);
  } catch (e) {
    fail('mtls', `--authz_policy_file=${policyFile}: not JSON (${e.message})`);
  }
  if (!policyFile) {
    fail('mtls', '--authz_policy_file is not set: every authenticated caller could call every RPC');
  } else if (text === undefined) {
    fail('mtls', `--authz_policy_file=${policyFile} is not a file of a whole ConfigMap in the manifests mounted as its directory`);
  } else if (policy !== undefined && !(policy && typeof policy.name === 'string' && Array.isArray(policy.allow_rules) && policy.allow_rules.length)) {
    fail('mtls', `--authz_policy_file=${policyFile}: a gRFC A43 policy has a name and allow_rules`);
  }
  if (!healthListen) fail('mtls', '--health_listen is not set: the kubelet has no client certificate for the gRPC port\'s probes');
}

function checkCrossEnv(facts, fail) {
  const uat = facts.uat;
  const prod = facts.prod;
  if (!uat || !prod) return;
  const sharedHosts = (uat.webhookHosts || []).filter((h) => (prod.webhookHosts || []).includes(h));
  if (sharedHosts.length) fail('ingress-host', `uat and prod share webhook host(s) ${sharedHosts}: sandbox and live events would meet`);
  if (!uat.requests || !prod.requests) return;
  if (!(prod.minReplicas > uat.minReplicas)) {
    fail('cross-env', `prod minReplicas ${prod.minReplicas} is not above uat's ${uat.minReplicas}`);
  }
  for (const r of ['cpu', 'memory']) {
    if (!(quantity(prod.requests[r]) > quantity(uat.requests[r]))) {
      fail('cross-env', `prod requests ${r} ${prod.requests[r]}, not above uat's ${uat.requests[r]}`);
    }
  }
}

// The same objects, whatever the kustomize: keyed by kind/namespace/name with generated names'
// hash suffixes removed (the two versions hash differently), empty metadata maps dropped.
function normalize(objs) {
  const out = {};
  const strip = (s) => (typeof s === 'string' ? s.replace(/-[a-z0-9]{10}$/, '-<hash>') : s);
  const clean = (v) => {
    if (Array.isArray(v)) return v.map(clean);
    if (v && typeof v === 'object') {
      const r = {};
      for (const k of Object.keys(v).sort()) {
        const x = clean(v[k]);
        if ((k === 'annotations' || k === 'labels') && x && typeof x === 'object' && !Object.keys(x).length) continue;
        r[k] = x;
      }
      return r;
    }
    return v;
  };
  // Generated ConfigMaps (clink-gateway-config, a merchants config): their names and every
  // reference to them (envFrom, volumes).
  const generated = new Set(ofKind(objs, 'ConfigMap').map((o) => o.metadata && o.metadata.name)
    .filter((n) => typeof n === 'string' && /-[a-z0-9]{10}$/.test(n)).map((n) => n.slice(0, -11)));
  const escape = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const references = generated.size
    ? new RegExp(`("name":")(${[...generated].map(escape).join('|')})-[a-z0-9]{10}"`, 'g') : null;
  for (const o of objs) {
    const copy = clean(o);
    if (o.kind === 'ConfigMap') copy.metadata.name = strip(copy.metadata.name);
    let text = JSON.stringify(copy);
    if (references) text = text.replace(references, '$1$2-<hash>"');
    out[`${o.kind}/${(o.metadata && o.metadata.namespace) || ''}/${copy.metadata.name}`] = text;
  }
  return out;
}

function checkLegacy(name, objs, legacyObjs, fail) {
  const a = normalize(objs);
  const b = normalize(legacyObjs);
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (!(k in a)) fail('legacy', `${name}: only the legacy kustomize renders ${k}`);
    else if (!(k in b)) fail('legacy', `${name}: the legacy kustomize does not render ${k}`);
    else if (a[k] !== b[k]) fail('legacy', `${name}: ${k} differs between the two kustomize versions`);
  }
}

// ---------------------------------------------------------------------------------------------
// Running everything.

function loadAll(file) {
  return yaml.loadAll(fs.readFileSync(file, 'utf8')).filter((o) => o !== null && o !== undefined);
}

function runAll(targets, opts) {
  const failures = [];
  const facts = {};
  for (const [name, objs] of Object.entries(targets)) {
    const fail = (rule, message) => {
      if (!RULES[rule]) throw new Error(`unknown rule ${rule}`);
      failures.push({ target: name, rule, message });
    };
    validateSchemas(objs, fail);
    if (opts.policy.includes(name)) facts[name] = checkPolicy(name, objs, opts, fail);
    if (opts.legacy && opts.legacy[name]) checkLegacy(name, objs, opts.legacy[name], fail);
  }
  checkCrossEnv(facts, (rule, message) => failures.push({ target: 'uat+prod', rule, message }));
  return { failures, facts };
}

// Each mutation breaks one thing; the rule named must notice it. Run on a copy of each target.
const MUTATIONS = [
  ['kind-known', 'prod', (o) => o.push({ apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'x' } })],
  ['schema', 'prod', (o) => { dep(o).spec.template.spec.containers[0].ports[0].containerPort = 'fifty'; }],
  ['strict-fields', 'prod', (o) => { const c = ctr(o); c.readinesProbe = c.readinessProbe; delete c.readinessProbe; }],
  ['strict-fields', 'uat', (o) => { dep(o).spec.template.spec.securityContext.runAsNonroot = true; }],
  ['deployment', 'prod', (o) => { o.splice(o.indexOf(dep(o)), 1); }],
  ['replicas', 'uat', (o) => { dep(o).spec.replicas = 1; }],
  ['replicas', 'prod', (o) => { dep(o).spec.replicas = 3; }],
  ['hpa', 'uat', (o) => { kind(o, 'HorizontalPodAutoscaler').spec.minReplicas = 1; }],
  ['hpa', 'prod', (o) => { kind(o, 'HorizontalPodAutoscaler').spec.scaleTargetRef.name = 'other'; }],
  ['pdb', 'prod', (o) => { kind(o, 'PodDisruptionBudget').spec.minAvailable = 3; }],
  ['pdb', 'uat', (o) => { kind(o, 'PodDisruptionBudget').spec.selector.matchLabels = { app: 'other' }; }],
  ['pod-security', 'prod', (o) => { delete dep(o).spec.template.spec.securityContext.runAsNonRoot; delete ctr(o).securityContext.runAsNonRoot; }],
  ['pod-security', 'uat', (o) => { dep(o).spec.template.spec.securityContext.runAsUser = 0; }],
  ['pod-security', 'prod', (o) => { delete dep(o).spec.template.spec.securityContext.seccompProfile; delete ctr(o).securityContext.seccompProfile; }],
  ['pod-security', 'uat', (o) => { delete dep(o).spec.template.spec.automountServiceAccountToken; }],
  ['container-security', 'prod', (o) => { ctr(o).securityContext.allowPrivilegeEscalation = true; }],
  ['container-security', 'uat', (o) => { ctr(o).securityContext.readOnlyRootFilesystem = false; }],
  ['container-security', 'prod', (o) => { ctr(o).securityContext.capabilities = { drop: ['NET_RAW'] }; }],
  ['resources', 'prod', (o) => { delete ctr(o).resources.limits; }],
  ['resources', 'uat', (o) => { ctr(o).resources.requests.memory = '2Gi'; }],
  ['probes', 'prod', (o) => { delete ctr(o).startupProbe; }],
  ['probes', 'uat', (o) => { ctr(o).readinessProbe = { tcpSocket: { port: 50051 } }; }],
  ['probes', 'prod', (o) => { ctr(o).livenessProbe.grpc.port = 9464; }],
  ['probes', 'uat', (o) => { ctr(o).readinessProbe.grpc.port = 50051; }],
  ['liveness-service', 'prod', (o) => { delete ctr(o).livenessProbe.grpc.service; }],
  ['liveness-service', 'uat', (o) => { delete ctr(o).startupProbe.grpc.service; }],
  ['liveness-service', 'prod', (o) => { ctr(o).readinessProbe.grpc.service = LIVENESS_SERVICE; }],
  ['liveness-window', 'prod', (o) => { ctr(o).livenessProbe.failureThreshold = 1; }],
  ['prestop', 'prod', (o) => { delete ctr(o).lifecycle; }],
  ['prestop', 'uat', (o) => { ctr(o).lifecycle.preStop.exec.command = ['sh', '-c', 'sleep 5']; }],
  ['grace-period', 'prod', (o) => { dep(o).spec.template.spec.terminationGracePeriodSeconds = 37; }],
  ['grace-period', 'uat', (o) => { cm(o).data.DRAIN_TIMEOUT = '60s'; }],
  ['drain', 'prod', (o) => { cm(o).data.DRAIN_TIMEOUT = '20s'; }],
  ['secret-mount', 'prod', (o) => { const m = ctr(o).volumeMounts.find((x) => x.name === 'api-key'); m.mountPath = '/var/run/secrets/clink/api-key'; m.subPath = 'api-key'; }],
  ['secret-mount', 'uat', (o) => { ctr(o).volumeMounts.find((x) => x.name === 'api-key').subPath = KEY_FILE; }],
  ['secret-mount', 'uat', (o) => { ctr(o).args = ctr(o).args.map((a) => a.replace(/^--api_key_dir=.*/, '--api_key_dir=/etc/clink')); }],
  ['secret-mount', 'prod', (o) => { ctr(o).args = ctr(o).args.filter((a) => !a.startsWith('--api_key_dir=')); }],
  ['secret-mount', 'prod', (o) => { const v = vol(o, 'api-key'); v.emptyDir = {}; delete v.secret; }],
  ['secret-mount', 'prod', (o) => { vol(o, 'api-key').secret.items = [{ key: KEY_FILE, path: KEY_FILE }]; }],
  ['secret-mount', 'uat', (o) => { vol(o, 'api-key').secret.optional = true; }],
  ['secret-mount', 'uat', (o) => { ctr(o).volumeMounts.find((x) => x.name === 'api-key').readOnly = false; }],
  ['secret-mount', 'prod', (o) => { const v = vol(o, 'redis-auth'); v.emptyDir = {}; delete v.secret; }],
  ['secret-mount', 'uat', (o) => { vol(o, 'api-key').secret.defaultMode = 0o644; }],
  ['secret-mount', 'prod', (o) => { vol(o, 'api-key').secret.defaultMode = 0o660; }],
  ['secret-mount', 'prod', (o) => { severalMerchants(o); ctr(o).volumeMounts = ctr(o).volumeMounts.filter((m) => m.name !== 'key-globex'); }],
  ['secret-mount', 'uat', (o) => { severalMerchants(o); vol(o, 'key-acme').secret.items = [{ key: KEY_FILE, path: KEY_FILE }, { key: PREVIOUS_KEY_FILE, path: PREVIOUS_KEY_FILE }]; }],
  ['merchants', 'prod', (o) => { severalMerchants(o); ctr(o).args.push('--api_key_dir=/var/run/secrets/clink/acme'); }],
  ['merchants', 'uat', (o) => { severalMerchants(o); const v = vol(o, 'merchants'); v.emptyDir = {}; delete v.configMap; }],
  ['merchants', 'prod', (o) => { severalMerchants(o); o.splice(o.indexOf(named(o, 'ConfigMap', vol(o, 'merchants').configMap.name)), 1); }],
  ['merchants', 'uat', (o) => { severalMerchants(o); editMerchants(o, (t) => t.replace('/var/run/secrets/clink/globex', '/var/run/secrets/clink/acme')); }],
  ['merchants', 'prod', (o) => { severalMerchants(o); ctr(o).args = ctr(o).args.map((a) => a.replace(/^--merchants_config=.*/, '--merchants_config=/etc/clink-gateway/merchants.textproto')); }],
  ['no-secrets', 'prod', (o) => o.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'clink-gateway-api-key' }, stringData: { 'api-key': 'REPLACE_ME' } })],
  ['no-secrets', 'uat', (o) => { cm(o).data.NOTE = 'sk_test_4eC39HqLyjWDarjtT1zdp7dc'; }],
  ['no-secrets', 'prod', (o) => { cm(o).data.REDIS_PASSWORD = 'hunter2'; }],
  ['no-secrets', 'prod', (o) => { ctr(o).env = [{ name: 'CLINK_API_KEY', valueFrom: { secretKeyRef: { name: 's', key: 'k' } } }]; }],
  ['no-secrets', 'uat', (o) => { ctr(o).env = [{ name: 'CLINK_API_KEY', value: '$(LOG_LEVEL)' }]; }],
  ['flags', 'prod', (o) => { ctr(o).args.push('--max_upstream_conections=8'); }],
  ['config', 'uat', (o) => { delete cm(o).data.LOG_LEVEL; }],
  ['config', 'prod', (o) => { ctr(o).args.push('--allow_plaintext_upstream=true'); }],
  ['config', 'prod', (o) => { ctr(o).args.push('--egress_allow_cidrs=10.0.0.0/8'); }],
  ['config', 'uat', (o) => { ctr(o).args.push('--egress_report_only'); }],
  ['config', 'uat', (o) => { ctr(o).envFrom[0].configMapRef.name = 'missing'; }],
  ['service', 'prod', (o) => { svcOf(o).spec.ports[0].name = 'api'; }],
  ['service', 'uat', (o) => { delete svcOf(o).spec.ports[0].appProtocol; }],
  ['service', 'prod', (o) => { svcOf(o).spec.type = 'LoadBalancer'; }],
  ['service', 'uat', (o) => { svcOf(o).spec.ports = svcOf(o).spec.ports.filter((p) => p.name !== 'http-metrics'); }],
  ['service', 'prod', (o) => { ctr(o).args.push('--metrics_listen=0.0.0.0:9100'); }],
  ['cross-env', 'prod', (o) => { ctr(o).resources.requests.memory = '256Mi'; }],
  ['networkpolicy', 'prod', (o) => { np(o).spec.ingress[0].from = [{ namespaceSelector: {} }]; }],
  ['networkpolicy', 'uat', (o) => { np(o).spec.ingress.find((r) => !r.from).ports.push({ port: 50051, protocol: 'TCP' }); }],
  ['strict-fields', 'uat', (o) => { kind(o, 'Certificate').spec.dnsName = ['clink-gateway']; }],
  ['schema', 'prod', (o) => { kind(o, 'Certificate').spec.privateKey.algorithm = 'DSA'; }],
  ['mtls', 'prod', (o) => { ctr(o).args = ctr(o).args.filter((a) => !a.startsWith('--grpc_client_ca_file=')); }],
  ['mtls', 'uat', (o) => { ctr(o).args.push('--grpc_insecure'); }],
  ['mtls', 'prod', (o) => { o.splice(o.indexOf(kind(o, 'Certificate')), 1); }],
  ['mtls', 'uat', (o) => { ctr(o).args = ctr(o).args.filter((a) => !a.startsWith('--authz_policy_file=')); }],
  ['mtls', 'prod', (o) => { const m = named(o, 'ConfigMap', vol(o, 'authz').configMap.name); m.data = { 'policy.json': '{"name":"x"}' }; }],
  ['mtls', 'uat', (o) => { ctr(o).args = ctr(o).args.filter((a) => !a.startsWith('--health_listen=')); }],
  ['networkpolicy', 'uat', (o) => { np(o).spec.egress.push({ ports: [{ port: 5432, protocol: 'TCP' }] }); }],
  ['networkpolicy', 'prod', (o) => { np(o).spec.egress.push({ to: [{ ipBlock: { cidr: '0.0.0.0/0' } }] }); }],
  ['networkpolicy', 'uat', (o) => { np(o).spec.policyTypes = ['Ingress']; }],
  // The Redis policy still isolates egress: the base policy's egress rules (DNS, 443) are void.
  ['networkpolicy', 'prod', (o) => { np(o).spec.policyTypes = ['Ingress']; }],
  ['networkpolicy', 'prod', (o) => { np(o).spec.ingress[1].from = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'default' } } }]; }],
  ['servicemonitor', 'prod', (o) => { kind(o, 'ServiceMonitor').spec.endpoints[0].port = 'metrics'; }],
  ['servicemonitor', 'uat', (o) => { kind(o, 'ServiceMonitor').spec.selector.matchLabels = { app: 'x' }; }],
  ['servicemonitor', 'uat', (o) => { delete kind(o, 'ServiceMonitor').spec.endpoints[0].relabelings; }],
  ['spread', 'prod', (o) => { delete dep(o).spec.template.spec.topologySpreadConstraints; }],
  ['rollout', 'prod', (o) => { dep(o).spec.strategy.rollingUpdate.maxUnavailable = 1; }],
  ['image', 'uat', (o) => { ctr(o).image = 'registry.example.com/payments/clink-gateway:latest'; }],
  ['namespace', 'prod', (o) => { delete kind(o, 'ServiceMonitor').metadata.namespace; }],
  ['environment', 'uat', (o) => { cm(o).data.CLINK_BASE_URL = PRODUCTION_URL; }],
  ['environment', 'uat', (o) => { severalMerchants(o); editMerchants(o, (t) => t.replace(SANDBOX_URL, PRODUCTION_URL)); }],
  ['config', 'prod', (o) => { severalMerchants(o); editMerchants(o, (t) => t.replace(PRODUCTION_URL, 'http://api.clinkbill.com/api')); }],
  ['redis', 'prod', (o) => { cm(o).data.IDEMPOTENCY_REDIS = ''; }],
  ['redis', 'prod', (o) => { o.splice(o.indexOf(named(o, 'NetworkPolicy', 'clink-gateway-redis')), 1); }],
  ['shared-store', 'uat', (o) => { cm(o).data.IDEMPOTENCY_REDIS = ''; }],
  ['shared-store', 'uat', (o) => { cm(o).data.IDEMPOTENCY_REDIS = 'unix:/var/run/redis/redis.sock'; }],
  ['shared-store', 'prod', (o) => { cm(o).data.IDEMPOTENCY_REDIS = ''; }],
  // More pods than the HPA's floor count too: a fixed replica count, or only maxReplicas > 1.
  ['shared-store', 'uat', (o) => { cm(o).data.IDEMPOTENCY_REDIS = ''; o.splice(o.indexOf(kind(o, 'HorizontalPodAutoscaler')), 1); dep(o).spec.replicas = 2; }],
  ['shared-store', 'uat', (o) => { cm(o).data.IDEMPOTENCY_REDIS = ''; Object.assign(kind(o, 'HorizontalPodAutoscaler').spec, { minReplicas: 1, maxReplicas: 2 }); }],
  ['cross-env', 'prod', (o) => { kind(o, 'HorizontalPodAutoscaler').spec.minReplicas = 2; kind(o, 'PodDisruptionBudget').spec.minAvailable = 1; }],
  // Webhooks: the listener, its Service, its secrets, the Ingress and its NetworkPolicy rule.
  ['webhook', 'prod', (o) => { ctr(o).args = ctr(o).args.filter((a) => !a.startsWith('--webhook_listen=')); }],
  ['webhook', 'uat', (o) => { setArg(o, '--webhook_listen', '127.0.0.1:8080'); }],
  ['webhook', 'prod', (o) => { setArg(o, '--webhook_listen', '0.0.0.0:8088'); }],
  ['webhook', 'uat', (o) => { ctr(o).ports = ctr(o).ports.filter((p) => p.name !== 'webhook'); }],
  ['webhook', 'prod', (o) => { o.splice(o.indexOf(webhookSvc(o)), 1); }],
  ['webhook', 'uat', (o) => { webhookSvc(o).spec.ports.push({ name: 'grpc', port: 50051, targetPort: 'grpc', protocol: 'TCP', appProtocol: 'grpc' }); }],
  ['webhook', 'prod', (o) => { svcOf(o).spec.ports.push({ name: 'webhook', port: 8080, targetPort: 'webhook', protocol: 'TCP' }); }],
  ['webhook-secret', 'prod', (o) => { vol(o, 'api-key').secret.items = [{ key: KEY_FILE, path: KEY_FILE }]; }],
  ['webhook-secret', 'uat', (o) => { ctr(o).env = [{ name: 'CLINK_WEBHOOK_SECRET', valueFrom: { secretKeyRef: { name: 'clink-gateway-api-key', key: 'webhook-secret' } } }]; }],
  ['webhook-secret', 'prod', (o) => {
    dep(o).spec.template.spec.volumes.push({ name: 'whsec', secret: { secretName: 'clink-gateway-webhook', defaultMode: 288 } });
    ctr(o).volumeMounts.push({ name: 'whsec', mountPath: '/etc/clink-gateway/webhook-secret', subPath: 'webhook-secret', readOnly: true });
  }],
  ['webhook-secret', 'uat', (o) => { severalMerchants(o); vol(o, 'key-globex').secret.items = [{ key: KEY_FILE, path: KEY_FILE }, { key: PREVIOUS_KEY_FILE, path: PREVIOUS_KEY_FILE }]; }],
  ['no-secrets', 'uat', (o) => { ing(o).metadata.annotations.note = 'whsec_5WbX5kEWLlfzsGNjH64I8lOOqUB6e8FH'; }],
  ['ingress', 'prod', (o) => { o.splice(o.indexOf(ing(o)), 1); }],
  ['ingress', 'uat', (o) => { ingPaths(o).push({ path: '/', pathType: 'Prefix', backend: { service: { name: GATEWAY, port: { name: 'grpc' } } } }); }],
  ['ingress', 'prod', (o) => { ingPaths(o)[0].path = '/'; }],
  ['ingress', 'uat', (o) => { ingPaths(o)[0].pathType = 'ImplementationSpecific'; }],
  ['ingress', 'prod', (o) => { ingPaths(o)[0].backend.service = { name: GATEWAY, port: { name: 'http-metrics' } }; }],
  ['ingress', 'uat', (o) => { ingPaths(o)[0].backend.service.port = { number: 50051 }; }],
  ['ingress', 'prod', (o) => { ing(o).spec.defaultBackend = { service: { name: GATEWAY, port: { number: 50051 } } }; }],
  ['ingress', 'uat', (o) => { ing(o).spec.rules.push({ host: 'metrics.example.com', http: { paths: [{ path: '/metrics', pathType: 'Prefix', backend: { service: { name: GATEWAY, port: { name: 'http-metrics' } } } }] } }); }],
  ['ingress', 'prod', (o) => { ing(o).metadata.annotations['nginx.ingress.kubernetes.io/server-snippet'] = 'location / { proxy_pass http://clink-gateway:9464; }'; }],
  ['ingress', 'uat', (o) => { delete ing(o).spec.tls; }],
  ['ingress', 'prod', (o) => { delete ing(o).metadata.annotations['cert-manager.io/cluster-issuer']; }],
  ['ingress', 'uat', (o) => { ing(o).metadata.annotations['cert-manager.io/cluster-issuer'] = 'clink-gateway-ca'; }],
  ['ingress', 'prod', (o) => { ing(o).spec.rules[0].host = '*.payments.example.com'; }],
  ['ingress-host', 'prod', (o) => { const h = 'clink-webhooks.invalid'; ing(o).spec.rules[0].host = h; ing(o).spec.tls[0].hosts = [h]; }],
  ['ingress-host', 'uat', (o) => { const h = 'clink-webhooks.payments.example.com'; ing(o).spec.rules[0].host = h; ing(o).spec.tls[0].hosts = [h]; }],
  ['networkpolicy', 'prod', (o) => { np(o).spec.ingress.find((r) => r.ports.some((p) => p.port === 8080)).from = [{ namespaceSelector: {} }]; }],
  ['networkpolicy', 'uat', (o) => { np(o).spec.ingress = np(o).spec.ingress.filter((r) => !r.ports.some((p) => p.port === 8080)); }],
  ['networkpolicy', 'prod', (o) => { np(o).spec.ingress.find((r) => !r.from).ports.push({ port: 8080, protocol: 'TCP' }); }],
  ['shared-store', 'uat', (o) => { ctr(o).args.push('--event_redis=unix:/var/run/redis/redis.sock'); }],
  ['redis', 'prod', (o) => { ctr(o).args.push('--event_redis=events-redis:6380'); }],
];
function setArg(o, flag, value) { ctr(o).args = ctr(o).args.map((a) => (a.startsWith(`${flag}=`) ? `${flag}=${value}` : a)); }
function webhookSvc(o) { return named(o, 'Service', WEBHOOK_SERVICE); }
function ing(o) { return kind(o, 'Ingress'); }
function ingPaths(o) { return ing(o).spec.rules[0].http.paths; }
function dep(o) { return named(o, 'Deployment', GATEWAY); }
function ctr(o) { return dep(o).spec.template.spec.containers.find((c) => c.name === GATEWAY); }
function kind(o, k) { return o.find((x) => x.kind === k); }
function cm(o) { return named(o, 'ConfigMap', ctr(o).envFrom[0].configMapRef.name); }
function svcOf(o) { return named(o, 'Service', GATEWAY); }
function np(o) { return named(o, 'NetworkPolicy', GATEWAY); }
function vol(o, name) { return dep(o).spec.template.spec.volumes.find((v) => v.name === name); }
function editMerchants(o, edit) {
  const data = named(o, 'ConfigMap', vol(o, 'merchants').configMap.name).data;
  data['merchants.txtpb'] = edit(data['merchants.txtpb']);
}

// A valid alternative to --api_key_dir: two merchants (acme, globex) named by --merchants_config
// in a ConfigMap, each with its own key Secret mounted as a directory. The self-test requires it
// to pass, and the merchants mutations break it.
function severalMerchants(o) {
  const d = dep(o);
  const pod = d.spec.template.spec;
  const c = ctr(o);
  const keys = vol(o, 'api-key');
  const config = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'clink-gateway-merchants-5g7h8k9m2t', labels: { ...d.metadata.labels } },
    data: {
      'merchants.txtpb': [
        '# Callers pick a merchant with x-clink-merchant metadata.',
        'default_merchant: "acme"',
        'merchants { name: "acme" key_dir: "/var/run/secrets/clink/acme" }',
        'merchants {',
        '  name: "globex"',
        '  key_dir: "/var/run/secrets/clink/globex"',
        `  clink_base_url: "${cm(o).data.CLINK_BASE_URL}"`,
        '}',
        '',
      ].join('\n'),
    },
  };
  if (d.metadata.namespace) config.metadata.namespace = d.metadata.namespace;
  o.push(config);
  c.args = c.args.filter((a) => !a.startsWith('--api_key_dir='));
  c.args.push('--merchants_config=/etc/clink-gateway/merchants.txtpb');
  pod.volumes = pod.volumes.filter((v) => v !== keys);
  c.volumeMounts = c.volumeMounts.filter((m) => m.name !== 'api-key');
  for (const m of ['acme', 'globex']) {
    pod.volumes.push({ name: `key-${m}`, secret: { ...keys.secret, secretName: `clink-gateway-api-key-${m}` } });
    c.volumeMounts.push({ name: `key-${m}`, mountPath: `/var/run/secrets/clink/${m}`, readOnly: true });
  }
  pod.volumes.push({ name: 'merchants', configMap: { name: config.metadata.name } });
  c.volumeMounts.push({ name: 'merchants', mountPath: '/etc/clink-gateway', readOnly: true });
}
// Valid alternatives of the manifests: each must pass every rule.
const VARIANTS = [
  ['several merchants', 'prod', severalMerchants],
  ['several merchants', 'uat', severalMerchants],
];

function selfTest(targets, opts) {
  let bad = 0;
  const covered = new Set();
  for (const [what, target, change] of VARIANTS) {
    if (!targets[target]) continue;
    const copy = JSON.parse(JSON.stringify(targets));
    change(copy[target]);
    const { failures } = runAll(copy, { ...opts, legacy: null });
    if (failures.length) {
      bad++;
      for (const f of failures) console.log(`SELF-TEST FAIL  variant ${what} on ${target} must pass: [${f.target}] ${f.rule}: ${f.message}`);
    } else {
      console.log(`self-test ok    variant ${what} on ${target} passes every rule`);
    }
  }
  for (const [rule, target, mutate] of MUTATIONS) {
    if (!targets[target]) continue;
    const copy = JSON.parse(JSON.stringify(targets));
    mutate(copy[target]);
    const { failures } = runAll(copy, { ...opts, legacy: null });
    const hit = failures.filter((f) => f.rule === rule);
    covered.add(rule);
    if (hit.length === 0) {
      bad++;
      console.log(`SELF-TEST FAIL  ${rule} on ${target}: breaking it went unnoticed (${mutate.toString().slice(0, 120)})`);
    } else {
      console.log(`self-test ok    ${rule.padEnd(18)} ${target.padEnd(5)} ${hit[0].message.slice(0, 110)}`);
    }
  }
  // The legacy comparison: a different object must be noticed.
  if (opts.legacy && Object.keys(opts.legacy).length) {
    const name = Object.keys(opts.legacy)[0];
    const legacy = JSON.parse(JSON.stringify(opts.legacy[name]));
    const d = named(legacy, 'Deployment', GATEWAY);
    if (d) d.spec.revisionHistoryLimit += 1;
    const failures = [];
    checkLegacy(name, targets[name], legacy, (rule, message) => failures.push({ rule, message }));
    if (!failures.some((f) => f.rule === 'legacy')) {
      bad++;
      console.log('SELF-TEST FAIL  legacy: a differing legacy render went unnoticed');
    } else {
      console.log(`self-test ok    legacy             ${name.padEnd(5)} ${failures[0].message}`);
    }
    covered.add('legacy');
  }
  for (const rule of Object.keys(RULES)) {
    if (!covered.has(rule)) {
      bad++;
      console.log(`SELF-TEST FAIL  rule ${rule} has no mutation exercising it`);
    }
  }
  return bad;
}

// `clink_gateway --helpfull`: "    --name (help...); default: VALUE;" entries, help over several
// lines. Returns {name: default value (unquoted)}.
function parseHelpfull(text) {
  const flags = {};
  const entries = text.split(/^(?=    --[A-Za-z0-9_]+ \()/m);
  for (const e of entries) {
    const m = /^    --([A-Za-z0-9_]+) \(/.exec(e);
    if (!m) continue;
    const d = /default: ([\s\S]*?);\s*$/.exec(e.replace(/\n\n[\s\S]*$/, ''));
    let value = d ? d[1].trim() : undefined;
    if (value && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    flags[m[1]] = value;
  }
  return flags;
}

function main(argv) {
  const opts = { policy: [], legacy: {}, flags: null };
  const targets = {};
  let selfTestRequested = false;
  let printArgs = null;
  let printMerchantsConfig = null;
  let printListen = null;
  for (const a of argv) {
    let m;
    if ((m = /^--flags=(.+)$/.exec(a))) {
      const parsed = parseHelpfull(fs.readFileSync(m[1], 'utf8'));
      opts.flags = new Set(Object.keys(parsed));
      opts.defaults = parsed;
      if (opts.flags.size < 5) throw new Error(`${m[1]} does not look like --helpfull output`);
    } else if ((m = /^--policy=(.+)$/.exec(a))) {
      opts.policy.push(m[1]);
    } else if ((m = /^--legacy=([^=]+)=(.+)$/.exec(a))) {
      opts.legacy[m[1]] = loadAll(m[2]);
    } else if (a === '--self-test') {
      selfTestRequested = true;
    } else if ((m = /^--print-args=(.+)$/.exec(a))) {
      printArgs = m[1];
    } else if ((m = /^--print-listen=(.+)$/.exec(a))) {
      printListen = m[1];
    } else if ((m = /^--print-merchants-config=(.+)$/.exec(a))) {
      printMerchantsConfig = m[1];
    } else if ((m = /^([^-][^=]*)=(.+)$/.exec(a))) {
      targets[m[1]] = loadAll(m[2]);
    } else {
      throw new Error(`bad argument ${a}`);
    }
  }
  if (!opts.policy.length) opts.policy = ['base', 'uat', 'prod'].filter((t) => targets[t]);

  if (printArgs) {
    const { facts } = runAll({ [printArgs]: targets[printArgs] }, { ...opts, policy: [printArgs], legacy: null });
    for (const arg of (facts[printArgs] || {}).args || []) console.log(arg);
    return 0;
  }
  if (printListen) {
    // `--grpc_listen=HOST:PORT` and `--metrics_listen=HOST:PORT`, the binary's defaults filled in.
    const { facts } = runAll({ [printListen]: targets[printListen] }, { ...opts, policy: [printListen], legacy: null });
    for (const [flag, value] of Object.entries((facts[printListen] || {}).listen || {})) console.log(`--${flag}=${value}`);
    return 0;
  }
  if (printMerchantsConfig) {
    const name = printMerchantsConfig;
    const { facts } = runAll({ [name]: targets[name] }, { ...opts, policy: [name], legacy: null });
    process.stdout.write((facts[name] || {}).merchantsConfig || '');
    return 0;
  }

  const { failures } = runAll(targets, opts);
  for (const [name, objs] of Object.entries(targets)) {
    const kinds = {};
    for (const o of objs) kinds[o.kind] = (kinds[o.kind] || 0) + 1;
    const mine = failures.filter((f) => f.target === name).length;
    console.log(`${name}: ${objs.length} objects (${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')}), ` +
      `schemas${opts.policy.includes(name) ? ' + policy' : ''}${opts.legacy[name] ? ' + legacy render' : ''}: ${mine ? `${mine} problem(s)` : 'ok'}`);
  }
  for (const f of failures) console.log(`FAIL [${f.target}] ${f.rule}: ${f.message}`);
  let bad = failures.length;
  if (selfTestRequested) {
    if (failures.length) {
      console.log('self-test skipped: the manifests themselves fail');
    } else {
      bad += selfTest(targets, opts);
    }
  }
  return bad ? 1 : 0;
}

if (require.main === module) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error(`validate.js: ${e.stack || e}`);
    process.exitCode = 2;
  }
}

module.exports = { RULES, durationSeconds, quantity, selectorMatches, expand, parseMerchantsConfig };
