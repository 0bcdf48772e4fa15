/**
 * Issue #10, security: mass assignment. A client sets what the server owns (`id`, `meta`, status, author,
 * createdBy, organisation...). Where a route's body is a closed object (every write route but the FHIR
 * CarePlan, read by its own parser), each such field is refused with a 400 naming it; the CarePlan and the
 * Consent tolerate the server-owned elements FHIR clients send back, and the server's values replace them;
 * status and state are changed only by their operations (422 naming them).
 */
import { aCarePlan, aConsent, randomNhsNumber } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';
import { NHS_SYSTEM, ORG_A, SERVICE_NAMES, accessEventsByRequest, call, inBatches, makeFixtures, startSecurityPlatform, type Fixtures, type SecurityPlatform, type ServiceName } from './support';

const ODS_SYSTEM = 'https://fhir.nhs.uk/Id/ods-organization-code';
const PLAN_STATE = 'https://fhir.cmc.example/StructureDefinition/plan-state';
const LAST_UPDATED_BY = 'https://fhir.cmc.example/StructureDefinition/careplan-last-updated-by';
const FORGED_ORG = 'FORGED1';
const FORGED_USER = 'forged-user';
/** Fields a client does not own, in the names the routes' bodies would use. */
const SERVER_OWNED = ['id', 'meta', 'versionId', 'lastUpdated', 'status', 'state', 'author', 'createdBy', 'createdAt', 'recordedBy', 'updatedBy', 'organisation', 'organization', 'clientId', 'role'];

interface OpenApi {
  paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: { additionalProperties?: unknown; properties?: Record<string, unknown> } }> } }>>;
}
interface Outcome {
  resourceType: string;
  issue: { code: string; diagnostics?: string; expression?: string[] }[];
}
const named = (o: Outcome | undefined, what: string) => !!o?.issue?.some((i) => (i.expression ?? []).some((e) => e.includes(what)) || (i.diagnostics ?? '').includes(what));

