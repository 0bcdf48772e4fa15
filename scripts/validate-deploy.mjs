#!/usr/bin/env node
// Validates the Kubernetes manifests offline, strictly, against the Kubernetes API's own schemas.
//
//   node scripts/validate-deploy.mjs [dir]        (default deploy/kubernetes; scripts/validate-deploy.sh wraps it)
//
// 1. Renders the kustomization: `kubectl kustomize`, else `kustomize build`, else (neither installed) a
//    built-in reading of kustomization.yaml limited to what ours uses (resources, namespace, images).
// 2. Validates every object against the JSON schema of its apiVersion and kind, taken from the Kubernetes
//    OpenAPI definitions that the npm package kubernetes-models@4.1.0 ships (Kubernetes 1.25.2), made strict
//    the way kubeconform's "-strict" schemas are: an object with declared properties accepts no others, so a
//    misspelt or misplaced field is an error. Unknown apiVersion/kind is an error too.
// 3. Checks what a schema cannot see: names a manifest refers to (ConfigMaps, Secrets in secret.example.yaml,
//    Service and PodDisruptionBudget selectors, the Ingress backend) exist, and every container of a
//    Deployment or Job meets the restricted pod security profile and has resources and probes.
// secret.example.yaml is not applied by the kustomization; it is validated on its own.
// Exit code 1 on any problem, each printed as `<file or kind/name>: <path>: <message>`.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { parseAllDocuments } from 'yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const dir = resolve(process.argv[2] ?? join(root, 'deploy/kubernetes'));
const problems = [];
const problem = (where, msg) => problems.push(`${where}: ${msg}`);
const out = (s) => process.stdout.write(`${s}\n`);

// ---- the schemas -------------------------------------------------------------------------------------------
const modelsDir = realpathSync(join(root, 'node_modules/kubernetes-models'));
const requireFromModels = createRequire(join(modelsDir, 'package.json'));
const machineryDir = dirname(requireFromModels.resolve('@kubernetes-models/apimachinery/_schemas/IoK8sApimachineryPkgApisMetaV1ObjectMeta'));
const schemas = new Map();
// Each schema module registers itself with @kubernetes-models/validate; we collect them instead.
for (const from of [requireFromModels, createRequire(join(machineryDir, 'x.js'))]) {
  from('@kubernetes-models/validate').register = (id, schema) => schemas.set(id, schema);
}
for (const d of [join(modelsDir, '_schemas'), machineryDir]) {
  for (const f of readdirSync(d)) if (f.endsWith('.js')) requireFromModels(join(d, f)).addSchema();
}
const k8sVersion = /kubernetes-(\d+\.\d+\.\d+)/.exec(readFileSync(join(modelsDir, 'README.md'), 'utf8'))?.[1] ?? '?';

/** kubeconform's strict flavour: an object schema that names its properties allows no others. */
function strict(node) {
  if (Array.isArray(node)) return node.map(strict);
  if (!node || typeof node !== 'object') return node;
  const copy = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, k === 'enum' ? v : strict(v)]));
  if (copy.properties && copy.additionalProperties === undefined) copy.additionalProperties = false;
  return copy;
}

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const int = (bits) => ({ type: 'number', validate: (n) => Number.isInteger(n) && Math.abs(n) <= 2 ** (bits - 1) });
ajv.addFormat('int32', int(32));
ajv.addFormat('int64', int(64));
ajv.addFormat('double', { type: 'number', validate: () => true });
ajv.addFormat('byte', /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/);
ajv.addFormat('quantity', /^[+-]?(?:\d+|\d+\.\d*|\.\d+)(?:[KMGTPE]i|[YZEPTGMkhdcmunpfazy]|da|[eE][+-]?\d+)?$/);
const topLevel = new Map();
for (const [id, schema] of schemas) {
  ajv.addSchema(strict(schema), id);
  const [apiVersion] = schema.properties?.apiVersion?.enum ?? [];
  const [kind] = schema.properties?.kind?.enum ?? [];
  if (apiVersion && kind && !kind.endsWith('List')) topLevel.set(`${apiVersion}/${kind}`, id);
}

// ---- rendering ---------------------------------------------------------------------------------------------
function have(cmd, args) {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const NOT_NAMESPACED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'PersistentVolume', 'StorageClass', 'IngressClass', 'PriorityClass']);

