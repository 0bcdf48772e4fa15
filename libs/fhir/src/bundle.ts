import type { Bundle, BundleEntry, BundleLink, FhirResource } from 'fhir/r4';

export interface SearchPage<T extends FhirResource> {
  /** Absolute URL of the search as requested, without paging parameters. */
  selfUrl: string;
  resources: T[];
  /** Total matches, when known. */
  total?: number;
  /** Absolute base URL for each entry's fullUrl, e.g. `http://host/fhir/R4`. */
  baseUrl: string;
  /** Opaque cursor for the next page, when there is one. */
  nextCursor?: string;
  /** Cursor of this page, when it is not the first. */
  cursor?: string;
}

export const MAX_PAGE_SIZE = 100;
export const DEFAULT_PAGE_SIZE = 20;

/** Reads `_count`: a whole number from 1 to MAX_PAGE_SIZE (FHIR allows 0 for "count only"; we do not). */
export function pageSize(raw: unknown): number {
  if (raw === undefined) return DEFAULT_PAGE_SIZE;
  const n = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isInteger(n) || n < 1) return DEFAULT_PAGE_SIZE;
  return Math.min(n, MAX_PAGE_SIZE);
}

function withParam(url: string, name: string, value: string | undefined): string {
  const u = new URL(url);
  if (value === undefined) u.searchParams.delete(name);
  else u.searchParams.set(name, value);
  return u.toString();
}

/** A `searchset` Bundle with `self`, `first` and `next` links; paging is by an opaque `_cursor` parameter. */
export function searchsetBundle<T extends FhirResource>(page: SearchPage<T>): Bundle<T> {
  const first = withParam(page.selfUrl, '_cursor', undefined);
  const link: BundleLink[] = [
    { relation: 'self', url: page.cursor ? withParam(first, '_cursor', page.cursor) : first },
    { relation: 'first', url: first },
  ];
  if (page.nextCursor) link.push({ relation: 'next', url: withParam(first, '_cursor', page.nextCursor) });
  const entry: BundleEntry<T>[] = page.resources.map((resource) => ({
    fullUrl: `${page.baseUrl}/${resource.resourceType}/${resource.id ?? ''}`,
    resource,
    search: { mode: 'match' },
  }));
  const bundle: Bundle<T> = { resourceType: 'Bundle', type: 'searchset', link, entry };
  if (page.total !== undefined) bundle.total = page.total;
  return bundle;
}

/** Cursor helpers: a cursor is base64url JSON, opaque to clients. */
export function encodeCursor(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeCursor<T>(cursor: string, isValid: (v: unknown) => v is T): T | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    return isValid(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Weak ETag for a version id, as FHIR asks: W/"3". */
export const weakEtag = (versionId: string | number): string => `W/"${versionId}"`;

/** The version id in an `If-Match` header (W/"3" or "3"), or undefined when the header has another form. */
export function versionFromIfMatch(header: string): string | undefined {
  const m = /^\s*(?:W\/)?"([^"]+)"\s*$/.exec(header);
  return m?.[1];
}

/** A resource as JSON text, as the database holds it: put into a Bundle without being parsed and serialised again. */
export interface RawResource {
  resourceType: string;
  id: string;
  json: string;
}

/**
 * The same `searchset` Bundle as `searchsetBundle`, as JSON text, with each resource's stored JSON spliced in as
 * it is. Reads of large resources spend most of their CPU parsing and re-serialising JSON that goes out unchanged.
 */
export function searchsetBundleJson(page: Omit<SearchPage<FhirResource>, 'resources'> & { resources: RawResource[] }): string {
  const { entry: _none, ...shell } = searchsetBundle({ ...page, resources: [] });
  const entries = page.resources.map((r) => `{"fullUrl":${JSON.stringify(`${page.baseUrl}/${r.resourceType}/${r.id}`)},"resource":${r.json},"search":{"mode":"match"}}`);
  const head = JSON.stringify(shell);
  return `${head.slice(0, -1)},"entry":[${entries.join(',')}]}`;
}
