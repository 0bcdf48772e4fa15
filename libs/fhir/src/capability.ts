/**
 * The platform's CapabilityStatement, built from what the services say they serve (their OpenAPI documents,
 * generated from their route schemas) rather than written by hand: a route added to a service shows up here,
 * and one removed goes away.
 */
import type { CapabilityStatement, CapabilityStatementRestResource, CapabilityStatementRestResourceSearchParam } from 'fhir/r4';

/** The part of an OpenAPI 3 document this reads. */
export interface OpenApiDocument {
  info?: { title?: string; version?: string };
  paths?: Record<string, Record<string, { summary?: string; parameters?: { name: string; in: string; description?: string }[] } | undefined>>;
}

/** SMART's configuration as identity publishes it (/.well-known/smart-configuration). */
export interface SmartConfiguration {
  token_endpoint?: string;
  authorization_endpoint?: string;
  scopes_supported?: string[];
  capabilities?: string[];
}

type Interaction = CapabilityStatementRestResource['interaction'] extends (infer I)[] | undefined ? I : never;
type InteractionCode = Interaction['code'];
type SearchType = CapabilityStatementRestResourceSearchParam['type'];

const FHIR_BASE = '/fhir/R4/';
/** Parameters that shape the result, not the search (FHIR's "search result parameters") or our paging. */
const RESULT_PARAMETERS = new Set(['_count', '_cursor', '_format', '_summary', '_elements', '_sort', '_include', '_revinclude', '_total']);
/** The type of each search parameter name we serve, as FHIR R4 defines it for these resources. */
const SEARCH_TYPES: Record<string, SearchType> = {
  _id: 'token',
  _lastUpdated: 'date',
  patient: 'reference',
  subject: 'reference',
  agent: 'reference',
  entity: 'reference',
  date: 'date',
  status: 'token',
  type: 'token',
  subtype: 'token',
  action: 'token',
  outcome: 'token',
  identifier: 'token',
  category: 'token',
  code: 'token',
  url: 'uri',
  criteria: 'string',
};
const SEARCH_DEFINITIONS: Record<string, string> = {
  _id: 'http://hl7.org/fhir/SearchParameter/Resource-id',
  _lastUpdated: 'http://hl7.org/fhir/SearchParameter/Resource-lastUpdated',
};

/** Where our own operations are defined (we publish no OperationDefinitions yet; the canonical names them). */
export const OPERATION_BASE = 'https://fhir.cmc.example/OperationDefinition/';

/** The interaction of an OpenAPI path and method under /fhir/R4/, or an operation; undefined for anything else. */
function interactionOf(segments: string[], method: string): { resourceType: string; code?: InteractionCode; operation?: string } | undefined {
  const [resourceType, second, third, fourth] = segments;
  if (!resourceType || !/^[A-Z][A-Za-z]+$/.test(resourceType)) return undefined;
  const isParam = (s: string | undefined) => !!s && /^\{.+\}$/.test(s);
  const op = segments.find((s) => s.startsWith('$'));
  if (op) return { resourceType, operation: op.slice(1) };
  if (segments.length === 1) return method === 'get' ? { resourceType, code: 'search-type' } : method === 'post' ? { resourceType, code: 'create' } : undefined;
  if (second === '_history' && segments.length === 2) return method === 'get' ? { resourceType, code: 'history-type' } : undefined;
  if (!isParam(second)) return undefined;
  if (segments.length === 2) {
    const codes: Record<string, InteractionCode> = { get: 'read', put: 'update', patch: 'patch', delete: 'delete' };
    return codes[method] ? { resourceType, code: codes[method] } : undefined;
  }
  if (third === '_history' && method === 'get') {
    if (segments.length === 3) return { resourceType, code: 'history-instance' };
    if (segments.length === 4 && isParam(fourth)) return { resourceType, code: 'vread' };
  }
  return undefined;
}

const INTERACTION_ORDER: InteractionCode[] = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'history-type', 'create', 'search-type'];