/** What our kustomization uses, for machines without kubectl or kustomize: resources (files), namespace, images. */
function renderBuiltIn(kdir) {
  const k = parseYaml(readFileSync(join(kdir, 'kustomization.yaml'), 'utf8'), 'kustomization.yaml')[0] ?? {};
  const known = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'images']);
  for (const key of Object.keys(k)) if (!known.has(key)) problem('kustomization.yaml', `${key}: not understood by the built-in renderer (install kubectl)`);
  const docs = [];
  for (const r of k.resources ?? []) {
    const file = join(kdir, r);
    if (!existsSync(file)) {
      problem('kustomization.yaml', `resources: ${r} does not exist`);
      continue;
    }
    for (const doc of parseYaml(readFileSync(file, 'utf8'), r)) {
      if (!doc) continue;
      if (k.namespace && !NOT_NAMESPACED.has(doc.kind)) doc.metadata = { ...doc.metadata, namespace: k.namespace };
      for (const c of containersOf(doc)) {
        const [name, tag] = splitImage(c.image);
        const img = (k.images ?? []).find((i) => i.name === name);
        if (img) c.image = `${img.newName ?? name}:${img.newTag ?? tag}`;
      }
      docs.push(doc);
    }
  }
  return docs;
}

function splitImage(image) {
  const at = image.lastIndexOf(':');
  return at > image.lastIndexOf('/') ? [image.slice(0, at), image.slice(at + 1)] : [image, 'latest'];
}

function parseYaml(text, where) {
  const docs = [];
  for (const d of parseAllDocuments(text, { uniqueKeys: true, strict: true })) {
    for (const e of [...d.errors, ...d.warnings]) problem(where, `YAML: ${e.message.split('\n')[0]}`);
    docs.push(d.toJS());
  }
  return docs;
}

function render(kdir) {
  for (const [cmd, args, label] of [
    ['kubectl', ['kustomize', kdir], 'kubectl kustomize'],
    ['kustomize', ['build', kdir], 'kustomize build'],
  ]) {
    if (!have(cmd, ['version', '--client'].slice(0, cmd === 'kubectl' ? 2 : 1))) continue;
    try {
      const yaml = execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      out(`rendered with ${label}`);
      return parseYaml(yaml, label).filter(Boolean);
    } catch (e) {
      problem(label, String(e.stderr || e.message).trim());
      return [];
    }
  }
  out('rendered with the built-in reader (no kubectl or kustomize on this machine)');
  return renderBuiltIn(kdir);
}

// ---- checks ------------------------------------------------------------------------------------------------
function podSpecOf(doc) {
  if (doc.kind === 'Pod') return doc.spec;
  return doc.spec?.template?.spec ?? doc.spec?.jobTemplate?.spec?.template?.spec;
}
function containersOf(doc) {
  const spec = podSpecOf(doc);
  return [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
}
const nameOf = (doc) => `${doc?.kind ?? '?'}/${doc?.metadata?.name ?? '?'}`;

function validateSchema(doc, where) {
  if (!doc || typeof doc !== 'object') return problem(where, 'not an object');
  const id = topLevel.get(`${doc.apiVersion}/${doc.kind}`);
  if (!id) return problem(where, `apiVersion ${doc.apiVersion} kind ${doc.kind}: no such type in Kubernetes ${k8sVersion}`);
  const validate = ajv.getSchema(id);
  if (validate(doc)) return;
  // A field typed "X or null" fails both branches of its oneOf; report only the branch that matters.
  const errors = validate.errors.filter((e) => !(e.keyword === 'type' && e.params.type === 'null') && e.keyword !== 'oneOf');
  const seen = new Set();
  for (const e of errors.length ? errors : validate.errors) {
    const msg = `${e.instancePath || '/'}: ${e.keyword === 'additionalProperties' ? `unknown field "${e.params.additionalProperty}"` : e.message}`;
    if (seen.has(msg)) continue;
    seen.add(msg);
    problem(where, msg);
  }
}

function matches(selector, labels) {
  return Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);
}

