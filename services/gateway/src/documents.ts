import type { SmartConfiguration } from '@cmc/fhir';
import type { OpenApiSource } from './openapi';
import { UPSTREAMS, type Upstream } from './routing';

/** How long the services' documents are reused (CapabilityStatement, /docs) before they are asked again. */
const DOCUMENT_TTL_MS = 60_000;

async function fetchJson<T>(url: URL): Promise<T | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

export interface ServiceDocuments {
  /** The OpenAPI document of each service that answered (now or before), in the order of UPSTREAMS. */
  documents: { name: Upstream; document: OpenApiSource }[];
  smart: SmartConfiguration | undefined;
  /** Services with a URL whose document was never had. */
  missing: Upstream[];
}

/**
 * The services' OpenAPI documents and identity's SMART configuration, asked for at most once a minute; a
 * service that does not answer keeps its last document (its routes have not gone away because it restarts).
 * One of these serves both GET /fhir/R4/metadata and /docs.
 */
export function serviceDocuments(upstreams: Partial<Record<Upstream, string>>): () => Promise<ServiceDocuments> {
  const cache = new Map<string, { value: unknown; at: number }>();
  const get = async <T>(key: string, url: URL): Promise<T | undefined> => {
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < DOCUMENT_TTL_MS) return hit.value as T;
    const value = await fetchJson<T>(url);
    if (value !== undefined) cache.set(key, { value, at: Date.now() });
    return value ?? (hit?.value as T | undefined);
  };
  return async () => {
    const entries = UPSTREAMS.flatMap((name) => (upstreams[name] ? [[name, upstreams[name]] as const] : []));
    const found = await Promise.all(entries.map(async ([name, base]) => ({ name, document: await get<OpenApiSource>(name, new URL('/openapi.json', base)) })));
    const smart = upstreams.identity ? await get<SmartConfiguration>('smart', new URL('/.well-known/smart-configuration', upstreams.identity)) : undefined;
    return {
      documents: found.flatMap(({ name, document }) => (document ? [{ name, document }] : [])),
      smart,
      missing: found.filter(({ document }) => !document).map(({ name }) => name),
    };
  };
}
