import { TestIssuer, aCarePlan, randomNhsNumber } from '@cmc/test-support';
import type { Bundle, CarePlan, DocumentReference, Flag } from 'fhir/r4';
import { validate } from './fhir-validator';
import { issuesOf, outboxEvents, useCarePlanService } from './support';

const NHS = 'https://fhir.nhs.uk/Id/nhs-number';

interface Lookup {
  nhsNumber: string;
  hasPlan: boolean;
  planId?: string;
  resuscitation?: string;
  alerts?: boolean;
  lastModified?: string;
  summaryUrl?: string;
}

describe('the flag: does this patient have a plan?', () => {
  const issuer = new TestIssuer();
  const clinicianA = issuer.bearer({ role: 'clinician', org: 'A11111' });
  const urgentCare = issuer.bearer({ role: 'urgent-care', org: 'RRU' });
  const serviceTeam = issuer.bearer({ role: 'service-team', org: 'X26' });
  const dispatch = issuer.bearer({ kind: 'client', org: 'RRU', scope: 'system/Flag.rs' });
  const h = useCarePlanService(issuer);

  const send = (method: 'GET' | 'POST' | 'PUT', url: string, auth: string, payload?: unknown, headers: Record<string, string> = {}) =>
    h.svc.app.inject({ method, url, headers: { authorization: auth, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}) });
  const lookup = async (nhs: string, auth = dispatch) => {
    const res = await send('GET', `/api/flags/${nhs}`, auth);
    expect(res.statusCode).toBe(200);
    return res.json<Lookup>();
  };

  /** A patient with a plan by A (not for CPR, with an alert), published unless said otherwise. */
  const aPlan = async (opts: { publish?: boolean; cpr?: 'for-cpr' | 'not-for-cpr' } = {}) => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    const created = await send('POST', '/fhir/R4/CarePlan', clinicianA, aCarePlan(nhs, opts.cpr ? { cpr: opts.cpr } : {}));
    expect(created.statusCode).toBe(201);
    const id = created.json<CarePlan>().id!;
    if (opts.publish !== false) expect((await send('POST', `/fhir/R4/CarePlan/${id}/$publish`, clinicianA, undefined, { 'if-match': 'W/"1"' })).statusCode).toBe(200);
    return { nhs, id };
  };

  it('when a plan is published, then the lookup says so: plan id, resuscitation status, alerts, last change and the summary', async () => {
    const { nhs, id } = await aPlan();
    const plan = (await send('GET', `/fhir/R4/CarePlan/${id}`, clinicianA)).json<CarePlan>();
    expect(await lookup(nhs)).toEqual({
      nhsNumber: nhs,
      hasPlan: true,
      planId: id,
      resuscitation: 'not-for-cpr',
      alerts: true,
      lastModified: plan.meta!.lastUpdated,
      summaryUrl: `/api/care-plans/${id}/summary`,
    });
    expect((await aPlan({ cpr: 'for-cpr' }).then(({ nhs: n }) => lookup(n))).resuscitation).toBe('for-cpr');
  });

  it('when the patient has no plan, or only a draft, then the answer is a normal "no plan", and an invalid NHS number is a 400', async () => {
    const none = randomNhsNumber();
    expect(await lookup(none)).toEqual({ nhsNumber: none, hasPlan: false });
    const { nhs } = await aPlan({ publish: false });
    expect(await lookup(nhs, urgentCare)).toEqual({ nhsNumber: nhs, hasPlan: false });
    const bad = await send('GET', '/api/flags/1234567890', dispatch);
    expect(bad.statusCode).toBe(400);
    expect(issuesOf(bad.body)[0]!.diagnostics).toMatch(/NHS number/);
  });

  it('every lookup, found or missed, is an access entry committed before the answer', async () => {
    const { nhs, id } = await aPlan();
    const miss = randomNhsNumber();
    await lookup(nhs);
    await lookup(miss);
    const found = (await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1')).map((e) => e.data).filter((d) => d.interaction === 'flag');
    expect(found).toEqual([expect.objectContaining({ outcome: 'allowed', entities: [{ resourceType: 'Flag', id, versionId: '1', nhsNumber: nhs }] })]);
    const missed = (await outboxEvents(h.svc, miss, 'cmc.access.recorded.v1')).map((e) => e.data);
    expect(missed).toEqual([expect.objectContaining({ interaction: 'flag', outcome: 'allowed', entities: [{ resourceType: 'Flag', nhsNumber: miss }] })]);
  });

  it('when many lookups arrive at once, then their entries share commits, and every one is written', async () => {
    const patients = await Promise.all([aPlan(), aPlan(), aPlan()]);
    const asked = Array.from({ length: 60 }, (_, i) => (i % 4 === 3 ? randomNhsNumber() : patients[i % 3]!.nhs));
    const answers = await Promise.all(asked.map((n) => lookup(n)));
    expect(answers.map((a) => a.hasPlan)).toEqual(asked.map((_, i) => i % 4 !== 3));
    let entries = 0;
    for (const n of new Set(asked)) entries += (await outboxEvents(h.svc, n, 'cmc.access.recorded.v1')).filter((e) => e.data.interaction === 'flag').length;
    expect(entries).toBe(asked.length);
  });

  it('the batch lookup answers up to 100 patients in the order asked, with one entry naming each; a bad number anywhere is a 400 naming it', async () => {
    const { nhs, id } = await aPlan();
    const others = Array.from({ length: 99 }, () => randomNhsNumber());
    const res = await send('POST', '/api/flags/$lookup', dispatch, { nhsNumbers: [...others.slice(0, 50), nhs, ...others.slice(50)] });
    expect(res.statusCode).toBe(200);
    const results = res.json<{ results: Lookup[] }>().results;
    expect(results).toHaveLength(100);
    expect(results[50]).toMatchObject({ nhsNumber: nhs, hasPlan: true, planId: id });
    expect(results.filter((r) => r.hasPlan)).toHaveLength(1);
    const entry = (await outboxEvents(h.svc, others[0]!, 'cmc.access.recorded.v1'))[0]!.data as { entities: unknown[] };
    expect(entry.entities).toHaveLength(100);
    const tooMany = await send('POST', '/api/flags/$lookup', dispatch, { nhsNumbers: [...others, nhs, randomNhsNumber()] });
    expect(tooMany.statusCode).toBe(400);
    const bad = await send('POST', '/api/flags/$lookup', dispatch, { nhsNumbers: [nhs, '1234567890', 'abc'] });
    expect(bad.statusCode).toBe(400);
    expect(issuesOf(bad.body).map((i) => i.expression?.[0])).toEqual(['nhsNumbers[1]', 'nhsNumbers[2]']);
  });

  it('when the plan is withdrawn, then the flag goes down: no plan in the lookup, inactive for the service team only', async () => {
    const { nhs, id } = await aPlan();
    const withdrawn = await send('POST', `/fhir/R4/CarePlan/${id}/$withdraw`, clinicianA, { resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'patient asked' }] }, { 'if-match': 'W/"2"' });
    expect(withdrawn.statusCode).toBe(200);
    expect(await lookup(nhs)).toEqual({ nhsNumber: nhs, hasPlan: false });
    const q = `/fhir/R4/Flag?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}`;
    expect((await send('GET', q, urgentCare)).json<Bundle>().entry ?? []).toHaveLength(0);
    const team = (await send('GET', `${q}&status=inactive`, serviceTeam)).json<Bundle<Flag>>();
    expect(team.entry?.map((e) => e.resource?.status)).toEqual(['inactive']);
    expect(team.entry?.[0]?.resource?.period?.end).toBeDefined();
    expect((await send('GET', `/fhir/R4/Flag/${id}`, urgentCare)).statusCode).toBe(404);
  });

  it('when the published plan changes its CPR decision, then the flag says so at once', async () => {
    const { nhs, id } = await aPlan({ cpr: 'for-cpr' });
    const current = (await send('GET', `/fhir/R4/CarePlan/${id}`, clinicianA)).json<CarePlan>();
    const notForCpr = aCarePlan(nhs, { cpr: 'not-for-cpr' }) as unknown as CarePlan;
    const res = await send('PUT', `/fhir/R4/CarePlan/${id}`, clinicianA, { ...notForCpr, id, status: current.status }, { 'if-match': 'W/"2"' });
    expect(res.statusCode).toBe(200);
    expect(await lookup(nhs)).toMatchObject({ hasPlan: true, resuscitation: 'not-for-cpr' });
  });

  it('the FHIR Flag is valid R4, found by patient, and names the plan and the resuscitation status', async () => {
    const { nhs, id } = await aPlan();
    const res = await send('GET', `/fhir/R4/Flag?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}&status=active`, urgentCare);
    expect(res.statusCode).toBe(200);
    const bundle = res.json<Bundle<Flag>>();
    expect(validate(bundle)).toEqual([]);
    const flag = bundle.entry![0]!.resource!;
    expect(flag).toMatchObject({ id, status: 'active', subject: { identifier: { system: NHS, value: nhs } } });
    expect(JSON.stringify(flag.extension)).toContain(`CarePlan/${id}`);
    expect(JSON.stringify(flag.extension)).toContain('450476008');
    const read = await send('GET', `/fhir/R4/Flag/${id}`, dispatch);
    expect(read.statusCode).toBe(200);
    expect(validate(read.json<Flag>())).toEqual([]);
    const bad = await send('GET', '/fhir/R4/Flag?patient:identifier=x|1&colour=red', urgentCare);
    expect(bad.statusCode).toBe(400);
    expect(bad.body).toMatch(/colour/);
  });

  describe('the National Record Locator shape', () => {
    const nrlClient = issuer.bearer({ kind: 'client', org: 'RRU', scope: 'system/DocumentReference.rs' });
    const EOL = 'http://snomed.info/sct|861421000000109';
    const pointers = (nhs: string, extra = '', auth = nrlClient) => send('GET', `/fhir/R4/DocumentReference?subject:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}${extra}`, auth);

    it('when an NRL consumer searches by NHS number and record type, then the published plan is one valid pointer to the summary and the printout, and the search is recorded', async () => {
      const { nhs, id } = await aPlan();
      const res = await pointers(nhs, `&type=${encodeURIComponent(EOL)}`);
      expect(res.statusCode).toBe(200);
      const bundle = res.json<Bundle<DocumentReference>>();
      expect(validate(bundle)).toEqual([]);
      expect(bundle.entry).toHaveLength(1);
      const pointer = bundle.entry![0]!.resource!;
      expect(pointer).toMatchObject({ id, status: 'current', type: { coding: [{ code: '861421000000109' }] }, subject: { identifier: { value: nhs } }, custodian: { identifier: { value: 'A11111' } } });
      expect(pointer.content.map((c) => [c.attachment.contentType, new URL(c.attachment.url!).pathname])).toEqual([
        ['application/json', `/api/care-plans/${id}/summary`],
        ['application/fhir+json', `/fhir/R4/CarePlan/${id}/$summary`],
        ['application/pdf', `/api/care-plans/${id}/print`],
      ]);
      const read = await send('GET', `/fhir/R4/DocumentReference/${id}`, nrlClient);
      expect(read.statusCode).toBe(200);
      expect(validate(read.json<DocumentReference>())).toEqual([]);
      const searches = (await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1')).map((e) => e.data).filter((d) => (d.entities as { resourceType: string }[])[0]?.resourceType === 'DocumentReference');
      expect(searches.map((d) => [d.interaction, d.outcome])).toEqual([['search', 'allowed'], ['read', 'allowed']]);
    });

    it('when there is no published plan, another record type is asked, or the plan is withdrawn, then there is no pointer; bad parameters are a 400', async () => {
      const none = randomNhsNumber();
      const empty = await pointers(none);
      expect(empty.statusCode).toBe(200);
      expect(empty.json<Bundle>().entry ?? []).toHaveLength(0);
      const { nhs, id } = await aPlan();
      expect((await pointers(nhs, `&type=${encodeURIComponent('http://snomed.info/sct|736253002')}`)).json<Bundle>().entry ?? []).toHaveLength(0);
      expect((await send('POST', `/fhir/R4/CarePlan/${id}/$withdraw`, clinicianA, { resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'patient asked' }] }, { 'if-match': 'W/"2"' })).statusCode).toBe(200);
      expect((await pointers(nhs)).json<Bundle>().entry ?? []).toHaveLength(0);
      expect((await send('GET', `/fhir/R4/DocumentReference/${id}`, nrlClient)).statusCode).toBe(404);
      for (const bad of ['/fhir/R4/DocumentReference', `/fhir/R4/DocumentReference?subject:identifier=${encodeURIComponent(`${NHS}|1234567890`)}`, `/fhir/R4/DocumentReference?subject:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}&type=nonsense`, `/fhir/R4/DocumentReference?subject:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}&author=X`]) {
        const res = await send('GET', bad, nrlClient);
        expect([bad, res.statusCode]).toEqual([bad, 400]);
        expect(issuesOf(res.body).length).toBeGreaterThan(0);
      }
      const patient = issuer.bearer({ role: 'patient', patient: nhs });
      expect((await pointers(nhs, '', patient)).statusCode).toBe(403);
      expect((await pointers(nhs, '', issuer.bearer({ kind: 'client', org: 'Y12345', scope: 'system/CarePlan.rs' }))).statusCode).toBe(403);
    });
  });

  it('patients, proxies and systems without the Flag scope are refused, and each refusal is recorded', async () => {
    const { nhs } = await aPlan();
    for (const auth of [issuer.bearer({ role: 'patient', patient: nhs }), issuer.bearer({ role: 'proxy', patient: nhs }), issuer.bearer({ kind: 'client', org: 'Y12345', scope: 'system/CarePlan.rs' })]) {
      expect((await send('GET', `/api/flags/${nhs}`, auth)).statusCode).toBe(403);
    }
    expect((await send('GET', `/api/flags/${nhs}`, '')).statusCode).toBe(401);
    const refused = (await h.svc.database.db.selectFrom('outbox').select('payload').where('type', '=', 'cmc.access.recorded.v1').execute())
      .map((r) => JSON.parse(r.payload) as { data: { outcome: string; query?: string } })
      .filter((e) => e.data.outcome === 'refused' && e.data.query === `GET /api/flags/${nhs}`);
    expect(refused.length).toBeGreaterThanOrEqual(3);
  });
});
