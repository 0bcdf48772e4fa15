/**
 * The bad-input sweep (issue #10): every write route of a service, taken from the service's own OpenAPI
 * document, is sent inputs generated from one valid request per route: broken JSON, wrong media types, a body
 * over the limit, deep nesting, and for each element of the valid body in turn: null, wrong types, an array
 * where an object is expected, an unknown element, a huge string, an invalid code, date or NHS number.
 * Each answer must be a 4xx with an OperationOutcome (OAuth's error object at the token endpoint), never a
 * 5xx, and the service's schema must hold exactly what it held before (every table, the outbox included).
 */
import { sql, type Kysely } from '@cmc/db';
import { nhsCheckDigit } from '@cmc/fhir';

/** What the sweep needs of a Fastify app (its in-process inject), without depending on Fastify's types here. */
export interface InjectResponse {
  statusCode: number;
  body: string;
  headers: Record<string, string | string[] | number | undefined>;
  json<T = unknown>(): T;
}
export interface App {
  inject(opts: { method: 'GET' | WriteMethod; url: string; headers?: Record<string, string>; payload?: string | Buffer }): Promise<InjectResponse>;
}

export type WriteMethod = 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const WRITE_METHODS = new Set(['post', 'put', 'patch', 'delete']);

/** The valid request of a route, made ready by its spec (a plan in the right state, a token of the right role...). */
export interface Prepared {
  url: string;
  headers?: Record<string, string>;
  /** The valid body: any JSON value, or for a form route the parameters. Absent for a route without a body. */
  body?: unknown;
  /** The status the valid request gets, sent after the sweep (proof that the sweep reached a working route). */
  expect: number;
  /** A new valid request for that last call, when the sweep's one cannot be used twice (a signed assertion). */
  again?: () => Promise<Prepared>;
}

export interface RouteSpec {
  /** json: a JSON body walked element by element; form: application/x-www-form-urlencoded; none: no body. */
  body: 'json' | 'form' | 'none';
  /** The error format of the route: FHIR OperationOutcome, or OAuth's (RFC 6749 §5.2) at the token endpoint. */
  errors?: 'fhir' | 'oauth';
  /**
   * Paths (as in the mutation names, e.g. `jwks.keys[0]`) of objects whose standard lets them carry members
   * nobody knows (a JWK, RFC 7517 §4): no unknown-element mutation there, since it is not bad input.
   */
  open?: string[];
  prepare: () => Promise<Prepared>;
}

/** `POST /fhir/R4/CarePlan/{id}/$publish`-style keys of a service's write routes, from its /openapi.json. */
export async function writeRoutesOf(app: App): Promise<string[]> {
  return writeRoutesOfDocument(await openApiOf(app));
}

export async function openApiOf(app: App): Promise<OpenApi> {
  const res = await app.inject({ method: 'GET', url: '/openapi.json' });
  if (res.statusCode !== 200) throw new Error(`/openapi.json answered ${res.statusCode}`);
  return res.json<OpenApi>();
}

export function writeRoutesOfDocument(doc: OpenApi): string[] {
  const keys: string[] = [];
  for (const [path, ops] of Object.entries(doc.paths ?? {})) for (const method of Object.keys(ops)) if (WRITE_METHODS.has(method)) keys.push(`${method.toUpperCase()} ${path}`);
  return keys.sort();
}

export type Category =
  | 'empty body'
  | 'truncated JSON'
  | 'wrong content type'
  | 'body over the limit'
  | 'deep nesting'
  | 'not an object'
  | 'NUL character'
  | 'prototype key'
  | 'null'
  | 'wrong type'
  | 'array for object'
  | 'unknown element'
  | 'huge string'
  | 'invalid code'
  | 'invalid date'
  | 'invalid NHS number'
  | 'duplicate parameter';

export interface Mutation {
  category: Category;
  /** What was changed, e.g. `contained[0].identifier[0].value -> 9434765910`. */
  name: string;
  /** The element the mutation names, when it names one (its answer should then carry an `expression`). */
  path?: string;
  payload: string | Buffer;
  contentType?: string;
}

