/**
 * Issue #10, security: SQL metacharacters in every search parameter of every search route (as the OpenAPI
 * documents list them), and in the path parameters of every read route. Each answer is a 4xx or a normal
 * answer, never a 5xx; an answer never shows more of the seeded patients, plans, consents or accounts than the
 * same search without the attack does (searches about a patient without a plan show none).
 */
import { sql } from '@cmc/db';
import { randomNhsNumber, waitFor } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';
import { NHS_SYSTEM, SERVICE_NAMES, call, inBatches, makeFixtures, startSecurityPlatform, type Fixtures, type SecurityPlatform, type ServiceName } from './support';

/** What attackers send: quotes, terminators, comments, NUL, LIKE wildcards, tautologies, unicode, very long. */
const PAYLOADS = [
  "'",
  '"',
  ';',
  '--',
  '/*',
  '*/',
  '\0',
  '\\',
  '%',
  '_',
  "' or 1=1 --",
  "' OR '1'='1",
  '" or ""="',
  "') or ('a'='a",
  '1; drop table outbox; --',
  "1' union select null, version() --",
  '$1',
  'ñ漢字😀\u202e\uFEFF',
  // a lone surrogate: sent as the bytes of invalid UTF-8 (%ED%A0%80%FF), which no encoder would make
  '\uD800',
  'x'.repeat(5000),
];

/** encodeURIComponent, except that a lone surrogate becomes bytes that are not UTF-8 at all. */
const enc = (v: string): string => encodeURIComponent(v.replace(/\uD800/g, '\u0001')).replace(/%01/g, '%ED%A0%80%FF');

interface OpenApi {
  paths: Record<string, Record<string, { parameters?: { in: string; name: string; required?: boolean }[] }>>;
}

