import { TestIssuer, aCarePlan, randomNhsNumber } from '@cmc/test-support';
import type { AllergyIntolerance, Bundle, CarePlan } from 'fhir/r4';
import { validate } from './fhir-validator';
import { outboxEvents, useCarePlanService } from './support';

const NHS = 'https://fhir.nhs.uk/Id/nhs-number';

describe('who reads a plan, and every read is recorded', () => {
  const issuer = new TestIssuer();
  const clinicianA = issuer.bearer({ role: 'clinician', org: 'A11111' });
  const adminA = issuer.bearer({ role: 'administrator', org: 'A11111' });
  const clinicianB = issuer.bearer({ role: 'clinician', org: 'B22222' });
  const urgentCare = issuer.bearer({ role: 'urgent-care', org: 'RRU' });
  const serviceTeam = issuer.bearer({ role: 'service-team', org: 'X26' });
  const gpSystem = issuer.bearer({ kind: 'client', org: 'Y12345', scope: 'system/CarePlan.rs' });
  const noScopeSystem = issuer.bearer({ kind: 'client', org: 'Y12345', scope: 'system/Consent.rs' });
  const h = useCarePlanService(issuer);

  const get = (url: string, auth: string) => h.svc.app.inject({ method: 'GET', url, headers: { authorization: auth } });

  /** A patient with a plan by A: published unless said otherwise. */
  const aPlan = async (publish = true) => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    const created = await h.svc.app.inject({ method: 'POST', url: '/fhir/R4/CarePlan', headers: { authorization: clinicianA, 'content-type': 'application/fhir+json' }, payload: JSON.stringify(aCarePlan(nhs)) });
    expect(created.statusCode).toBe(201);
    const id = created.json<CarePlan>().id!;
    if (publish) {
      const res = await h.svc.app.inject({ method: 'POST', url: `/fhir/R4/CarePlan/${id}/$publish`, headers: { authorization: clinicianA, 'if-match': 'W/"1"' } });
      expect(res.statusCode).toBe(200);
    }
    return { nhs, id };
  };

  it('a draft is visible to its organisation\'s staff and the service team only', async () => {
    const { id } = await aPlan(false);
    const expectations: [string, number][] = [
      [clinicianA, 200],
      [adminA, 200],
      [serviceTeam, 200],
      [clinicianB, 403],
      [urgentCare, 403],
      [gpSystem, 403],
      [issuer.bearer({ role: 'patient', patient: '9434765919' }), 403],
    ];
    for (const [auth, status] of expectations) expect((await get(`/fhir/R4/CarePlan/${id}`, auth)).statusCode).toBe(status);
  });

  it('a published plan is visible to clinicians, administrators and urgent care anywhere, GP systems with the scope, and its own patient and proxy', async () => {
    const { nhs, id } = await aPlan();
    const allowed = [clinicianA, clinicianB, urgentCare, serviceTeam, gpSystem, issuer.bearer({ role: 'administrator', org: 'C33333' }), issuer.bearer({ role: 'patient', patient: nhs }), issuer.bearer({ role: 'proxy', patient: nhs })];
    for (const auth of allowed) expect((await get(`/fhir/R4/CarePlan/${id}`, auth)).statusCode).toBe(200);
    const other = randomNhsNumber();
    for (const auth of [issuer.bearer({ role: 'patient', patient: other }), issuer.bearer({ role: 'proxy', patient: other })]) expect((await get(`/fhir/R4/CarePlan/${id}`, auth)).statusCode).toBe(403);
    expect((await get(`/fhir/R4/CarePlan/${id}`, noScopeSystem)).statusCode).toBe(403);
  });

  it('every read, allowed or refused, is an access entry naming the plan, its version and the patient', async () => {
    const { nhs, id } = await aPlan();
    await get(`/fhir/R4/CarePlan/${id}`, urgentCare);
    await get(`/fhir/R4/CarePlan/${id}`, issuer.bearer({ role: 'patient', patient: randomNhsNumber() }));
    const entries = (await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1')).map((e) => e.data);
    const allowed = entries.find((e) => e.interaction === 'read' && e.outcome === 'allowed');
    expect(allowed).toMatchObject({ agent: { role: 'urgent-care', organisation: 'RRU' }, entities: [{ resourceType: 'CarePlan', id, versionId: '2', nhsNumber: nhs }] });
    expect(entries.filter((e) => e.interaction === 'read' && e.outcome === 'refused')).toHaveLength(1);
  });

  it('a search by NHS number returns the plans the caller may read, and records each one returned', async () => {
    const { nhs, id } = await aPlan();
    const res = await get(`/fhir/R4/CarePlan?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}&status=active`, urgentCare);
    expect(res.statusCode).toBe(200);
    const bundle = res.json<Bundle<CarePlan>>();
    expect(bundle.type).toBe('searchset');
    expect(bundle.entry?.map((e) => e.resource?.id)).toEqual([id]);
    const none = await get(`/fhir/R4/CarePlan?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}&status=draft`, urgentCare);
    expect(none.json<Bundle>().entry ?? []).toHaveLength(0);
    const searches = (await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1')).map((e) => e.data).filter((d) => d.interaction === 'search');
    expect(searches[0]).toMatchObject({ outcome: 'allowed', entities: [{ resourceType: 'CarePlan', id, versionId: '2', nhsNumber: nhs }] });
  });

  it('a patient searches their own plans without naming themselves, and cannot name someone else', async () => {
    const { nhs, id } = await aPlan();
    const own = await get('/fhir/R4/CarePlan', issuer.bearer({ role: 'patient', patient: nhs }));
    expect(own.json<Bundle<CarePlan>>().entry?.map((e) => e.resource?.id)).toEqual([id]);
    const other = await get(`/fhir/R4/CarePlan?patient:identifier=${encodeURIComponent(`${NHS}|${randomNhsNumber()}`)}`, issuer.bearer({ role: 'patient', patient: nhs }));
    expect(other.statusCode).toBe(403);
  });

  it('a search with a bad NHS number, an unknown parameter or a bad date is a 400 naming each', async () => {
    const res = await get('/fhir/R4/CarePlan?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|1234567890&colour=red&_lastUpdated=yesterday', clinicianA);
    expect(res.statusCode).toBe(400);
    const text = res.body;
    expect(text).toMatch(/NHS number/i);
    expect(text).toMatch(/colour/);
    expect(text).toMatch(/_lastUpdated/);
  });

  it('a search by name or birth date (two patients can share them) is a 400 naming each, on every resource, never an answer', async () => {
    const { nhs } = await aPlan();
    const patient = encodeURIComponent(`${NHS}|${nhs}`);
    for (const resource of ['CarePlan', 'AllergyIntolerance', 'Flag']) {
      for (const query of ['name=Smith&birthdate=1940-01-01', `patient:identifier=${patient}&name=Smith`, `patient:identifier=${patient}&birthdate=1940-01-01`, 'family=Smith&given=Jo']) {
        const res = await get(`/fhir/R4/${resource}?${query}`, urgentCare);
        expect([resource, query, res.statusCode]).toEqual([resource, query, 400]);
        const outcome = res.json<{ resourceType: string; issue: { diagnostics?: string }[] }>();
        expect(outcome.resourceType).toBe('OperationOutcome');
        for (const name of query.split('&').map((p) => p.split('=')[0]!).filter((n) => !n.startsWith('patient'))) {
          expect(outcome.issue.map((i) => i.diagnostics).join(' ')).toContain(`unknown search parameter ${name}`);
        }
      }
    }
  });

  it('search by _lastUpdated and date narrows the results', async () => {
    const { nhs, id } = await aPlan();
    const q = (extra: string) => get(`/fhir/R4/CarePlan?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}&${extra}`, clinicianB);
    const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    expect((await q(`_lastUpdated=ge${yesterday}`)).json<Bundle>().entry?.map((e) => e.resource?.id)).toEqual([id]);
    expect((await q(`_lastUpdated=ge${tomorrow}`)).json<Bundle>().entry ?? []).toHaveLength(0);
    expect((await q(`date=ge${tomorrow}`)).json<Bundle>().entry?.map((e) => e.resource?.id)).toEqual([id]);
    expect((await q(`date=lt${yesterday}`)).json<Bundle>().entry ?? []).toHaveLength(0);
  });

  it('allergies are AllergyIntolerance resources, read and searched under the plan\'s rule', async () => {
    const { nhs, id } = await aPlan();
    const res = await get(`/fhir/R4/AllergyIntolerance?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}`, urgentCare);
    expect(res.statusCode).toBe(200);
    const allergies = res.json<Bundle<AllergyIntolerance>>().entry?.map((e) => e.resource!) ?? [];
    expect(allergies).toHaveLength(1);
    const allergy = allergies[0]!;
    expect(JSON.stringify(allergy.code)).toMatch(/enicillin/);
    expect((await get(`/fhir/R4/AllergyIntolerance/${allergy.id}`, clinicianB)).statusCode).toBe(200);
    expect((await get(`/fhir/R4/AllergyIntolerance/${allergy.id}`, issuer.bearer({ role: 'patient', patient: randomNhsNumber() }))).statusCode).toBe(403);
    expect(JSON.stringify(allergy)).toContain(`CarePlan/${id}`);
  });

  it('_count pages a search and the next link walks every page once', async () => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const created = await h.svc.app.inject({ method: 'POST', url: '/fhir/R4/CarePlan', headers: { authorization: clinicianA, 'content-type': 'application/fhir+json' }, payload: JSON.stringify(aCarePlan(nhs)) });
      expect(created.statusCode).toBe(201);
      ids.push(created.json<CarePlan>().id!);
      if (i < 2) {
        const withdrawn = await h.svc.app.inject({ method: 'POST', url: `/fhir/R4/CarePlan/${ids[i]}/$withdraw`, headers: { authorization: clinicianA, 'if-match': 'W/"1"', 'content-type': 'application/fhir+json' }, payload: JSON.stringify({ resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'replaced' }] }) });
        expect(withdrawn.statusCode).toBe(200);
      }
    }
    const seen: string[] = [];
    let url: string | undefined = `/fhir/R4/CarePlan?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}&_count=2`;
    let pages = 0;
    while (url) {
      const res = await get(url, serviceTeam);
      expect(res.statusCode).toBe(200);
      const bundle = res.json<Bundle<CarePlan>>();
      expect(bundle.entry!.length).toBeLessThanOrEqual(2);
      seen.push(...bundle.entry!.map((e) => e.resource!.id!));
      const next = bundle.link?.find((l) => l.relation === 'next')?.url;
      url = next ? next.slice(next.indexOf('/fhir/R4/')) : undefined;
      pages++;
    }
    expect(pages).toBe(2);
    expect(seen.sort()).toEqual([...ids].sort());
  });

  it('what the API returns is valid FHIR R4 to an independent validator: a read, a searchset, a history and an allergy', async () => {
    const { nhs, id } = await aPlan();
    const read = (await get(`/fhir/R4/CarePlan/${id}`, clinicianB)).json<CarePlan>();
    const search = (await get(`/fhir/R4/CarePlan?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}`, clinicianB)).json<Bundle>();
    const history = (await get(`/fhir/R4/CarePlan/${id}/_history`, clinicianB)).json<Bundle>();
    const allergies = (await get(`/fhir/R4/AllergyIntolerance?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}`, clinicianB)).json<Bundle>();
    expect(search.entry).toHaveLength(1);
    expect(history.entry).toHaveLength(2);
    for (const resource of [read, search, history, allergies]) expect(validate(resource)).toEqual([]);
  });
});