const HUGE_JSON_STRING = 100_000;
/** The token endpoint's body limit is 64 KiB: its huge strings stay under it, so that maxLength is what answers. */
const HUGE_FORM_STRING = 20_000;
const UNKNOWN = 'cmcUnknownElement';
const DEEP_MARK = 'cmc-deep-nesting-goes-here';
const NOT_A_CODE = 'no-such-code-zz9';
/** Keys whose string values are codes, systems, URLs of extensions, enumerations or scopes: each gets an invalid one. */
const CODE_KEYS = new Set([
  'resourceType', 'code', 'system', 'status', 'intent', 'gender', 'criticality', 'severity', 'use', 'type', 'url', 'role', 'body', 'place', 'payload',
  'kty', 'crv', 'alg', 'dsptStatus', 'scopes', 'scope', 'grant_type', 'client_assertion_type', 'version', 'organisation', 'odsCode', 'criteria', 'endpoint',
]);
const DATE = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2}))?$/;

function isNhsNumber(s: string): boolean {
  return /^\d{10}$/.test(s) && nhsCheckDigit(s.slice(0, 9)) === Number(s[9]);
}

/** Invalid NHS numbers made from a valid one: wrong check digit, too short, too long, letters. */
function badNhsNumbers(valid: string): string[] {
  return [`${valid.slice(0, 9)}${(Number(valid[9]) + 1) % 10}`, valid.slice(0, 9), `${valid}0`, `${valid.slice(0, 5)}ABCDE`];
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Step = string | number;

const pathText = (steps: Step[]): string => steps.map((s, i) => (typeof s === 'number' ? `[${s}]` : i === 0 ? s : `.${s}`)).join('') || '(body)';

function setAt(root: Json, steps: Step[], value: Json | undefined): Json {
  if (steps.length === 0) return value ?? null;
  const copy = structuredClone(root) as Record<string | number, Json>;
  let node = copy;
  for (const s of steps.slice(0, -1)) node = node[s] as Record<string | number, Json>;
  const last = steps[steps.length - 1]!;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return copy;
}

function* walk(node: Json, steps: Step[] = []): Generator<{ steps: Step[]; value: Json; key: string | undefined }> {
  const key = [...steps].reverse().find((s): s is string => typeof s === 'string');
  yield { steps, value: node, key };
  if (Array.isArray(node)) for (let i = 0; i < node.length; i++) yield* walk(node[i]!, [...steps, i]);
  else if (node && typeof node === 'object') for (const k of Object.keys(node)) yield* walk(node[k]!, [...steps, k]);
}

const nested = (depth: number, open: string, close: string, inner = '1'): string => `${open.repeat(depth)}${inner}${close.repeat(depth)}`;

/** The inputs for a route with a JSON body, generated from its valid body. */
export function jsonMutations(valid: Json, opts: { open?: string[]; schema?: Schema } = {}): Mutation[] {
  const text = JSON.stringify(valid);
  const json = (category: Category, name: string, value: Json, path?: string): Mutation => ({ category, name, payload: JSON.stringify(value), ...(path ? { path } : {}) });
  const out: Mutation[] = [
    { category: 'empty body', name: 'empty body, JSON content type', payload: '' },
    ...[0.25, 0.5, 0.75].map((f) => ({ category: 'truncated JSON' as const, name: `cut at ${f * 100}%`, payload: text.slice(0, Math.floor(text.length * f)) })),
    { category: 'truncated JSON', name: 'last character missing', payload: text.slice(0, -1) },
    { category: 'truncated JSON', name: 'trailing garbage', payload: `${text}}` },
    ...wrongMediaTypes(text),
    bodyOverLimit(1024 * 1024),
    { category: 'deep nesting', name: 'the body 100,000 arrays deep', payload: nested(100_000, '[', ']') },
    { category: 'deep nesting', name: 'the body 20,000 objects deep', payload: nested(20_000, '{"a":', '}') },
    { category: 'NUL character', name: 'a NUL character in an element', payload: JSON.stringify(valid).replace(/"([^"\\]*)"(?=\s*[,}\]])/, '"$1\\u0000"') },
    { category: 'prototype key', name: '__proto__ at the top', payload: `{"__proto__":{"admin":true},${text.slice(1)}` },
    { category: 'prototype key', name: 'constructor.prototype at the top', payload: `{"constructor":{"prototype":{"admin":true}},${text.slice(1)}` },
    json('not an object', 'the body is null', null),
    json('not an object', 'the body is an array of it', [valid]),
    json('not an object', 'the body is a string', 'text'),
    json('not an object', 'the body is a number', 42),
    json('not an object', 'the body is {}', {}),
  ];
  const open = new Set(opts.open ?? []);
  for (const { steps, value, key } of walk(valid)) {
    const path = pathText(steps);
    const at = (category: Category, what: string, v: Json | undefined) => json(category, `${path} -> ${what}`, setAt(valid, steps, v), path);
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
      if (!open.has(path)) out.push(at('unknown element', `+ ${UNKNOWN}`, { ...value, [UNKNOWN]: 'x' }));
      if (steps.length > 0) {
        out.push(at('array for object', 'wrapped in an array', [value]), at('wrong type', 'a string', 'text'));
        // Spliced in as text: building 5,000 levels as a value would overflow JSON.stringify's own stack.
        const marked = JSON.stringify(setAt(valid, steps, DEEP_MARK));
        out.push({ category: 'deep nesting', name: `${path} -> 5,000 arrays deep`, path, payload: marked.replace(`"${DEEP_MARK}"`, nested(5000, '[', ']')) });
      }
    }
    if (steps.length === 0) continue;
    // null is bad input unless the route's schema says the element may be null (PATCH's "clear this").
    if (!allowsNull(opts.schema, steps)) out.push(at('null', 'null', null));
    if (Array.isArray(value)) out.push(at('wrong type', 'an object', {}), at('wrong type', 'a string', 'text'));
    else if (typeof value === 'string') {
      out.push(at('wrong type', 'a number', 12345), at('wrong type', 'a boolean', true), at('huge string', `${HUGE_JSON_STRING} characters`, 'x'.repeat(HUGE_JSON_STRING)));
      if (key && CODE_KEYS.has(key)) out.push(at('invalid code', NOT_A_CODE, NOT_A_CODE));
      if (DATE.test(value)) out.push(at('invalid date', '2026-13-45', '2026-13-45'), at('invalid date', '2026-02-30', '2026-02-30'));
      for (const nhs of value.match(/\d{10}/g)?.filter(isNhsNumber) ?? []) for (const bad of badNhsNumbers(nhs)) out.push(at('invalid NHS number', bad, value.replace(nhs, bad)));
    } else if (typeof value === 'number') out.push(at('wrong type', 'a string', String(value)));
    else if (typeof value === 'boolean') out.push(at('wrong type', 'a string', String(value)), at('wrong type', 'a number', 1));
  }
  return out;
}

