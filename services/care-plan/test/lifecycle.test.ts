import { TestIssuer, aCarePlan, randomNhsNumber } from '@cmc/test-support';
import type { CarePlan } from 'fhir/r4';
import { issuesOf, outboxEvents, useCarePlanService } from './support';

const STATE_URL = 'https://fhir.cmc.example/StructureDefinition/plan-state';
const stateOf = (plan: CarePlan) => plan.extension?.find((e) => e.url === STATE_URL)?.valueCode;

describe('a plan\'s lifecycle: draft, awaiting approval, published, withdrawn', () => {
  const issuer = new TestIssuer();
  const clinicianA = issuer.bearer({ role: 'clinician', org: 'A11111' });
  const adminA = issuer.bearer({ role: 'administrator', org: 'A11111' });
  const clinicianB = issuer.bearer({ role: 'clinician', org: 'B22222' });
  const urgentCare = issuer.bearer({ role: 'urgent-care', org: 'RRU' });
  const serviceTeam = issuer.bearer({ role: 'service-team', org: 'X26' });
  const h = useCarePlanService(issuer);

  const send = (method: 'POST' | 'PUT' | 'GET', url: string, auth: string, payload?: unknown, headers: Record<string, string> = {}) =>
    h.svc.app.inject({
      method,
      url,
      headers: { authorization: auth, ...(payload !== undefined ? { 'content-type': 'application/fhir+json' } : {}), ...headers },
      ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
    });
  const create = (body: unknown, auth = clinicianA) => send('POST', '/fhir/R4/CarePlan', auth, body);
  const op = (id: string, name: string, auth: string, version: string | undefined, payload?: unknown) =>
    send('POST', `/fhir/R4/CarePlan/${id}/${name}`, auth, payload, version ? { 'if-match': `W/"${version}"` } : {});
  const put = (id: string, body: unknown, auth: string, version?: string) => send('PUT', `/fhir/R4/CarePlan/${id}`, auth, body, version ? { 'if-match': `W/"${version}"` } : {});

  /** A patient with consent and a draft written by a clinician of A; resolves to the stored plan. */
  const aDraft = async (opts: Parameters<typeof aCarePlan>[1] = {}) => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    const res = await create(aCarePlan(nhs, opts));
    expect(res.statusCode).toBe(201);
    return { nhs, plan: res.json<CarePlan>() };
  };
  const planCount = async (nhs: string) =>
    Number((await h.svc.database.db.selectFrom('care_plans').select((eb) => eb.fn.countAll<string>().as('n')).where('nhs_number', '=', nhs).executeTakeFirstOrThrow()).n);

  it('when there is no active consent, then creating a plan is a 422 that says so, and nothing is stored', async () => {
    const nhs = randomNhsNumber();
    const res = await create(aCarePlan(nhs));
    expect(res.statusCode).toBe(422);
    expect(issuesOf(res.body)[0]!.diagnostics).toMatch(/no active consent/);
    expect(await planCount(nhs)).toBe(0);
    expect(await outboxEvents(h.svc, nhs, 'cmc.careplan.created.v1')).toHaveLength(0);
  });

  it('when a clinician creates a plan, then 201 with Location, ETag, a draft linked to the consent, and a created event', async () => {
    const nhs = randomNhsNumber();
    const consentId = await h.grantConsent(nhs);
    const res = await create(aCarePlan(nhs));
    expect(res.statusCode).toBe(201);
    const plan = res.json<CarePlan>();
    expect(res.headers.location).toMatch(new RegExp(`/fhir/R4/CarePlan/${plan.id}/_history/1$`));
    expect(res.headers.etag).toBe('W/"1"');
    expect(plan.status).toBe('draft');
    expect(stateOf(plan)).toBe('draft');
    expect(plan.supportingInfo).toEqual(expect.arrayContaining([expect.objectContaining({ reference: `Consent/${consentId}` })]));
    const [created] = await outboxEvents(h.svc, nhs, 'cmc.careplan.created.v1');
    expect(created!.data).toMatchObject({ planId: plan.id, versionId: '1', state: 'draft', organisation: 'A11111' });
  });

  it('when the patient already has a plan, then a second is a 409 that names the first', async () => {
    const { nhs, plan } = await aDraft();
    const res = await create(aCarePlan(nhs), clinicianB);
    expect(res.statusCode).toBe(409);
    expect(issuesOf(res.body)[0]!.diagnostics).toContain(`CarePlan/${plan.id}`);
    expect(await planCount(nhs)).toBe(1);
  });

  it('when an administrator writes clinical sections, then 403 naming each, and nothing is stored', async () => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    const res = await create(aCarePlan(nhs), adminA);
    expect(res.statusCode).toBe(403);
    const issues = issuesOf(res.body);
    expect(issues.map((i) => i.diagnostics).join(' ')).toMatch(/resuscitation/);
    expect(issues.every((i) => (i.expression?.length ?? 0) > 0)).toBe(true);
    expect(await planCount(nhs)).toBe(0);
  });

  it('when an administrator writes the non-clinical sections and submits, then the plan awaits approval; an administrator cannot publish it', async () => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    const body = aCarePlan(nhs, { omit: ['background', 'resuscitation', 'recommendations', 'medication', 'allergies', 'emergencyPlan', 'approval'] });
    const created = await create(body, adminA);
    expect(created.statusCode).toBe(201);
    const id = created.json<CarePlan>().id!;
    const submitted = await op(id, '$submit', adminA, '1');
    expect(submitted.statusCode).toBe(200);
    expect(submitted.json<CarePlan>().status).toBe('draft');
    expect(stateOf(submitted.json<CarePlan>())).toBe('awaiting-approval');
    const publish = await op(id, '$publish', adminA, '2');
    expect(publish.statusCode).toBe(403);
    const read = await send('GET', `/fhir/R4/CarePlan/${id}`, adminA);
    expect(stateOf(read.json<CarePlan>())).toBe('awaiting-approval');
    expect((await outboxEvents(h.svc, nhs, 'cmc.careplan.submitted.v1'))).toHaveLength(1);
  });

  it('when a clinician publishes an incomplete plan, then 422 naming every missing field at once, and it stays a draft', async () => {
    const { plan } = await aDraft({ omit: ['background', 'allergies', 'approval'] });
    const res = await op(plan.id!, '$publish', clinicianA, '1');
    expect(res.statusCode).toBe(422);
    const text = issuesOf(res.body).map((i) => i.diagnostics).join('\n');
    expect(text).toMatch(/main diagnosis/);
    expect(text).toMatch(/WHO performance status/);
    expect(text).toMatch(/prognosis/);
    expect(text).toMatch(/allergies/);
    expect(text).toMatch(/review the plan/);
    expect(issuesOf(res.body).every((i) => (i.expression?.length ?? 0) > 0)).toBe(true);
    const read = await send('GET', `/fhir/R4/CarePlan/${plan.id}`, clinicianA);
    expect(read.json<CarePlan>().meta?.versionId).toBe('1');
  });

  it('when a clinician publishes a complete plan, then it is active, dated, and urgent care can read it; the review date defaults to 3 months', async () => {
    const { nhs, plan } = await aDraft({ overrides: { period: undefined } });
    expect((await send('GET', `/fhir/R4/CarePlan/${plan.id}`, urgentCare)).statusCode).toBe(403);
    const res = await op(plan.id!, '$publish', clinicianA, '1');
    expect(res.statusCode).toBe(200);
    const published = res.json<CarePlan>();
    expect(published.status).toBe('active');
    expect(published.meta?.versionId).toBe('2');
    expect(published.period?.start).toBeDefined();
    const expected = new Date();
    expected.setUTCMonth(expected.getUTCMonth() + 3);
    expect(published.period?.end?.slice(0, 7)).toBe(expected.toISOString().slice(0, 7));
    expect((await send('GET', `/fhir/R4/CarePlan/${plan.id}`, urgentCare)).statusCode).toBe(200);
    expect(await outboxEvents(h.svc, nhs, 'cmc.careplan.published.v1')).toHaveLength(1);
  });

  it('when a published plan is edited, then a new version is kept beside the old; a stale or missing If-Match is refused', async () => {
    const { plan } = await aDraft();
    await op(plan.id!, '$publish', clinicianA, '1');
    const current = (await send('GET', `/fhir/R4/CarePlan/${plan.id}`, clinicianB)).json<CarePlan>();
    expect(current.activity?.length).toBeGreaterThan(0);
    const before = current.activity![0]!.detail!.description;
    const changed: CarePlan = { ...current, activity: current.activity!.map((a, i) => (i === 0 ? { detail: { ...a.detail!, description: 'Call the hospice 24h line first' } } : a)) };
    expect((await put(plan.id!, changed, clinicianB)).statusCode).toBe(428);
    expect((await put(plan.id!, changed, clinicianB, '1')).statusCode).toBe(412);
    const ok = await put(plan.id!, changed, clinicianB, '2');
    expect(ok.statusCode).toBe(200);
    expect(ok.json<CarePlan>().meta?.versionId).toBe('3');
    expect(ok.json<CarePlan>().status).toBe('active');
    const v1 = await send('GET', `/fhir/R4/CarePlan/${plan.id}/_history/1`, clinicianB);
    expect(v1.statusCode).toBe(200);
    expect(v1.json<CarePlan>().status).toBe('draft');
    expect(ok.json<CarePlan>().activity![0]!.detail!.description).toBe('Call the hospice 24h line first');
    const v2 = await send('GET', `/fhir/R4/CarePlan/${plan.id}/_history/2`, clinicianB);
    expect(v2.json<CarePlan>().activity![0]!.detail!.description).toBe(before);
    const history = await send('GET', `/fhir/R4/CarePlan/${plan.id}/_history`, clinicianB);
    expect(history.json<{ total: number }>().total).toBe(3);
  });

  it('when a PUT tries to change the status, then 422 pointing at $publish, and nothing changes', async () => {
    const { plan } = await aDraft();
    const res = await put(plan.id!, { ...plan, status: 'active' }, clinicianA, '1');
    expect(res.statusCode).toBe(422);
    expect(issuesOf(res.body)[0]!.expression).toEqual(['CarePlan.status']);
    expect((await send('GET', `/fhir/R4/CarePlan/${plan.id}`, clinicianA)).json<CarePlan>().meta?.versionId).toBe('1');
  });

  it('when the plan says not for CPR but full escalation, or a review date over 12 months away, then 422 naming each', async () => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    const far = new Date();
    far.setUTCMonth(far.getUTCMonth() + 13);
    const body = aCarePlan(nhs, { cpr: 'not-for-cpr', overrides: { period: { end: far.toISOString().slice(0, 10) } } });
    const inconsistent = JSON.parse(JSON.stringify(body).replace('"symptom-control"', '"full-escalation"')) as unknown;
    const res = await create(inconsistent);
    expect(res.statusCode).toBe(422);
    const issues = issuesOf(res.body);
    expect(issues.map((i) => i.diagnostics).join('\n')).toMatch(/not for CPR/);
    expect(issues.map((i) => i.diagnostics).join('\n')).toMatch(/more than 12 months/);
    expect(await planCount(nhs)).toBe(0);
  });

  it('when a clinician of another organisation tries to publish or read a draft, then 403, recorded as refused', async () => {
    const { nhs, plan } = await aDraft();
    expect((await op(plan.id!, '$publish', clinicianB, '1')).statusCode).toBe(403);
    expect((await send('GET', `/fhir/R4/CarePlan/${plan.id}`, clinicianB)).statusCode).toBe(403);
    const accesses = await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1');
    expect(accesses.map((a) => a.data)).toEqual(expect.arrayContaining([expect.objectContaining({ interaction: 'update', outcome: 'refused' }), expect.objectContaining({ interaction: 'read', outcome: 'refused' })]));
  });

  it('when a clinician withdraws a published plan, then only the service team can still see it, and publishing it again is a 409', async () => {
    const { nhs, plan } = await aDraft();
    await op(plan.id!, '$publish', clinicianA, '1');
    const withdrawn = await op(plan.id!, '$withdraw', clinicianA, '2', { resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'patient moved out of area' }] });
    expect(withdrawn.statusCode).toBe(200);
    expect(withdrawn.json<CarePlan>().status).toBe('revoked');
    expect((await send('GET', `/fhir/R4/CarePlan/${plan.id}`, clinicianA)).statusCode).toBe(403);
    expect((await send('GET', `/fhir/R4/CarePlan/${plan.id}`, urgentCare)).statusCode).toBe(403);
    expect((await send('GET', `/fhir/R4/CarePlan/${plan.id}`, serviceTeam)).statusCode).toBe(200);
    expect((await op(plan.id!, '$publish', clinicianA, '3')).statusCode).toBe(409);
    const [event] = await outboxEvents(h.svc, nhs, 'cmc.careplan.withdrawn.v1');
    expect(event!.data).toMatchObject({ state: 'withdrawn', reason: 'patient moved out of area', byConsentWithdrawal: false });
    // The patient may now have a new plan.
    expect((await create(aCarePlan(nhs))).statusCode).toBe(201);
  });

  it('when urgent care tries to write, then 403 and nothing is stored', async () => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    expect((await create(aCarePlan(nhs), urgentCare)).statusCode).toBe(403);
    expect(await planCount(nhs)).toBe(0);
  });

  it('when the client prefers return=minimal, then the create answers 201 with Location and ETag and no body', async () => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    const res = await send('POST', '/fhir/R4/CarePlan', clinicianA, aCarePlan(nhs), { prefer: 'return=minimal' });
    expect(res.statusCode).toBe(201);
    expect(res.body).toBe('');
    expect(res.headers.location).toMatch(/\/fhir\/R4\/CarePlan\/[0-9a-f-]{36}\/_history\/1$/);
    expect(res.headers.etag).toBe('W/"1"');
  });
});