describe('mass assignment: what the server owns, a client cannot set', () => {
  let platform: SecurityPlatform;
  let fx: Fixtures;
  let administratorA: string;
  const people: string[] = [];

  beforeAll(async () => {
    platform = await startSecurityPlatform();
    fx = await makeFixtures(platform, { draft: randomNhsNumber(), published: randomNhsNumber(), other: randomNhsNumber() });
    administratorA = await platform.mint({ sub: 'ma-admin', role: 'administrator', org: ORG_A });
    // Whoever a route serves, tried in turn (the first one it does not refuse is used).
    people.push(
      fx.serviceTeam,
      fx.clinicianA,
      administratorA,
      await platform.mint({ sub: 'ma-urgent', role: 'urgent-care', org: 'RRU' }),
      await platform.mint({ sub: 'ma-patient', role: 'patient', patient: fx.published.nhs }),
      await platform.mint({ sub: 'ma-client', kind: 'client', org: ORG_A, scope: 'system/CarePlan.cruds system/Consent.cruds system/Flag.rs system/Subscription.cruds' }),
    );
  });
  afterAll(async () => {
    await platform?.close();
  });

  it('when a server-owned field is added to the body of any write route with a closed body, then 400 naming it, and nothing is written', async () => {
    const attempts: { service: ServiceName; method: string; path: string; field: string }[] = [];
    // audit takes no request bodies (it is not started here)
    for (const service of SERVICE_NAMES.filter((n) => n !== 'audit')) {
      const doc = (await call(platform.service(service), { method: 'GET', url: '/openapi.json' })).json<OpenApi>();
      for (const [path, ops] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(ops)) {
          // JSON bodies only (the SMART token request is a form, whose fields identity reads one by one)
          const schema = op.requestBody?.content?.['application/json']?.schema;
          if (!schema || schema.additionalProperties !== false) continue;
          for (const field of SERVER_OWNED.filter((f) => !(f in (schema.properties ?? {})))) attempts.push({ service, method: method.toUpperCase(), path, field });
        }
      }
    }
    const routes = new Set(attempts.map((a) => `${a.method} ${a.path}`));
    expect(routes.size).toBeGreaterThanOrEqual(25);
    const problems: string[] = [];
    await inBatches(attempts, 16, async (a) => {
      const url = a.path
        .replace(/^(\/fhir\/R4\/CarePlan|\/api\/care-plans)\/\{id\}/, `$1/${fx.draft.id}`)
        .replace('/Consent/{id}', `/Consent/${fx.consent.id}`)
        .replace('{ods}', ORG_A)
        .replace(/\{[^}]+\}/g, randomUUID());
      for (const token of people) {
        const res = await call(platform.service(a.service), { method: a.method, url, token, body: { [a.field]: a.field === 'meta' ? { versionId: '99' } : FORGED_USER }, headers: { 'if-match': 'W/"1"' } });
        if (res.statusCode === 401 || res.statusCode === 403) continue;
        const outcome = res.body ? res.json<Outcome>() : undefined;
        if (res.statusCode !== 400 || !named(outcome, a.field)) problems.push(`${a.method} ${a.path} with ${a.field}: ${res.statusCode} ${res.body.slice(0, 200)}`);
        return;
      }
      problems.push(`${a.method} ${a.path}: no one in the suite may call it`);
    });
    expect(problems).toEqual([]);
    const plans = await platform.carePlan.database.db.selectFrom('care_plans').select(['id', 'version_id']).execute();
    expect(plans.map((p) => [p.id, Number(p.version_id)]).sort()).toEqual([[fx.draft.id, 1], [fx.published.id, 2]].sort());
  });

  it('when a plan is created with its id, meta, author, creation date and last-updated-by forged, then the server\'s values are stored and served', async () => {
    const nhs = randomNhsNumber();
    const consent = await call(platform.consent, { method: 'POST', url: '/fhir/R4/Consent', token: fx.clinicianA, body: aConsent(nhs) });
    expect(consent.statusCode).toBe(201);
    const forgedId = randomUUID();
    const plan = aCarePlan(nhs);
    const body = {
      ...plan,
      id: forgedId,
      meta: { versionId: '99', lastUpdated: '2001-01-01T00:00:00Z' },
      author: { type: 'Organization', identifier: { system: ODS_SYSTEM, value: FORGED_ORG } },
      created: '2001-01-01',
      extension: [
        ...(plan.extension as unknown[]),
        { url: PLAN_STATE, valueCode: 'published' },
        { url: LAST_UPDATED_BY, extension: [{ url: 'lastUpdatedBy', valueString: FORGED_USER }, { url: 'lastUpdatedByOrg', valueString: FORGED_ORG }] },
      ],
    };
    const started = Date.now();
    let res = await call(platform.carePlan, { method: 'POST', url: '/fhir/R4/CarePlan', token: fx.clinicianA, body });
    for (let i = 0; i < 100 && res.statusCode === 422 && res.body.includes('no active consent'); i++) {
      await new Promise((r) => setTimeout(r, 100));
      res = await call(platform.carePlan, { method: 'POST', url: '/fhir/R4/CarePlan', token: fx.clinicianA, body });
    }
    expect(res.statusCode).toBe(201);
    const served = res.json<{ id: string; status: string; meta: { versionId: string; lastUpdated: string }; author: { identifier: { value: string } } }>();
    expect(served.id).not.toBe(forgedId);
    expect(served.status).toBe('draft');
    expect(served.meta.versionId).toBe('1');
    expect(Date.parse(served.meta.lastUpdated)).toBeGreaterThanOrEqual(started - 5000);
    expect(served.author.identifier.value).toBe(ORG_A);
    expect(res.body).not.toContain(FORGED_ORG);
    expect(res.body).not.toContain(FORGED_USER);
    const rows = await platform.carePlan.database.db.selectFrom('care_plans').select(['id', 'state', 'organisation', 'version_id']).where('nhs_number', '=', nhs).execute();
    expect(rows.map((r) => [r.id, r.state, r.organisation.trim(), Number(r.version_id)])).toEqual([[served.id, 'draft', ORG_A, 1]]);
  });

  it('when a plan is created with a status other than draft, then 422 naming CarePlan.status', async () => {
    const res = await call(platform.carePlan, { method: 'POST', url: '/fhir/R4/CarePlan', token: fx.clinicianA, body: aCarePlan(randomNhsNumber(), { overrides: { status: 'active' } }) });
    expect(res.statusCode).toBe(422);
    expect(named(res.json<Outcome>(), 'CarePlan.status')).toBe(true);
  });

  it('when a plan is changed with forged meta and author, then the server\'s come back; a different id, status, state or patient is refused naming it', async () => {
    const put = (body: Record<string, unknown>, version: string) =>
      call(platform.carePlan, { method: 'PUT', url: `/fhir/R4/CarePlan/${fx.draft.id}`, token: fx.clinicianA, body, headers: { 'if-match': `W/"${version}"` } });
    const base = aCarePlan(fx.draft.nhs, { overrides: { id: fx.draft.id } });
    const refusals: [Record<string, unknown>, number, string][] = [
      [{ ...base, id: randomUUID() }, 400, 'CarePlan.id'],
      [{ ...base, status: 'active' }, 422, 'CarePlan.status'],
      [{ ...base, extension: [...(base.extension as unknown[]), { url: PLAN_STATE, valueCode: 'published' }] }, 422, 'plan-state'],
      [{ ...aCarePlan(randomNhsNumber()), id: fx.draft.id }, 422, 'another patient'],
    ];
    for (const [body, status, what] of refusals) {
      const res = await put(body, '1');
      expect({ what, status: res.statusCode, named: named(res.json<Outcome>(), what) }).toEqual({ what, status, named: true });
    }
    const started = Date.now();
    const res = await put({ ...base, meta: { versionId: '99', lastUpdated: '2001-01-01T00:00:00Z' }, author: { identifier: { system: ODS_SYSTEM, value: FORGED_ORG } }, created: '2001-01-01' }, '1');
    expect(res.statusCode).toBe(200);
    const served = res.json<{ id: string; meta: { versionId: string; lastUpdated: string }; author: { identifier: { value: string } } }>();
    expect([served.id, served.meta.versionId, served.author.identifier.value]).toEqual([fx.draft.id, '2', ORG_A]);
    expect(Date.parse(served.meta.lastUpdated)).toBeGreaterThanOrEqual(started - 5000);
    expect(res.body).not.toContain(FORGED_ORG);
  });

  it('when an administrator sends a plan with a clinical section changed, then 403 naming the section, the plan unchanged, and the refusal recorded', async () => {
    const before = await platform.carePlan.database.db.selectFrom('care_plans').select('version_id').where('id', '=', fx.published.id).executeTakeFirstOrThrow();
    const requestId = `ma-${randomUUID()}`;
    const res = await call(platform.carePlan, {
      method: 'PUT',
      url: `/fhir/R4/CarePlan/${fx.published.id}`,
      token: administratorA,
      body: aCarePlan(fx.published.nhs, { cpr: 'for-cpr', overrides: { id: fx.published.id, status: 'active' } }),
      headers: { 'if-match': `W/"${before.version_id}"`, 'x-request-id': requestId },
    });
    expect(res.statusCode).toBe(403);
    expect(named(res.json<Outcome>(), 'resuscitation')).toBe(true);
    const after = await platform.carePlan.database.db.selectFrom('care_plans').select('version_id').where('id', '=', fx.published.id).executeTakeFirstOrThrow();
    expect(Number(after.version_id)).toBe(Number(before.version_id));
    expect((await accessEventsByRequest(platform.carePlan)).get(requestId)).toEqual([expect.objectContaining({ outcome: 'refused', interaction: 'update' })]);
  });

  it('when a consent is recorded with forged meta, then the server\'s version and time are stored; a status other than active is a 400 naming it', async () => {
    const started = Date.now();
    const res = await call(platform.consent, { method: 'POST', url: '/fhir/R4/Consent', token: fx.clinicianA, body: aConsent(randomNhsNumber(), { meta: { versionId: '99', lastUpdated: '2001-01-01T00:00:00Z' } }) });
    expect(res.statusCode).toBe(201);
    const served = res.json<{ id: string; meta: { versionId: string; lastUpdated: string }; organization: { identifier: { value: string } }[] }>();
    expect(served.meta.versionId).toBe('1');
    expect(Date.parse(served.meta.lastUpdated)).toBeGreaterThanOrEqual(started - 5000);
    expect(served.organization.map((o) => o.identifier.value)).toEqual([ORG_A]);
    const stored = await platform.consent.database.db.selectFrom('consents').select(['version_id', 'recorded_by', 'recorded_by_org']).where('id', '=', served.id).executeTakeFirstOrThrow();
    expect([Number(stored.version_id), stored.recorded_by, stored.recorded_by_org]).toEqual([1, 'sec-clinician-a', ORG_A]);
    const inactive = await call(platform.consent, { method: 'POST', url: '/fhir/R4/Consent', token: fx.clinicianA, body: aConsent(randomNhsNumber(), { status: 'inactive' }) });
    expect(inactive.statusCode).toBe(400);
    expect(named(inactive.json<Outcome>(), 'status')).toBe(true);
  });

  it('when a consent is withdrawn with another organisation or a forged version in the body, then the organisation is refused (naming it) or ignored, and the version is the server\'s', async () => {
    const withdraw = (extra: Record<string, unknown>) =>
      call(platform.consent, {
        method: 'PUT',
        url: `/fhir/R4/Consent/${fx.consent.id}`,
        token: fx.clinicianA,
        headers: { 'if-match': 'W/"1"' },
        body: { ...fx.consent.resource, status: 'inactive', extension: [{ url: 'https://fhir.cmc.example/StructureDefinition/consent-withdrawal-reason', valueString: 'the patient asked' }], ...extra },
      });
    const stored = () => platform.consent.database.db.selectFrom('consents').select(['resource', 'recorded_by_org', 'version_id']).where('id', '=', fx.consent.id).executeTakeFirstOrThrow();
    let res = await withdraw({ organization: [{ identifier: { system: ODS_SYSTEM, value: FORGED_ORG } }], meta: { versionId: '99', lastUpdated: '2001-01-01T00:00:00Z' } });
    // Either safe answer: refused naming Consent.organization (nothing written), or the organisation ignored.
    if (res.statusCode !== 200) {
      expect([res.statusCode, named(res.json<Outcome>(), 'organization')]).toEqual([422, true]);
      expect(Number((await stored()).version_id)).toBe(1);
      res = await withdraw({ meta: { versionId: '99', lastUpdated: '2001-01-01T00:00:00Z' } });
    }
    expect([res.statusCode, res.statusCode === 200 ? '' : res.body]).toEqual([200, '']);
    const served = res.json<{ meta: { versionId: string }; organization: { identifier: { value: string } }[] }>();
    expect(served.meta.versionId).toBe('2');
    expect(served.organization.map((o) => o.identifier.value)).toEqual([ORG_A]);
    expect(res.body).not.toContain(FORGED_ORG);
    const row = await stored();
    expect([Number(row.version_id), row.recorded_by_org, JSON.stringify(row.resource).includes(FORGED_ORG)]).toEqual([2, ORG_A, false]);
  });

  it('when a system asks for a subscription in a state of its choosing, then it is active (or 400 naming status); its owner is the token\'s client', async () => {
    const client = await platform.mint({ sub: `ma-gp-${randomUUID().slice(0, 8)}`, kind: 'client', org: ORG_A, scope: 'system/Subscription.cruds' });
    const subscription = (status: string) => ({
      resourceType: 'Subscription',
      status,
      reason: 'GP system',
      criteria: `CarePlan?patient:identifier=${NHS_SYSTEM}|${fx.published.nhs}`,
      channel: { type: 'rest-hook', endpoint: 'https://gp.example/hook', payload: 'application/fhir+json' },
    });
    for (const status of ['off', 'error']) {
      const res = await call(platform.notification, { method: 'POST', url: '/fhir/R4/Subscription', token: client, body: subscription(status) });
      expect({ status, code: res.statusCode, named: named(res.json<Outcome>(), 'status') }).toEqual({ status, code: 400, named: true });
    }
    const res = await call(platform.notification, { method: 'POST', url: '/fhir/R4/Subscription', token: client, body: subscription('requested') });
    expect(res.statusCode).toBe(201);
    const made = res.json<{ id: string; status: string }>();
    expect(made.status).toBe('active');
    const row = await platform.notification.database.db.selectFrom('subscriptions').select(['client_id', 'organisation']).where('id', '=', made.id).executeTakeFirstOrThrow();
    expect(row.organisation).toBe(ORG_A);
    expect(row.client_id).toMatch(/^ma-gp-/);
  });
});