function wrongMediaTypes(text: string): Mutation[] {
  return [
    { category: 'wrong content type', name: 'text/plain', payload: text, contentType: 'text/plain' },
    { category: 'wrong content type', name: 'application/xml', payload: '<CarePlan xmlns="http://hl7.org/fhir"/>', contentType: 'application/xml' },
    { category: 'wrong content type', name: 'application/x-www-form-urlencoded', payload: 'a=b&c=d', contentType: 'application/x-www-form-urlencoded' },
    { category: 'wrong content type', name: 'multipart/form-data', payload: '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--\r\n', contentType: 'multipart/form-data; boundary=x' },
    { category: 'wrong content type', name: 'application/octet-stream', payload: Buffer.from([0, 1, 2, 255]), contentType: 'application/octet-stream' },
    { category: 'wrong content type', name: 'application/fhir+xml', payload: '<Parameters xmlns="http://hl7.org/fhir"/>', contentType: 'application/fhir+xml' },
    { category: 'wrong content type', name: 'no media type, only a parameter', payload: text, contentType: '; charset=utf-8' },
  ];
}

function bodyOverLimit(limit: number, contentType?: string): Mutation {
  return { category: 'body over the limit', name: `${limit + 1024} bytes`, payload: `{"a":"${'x'.repeat(limit + 1024)}"}`, ...(contentType ? { contentType } : {}) };
}

/** A route that takes no body: only what the parser sees (it has no elements to mutate). */
export function noBodyMutations(): Mutation[] {
  const text = '{"a":1,"b":[1,2]}';
  return [
    { category: 'empty body', name: 'empty body, JSON content type', payload: '' },
    { category: 'truncated JSON', name: 'cut in half', payload: text.slice(0, 8) },
    { category: 'truncated JSON', name: 'last character missing', payload: text.slice(0, -1) },
    ...wrongMediaTypes(text),
    bodyOverLimit(1024 * 1024),
    { category: 'NUL character', name: 'a NUL character', payload: '{"a":"\\u0000"}' },
  ];
}