describe('injection: SQL metacharacters in every search and path parameter', () => {
  let platform: SecurityPlatform;
  let fx: Fixtures;
  const other = randomNhsNumber();
  const today = new Date().toISOString().slice(0, 10);
  /** Strings that must not show up in an answer more than they do without the attack. */
  let markers: string[];
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    platform = await startSecurityPlatform({ audit: true });
    fx = await makeFixtures(platform, { draft: randomNhsNumber(), published: randomNhsNumber(), other });
    markers = [fx.draft.nhs, fx.published.nhs, fx.draft.id, fx.published.id, fx.consent.id, 'admin@security.test', 'Margaret'];
    tokens.serviceTeam = fx.serviceTeam;
    tokens.clinician = fx.clinicianA;
    tokens.urgentCare = await platform.mint({ sub: 'inj-urgent', role: 'urgent-care', org: 'RRU' });
    tokens.patient = await platform.mint({ sub: 'inj-patient', role: 'patient', patient: other });
    // The audit log holds the seeded accesses, so that a report or AuditEvent search that leaked would show them.
    await waitFor(
      async () => (await platform.audit!.database.db.selectFrom('audit_log').select('seq').where(sql<boolean>`${fx.published.nhs} = any(nhs_numbers)`).limit(1).execute()).length > 0 || undefined,
      20_000,
      'seeded accesses in the audit log',
    );
  });
  afterAll(async () => {
    await platform?.close();
  });

  /** Who searches each route: someone it serves, so the parameters get parsed and reach the database. */
  const searcher = (path: string): string[] => {
    if (path.startsWith('/fhir/R4/CarePlan') || path.startsWith('/fhir/R4/AllergyIntolerance')) return ['clinician', 'patient'];
    if (path.startsWith('/fhir/R4/Consent')) return ['clinician'];
    if (path.startsWith('/fhir/R4/Flag') || path.startsWith('/fhir/R4/DocumentReference') || path.startsWith('/api/flags')) return ['urgentCare'];
    if (path === '/api/notifications') return ['clinician'];
    return ['serviceTeam'];
  };
  /** The parameters a search is made with when another one is attacked: about a patient without a plan. */
  const BASE: Record<string, Record<string, string>> = {
    '/fhir/R4/CarePlan': { 'patient:identifier': `${NHS_SYSTEM}|${other}` },
    '/fhir/R4/AllergyIntolerance': { 'patient:identifier': `${NHS_SYSTEM}|${other}` },
    '/fhir/R4/Flag': { 'patient:identifier': `${NHS_SYSTEM}|${other}` },
    '/fhir/R4/DocumentReference': { 'subject:identifier': `${NHS_SYSTEM}|${other}` },
    '/fhir/R4/Consent': { 'patient:identifier': `${NHS_SYSTEM}|${other}` },
    '/fhir/R4/AuditEvent': { patient: other },
    '/api/users': { organisation: 'ZZZ999' },
    '/api/audit/reports/patient-access': { nhsNumber: other, from: '2026-01-01', to: today },
    '/api/audit/reports/agent-access': { agent: 'nobody', from: '2026-01-01', to: today },
    '/api/audit/reports/urgent-care-views': { from: '2026-01-01', to: today },
    '/api/audit/reports/plans': { from: '2026-01-01', to: today },
    '/api/audit/reports/outcomes': { from: '2026-01-01', to: today },
    '/api/audit/proofs/consistency': { first: '1' },
  };
  const query = (params: Record<string, string>) =>
    Object.entries(params)
      .map(([k, v]) => `${k}=${enc(v)}`)
      .join('&');
  const found = (body: string) => markers.filter((m) => body.includes(m));

  it('when every search parameter of every search route carries SQL metacharacters, then 4xx or a normal answer, never a 5xx, never more of anyone\'s data', async () => {
    const attempts: { service: ServiceName; path: string; who: string; param: string; value: string; url: string; baseline: string }[] = [];
    let routesSearched = 0;
    for (const service of SERVICE_NAMES) {
      const doc = (await call(platform.service(service), { method: 'GET', url: '/openapi.json' })).json<OpenApi>();
      for (const [path, ops] of Object.entries(doc.paths)) {
        const params = (ops.get?.parameters ?? []).filter((p) => p.in === 'query');
        if (params.length === 0 || path.includes('{')) continue;
        routesSearched++;
        const base = BASE[path] ?? {};
        const missing = params.filter((p) => p.required && base[p.name] === undefined).map((p) => p.name);
        expect({ path, missing }).toEqual({ path, missing: [] });
        for (const who of searcher(path)) {
          const baseline = `${path}?${query(base)}`;
          for (const p of params) {
            for (const payload of PAYLOADS) {
              // the payload alone, and after a valid value (a tautology appended to a real identifier)
              const variants = [payload, ...(base[p.name] !== undefined ? [`${base[p.name]}${payload}`] : [])];
              for (const v of variants) attempts.push({ service, path, who, param: p.name, value: v, url: `${path}?${query({ ...base, [p.name]: v })}`, baseline });
            }
          }
        }
      }
    }
    expect(routesSearched).toBeGreaterThanOrEqual(15);

    // What each search shows without the attack (a proof needs a checkpoint the log may not have yet: a 4xx).
    const baselines = new Map<string, string[]>();
    const problems: string[] = [];
    const unique = [...new Map(attempts.map((a) => [`${a.who} ${a.baseline}`, a])).entries()];
    await Promise.all(
      unique.map(async ([key, a]) => {
        const res = await call(platform.service(a.service), { method: 'GET', url: a.baseline, token: tokens[a.who]! });
        if (res.statusCode >= 500) problems.push(`baseline ${key}: ${res.statusCode}`);
        baselines.set(key, res.statusCode === 200 ? found(res.body) : []);
      }),
    );
    const statuses = new Map<number, number>();
    await inBatches(attempts, 24, async (a) => {
      const key = `${a.who} ${a.baseline}`;
      const res = await call(platform.service(a.service), { method: 'GET', url: a.url, token: tokens[a.who]! });
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      const label = `${a.who} ${a.path} ${a.param}=${JSON.stringify(a.value.slice(0, 60))}`;
      if (res.statusCode >= 500) problems.push(`${label}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      else if (res.statusCode >= 200 && res.statusCode < 300) {
        const extra = found(res.body).filter((m) => !baselines.get(key)!.includes(m));
        if (extra.length > 0) problems.push(`${label}: shows ${extra.join(', ')}`);
      } else if (res.statusCode < 400 || res.statusCode > 499) problems.push(`${label}: ${res.statusCode}`);
    });
    expect(problems).toEqual([]);
    // Something was both refused and answered: the attack reached the parsers, not only the validators.
    expect(attempts.length).toBeGreaterThan(1500);
    expect([...statuses.keys()].some((s) => s === 200)).toBe(true);
    expect([...statuses.keys()].some((s) => s === 400)).toBe(true);
  });

  it('when the path parameters of every read route carry SQL metacharacters, then 4xx or a normal answer, never a 5xx and nothing of the seeded data', async () => {
    const problems: string[] = [];
    const attempts: { service: ServiceName; url: string; who: string }[] = [];
    for (const service of SERVICE_NAMES) {
      const doc = (await call(platform.service(service), { method: 'GET', url: '/openapi.json' })).json<OpenApi>();
      for (const path of Object.keys(doc.paths).filter((p) => p.includes('{') && doc.paths[p]!.get)) {
        for (const payload of PAYLOADS) {
          for (const value of [payload, `${randomUUID()}${payload}`, `${fx.published.id}${payload}`]) {
            const url = path.replace(/\{[^}]+\}/g, enc(value));
            for (const who of searcher(path).concat(path.startsWith('/fhir/R4/CarePlan') || path.startsWith('/api/care-plans') ? ['urgentCare'] : [])) attempts.push({ service, url, who });
          }
        }
      }
    }
    await inBatches(attempts, 24, async (a) => {
      const res = await call(platform.service(a.service), { method: 'GET', url: a.url, token: tokens[a.who]! });
      const label = `${a.who} ${a.url.slice(0, 120)}`;
      if (res.statusCode >= 500) problems.push(`${label}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      else if (res.statusCode < 400 && found(res.body).length > 0) problems.push(`${label}: ${res.statusCode} shows ${found(res.body).join(', ')}`);
    });
    expect(problems).toEqual([]);
    expect(attempts.length).toBeGreaterThan(500);
  });

  it('when a patient searches with an attack on their own identifier, then 4xx or their own (empty) answer, never the published plan of another patient', async () => {
    const attacks = PAYLOADS.flatMap((p) => [`${NHS_SYSTEM}|${other}${p}`, `${NHS_SYSTEM}|${fx.published.nhs}${p}`, `${NHS_SYSTEM}|${p}`, `${p}|${fx.published.nhs}`]);
    const problems: string[] = [];
    await inBatches(attacks, 24, async (v) => {
      for (const path of ['/fhir/R4/CarePlan', '/fhir/R4/AllergyIntolerance']) {
        const res = await call(platform.carePlan, { method: 'GET', url: `${path}?patient:identifier=${enc(v)}`, token: tokens.patient! });
        if (res.statusCode >= 500 || (res.statusCode < 400 && found(res.body).length > 0)) problems.push(`${path} ${JSON.stringify(v.slice(0, 60))}: ${res.statusCode}`);
      }
    });
    expect(problems).toEqual([]);
  });
});