function crossChecks(docs, secrets) {
  const byKind = (kind) => docs.filter((d) => d?.kind === kind);
  const configMaps = new Set(byKind('ConfigMap').map((d) => d.metadata.name));
  const secretKeys = new Map(secrets.map((s) => [s.metadata?.name, new Set(Object.keys({ ...s.data, ...s.stringData }))]));
  const workloads = docs.filter((d) => podSpecOf(d) && d.kind !== 'Pod');
  const podLabels = workloads.map((d) => d.spec.template?.metadata?.labels ?? {});
  for (const w of workloads) {
    const where = nameOf(w);
    const pod = podSpecOf(w);
    const podSc = pod.securityContext ?? {};
    if (w.kind === 'Deployment' && !matches(w.spec.selector?.matchLabels, w.spec.template?.metadata?.labels)) problem(where, 'selector does not match the pod labels');
    for (const c of containersOf(w)) {
      const at = `${where} container ${c.name}`;
      const sc = c.securityContext ?? {};
      if (!(sc.runAsNonRoot ?? podSc.runAsNonRoot)) problem(at, 'runAsNonRoot is not true');
      if (!Number.isInteger(sc.runAsUser ?? podSc.runAsUser)) problem(at, 'no numeric runAsUser (the images run as the user "node", which runAsNonRoot cannot check by name)');
      if (sc.allowPrivilegeEscalation !== false) problem(at, 'allowPrivilegeEscalation is not false');
      if (!(sc.capabilities?.drop ?? []).includes('ALL')) problem(at, 'capabilities do not drop ALL');
      if ((sc.seccompProfile ?? podSc.seccompProfile)?.type !== 'RuntimeDefault') problem(at, 'seccompProfile is not RuntimeDefault');
      if (sc.readOnlyRootFilesystem !== true) problem(at, 'readOnlyRootFilesystem is not true');
      for (const r of ['requests', 'limits']) for (const x of ['cpu', 'memory']) if (!c.resources?.[r]?.[x]) problem(at, `resources.${r}.${x} missing`);
      if (w.kind === 'Deployment') for (const p of ['livenessProbe', 'readinessProbe']) if (!c[p]) problem(at, `${p} missing`);
      for (const e of c.envFrom ?? []) {
        if (e.configMapRef && !configMaps.has(e.configMapRef.name) && !e.configMapRef.optional) problem(at, `ConfigMap ${e.configMapRef.name} is not in the manifests`);
        if (e.secretRef && !secretKeys.has(e.secretRef.name) && !e.secretRef.optional) problem(at, `Secret ${e.secretRef.name} is not in secret.example.yaml`);
      }
    }
  }
  for (const s of byKind('Service')) {
    if (s.spec?.selector && !podLabels.some((l) => matches(s.spec.selector, l))) problem(nameOf(s), 'selector matches no pod of the manifests');
  }
  for (const p of byKind('PodDisruptionBudget')) {
    if (!podLabels.some((l) => matches(p.spec?.selector?.matchLabels, l))) problem(nameOf(p), 'selector matches no pod of the manifests');
  }
  const services = new Map(byKind('Service').map((s) => [s.metadata.name, s]));
  for (const i of byKind('Ingress')) {
    for (const rule of i.spec?.rules ?? []) {
      for (const path of rule.http?.paths ?? []) {
        const b = path.backend?.service;
        const svc = b && services.get(b.name);
        if (!svc) problem(nameOf(i), `backend Service ${b?.name} is not in the manifests`);
        else if (!svc.spec.ports.some((p) => p.name === b.port?.name || p.port === b.port?.number)) problem(nameOf(i), `Service ${b.name} has no port ${b.port?.name ?? b.port?.number}`);
      }
    }
  }
}

// ---- run ---------------------------------------------------------------------------------------------------
out(`validating ${dir} against Kubernetes ${k8sVersion} schemas (kubernetes-models, strict: unknown fields are errors)`);
const docs = render(dir);
for (const doc of docs) validateSchema(doc, nameOf(doc));
let secrets = [];
const example = join(dir, 'secret.example.yaml');
if (existsSync(example)) {
  secrets = parseYaml(readFileSync(example, 'utf8'), 'secret.example.yaml').filter(Boolean);
  for (const s of secrets) validateSchema(s, `secret.example.yaml ${nameOf(s)}`);
} else problem(dir, 'secret.example.yaml missing');
crossChecks(docs, secrets);

const kinds = {};
for (const d of docs) kinds[d.kind] = (kinds[d.kind] ?? 0) + 1;
out(`${docs.length} objects (${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(', ')}) and ${secrets.length} example Secrets`);
if (problems.length) {
  for (const p of problems) out(`  INVALID ${p}`);
  out(`${problems.length} problem(s): the manifests are not valid`);
  process.exit(1);
}
out('all valid');