/** The token endpoint's form body (its limit is 64 KiB). */
export function formMutations(valid: Record<string, string>): Mutation[] {
  const form = (category: Category, name: string, params: [string, string][], path?: string): Mutation => ({
    category,
    name,
    payload: new URLSearchParams(params).toString(),
    contentType: 'application/x-www-form-urlencoded',
    ...(path ? { path } : {}),
  });
  const entries = Object.entries(valid);
  const out: Mutation[] = [
    { category: 'empty body', name: 'empty body', payload: '', contentType: 'application/x-www-form-urlencoded' },
    { category: 'truncated JSON', name: 'JSON instead of the form', payload: JSON.stringify(valid), contentType: 'application/json' },
    { category: 'truncated JSON', name: 'broken JSON', payload: JSON.stringify(valid).slice(0, 20), contentType: 'application/json' },
    ...wrongMediaTypes(new URLSearchParams(valid).toString()),
    bodyOverLimit(64 * 1024, 'application/x-www-form-urlencoded'),
    { category: 'NUL character', name: 'a NUL character', payload: `${new URLSearchParams(valid).toString()}%00`, contentType: 'application/x-www-form-urlencoded' },
    { category: 'deep nesting', name: 'a[a][a]... 5,000 deep', payload: `${'a'.repeat(1)}${'[a]'.repeat(5000)}=1`, contentType: 'application/x-www-form-urlencoded' },
    form('unknown element', `+ ${UNKNOWN}`, [...entries, [UNKNOWN, 'x']], UNKNOWN),
  ];
  for (const [k, v] of entries) {
    const others = entries.filter(([o]) => o !== k);
    const with_ = (category: Category, what: string, value: string) => form(category, `${k} -> ${what}`, [...others, [k, value]], k);
    out.push(with_('huge string', `${HUGE_FORM_STRING} characters`, 'x'.repeat(HUGE_FORM_STRING)));
    out.push(form('duplicate parameter', `${k} twice`, [...entries, [k, v]], k));
    if (CODE_KEYS.has(k)) out.push(with_('invalid code', NOT_A_CODE, NOT_A_CODE));
  }
  return out;
}

export function mutationsFor(spec: RouteSpec, prepared: Prepared, schema?: Schema): Mutation[] {
  if (spec.body === 'none') return noBodyMutations();
  if (spec.body === 'form') return formMutations(prepared.body as Record<string, string>);
  return jsonMutations(prepared.body as Json, { ...(spec.open ? { open: spec.open } : {}), ...(schema ? { schema } : {}) });
}

/** A JSON schema as the OpenAPI document gives it (only what allowsNull reads). */
export interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  nullable?: boolean;
}

/** Whether the schema lets the element at `steps` be null. */
export function allowsNull(schema: Schema | undefined, steps: Step[]): boolean {
  if (!schema) return false;
  const branches = [...(schema.anyOf ?? []), ...(schema.oneOf ?? [])];
  if (branches.length > 0) return branches.some((b) => allowsNull(b, steps));
  if (steps.length === 0) return schema.nullable === true || schema.type === 'null' || (Array.isArray(schema.type) && schema.type.includes('null'));
  const [first, ...rest] = steps;
  const next = typeof first === 'number' ? schema.items : schema.properties?.[first!];
  return allowsNull(next, rest);
}

/** The request body schema of a route in an OpenAPI document. */
export function bodySchemaOf(doc: OpenApi, route: string): Schema | undefined {
  const [method, path] = route.split(' ') as [string, string];
  const content = doc.paths?.[path]?.[method.toLowerCase()]?.requestBody?.content ?? {};
  return Object.values(content)[0]?.schema;
}

export interface OpenApi {
  paths?: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: Schema }> } }>>;
}

