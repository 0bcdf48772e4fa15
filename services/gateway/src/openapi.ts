/**
 * One OpenAPI 3.1 document for the platform, merged from the services' own documents (each generated from
 * its route schemas and served at its `/openapi.json`). Used by `pnpm docs:generate` (openapi/platform.json)
 * and by the gateway's Swagger UI at `/docs`, so the two cannot drift apart.
 */
import { ownerOf, type Upstream } from './routing';

type JsonObject = Record<string, unknown>;
type SecurityRequirement = Record<string, string[]>;

/** An OpenAPI 3 document as the services serve it: only the parts the merge reads are typed. */
export interface OpenApiSource {
  openapi?: string;
  info?: { title?: string; version?: string; description?: string };
  servers?: { url: string; description?: string }[];
  tags?: { name: string; description?: string }[];
  security?: SecurityRequirement[];
  paths?: Record<string, JsonObject>;
  components?: Record<string, JsonObject | undefined>;
}

export interface MergedOpenApi {
  openapi: '3.1.0';
  info: { title: string; version: string; description?: string };
  servers: { url: string; description?: string }[];
  tags?: { name: string; description?: string }[];
  security?: SecurityRequirement[];
  paths: Record<string, JsonObject>;
  components: Record<string, JsonObject>;
}

export interface OpenApiPart {
  /** Who declared it (a service name): used in error messages and to namespace colliding components. */
  name: string;
  document: OpenApiSource;
  /** Which of its paths to take (default: all). */
  include?: (path: string) => boolean;
}

/** Two parts declare the same operation (path and method), or two operations the same operationId. */
export class OpenApiMergeError extends Error {
  constructor(readonly collisions: string[]) {
    super(`cannot merge the OpenAPI documents: ${collisions.join('; ')}`);
    this.name = 'OpenApiMergeError';
  }
}

/**
 * Equal as JSON: same values, whatever the key order or the objects' prototypes (a document from
 * `app.swagger()` and one parsed from a service's `/openapi.json` compare equal when they say the same).
 */
function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => jsonEqual(v, b[i]));
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object') return false;
  const ka = Object.keys(a).filter((k) => (a as JsonObject)[k] !== undefined);
  const kb = Object.keys(b).filter((k) => (b as JsonObject)[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => Object.hasOwn(b, k) && jsonEqual((a as JsonObject)[k], (b as JsonObject)[k]));
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
const COMPONENT_NAME = /^[A-Za-z0-9._-]+$/;

/** Every string `#/components/<kind>/<name>` (or below it) renamed, and security requirements' keys too. */
function rename(value: unknown, refs: Map<string, string>, schemes: Map<string, string>, key?: string): unknown {
  if (typeof value === 'string') {
    for (const [from, to] of refs) if (value === from || value.startsWith(`${from}/`)) return to + value.slice(from.length);
    return value;
  }
  if (Array.isArray(value)) {
    const items = value.map((v) => rename(v, refs, schemes));
    if (key !== 'security' || schemes.size === 0) return items;
    return items.map((req) => (req && typeof req === 'object' ? Object.fromEntries(Object.entries(req).map(([k, v]) => [schemes.get(k) ?? k, v])) : req));
  }
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, rename(v, refs, schemes, k)]));
  }
  return value;
}

/**
 * Merges documents into one OpenAPI 3.1 document:
 * - paths: every part's (those its `include` takes); the same method on the same path from two parts, two
 *   different path-level fields for one path, or one operationId used twice is an {@link OpenApiMergeError}
 *   naming every such collision;
 * - components: each kind merged by name; a name that parts define differently is namespaced in every one
 *   of them (`<part>.<name>`) and their `$ref`s (and, for security schemes, their security requirements)
 *   follow;
 * - tags: the union by name (the first description kept); security: the parts' common top-level
 *   requirement, or, where they differ, each part's own written onto its operations that have none;
 * - info and servers: the caller's.
 */