/**
 * A CapabilityStatement (kind instance) for the FHIR routes of the given services' OpenAPI documents: each
 * resource type with its interactions, search parameters (name from the route's query parameters, a
 * modifier such as `patient:identifier` listed under its base name and said in the documentation) and
 * operations; the SMART on FHIR security section when identity's SMART configuration is given.
 */
export function capabilityStatementOf(
  documents: readonly OpenApiDocument[],
  opts: { baseUrl: string; date: string; software: { name: string; version: string }; smart?: SmartConfiguration },
): CapabilityStatement {
  const resources = new Map<string, { interactions: Set<InteractionCode>; search: Map<string, Set<string>>; operations: Set<string> }>();
  const resourceOf = (type: string) => {
    let r = resources.get(type);
    if (!r) resources.set(type, (r = { interactions: new Set(), search: new Map(), operations: new Set() }));
    return r;
  };
  for (const doc of documents) {
    for (const [path, methods] of Object.entries(doc.paths ?? {})) {
      if (!path.startsWith(FHIR_BASE)) continue;
      const segments = path.slice(FHIR_BASE.length).split('/').filter((s) => s.length > 0);
      for (const [method, operation] of Object.entries(methods)) {
        const found = interactionOf(segments, method.toLowerCase());
        if (!found) continue;
        const r = resourceOf(found.resourceType);
        if (found.operation) r.operations.add(found.operation);
        if (!found.code) continue;
        r.interactions.add(found.code);
        if (found.code !== 'search-type') continue;
        for (const p of operation?.parameters ?? []) {
          if (p.in !== 'query' || RESULT_PARAMETERS.has(p.name)) continue;
          const [name, modifier] = p.name.split(':') as [string, string | undefined];
          const modifiers = r.search.get(name) ?? new Set<string>();
          if (modifier) modifiers.add(modifier);
          r.search.set(name, modifiers);
        }
      }
    }
  }

  const resource: CapabilityStatementRestResource[] = [...resources.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([type, r]) => {
      const searchParam: CapabilityStatementRestResourceSearchParam[] = [...r.search.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([name, modifiers]) => ({
          name,
          type: SEARCH_TYPES[name] ?? 'string',
          ...(SEARCH_DEFINITIONS[name] ? { definition: SEARCH_DEFINITIONS[name] } : {}),
          ...(modifiers.size > 0 ? { documentation: `Supported with the modifier${modifiers.size > 1 ? 's' : ''} :${[...modifiers].sort().join(', :')}` } : {}),
        }));
      return {
        type,
        interaction: INTERACTION_ORDER.filter((c) => r.interactions.has(c)).map((code) => ({ code })),
        versioning: r.interactions.has('vread') ? ('versioned' as const) : ('no-version' as const),
        readHistory: r.interactions.has('vread'),
        ...(r.interactions.has('update') ? { updateCreate: false, conditionalUpdate: false } : {}),
        ...(searchParam.length > 0 ? { searchParam } : {}),
        ...(r.operations.size > 0 ? { operation: [...r.operations].sort().map((name) => ({ name, definition: `${OPERATION_BASE}${type}-${name}` })) } : {}),
      };
    });

  const smart = opts.smart;
  const oauthUris = [
    ...(smart?.token_endpoint ? [{ url: 'token', valueUri: smart.token_endpoint }] : []),
    ...(smart?.authorization_endpoint ? [{ url: 'authorize', valueUri: smart.authorization_endpoint }] : []),
  ];
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: opts.date,
    publisher: 'Urgent care plans platform',
    kind: 'instance',
    software: opts.software,
    implementation: { description: 'Urgent care plans: consent, care plans, flags, audit and subscriptions', url: opts.baseUrl },
    fhirVersion: '4.0.1',
    format: ['application/fhir+json'],
    rest: [
      {
        mode: 'server',
        security: {
          cors: false,
          description: 'Every request needs a bearer token from /auth/token; system clients use SMART Backend Services (private_key_jwt) and system/ scopes.',
          ...(smart
            ? {
                service: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/restful-security-service', code: 'SMART-on-FHIR' }] }],
                ...(oauthUris.length > 0 ? { extension: [{ url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris', extension: oauthUris }] } : {}),
              }
            : {}),
        },
        resource,
      },
    ],
  };
}
