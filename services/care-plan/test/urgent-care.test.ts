import { TestIssuer, aCarePlan, randomNhsNumber } from '@cmc/test-support';
import type { Bundle, CarePlan } from 'fhir/r4';
import { validate } from './fhir-validator';
import { containsText, readPdf } from './pdf-text';
import { issuesOf, outboxEvents, useCarePlanService } from './support';

interface Summary {
  planId: string;
  versionId: string;
  patient: { nhsNumber: string; name: { family: string } };
  resuscitation: { decision: string };
  allergies: unknown;
  alerts: unknown[];
  homeAccess: unknown;
  diagnoses: { main: unknown };
  ceilingOfTreatment: unknown;
  preferences: unknown;
  emergencyPlan: unknown[];
  contacts: unknown[];
  lastModified: { at: string; by: string; organisation?: string };
  review: { date?: string; dueBecause?: string };
  notes: { text: string; author: string; role: string; organisation: string; admission: boolean }[];
}

describe('urgent care: the summary, notes, death, and the patient\'s own view', () => {
  const issuer = new TestIssuer();
  const clinicianA = issuer.bearer({ role: 'clinician', org: 'A11111', sub: 'nurse-a' });
  const clinicianB = issuer.bearer({ role: 'clinician', org: 'B22222' });
  const gpClinician = issuer.bearer({ role: 'clinician', org: 'Y12345' });
  const urgentCare = issuer.bearer({ role: 'urgent-care', org: 'RRU', sub: 'paramedic-1' });
  const serviceTeam = issuer.bearer({ role: 'service-team', org: 'X26' });
  const dispatch = issuer.bearer({ kind: 'client', org: 'RRU', scope: 'system/Flag.rs' });
  const h = useCarePlanService(issuer);

  const send = (method: 'GET' | 'POST' | 'PUT', url: string, auth: string, payload?: unknown, headers: Record<string, string> = {}) =>
    h.svc.app.inject({ method, url, headers: { authorization: auth, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}), ...headers }, ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}) });
  const aPlan = async (publish = true) => {
    const nhs = randomNhsNumber();
    await h.grantConsent(nhs);
    const created = await send('POST', '/fhir/R4/CarePlan', clinicianA, aCarePlan(nhs));
    expect(created.statusCode).toBe(201);
    const id = created.json<CarePlan>().id!;
    if (publish) expect((await send('POST', `/fhir/R4/CarePlan/${id}/$publish`, clinicianA, undefined, { 'if-match': 'W/"1"' })).statusCode).toBe(200);
    return { nhs, id };
  };
  const summary = (id: string, auth = urgentCare) => send('GET', `/api/care-plans/${id}/summary`, auth);
  const flagOf = async (nhs: string) => (await send('GET', `/api/flags/${nhs}`, dispatch)).json<{ hasPlan: boolean; lastModified?: string }>();

  describe('the summary', () => {
    it('when urgent care asks for a published plan\'s summary, then every section of the one screen is there, and the access is recorded', async () => {
      const { nhs, id } = await aPlan();
      const res = await summary(id);
      expect(res.statusCode).toBe(200);
      const s = res.json<Summary>();
      expect(s).toMatchObject({ planId: id, versionId: '2', patient: { nhsNumber: nhs, name: { family: 'Smith' } }, resuscitation: { decision: 'not-for-cpr' }, lastModified: { by: 'nurse-a', organisation: 'A11111' } });
      for (const section of ['allergies', 'homeAccess', 'ceilingOfTreatment', 'preferences'] as const) expect(s[section]).toBeTruthy();
      expect(s.alerts.length).toBeGreaterThan(0);
      expect(s.emergencyPlan.length).toBeGreaterThan(0);
      expect(s.contacts.length).toBeGreaterThan(0);
      expect(s.diagnoses.main).toBeTruthy();
      expect(s.review.date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      const entries = (await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1')).map((e) => e.data).filter((d) => d.interaction === 'summary');
      expect(entries).toEqual([expect.objectContaining({ outcome: 'allowed', entities: [{ resourceType: 'CarePlan', id, versionId: '2', nhsNumber: nhs }] })]);
    });

    it('when a GP system asks for the FHIR $summary, then a valid collection Bundle holds the plan with the urgent care notes, its allergies and its active flag', async () => {
      const { nhs, id } = await aPlan();
      expect((await send('POST', `/api/care-plans/${id}/notes`, urgentCare, { text: 'Admitted to St Elsewhere', admission: true })).statusCode).toBe(201);
      const gpSystem = issuer.bearer({ kind: 'client', org: 'Y12345', scope: 'system/CarePlan.rs' });
      const res = await send('GET', `/fhir/R4/CarePlan/${id}/$summary`, gpSystem);
      expect(res.statusCode).toBe(200);
      const bundle = res.json<Bundle>();
      expect(validate(bundle)).toEqual([]);
      expect(bundle.type).toBe('collection');
      const byType = (t: string) => (bundle.entry ?? []).map((e) => e.resource).filter((r) => r?.resourceType === t);
      const [plan] = byType('CarePlan') as CarePlan[];
      expect(plan?.id).toBe(id);
      expect(plan?.note?.map((n) => n.text)).toEqual(['[Admitted to hospital] Admitted to St Elsewhere']);
      expect(plan?.note?.[0]?.authorString).toBe('paramedic-1 (urgent-care, RRU)');
      expect(byType('AllergyIntolerance').length).toBeGreaterThan(0);
      expect(byType('Flag')).toEqual([expect.objectContaining({ id, status: 'active' })]);
      const entries = (await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1')).map((e) => e.data).filter((d) => d.interaction === 'summary');
      expect(entries).toEqual([expect.objectContaining({ outcome: 'allowed' })]);
      expect(entries[0]?.agent).toMatchObject({ kind: 'client', organisation: 'Y12345' });
      const draft = await aPlan(false);
      expect((await send('GET', `/fhir/R4/CarePlan/${draft.id}/$summary`, urgentCare)).statusCode).toBe(403);
    });

    it('when the plan is a draft, then urgent care is refused (recorded) and its own organisation is told it is not published', async () => {
      const { nhs, id } = await aPlan(false);
      expect((await summary(id)).statusCode).toBe(403);
      expect((await summary(id, clinicianA)).statusCode).toBe(409);
      const refused = (await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1')).map((e) => e.data).filter((d) => d.interaction === 'summary');
      expect(refused.map((d) => d.outcome)).toEqual(['refused', 'refused']);
      expect((await summary('00000000-0000-4000-8000-000000000000')).statusCode).toBe(404);
    });
  });

  describe('the printout', () => {
    const print = (id: string, auth = urgentCare) => send('GET', `/api/care-plans/${id}/print`, auth);

    it('when a reader prints a published plan, then a PDF with the version and the printer on every page comes back, and the access is recorded as a print', async () => {
      const { nhs, id } = await aPlan();
      const res = await print(id);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe('application/pdf');
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.headers['content-disposition']).toBe(`inline; filename="care-plan-${id}-v2.pdf"`);
      const { pages } = await readPdf(res.rawPayload);
      const nhsSpaced = `${nhs.slice(0, 3)} ${nhs.slice(3, 6)} ${nhs.slice(6)}`;
      for (const page of pages) {
        expect(page).toContain('Plan version 2');
        expect(page).toContain(nhsSpaced);
        expect(containsText(page, 'paramedic-1')).toBe(true);
      }
      expect(pages[0]).toContain('NOT FOR CPR');
      const entries = (await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1')).map((e) => e.data).filter((d) => d.interaction === 'print');
      expect(entries).toEqual([expect.objectContaining({ outcome: 'allowed', entities: [{ resourceType: 'CarePlan', id, versionId: '2', nhsNumber: nhs }] })]);
    });

    it('when the plan is a draft, another organisation asks, or another patient asks, then no PDF comes back and each refusal is recorded', async () => {
      const { nhs, id } = await aPlan(false);
      expect((await print(id)).statusCode).toBe(403);
      expect((await print(id, clinicianA)).statusCode).toBe(409);
      const published = await aPlan();
      const stranger = issuer.bearer({ role: 'patient', sub: 'someone-else', patient: randomNhsNumber() });
      const refusedPublished = await print(published.id, stranger);
      expect(refusedPublished.statusCode).toBe(403);
      expect(refusedPublished.headers['content-type']).not.toContain('pdf');
      const own = issuer.bearer({ role: 'patient', sub: 'the-patient', patient: published.nhs });
      expect((await print(published.id, own)).statusCode).toBe(200);
      const refused = (await outboxEvents(h.svc, nhs, 'cmc.access.recorded.v1')).map((e) => e.data).filter((d) => d.interaction === 'print');
      expect(refused.map((d) => d.outcome)).toEqual(['refused', 'refused']);
      const onPublished = (await outboxEvents(h.svc, published.nhs, 'cmc.access.recorded.v1')).map((e) => e.data).filter((d) => d.interaction === 'print');
      expect(onPublished.map((d) => d.outcome)).toEqual(['refused', 'allowed']);
      expect((await print('00000000-0000-4000-8000-000000000000')).statusCode).toBe(404);
    });
  });

  describe('notes from urgent care', () => {
    it('when urgent care adds a note, then it is kept with author, organisation and time, shown in the summary, and an event (without its text) tells the GP', async () => {
      const { nhs, id } = await aPlan();
      const res = await send('POST', `/api/care-plans/${id}/notes`, urgentCare, { text: '111 referred to 24h nursing' });
      expect(res.statusCode).toBe(201);
      expect(res.json<{ planVersionId: string }>().planVersionId).toBe('2');
      const s = (await summary(id, clinicianB)).json<Summary>();
      expect(s.notes).toEqual([expect.objectContaining({ text: '111 referred to 24h nursing', author: 'paramedic-1', role: 'urgent-care', organisation: 'RRU', admission: false })]);
      const events = await outboxEvents(h.svc, nhs, 'cmc.careplan.note-added.v1');
      expect(events).toHaveLength(1);
      expect(events[0]!.data).toMatchObject({ planId: id, admission: false, gpPractice: 'Y12345' });
      expect(JSON.stringify(events[0])).not.toContain('24h nursing');
    });

    it('when a note says the patient was admitted, then the review is due today in a new version, and the flag shows the change', async () => {
      const { nhs, id } = await aPlan();
      const before = await flagOf(nhs);
      const res = await send('POST', `/api/care-plans/${id}/notes`, clinicianB, { text: 'Admitted to St Thomas\' with pneumonia', admission: true });
      expect(res.statusCode).toBe(201);
      const today = new Date().toISOString().slice(0, 10);
      expect(res.json()).toMatchObject({ planVersionId: '3', reviewDate: today });
      const s = (await summary(id)).json<Summary>();
      expect(s.review).toEqual({ date: today, dueBecause: expect.stringMatching(/admitted/) as unknown });
      const plan = (await send('GET', `/fhir/R4/CarePlan/${id}`, clinicianA)).json<CarePlan>();
      expect(plan.period?.end).toBe(today);
      expect((await flagOf(nhs)).lastModified).not.toBe(before.lastModified);
    });

    it('when a note is empty, too long, has unknown fields, or is written by someone who may not, then 4xx and nothing is stored', async () => {
      const { nhs, id } = await aPlan();
      for (const body of [{ text: '' }, { text: '   ' }, { text: 'x'.repeat(1001) }, { text: 'ok', colour: 'red' }, { admission: true }]) {
        const res = await send('POST', `/api/care-plans/${id}/notes`, urgentCare, body);
        expect(res.statusCode).toBe(400);
        expect(issuesOf(res.body).length).toBeGreaterThan(0);
      }
      expect((await send('POST', `/api/care-plans/${id}/notes`, issuer.bearer({ role: 'patient', patient: nhs }), { text: 'hello' })).statusCode).toBe(403);
      expect((await send('POST', `/api/care-plans/${id}/notes`, issuer.bearer({ role: 'administrator', org: 'A11111' }), { text: 'hello' })).statusCode).toBe(403);
      const draft = await aPlan(false);
      expect((await send('POST', `/api/care-plans/${draft.id}/notes`, urgentCare, { text: 'hello' })).statusCode).toBe(403);
      const notes = await h.svc.database.db.selectFrom('plan_notes').select('id').where('plan_id', 'in', [id, draft.id]).execute();
      expect(notes).toHaveLength(0);
    });
  });

  describe('death and outcomes', () => {
    const death = (id: string, body: unknown, auth = clinicianA, version = '2') => send('POST', `/api/care-plans/${id}/death`, auth, body, version ? { 'if-match': `W/"${version}"` } : {});

    it.each([
      ['home', undefined, 'met-first'],
      ['hospice', "St Christopher's Hospice", 'met-second'],
      ['hospital', 'King\'s College Hospital', 'not-met'],
    ] as const)('when the patient dies at %s, then the plan closes, the flag goes down, and the outcome is %s', async (place, placeDetail, outcome) => {
      const { nhs, id } = await aPlan();
      const date = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
      const res = await death(id, { date, place, ...(placeDetail ? { placeDetail } : {}) });
      expect(res.statusCode).toBe(200);
      const plan = res.json<CarePlan>();
      expect(plan.status).toBe('completed');
      expect(JSON.stringify(plan.extension)).toContain(outcome);
      expect((await flagOf(nhs)).hasPlan).toBe(false);
      expect((await send('GET', `/fhir/R4/CarePlan/${id}`, urgentCare)).statusCode).toBe(403);
      const events = await outboxEvents(h.svc, nhs, 'cmc.careplan.death-recorded.v1');
      expect(events.map((e) => e.data)).toEqual([expect.objectContaining({ state: 'deceased', deathDate: date, deathPlace: place, deathOutcome: outcome })]);
    });

    it('when the death record is wrong or the recorder may not, then 4xx naming the problem and the plan stays published', async () => {
      const { nhs, id } = await aPlan();
      const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      const future = await death(id, { date: tomorrow, place: 'home' });
      expect(future.statusCode).toBe(400);
      expect(issuesOf(future.body)[0]!.expression).toEqual(['date']);
      expect((await death(id, { date: '1930-01-01', place: 'home' })).statusCode).toBe(400);
      expect(issuesOf((await death(id, { date: '2026-01-01', place: 'other' })).body)[0]!.expression).toEqual(['placeDetail']);
      expect((await death(id, { date: '2026-01-01', place: 'moon' })).statusCode).toBe(400);
      expect((await death(id, { date: '2026-01-01', place: 'home' }, clinicianB)).statusCode).toBe(403);
      expect((await death(id, { date: '2026-01-01', place: 'home' }, urgentCare)).statusCode).toBe(403);
      expect((await death(id, { date: '2026-01-01', place: 'home' }, clinicianA, '')).statusCode).toBe(428);
      expect((await death(id, { date: '2026-01-01', place: 'home' }, clinicianA, '1')).statusCode).toBe(412);
      expect((await flagOf(nhs)).hasPlan).toBe(true);
      expect((await send('GET', `/fhir/R4/CarePlan/${id}`, urgentCare)).json<CarePlan>().status).toBe('active');
      // The patient's GP practice may record it.
      expect((await death(id, { date: '2026-01-01', place: 'home' }, gpClinician)).statusCode).toBe(200);
      expect((await death(id, { date: '2026-01-01', place: 'home' }, serviceTeam, '3')).statusCode).toBe(409);
    });
  });

  describe('the patient\'s own view', () => {
    it('a patient reads their own published plan and summary, asks for a change that reaches the care team, and sees nobody else\'s', async () => {
      const { nhs, id } = await aPlan();
      const other = await aPlan();
      const patient = issuer.bearer({ role: 'patient', patient: nhs });
      const proxy = issuer.bearer({ role: 'proxy', patient: nhs });
      expect((await send('GET', `/fhir/R4/CarePlan/${id}`, patient)).statusCode).toBe(200);
      expect((await summary(id, proxy)).statusCode).toBe(200);
      for (const auth of [patient, proxy]) {
        expect((await send('GET', `/fhir/R4/CarePlan/${other.id}`, auth)).statusCode).toBe(403);
        expect((await summary(other.id, auth)).statusCode).toBe(403);
        expect((await send('POST', `/api/care-plans/${other.id}/change-requests`, auth, { text: 'change it' })).statusCode).toBe(403);
        expect((await send('GET', `/api/flags/${nhs}`, auth)).statusCode).toBe(403);
      }
      const res = await send('POST', `/api/care-plans/${id}/change-requests`, patient, { text: 'I would now prefer the hospice as my first choice' });
      expect(res.statusCode).toBe(201);
      const events = await outboxEvents(h.svc, nhs, 'cmc.careplan.change-requested.v1');
      expect(events.map((e) => e.data)).toEqual([expect.objectContaining({ planId: id, organisation: 'A11111', changeRequestId: res.json<{ id: string }>().id })]);
      expect(JSON.stringify(events)).not.toContain('hospice as my first');
      expect((await send('POST', `/api/care-plans/${id}/change-requests`, urgentCare, { text: 'x' })).statusCode).toBe(403);
      expect((await send('POST', `/api/care-plans/${id}/change-requests`, patient, { text: 'x'.repeat(4001) })).statusCode).toBe(400);
    });

    it('a patient without a plan starts one with their wishes: a draft their GP practice holds, never shown to urgent care until a clinician publishes it', async () => {
      const nhs = randomNhsNumber();
      await h.grantConsent(nhs);
      const patient = issuer.bearer({ role: 'patient', patient: nhs });
      const clinical = ['background', 'resuscitation', 'recommendations', 'medication', 'allergies', 'emergencyPlan', 'approval', 'alerts'];
      const refused = await send('POST', '/fhir/R4/CarePlan', patient, aCarePlan(nhs));
      expect(refused.statusCode).toBe(403);
      expect(issuesOf(refused.body).length).toBeGreaterThanOrEqual(7);
      expect((await send('POST', '/fhir/R4/CarePlan', patient, aCarePlan(randomNhsNumber(), { omit: clinical }))).statusCode).toBe(403);
      expect((await send('POST', '/fhir/R4/CarePlan', issuer.bearer({ role: 'proxy', patient: nhs }), aCarePlan(nhs, { omit: clinical }))).statusCode).toBe(403);
      const created = await send('POST', '/fhir/R4/CarePlan', patient, aCarePlan(nhs, { omit: clinical }));
      expect(created.statusCode).toBe(201);
      const id = created.json<CarePlan>().id!;
      expect((await send('GET', `/fhir/R4/CarePlan/${id}`, patient)).statusCode).toBe(200);
      expect((await send('GET', `/fhir/R4/CarePlan/${id}`, gpClinician)).statusCode).toBe(200);
      for (const auth of [urgentCare, clinicianA]) expect((await send('GET', `/fhir/R4/CarePlan/${id}`, auth)).statusCode).toBe(403);
      expect((await flagOf(nhs)).hasPlan).toBe(false);
      // The GP practice's clinician takes it on: completes the clinical sections and publishes.
      const full = { ...(aCarePlan(nhs) as object), id };
      expect((await send('PUT', `/fhir/R4/CarePlan/${id}`, gpClinician, full, { 'if-match': 'W/"1"' })).statusCode).toBe(200);
      expect((await send('POST', `/fhir/R4/CarePlan/${id}/$publish`, gpClinician, undefined, { 'if-match': 'W/"2"' })).statusCode).toBe(200);
      expect((await send('GET', `/fhir/R4/CarePlan/${id}`, urgentCare)).statusCode).toBe(200);
      expect((await flagOf(nhs)).hasPlan).toBe(true);
      // Published, it is no longer the patient's to edit.
      expect((await send('PUT', `/fhir/R4/CarePlan/${id}`, patient, aCarePlan(nhs, { omit: clinical }), { 'if-match': 'W/"3"' })).statusCode).toBe(403);
    });
  });
});
