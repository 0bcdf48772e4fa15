import {
  DEFAULT_PAGE_SIZE,
  MAX_PAGE_SIZE,
  decodeCursor,
  encodeCursor,
  pageSize,
  searchsetBundle,
  searchsetBundleJson,
  versionFromIfMatch,
  weakEtag,
} from '@cmc/fhir';
import type { Bundle, Flag } from 'fhir/r4';

const BASE = 'https://cmc.example/fhir/R4';

const flag = (id: string): Flag => ({
  resourceType: 'Flag',
  id,
  status: 'active',
  code: { text: 'Urgent care plan' },
  subject: { identifier: { system: 'https://fhir.nhs.uk/Id/nhs-number', value: '9434765919' } },
});

function linkOf(bundle: Bundle, relation: string): URL | undefined {
  const l = bundle.link?.find((x) => x.relation === relation);
  return l ? new URL(l.url) : undefined;
}

describe('searchsetBundleJson', () => {
  it.each([0, 1, 3])('when %i stored resources are spliced in as text, then the JSON parses to the same Bundle as searchsetBundle makes', (n) => {
    const resources = Array.from({ length: n }, (_, i) => flag(`id-${i}`));
    const page = { selfUrl: `${BASE}/Flag?status=active&_count=2`, baseUrl: BASE, nextCursor: 'NEXT', cursor: 'THIS', total: n };
    // As PostgreSQL prints jsonb: spaces after colons and commas.
    const raw = resources.map((r) => ({ resourceType: 'Flag', id: r.id!, json: JSON.stringify(r, null, 1).replace(/\n\s*/g, ' ') }));
    expect(JSON.parse(searchsetBundleJson({ ...page, resources: raw }))).toEqual(searchsetBundle({ ...page, resources }));
  });
});

describe('searchsetBundle', () => {
  it('when given a first page with more to come, then it has self, first and next links and a fullUrl per entry', () => {
    const resources = [flag('a1'), flag('b2')];
    const bundle = searchsetBundle({ selfUrl: `${BASE}/Flag?status=active&_count=2`, baseUrl: BASE, resources, nextCursor: 'NEXT' });

    expect(bundle.resourceType).toBe('Bundle');
    expect(bundle.type).toBe('searchset');
    expect(bundle.link?.map((l) => l.relation)).toEqual(['self', 'first', 'next']);

    const self = linkOf(bundle, 'self')!;
    const first = linkOf(bundle, 'first')!;
    const next = linkOf(bundle, 'next')!;
    expect(self.toString()).toBe(first.toString());
    expect(self.searchParams.has('_cursor')).toBe(false);
    expect(first.searchParams.get('status')).toBe('active');
    expect(first.searchParams.get('_count')).toBe('2');
    expect(next.origin + next.pathname).toBe(`${BASE}/Flag`);
    expect(next.searchParams.get('_cursor')).toBe('NEXT');
    expect(next.searchParams.get('status')).toBe('active');
    expect(next.searchParams.get('_count')).toBe('2');

    expect(bundle.entry).toEqual([
      { fullUrl: `${BASE}/Flag/a1`, resource: resources[0], search: { mode: 'match' } },
      { fullUrl: `${BASE}/Flag/b2`, resource: resources[1], search: { mode: 'match' } },
    ]);
  });

  it('when there is no next cursor, then there is no next link', () => {
    const bundle = searchsetBundle({ selfUrl: `${BASE}/Flag?status=active`, baseUrl: BASE, resources: [flag('a1')] });
    expect(bundle.link?.map((l) => l.relation)).toEqual(['self', 'first']);
  });

  it('when the page is not the first, then self carries its cursor and first carries none', () => {
    const bundle = searchsetBundle({
      selfUrl: `${BASE}/Flag?status=active&_cursor=THIS`,
      baseUrl: BASE,
      resources: [flag('c3')],
      cursor: 'THIS',
      nextCursor: 'AFTER',
    });
    expect(linkOf(bundle, 'self')!.searchParams.get('_cursor')).toBe('THIS');
    expect(linkOf(bundle, 'first')!.searchParams.has('_cursor')).toBe(false);
    expect(linkOf(bundle, 'first')!.searchParams.get('status')).toBe('active');
    expect(linkOf(bundle, 'next')!.searchParams.getAll('_cursor')).toEqual(['AFTER']);
  });

  it('when the request URL carries a cursor but the page says none, then no link repeats the stale cursor', () => {
    const bundle = searchsetBundle({ selfUrl: `${BASE}/Flag?_cursor=STALE&status=active`, baseUrl: BASE, resources: [] });
    for (const l of bundle.link ?? []) expect(new URL(l.url).searchParams.has('_cursor')).toBe(false);
  });

  it('when a cursor needs URL escaping, then the link round-trips it exactly', () => {
    const cursor = encodeCursor({ after: 'x/y+z=', n: 1 });
    const bundle = searchsetBundle({ selfUrl: `${BASE}/Flag`, baseUrl: BASE, resources: [], nextCursor: cursor });
    expect(linkOf(bundle, 'next')!.searchParams.get('_cursor')).toBe(cursor);
  });

  it('when search parameters hold FHIR token syntax, then links keep their values', () => {
    const bundle = searchsetBundle({
      selfUrl: `${BASE}/Flag?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919`,
      baseUrl: BASE,
      resources: [],
      nextCursor: 'N',
    });
    expect(linkOf(bundle, 'next')!.searchParams.get('patient:identifier')).toBe('https://fhir.nhs.uk/Id/nhs-number|9434765919');
  });

  it('when the total is known, then it is given, including zero', () => {
    expect(searchsetBundle({ selfUrl: `${BASE}/Flag`, baseUrl: BASE, resources: [flag('a')], total: 7 }).total).toBe(7);
    expect(searchsetBundle({ selfUrl: `${BASE}/Flag`, baseUrl: BASE, resources: [], total: 0 }).total).toBe(0);
  });

  it('when the total is unknown, then the bundle has no total element', () => {
    const bundle = searchsetBundle({ selfUrl: `${BASE}/Flag`, baseUrl: BASE, resources: [] });
    expect('total' in bundle).toBe(false);
    expect(bundle.entry).toEqual([]);
  });
});