/** What is wrong with an answer to bad input (undefined: nothing). */
export function problemWith(res: InjectResponse, m: Mutation, errors: 'fhir' | 'oauth'): string | undefined {
  if (res.statusCode < 400 || res.statusCode >= 500) return `status ${res.statusCode}`;
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    return `status ${res.statusCode} but the body is not JSON: ${res.body.slice(0, 100)}`;
  }
  if (errors === 'oauth') {
    const e = body as { error?: unknown };
    return typeof e.error === 'string' && /^[a-z_]+$/.test(e.error) ? undefined : `not an OAuth error: ${res.body.slice(0, 200)}`;
  }
  if (!/^application\/fhir\+json/.test(String(res.headers['content-type']))) return `content type ${String(res.headers['content-type'])}`;
  const o = body as { resourceType?: unknown; issue?: { severity?: unknown; code?: unknown; expression?: unknown }[] };
  if (o.resourceType !== 'OperationOutcome' || !Array.isArray(o.issue) || o.issue.length === 0) return `not an OperationOutcome: ${res.body.slice(0, 200)}`;
  if (!o.issue.some((i) => (i.severity === 'error' || i.severity === 'fatal') && typeof i.code === 'string' && i.code.length > 0)) return `no issue of severity error with a code: ${res.body.slice(0, 200)}`;
  // An element named by the mutation is named back, in FHIRPath (`expression`), where the answer is about the body's content.
  const aboutContent = res.statusCode === 400 || res.statusCode === 422;
  if (m.path && aboutContent && !o.issue.some((i) => Array.isArray(i.expression) && i.expression.length > 0 && i.expression.every((e) => typeof e === 'string' && e.length > 0))) {
    return `no expression names the element: ${res.body.slice(0, 300)}`;
  }
  // Each expression is FHIRPath from an element or type name, never built from what the client sent in its place.
  const roots = o.issue.flatMap((i) => (Array.isArray(i.expression) ? (i.expression as unknown[]) : [])).filter((e) => typeof e !== 'string' || !/^[A-Za-z][A-Za-z0-9_]{0,63}(?=[.[(]|$)/.test(e));
  if (roots.length > 0) return `an expression does not start with an element name: ${String(roots[0]).slice(0, 120)}`;
  // Opt-in (CMC_SWEEP_STRICT_EXPRESSION=1), not yet enforced: the expression names the mutated element itself. The
  // care-plan service names extensions by url (`extension('...')`), which this index-path comparison cannot match.
  if (m.path && aboutContent && process.env.CMC_SWEEP_STRICT_EXPRESSION) {
    const named = o.issue.flatMap((i) => (Array.isArray(i.expression) ? (i.expression as string[]) : []));
    if (!named.some((e) => related(e, m.path!))) return `no expression names ${m.path} or an element around it: ${named.join(', ').slice(0, 300)}`;
  }
  return undefined;
}

/** `CarePlan.contained[0].code` -> `contained[0].code`: the element path as the mutation names it. */
const bare = (expression: string): string => expression.replace(/^(body|[A-Z][A-Za-z]+)(\.|(?=\[)|$)/, '');

/** Whether an expression names the mutated element, one inside it, or one it sits in. */
function related(expression: string, path: string): boolean {
  const e = bare(expression);
  if (path === '(body)') path = '';
  const within = (inner: string, outer: string) => outer === '' || inner === outer || inner.startsWith(`${outer}.`) || inner.startsWith(`${outer}[`);
  return within(e, path) || within(path, e);
}

/** Row count and a digest of every row of every table of a schema; `volatile` columns (the relay's marks) left out. */
export async function snapshot(db: Kysely<unknown>, schema: string, volatile: Record<string, string[]> = { outbox: ['sent_at', 'failed_at', 'last_error'] }): Promise<Record<string, string>> {
  const tables = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = ${schema} and table_type = 'BASE TABLE' order by table_name`.execute(db);
  const out: Record<string, string> = {};
  for (const { table_name: name } of tables.rows) {
    const drop = sql.raw(`ARRAY[${(volatile[name] ?? []).map((c) => `'${c}'`).join(',')}]::text[]`);
    const row = await sql<{ n: number; h: string }>`select count(*)::int as n, md5(coalesce(string_agg((to_jsonb(t) - ${drop})::text, '|' order by (to_jsonb(t) - ${drop})::text), '')) as h from ${sql.table(`${schema}.${name}`)} t`.execute(db);
    out[name] = `${row.rows[0]!.n} rows, ${row.rows[0]!.h}`;
  }
  return out;
}

/** New outbox rows since `afterId`: what they are, to say what was written. */
export async function outboxSince(db: Kysely<unknown>, schema: string, afterId: string): Promise<{ id: string; type: string; payload: string }[]> {
  const r = await sql<{ id: string; type: string; payload: string }>`select id::text, type, payload from ${sql.table(`${schema}.outbox`)} where id > ${afterId}::bigint order by id`.execute(db);
  return r.rows;
}

export async function maxOutboxId(db: Kysely<unknown>, schema: string): Promise<string> {
  const r = await sql<{ m: string }>`select coalesce(max(id), 0)::text as m from ${sql.table(`${schema}.outbox`)}`.execute(db);
  return r.rows[0]!.m;
}

export interface RouteResult {
  route: string;
  tried: number;
  byStatus: Record<number, number>;
  byCategory: Partial<Record<Category, number>>;
  failures: string[];
  ms: number;
}

/** Sends every mutation of one route, `batch` at a time, and checks each answer. */
export async function sweepRoute(app: App, route: string, spec: RouteSpec, prepared: Prepared, schema?: Schema, batch = 16): Promise<RouteResult> {
  const method = route.split(' ')[0] as WriteMethod;
  const mutations = mutationsFor(spec, prepared, schema);
  const result: RouteResult = { route, tried: mutations.length, byStatus: {}, byCategory: {}, failures: [], ms: 0 };
  const started = Date.now();
  const defaultType = spec.body === 'form' ? 'application/x-www-form-urlencoded' : route.includes('/fhir/') ? 'application/fhir+json' : 'application/json';
  for (let i = 0; i < mutations.length; i += batch) {
    await Promise.all(
      mutations.slice(i, i + batch).map(async (m) => {
        const headers: Record<string, string> = { ...prepared.headers, 'content-type': m.contentType ?? defaultType };
        const res = await app.inject({ method, url: prepared.url, headers, payload: m.payload });
        result.byStatus[res.statusCode] = (result.byStatus[res.statusCode] ?? 0) + 1;
        result.byCategory[m.category] = (result.byCategory[m.category] ?? 0) + 1;
        const problem = problemWith(res, m, spec.errors ?? 'fhir');
        if (problem) result.failures.push(`${route} [${m.category}] ${m.name.slice(0, 160)}: ${problem}`);
      }),
    );
  }
  result.ms = Date.now() - started;
  return result;
}

/** The valid request itself, after the sweep: it must work, or the sweep proved nothing. */
export async function sendValid(app: App, route: string, spec: RouteSpec, prepared: Prepared): Promise<InjectResponse> {
  const p = prepared.again ? await prepared.again() : prepared;
  const method = route.split(' ')[0] as WriteMethod;
  const type = spec.body === 'form' ? 'application/x-www-form-urlencoded' : route.includes('/fhir/') ? 'application/fhir+json' : 'application/json';
  if (spec.body === 'none') return app.inject({ method, url: p.url, headers: { ...p.headers } });
  const payload = spec.body === 'form' ? new URLSearchParams(p.body as Record<string, string>).toString() : JSON.stringify(p.body);
  return app.inject({ method, url: p.url, headers: { ...p.headers, 'content-type': type }, payload });
}

/** The table the suite prints: inputs tried per route, by kind, and the statuses they got. */
export function table(service: string, results: RouteResult[], ms: number): string {
  const lines = [`bad input, ${service}: ${results.reduce((n, r) => n + r.tried, 0)} inputs over ${results.length} write routes in ${(ms / 1000).toFixed(1)} s`];
  const w = Math.max(...results.map((r) => r.route.length), 5);
  lines.push(`${'route'.padEnd(w)}  inputs      ms  statuses`);
  for (const r of [...results].sort((a, b) => a.route.localeCompare(b.route))) {
    const statuses = Object.entries(r.byStatus).map(([s, n]) => `${s}x${n}`).join(' ');
    lines.push(`${r.route.padEnd(w)}  ${String(r.tried).padStart(6)}  ${String(r.ms).padStart(6)}  ${statuses}`);
  }
  const categories: Partial<Record<Category, number>> = {};
  for (const r of results) for (const [c, n] of Object.entries(r.byCategory)) categories[c as Category] = (categories[c as Category] ?? 0) + n;
  lines.push(`by kind: ${Object.entries(categories).map(([c, n]) => `${c} ${n}`).join(', ')}`);
  return lines.join('\n');
}

/**
 * Runs the sweep over a service's routes: checks that every write route of its OpenAPI document has a spec
 * (and no spec is left over), prepares each, takes a snapshot, sends every mutation, takes another, then sends
 * each valid request. Returns what the test asserts on.
 */
export async function runSweep(opts: {
  app: App;
  specs: Record<string, RouteSpec>;
  db: Kysely<unknown>;
  schema: string;
}): Promise<{ routes: string[]; results: RouteResult[]; before: Record<string, string>; after: Record<string, string>; written: { type: string; payload: string }[]; valid: Record<string, number | string>; expectedValid: Record<string, number>; ms: number }> {
  const doc = await openApiOf(opts.app);
  const routes = writeRoutesOfDocument(doc);
  const prepared = new Map<string, Prepared>();
  // One at a time: several prepare through the same accounts.
  for (const route of routes) {
    const spec = opts.specs[route];
    if (spec) prepared.set(route, await spec.prepare());
  }
  const started = Date.now();
  const before = await snapshot(opts.db, opts.schema);
  const lastId = await maxOutboxId(opts.db, opts.schema);
  const results: RouteResult[] = [];
  for (const [route, p] of prepared) results.push(await sweepRoute(opts.app, route, opts.specs[route]!, p, bodySchemaOf(doc, route)));
  const after = await snapshot(opts.db, opts.schema);
  const written = await outboxSince(opts.db, opts.schema, lastId);
  const ms = Date.now() - started;
  const valid: Record<string, number | string> = {};
  const expectedValid: Record<string, number> = {};
  for (const [route, p] of prepared) {
    expectedValid[route] = p.expect;
    const res = await sendValid(opts.app, route, opts.specs[route]!, p);
    valid[route] = res.statusCode === p.expect ? res.statusCode : `${res.statusCode} ${res.body.slice(0, 300)}`;
  }
  return { routes, results, before, after, written, valid, expectedValid, ms };
}

export interface SweepTarget {
  app: App;
  db: Kysely<unknown>;
  schema: string;
  specs: Record<string, RouteSpec>;
  close: () => Promise<void>;
}

/** The target of a service started with its own transport: both are closed after the sweep. */
export function serviceTarget(svc: { app: App; database: { db: unknown; schema: string }; close: () => Promise<void> }, transport: { close: () => Promise<void> }, specs: Record<string, RouteSpec>): SweepTarget {
  return {
    app: svc.app,
    db: svc.database.db as Kysely<unknown>,
    schema: svc.database.schema,
    specs,
    close: async () => {
      await svc.close();
      await transport.close();
    },
  };
}

/**
 * The two tests every service's file runs: its OpenAPI document's write routes are exactly those with a spec,
 * and the sweep over them. The table of inputs per route is printed at the end of the file.
 */
export function sweepSuite(service: string, start: () => Promise<SweepTarget>): void {
  describe(`bad input to every write route of ${service}`, () => {
    let target: SweepTarget | undefined;
    let printed: string | undefined;

    beforeAll(async () => {
      target = await start();
    }, 120_000);

    afterAll(async () => {
      // The suite's report (issue #10 asks for the inputs tried per route): printed, not asserted.
      // eslint-disable-next-line no-console
      if (printed) console.log(printed);
      await target?.close();
    });

    it('when a write route is in the OpenAPI document, then it has a valid request to make bad ones from (and no spec is stale)', async () => {
      expect(await writeRoutesOf(target!.app)).toEqual(Object.keys(target!.specs).sort());
    });

    it('when each write route gets broken, mistyped, unknown, oversized or invalid input, then a 4xx OperationOutcome, never a 5xx, nothing new in the database, and the valid request still works', async () => {
      const t = target!;
      const run = await runSweep({ app: t.app, specs: t.specs, db: t.db, schema: t.schema });
      printed = table(service, run.results, run.ms);
      expect(run.results.map((r) => r.route).sort()).toEqual(Object.keys(t.specs).sort());
      expect(run.results.flatMap((r) => r.failures)).toEqual([]);
      // Nothing written by any of it: no row, no change, no event, no access entry (refusals included: none is expected, the callers are allowed).
      expect(run.written.map((w) => `${w.type} ${w.payload.slice(0, 300)}`)).toEqual([]);
      expect(run.after).toEqual(run.before);
      expect(run.valid).toEqual(run.expectedValid);
    }, 120_000);
  });
}