export function mergeOpenApi(parts: readonly OpenApiPart[], options: { info: MergedOpenApi['info']; servers: MergedOpenApi['servers'] }): MergedOpenApi {
  const collisions: string[] = [];
  for (const part of parts) {
    if (part.document.openapi && !part.document.openapi.startsWith('3.')) collisions.push(`${part.name} is OpenAPI ${part.document.openapi}, not 3.x`);
  }

  // Components: which names are defined differently by two parts.
  const definitions = new Map<string, { part: string; value: unknown }[]>();
  for (const part of parts) {
    for (const [kind, map] of Object.entries(part.document.components ?? {})) {
      for (const [name, value] of Object.entries(map ?? {})) {
        const key = `${kind}/${name}`;
        definitions.set(key, [...(definitions.get(key) ?? []), { part: part.name, value }]);
      }
    }
  }
  const clashing = new Set([...definitions].filter(([, defs]) => defs.some((d) => !jsonEqual(d.value, defs[0]!.value))).map(([key]) => key));

  // Each part with its paths taken, its clashing components renamed, and its references following.
  const renamed = parts.map((part) => {
    const refs = new Map<string, string>();
    const schemes = new Map<string, string>();
    const own: Record<string, JsonObject> = {};
    for (const [kind, map] of Object.entries(part.document.components ?? {})) {
      own[kind] = {};
      for (const [name, value] of Object.entries(map ?? {})) {
        if (!clashing.has(`${kind}/${name}`)) {
          own[kind][name] = value;
          continue;
        }
        const namespaced = `${part.name}.${name}`;
        if (!COMPONENT_NAME.test(namespaced)) collisions.push(`${kind} ${name} of ${part.name} cannot be namespaced as ${namespaced}`);
        if (definitions.has(`${kind}/${namespaced}`)) collisions.push(`${kind} ${name} of ${part.name} cannot be namespaced: ${namespaced} is taken`);
        refs.set(`#/components/${kind}/${name}`, `#/components/${kind}/${namespaced}`);
        if (kind === 'securitySchemes') schemes.set(name, namespaced);
        own[kind][namespaced] = value;
      }
    }
    const include = part.include ?? (() => true);
    const taken = Object.fromEntries(Object.entries(part.document.paths ?? {}).filter(([path]) => include(path)));
    const doc = rename({ paths: taken, components: own, security: part.document.security }, refs, schemes) as {
      paths: Record<string, JsonObject>;
      components: Record<string, JsonObject>;
      security?: SecurityRequirement[];
    };
    return { part, doc };
  });

  const components: Record<string, JsonObject> = {};
  const paths: Record<string, JsonObject> = {};
  const declaredBy = new Map<string, string>();
  const operationIds = new Map<string, string>();
  const tags = new Map<string, { name: string; description?: string }>();
  const securities = renamed.map(({ doc }) => doc.security);
  const commonSecurity = securities.every((s) => jsonEqual(s, securities[0])) ? securities[0] : undefined;

  for (const { part, doc } of renamed) {
    for (const [kind, map] of Object.entries(doc.components)) {
      components[kind] ??= {};
      for (const [name, value] of Object.entries(map)) components[kind][name] ??= value;
    }
    for (const tag of part.document.tags ?? []) if (!tags.has(tag.name)) tags.set(tag.name, tag);

    for (const [path, item] of Object.entries(doc.paths)) {
      const merged = (paths[path] ??= {});
      for (const [field, value] of Object.entries(item)) {
        const method = METHODS.has(field);
        const where = method ? `${field.toUpperCase()} ${path}` : `${path} (${field})`;
        if (field in merged && (method || !jsonEqual(merged[field], value))) {
          collisions.push(`${where} is declared by both ${declaredBy.get(where) ?? '?'} and ${part.name}`);
          continue;
        }
        declaredBy.set(where, part.name);
        if (!method) {
          merged[field] = value;
          continue;
        }
        const operation = { ...(value as JsonObject) };
        if (commonSecurity === undefined && doc.security !== undefined && operation.security === undefined) operation.security = doc.security;
        const id = operation.operationId;
        if (typeof id === 'string') {
          if (operationIds.has(id)) collisions.push(`operationId ${id} is used by ${operationIds.get(id)} and ${where} (${part.name})`);
          else operationIds.set(id, `${where} (${part.name})`);
        }
        merged[field] = operation;
      }
    }
  }
  if (collisions.length > 0) throw new OpenApiMergeError(collisions);

  return {
    openapi: '3.1.0',
    info: options.info,
    servers: options.servers,
    ...(tags.size > 0 ? { tags: [...tags.values()] } : {}),
    ...(commonSecurity !== undefined ? { security: commonSecurity } : {}),
    paths,
    components,
  };
}

/** Paths every service answers for itself, which the gateway answers for itself rather than routing. */
const SERVICE_OWN = /^\/health\//;

/**
 * The platform's document as clients of the gateway see it: the gateway's own paths, and each service's
 * paths that the gateway routes to that service (routing.ts). `unrouted` lists the paths a service declares
 * that the gateway would not send it (its health endpoints apart): a route no client can reach.
 */
export function platformOpenApi(
  gateway: OpenApiSource,
  services: readonly { name: Upstream; document: OpenApiSource }[],
  options: { serverUrl: string; version: string; missing?: readonly string[] },
): { document: MergedOpenApi; unrouted: string[] } {
  const unrouted = services.flatMap(({ name, document }) =>
    Object.keys(document.paths ?? {})
      .filter((path) => !SERVICE_OWN.test(path) && ownerOf(path) !== name)
      .map((path) => `${path} (${name})`),
  );
  const description = [
    'Urgent care plans: one base URL, the gateway, in front of the platform\'s services. FHIR R4 under `/fhir/R4` (routed by',
    'resource type; `GET /fhir/R4/metadata` is the CapabilityStatement), login and tokens under `/auth` and `/.well-known`,',
    'and the other APIs under `/api`. Every route needs a bearer token unless it says otherwise. Merged from the services\'',
    'own documents:',
    '',
    ...services.map(({ name, document }) => `- **${name}**: ${document.info?.description ?? ''}`.trimEnd()),
    ...(options.missing && options.missing.length > 0 ? ['', `Not answering now, so left out: ${options.missing.join(', ')}.`] : []),
  ].join('\n');
  const document = mergeOpenApi(
    [
      { name: 'gateway', document: gateway },
      ...services.map(({ name, document }) => ({ name, document, include: (path: string) => ownerOf(path) === name })),
    ],
    {
      info: { title: 'cmc urgent care plans', version: options.version, description },
      servers: [{ url: options.serverUrl, description: 'The gateway' }],
    },
  );
  return { document, unrouted };
}