describe('pageSize', () => {
  it('when _count is absent, then the default of 20 applies', () => {
    expect(DEFAULT_PAGE_SIZE).toBe(20);
    expect(pageSize(undefined)).toBe(20);
  });

  it.each([
    ['1', 1],
    ['50', 50],
    [50, 50],
    ['100', 100],
  ])('when _count is %j, then the page size is %i', (raw, expected) => {
    expect(pageSize(raw)).toBe(expected);
  });

  it.each(['101', '1000', 1_000_000])('when _count is %j, above the cap, then it is capped at 100', (raw) => {
    expect(MAX_PAGE_SIZE).toBe(100);
    expect(pageSize(raw)).toBe(100);
  });

  it.each(['abc', '', '0', '-5', '2.5', 'NaN', 'Infinity', null, {}, ['5', '6'], Number.NaN, -1])(
    'when _count is %j, then the default applies',
    (raw) => {
      expect(pageSize(raw)).toBe(DEFAULT_PAGE_SIZE);
    },
  );
});

describe('cursors', () => {
  const isAfter = (v: unknown): v is { after: string; id: number } =>
    typeof v === 'object' && v !== null && typeof (v as { after?: unknown }).after === 'string' && typeof (v as { id?: unknown }).id === 'number';

  it('when a value is encoded, then decoding gives it back', () => {
    const value = { after: '2025-01-02T03:04:05.678Z', id: 42 };
    const cursor = encodeCursor(value);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor, isAfter)).toEqual(value);
  });

  it('when the cursor is not base64url JSON, then decoding gives undefined', () => {
    expect(decodeCursor('not a cursor!!', isAfter)).toBeUndefined();
    expect(decodeCursor('', isAfter)).toBeUndefined();
    expect(decodeCursor(Buffer.from('{"after":').toString('base64url'), isAfter)).toBeUndefined();
  });

  it('when the cursor decodes to JSON of the wrong shape, then decoding gives undefined', () => {
    expect(decodeCursor(encodeCursor({ after: 1, id: 'x' }), isAfter)).toBeUndefined();
    expect(decodeCursor(encodeCursor(null), isAfter)).toBeUndefined();
    expect(decodeCursor(encodeCursor('after'), isAfter)).toBeUndefined();
  });
});

describe('ETags', () => {
  it('when given a version id, then the ETag is weak and quoted', () => {
    expect(weakEtag(3)).toBe('W/"3"');
    expect(weakEtag('12')).toBe('W/"12"');
  });

  it.each([
    ['W/"3"', '3'],
    ['"3"', '3'],
    [' W/"17" ', '17'],
    [weakEtag(42), '42'],
  ])('when If-Match is %j, then the version is %j', (header, version) => {
    expect(versionFromIfMatch(header)).toBe(version);
  });

  it.each(['3', 'W/3', '*', '""', 'W/""', '"3", "4"', 'w/"3"', 'W/"3', ''])('when If-Match is %j, then no version is read', (header) => {
    expect(versionFromIfMatch(header)).toBeUndefined();
  });
});
