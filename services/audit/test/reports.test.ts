/**
 * The service team's reports over the log: access reports (paged JSON, streamed CSV) and statistics (urgent
 * care views, plans, outcomes) with known inputs; formats; bad input; who may ask; each report an access.
 * The test service has a schema of its own, so its log holds only these events (and its own report accesses,
 * which fall in the present, outside the periods asked here).
 */
import { makeEvent, type AccessRecordedData, type CloudEvent, type EventType, type OrganisationType, type PlanEventData } from '@cmc/contracts';
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, randomNhsNumber, startTestService } from '@cmc/test-support';
import type { OperationOutcome } from 'fhir/r4';
import { sql } from 'kysely';
import { randomUUID } from 'node:crypto';
import { appendEvents, auditService, type AuditDB } from '../src';
import { anAccess } from './support';

const [p1, p2, p3, p4] = [randomNhsNumber(), randomNhsNumber(), randomNhsNumber(), randomNhsNumber()];

const organisation = (odsCode: string, organisationType: OrganisationType | undefined, time: string, name = `Org ${odsCode}`) =>
  makeEvent({ type: 'cmc.identity.organisation-changed.v1', source: '/cmc/identity', key: odsCode, time: new Date(time), data: { odsCode, change: 'created', ...(organisationType ? { organisationType, name } : {}) } });

const consent = (nhsNumber: string, secondaryUse: 'permit' | 'deny' | undefined) =>
  makeEvent({
    type: 'cmc.consent.granted.v1',
    source: '/cmc/consent',
    key: nhsNumber,
    time: new Date('2025-01-01T10:00:00Z'),
    data: { consentId: randomUUID(), versionId: '1', nhsNumber, status: 'active', dateTime: '2025-01-01T10:00:00Z', ...(secondaryUse ? { secondaryUse } : {}) },
  });

const access = (nhsNumbers: string[], recordedAt: string, agent: Partial<AccessRecordedData['agent']>, overrides: Partial<AccessRecordedData> = {}) =>
  anAccess(nhsNumbers, { recordedAt, agent: { kind: 'user', id: 'uc-amb-1', role: 'urgent-care', organisation: 'AMB01', ...agent }, ...overrides });

const plan = (type: EventType & `cmc.careplan.${string}`, planId: string, nhsNumber: string, time: string, data: Partial<PlanEventData> = {}) =>
  makeEvent({
    type,
    source: '/cmc/care-plan',
    key: nhsNumber,
    time: new Date(time),
    data: { planId, versionId: '1', nhsNumber, state: 'draft', organisation: 'GP001', changedBy: 'clin-1', changedByOrganisation: 'GP001', changedAt: time, ...data },
  } as Parameters<typeof makeEvent<'cmc.careplan.created.v1'>>[0]);

const death = (nhsNumber: string, deathDate: string, deathPlace: PlanEventData['deathPlace'], deathOutcome: PlanEventData['deathOutcome']) =>
  plan('cmc.careplan.death-recorded.v1', randomUUID(), nhsNumber, `${deathDate}T12:00:00Z`, { state: 'deceased', deathDate, deathPlace, deathOutcome });

const [planA, planB, planC, planD] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];

const EVENTS: CloudEvent[] = [
  organisation('AMB01', undefined, '2024-01-01T00:00:00Z'),
  organisation('AMB01', 'ambulance-trust', '2024-01-02T00:00:00Z', 'London Ambulance Service'),
  organisation('N1110', 'nhs-111', '2024-01-01T00:00:00Z'),
  organisation('GP001', 'gp-practice', '2024-01-01T00:00:00Z'),
  organisation('CH001', 'hospice', '2024-01-01T00:00:00Z'),
  // The latest type wins: CH001 was registered by mistake as a hospice.
  { ...organisation('CH001', 'care-home', '2024-02-01T00:00:00Z'), data: { odsCode: 'CH001', change: 'updated', fields: ['type'], organisationType: 'care-home', name: 'Org CH001' } },
  consent(p1, 'permit'),
  consent(p2, 'permit'),
  consent(p3, 'permit'),
  consent(p4, 'deny'),
  // Urgent care views, London time (GMT in winter).
  access([p1], '2025-12-02T10:00:00Z', {}), // Tuesday, in working hours
  access([p1], '2025-12-03T19:00:00Z', {}), // Wednesday evening
  access([p2], '2025-12-04T09:00:00Z', {}, { interaction: 'summary' }),
  access([p4], '2025-12-05T08:00:00Z', {}), // excluded: denies secondary use
  access([p3], '2025-12-06T10:00:00Z', { id: 'uc-111-1', organisation: 'N1110' }),
  access([p1], '2025-12-14T02:00:00Z', {}, { outcome: 'refused', outcomeReason: '=HYPERLINK("http://x","y"), said "no"' }), // Sunday night, refused
  access([p1, p3], '2025-12-15T10:00:00Z', {}, { interaction: 'search' }), // a search is not a view
  access([p1], '2025-12-16T10:00:00Z', { id: 'clin-9', role: 'clinician', organisation: 'GP001' }), // not urgent care
  access([p1], '2026-01-06T12:00:00Z', {}),
  // Working hours in summer time (BST): 18:00 London is in, 18:45 is out.
  access([p2], '2025-07-01T17:00:00Z', { id: 'uc-bst' }),
  access([p2], '2025-07-01T17:45:00Z', { id: 'uc-bst' }),
  // Plans.
  plan('cmc.careplan.created.v1', planA, p1, '2025-12-05T10:00:00Z'),
  plan('cmc.careplan.published.v1', planA, p1, '2025-12-06T10:00:00Z', { state: 'published', reviewDate: '2099-01-01' }),
  plan('cmc.careplan.published.v1', planA, p1, '2025-12-20T10:00:00Z', { state: 'published', versionId: '2', reviewDate: '2099-01-01' }),
  plan('cmc.careplan.created.v1', planB, p2, '2025-12-10T10:00:00Z', { changedByOrganisation: 'CH001', organisation: 'CH001' }),
  plan('cmc.careplan.published.v1', planB, p2, '2026-01-05T10:00:00Z', { state: 'published', reviewDate: '2026-04-05' }),
  plan('cmc.careplan.note-added.v1', planB, p2, '2026-01-07T10:00:00Z', { state: 'published' }), // the review date stands
  plan('cmc.careplan.created.v1', planC, p3, '2026-01-03T10:00:00Z'),
  plan('cmc.careplan.created.v1', planD, p4, '2025-12-11T10:00:00Z'),
  plan('cmc.careplan.published.v1', planD, p4, '2025-12-12T10:00:00Z', { state: 'published', reviewDate: '2026-01-01' }),
  // Deaths in 2026 Q1.
  death(p1, '2026-02-01', 'home', 'met-first'),
  death(p2, '2026-02-10', 'hospice', 'met-second'),
  death(p3, '2026-03-01', 'hospital', 'not-met'),
  death(p4, '2026-02-02', 'home', 'met-first'),
];

/** RFC 4180 records: quoted cells may hold commas, quotes (doubled) and line breaks. */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  const endCell = () => {
    row.push(cell);
    cell = '';
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted && c === '"' && text[i + 1] === '"') {
      cell += '"';
      i++;
    } else if (quoted && c === '"') quoted = false;
    else if (quoted) cell += c;
    else if (c === '"') quoted = true;
    else if (c === ',') endCell();
    else if (c === '\r' && text[i + 1] === '\n') {
      endCell();
      rows.push(row);
      row = [];
      i++;
    } else cell += c;
  }
  expect(cell).toBe('');
  return rows;
}

/** Every tag closed in order, every attribute quoted, no stray '<' or '&': well-formed enough for an SVG we write. */
function expectWellFormedXml(xml: string): void {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z][a-zA-Z0-9:-]*="[^"<]*")*)\s*(\/?)>/g)) {
    if (m[1]) expect(stack.pop()).toBe(m[2]);
    else if (!m[4]) stack.push(m[2]!);
  }
  expect(stack).toEqual([]);
  expect(xml.replace(/<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z][a-zA-Z0-9:-]*="[^"<]*")*)\s*(\/?)>/g, '')).not.toMatch(/[<>]|&(?!amp;|lt;|gt;|quot;)/);
}

describe('the service team\'s reports', () => {
  const issuer = new TestIssuer();
  const serviceTeam = issuer.bearer({ sub: 'st-reports', role: 'service-team', org: 'X26' });
  let transport: Transport;
  let svc: RunningService<AuditDB>;

  beforeAll(async () => {
    transport = await newTransport('sql');
    svc = await startTestService(auditService, { transport, issuer });
    await svc.database.db.transaction().execute((trx) => appendEvents(trx, EVENTS));
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
  });

  const get = (url: string, headers: Record<string, string> = {}) => svc.app.inject({ method: 'GET', url, headers: { authorization: serviceTeam, ...headers } });
  const reportAccesses = async (sub: string) =>
    (await svc.database.db.selectFrom('outbox').select('payload').where('type', '=', 'cmc.access.recorded.v1').where(sql<boolean>`payload::jsonb #>> '{data,agent,id}' = ${sub}`).execute()).map(
      (r) => (JSON.parse(r.payload) as { data: AccessRecordedData }).data,
    );

  describe('patient access', () => {
    const url = `/api/audit/reports/patient-access?nhsNumber=${p1}&from=2025-12-01&to=2026-01-31`;

    it('when asked who accessed a patient, then every entry naming them, with the organisation\'s type and name, and only their NHS number; recorded as a report on that patient first', async () => {
      const res = await get(url);
      expect(res.statusCode).toBe(200);
      const body = res.json<{ rows: { seq: string; recordedAt: string; organisation: string; organisationName: string; organisationType: string; interaction: string; outcome: string; nhsNumbers: string[]; outsideWorkingHours: boolean }[]; next: string | null }>();
      expect(body.rows.map((r) => [r.recordedAt, r.interaction, r.outcome, r.organisationType])).toEqual([
        ['2025-12-02T10:00:00.000Z', 'read', 'allowed', 'ambulance-trust'],
        ['2025-12-03T19:00:00.000Z', 'read', 'allowed', 'ambulance-trust'],
        ['2025-12-14T02:00:00.000Z', 'read', 'refused', 'ambulance-trust'],
        ['2025-12-15T10:00:00.000Z', 'search', 'allowed', 'ambulance-trust'],
        ['2025-12-16T10:00:00.000Z', 'read', 'allowed', 'gp-practice'],
        ['2026-01-06T12:00:00.000Z', 'read', 'allowed', 'ambulance-trust'],
      ]);
      expect(body.rows[0]).toMatchObject({ organisation: 'AMB01', organisationName: 'London Ambulance Service', outsideWorkingHours: false });
      expect(body.rows.every((r) => r.nhsNumbers.length === 1 && r.nhsNumbers[0] === p1)).toBe(true);
      expect(body.next).toBeNull();
      const recorded = (await reportAccesses('st-reports')).filter((a) => a.query?.includes('patient-access') && a.query.includes(p1));
      expect(recorded.length).toBeGreaterThanOrEqual(1);
      expect(recorded[0]).toMatchObject({ interaction: 'report', outcome: 'allowed', entities: [{ resourceType: 'AuditEvent', nhsNumber: p1 }] });
    });

    it('when paged two at a time, then each entry comes once, in order, and the last page has no next', async () => {
      const seen: string[] = [];
      let next: string | null = `${url}&_count=2`;
      let pages = 0;
      while (next) {
        const res = await get(next);
        expect(res.statusCode).toBe(200);
        const body = res.json<{ rows: { seq: string }[]; next: string | null }>();
        seen.push(...body.rows.map((r) => r.seq));
        next = body.next;
        pages++;
      }
      expect(seen).toHaveLength(6);
      expect(new Set(seen).size).toBe(6);
      expect(seen.map(Number)).toEqual([...seen.map(Number)].sort((a, b) => a - b));
      expect(pages).toBeGreaterThanOrEqual(3);
    });

    it('when asked for CSV, then a header and a row per entry, streamed as an attachment', async () => {
      const res = await get(`${url}&_format=csv`);
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/csv/);
      expect(res.headers['content-disposition']).toContain('attachment');
      const rows = parseCsv(res.body);
      expect(rows[0]).toContain('recordedAt');
      expect(rows).toHaveLength(7);
    });
  });

  describe('agent and organisation access', () => {
    it('when asked for one user\'s refused attempts, then those only', async () => {
      const res = await get('/api/audit/reports/agent-access?agent=uc-amb-1&from=2025-12-01&to=2025-12-31&outcome=refused');
      expect(res.statusCode).toBe(200);
      const rows = res.json<{ rows: { recordedAt: string; outcome: string }[] }>().rows;
      expect(rows.map((r) => [r.recordedAt, r.outcome])).toEqual([['2025-12-14T02:00:00.000Z', 'refused']]);
    });

    it('when asked for accesses outside working hours, then evenings and weekends in London time, summer time included', async () => {
      const winter = await get('/api/audit/reports/agent-access?agent=uc-amb-1&from=2025-12-01&to=2025-12-31&outsideWorkingHours=true');
      expect(winter.json<{ rows: { recordedAt: string }[] }>().rows.map((r) => r.recordedAt)).toEqual(['2025-12-03T19:00:00.000Z', '2025-12-14T02:00:00.000Z']);
      const summer = await get('/api/audit/reports/agent-access?agent=uc-bst&from=2025-07-01&to=2025-07-31&outsideWorkingHours=true');
      expect(summer.json<{ rows: { recordedAt: string }[] }>().rows.map((r) => r.recordedAt)).toEqual(['2025-07-01T17:45:00.000Z']);
    });

    it('when asked for an organisation, then its users\' accesses, each recorded as a report naming the patients shown', async () => {
      const res = await get('/api/audit/reports/agent-access?organisation=N1110&from=2025-12-01&to=2025-12-31', { 'user-agent': 'org-report' });
      expect(res.json<{ rows: { agentId: string; nhsNumbers: string[] }[] }>().rows).toEqual([expect.objectContaining({ agentId: 'uc-111-1', nhsNumbers: [p3] })]);
      const recorded = (await reportAccesses('st-reports')).filter((a) => a.source?.userAgent === 'org-report');
      expect(recorded.map((a) => a.entities)).toEqual([[{ resourceType: 'AuditEvent', nhsNumber: p3 }]]);
    });

    it('when a cell would be read as a formula, then the CSV disarms it and quotes what needs quoting', async () => {
      const res = await get('/api/audit/reports/agent-access?agent=uc-amb-1&from=2025-12-14&to=2025-12-14', { accept: 'text/csv' });
      expect(res.statusCode).toBe(200);
      const [header, row] = parseCsv(res.body);
      expect(row![header!.indexOf('outcomeReason')]).toBe('\'=HYPERLINK("http://x","y"), said "no"');
      expect(res.body).toContain('"\'=HYPERLINK(""http://x"",""y""), said ""no"""');
    });
  });

  describe('statistics', () => {
    it('when urgent care views are asked for, then per month by organisation type, views and patients, without the patient who denies secondary use', async () => {
      const res = await get('/api/audit/reports/urgent-care-views?from=2025-12-01&to=2026-01-31');
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({
        report: 'urgent-care-views',
        period: { from: '2025-12-01', to: '2026-01-31' },
        excludedPatients: 1,
        rows: [
          { month: '2025-12', organisationType: 'ambulance-trust', views: 3, patients: 2 },
          { month: '2025-12', organisationType: 'nhs-111', views: 1, patients: 1 },
          { month: '2026-01', organisationType: 'ambulance-trust', views: 1, patients: 1 },
        ],
        totals: [
          { month: '2025-12', views: 4 },
          { month: '2026-01', views: 1 },
        ],
      });
    });

    it('when the plans report is asked for, then created by creator\'s organisation type, published once a plan a month, and overdue reviews, without the patient who denies', async () => {
      const res = await get('/api/audit/reports/plans?from=2025-12-01&to=2026-01-31');
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        excludedPatients: 1,
        created: [
          { month: '2025-12', organisationType: 'care-home', plans: 1 },
          { month: '2025-12', organisationType: 'gp-practice', plans: 1 },
          { month: '2026-01', organisationType: 'gp-practice', plans: 1 },
        ],
        published: [
          { month: '2025-12', plans: 1 },
          { month: '2026-01', plans: 1 },
        ],
        // Plan B's review (2026-04-05) has passed; plan D's too, but its patient denies secondary use.
        overdueForReview: { plans: 1 },
      });
    });

    it('when outcomes are asked for, then the guide\'s figures: preferred place met first, second, not met, and deaths in hospital, the denying patient left out and counted', async () => {
      const res = await get('/api/audit/reports/outcomes?from=2026-01-01&to=2026-03-31');
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({
        report: 'outcomes',
        period: { from: '2026-01-01', to: '2026-03-31' },
        excludedPatients: 1,
        deaths: 3,
        placeOfDeathRecorded: 3,
        preferredPlaceExpressed: 3,
        preferredPlace: { metFirst: { patients: 1, percent: 33.3 }, metSecond: { patients: 1, percent: 33.3 }, notMet: { patients: 1, percent: 33.3 } },
        placeOfDeath: { hospital: { patients: 1, percent: 33.3 }, outsideHospital: { patients: 2, percent: 66.7 }, byPlace: { home: 1, 'care-home': 0, hospice: 1, hospital: 1, other: 0 } },
      });
      const recorded = (await reportAccesses('st-reports')).filter((a) => a.query?.includes('/outcomes'));
      expect(recorded[0]).toMatchObject({ interaction: 'report', outcome: 'allowed', entities: [{ resourceType: 'AuditEvent' }] });
    });

    it('when outcomes are asked for as CSV, then one measure a line, with the excluded count', async () => {
      const res = await get('/api/audit/reports/outcomes?from=2026-01-01&to=2026-03-31&_format=csv');
      expect(res.headers['content-type']).toMatch(/^text\/csv/);
      const rows = parseCsv(res.body);
      expect(rows[0]).toEqual(['measure', 'patients', 'percent']);
      expect(rows).toContainEqual(['met-first', '1', '33.3']);
      expect(rows).toContainEqual(['died-in-hospital', '1', '33.3']);
      expect(rows).toContainEqual(['excluded-patients', '1', '']);
    });

    it('when a picture is asked for, then a well-formed SVG with the figures in it', async () => {
      const outcomes = await get('/api/audit/reports/outcomes?from=2026-01-01&to=2026-03-31', { accept: 'image/svg+xml' });
      expect(outcomes.statusCode).toBe(200);
      expect(outcomes.headers['content-type']).toMatch(/^image\/svg\+xml/);
      expectWellFormedXml(outcomes.body);
      expect(outcomes.body).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      for (const text of ['Met PPD1', 'Not met PPD', '33.3%', '66.7%', '1 patient(s) left out']) expect(outcomes.body).toContain(text);
      const views = await get('/api/audit/reports/urgent-care-views?from=2025-12-01&to=2026-01-31&_format=svg');
      expectWellFormedXml(views.body);
      for (const text of ['2025-12', 'ambulance-trust', 'nhs-111', '>4<']) expect(views.body).toContain(text);
      const plans = await get('/api/audit/reports/plans?from=2025-12-01&to=2026-01-31&_format=svg');
      expectWellFormedXml(plans.body);
      expect(plans.body).toContain('care-home');
    });

    it('when the views report is asked for as CSV, then long form with the excluded count', async () => {
      const rows = parseCsv((await get('/api/audit/reports/urgent-care-views?from=2025-12-01&to=2026-01-31&_format=csv')).body);
      expect(rows[0]).toEqual(['measure', 'period', 'organisationType', 'count']);
      expect(rows).toContainEqual(['views', '2025-12', 'ambulance-trust', '3']);
      expect(rows).toContainEqual(['excluded-patients', '2025-12-01/2026-01-31', '', '1']);
    });
  });

  describe('bad input', () => {
    it.each([
      ['to before from', `/api/audit/reports/outcomes?from=2026-02-01&to=2026-01-01`],
      ['a day that does not exist', `/api/audit/reports/outcomes?from=2026-02-30&to=2026-03-01`],
      ['a period too long for a list', `/api/audit/reports/patient-access?nhsNumber=${p1}&from=2024-01-01&to=2025-12-31`],
      ['a period too long for statistics', `/api/audit/reports/urgent-care-views?from=2000-01-01&to=2025-12-31`],
      ['an unknown parameter', `/api/audit/reports/plans?from=2025-01-01&to=2025-12-31&colour=red`],
      ['no period', `/api/audit/reports/plans`],
      ['an NHS number failing its check digit', `/api/audit/reports/patient-access?nhsNumber=1234567890&from=2025-01-01&to=2025-12-31`],
      ['a cursor this server did not give', `/api/audit/reports/patient-access?nhsNumber=${p1}&from=2025-01-01&to=2025-12-31&_cursor=bm9wZQ`],
      ['a cursor beyond any seq', `/api/audit/reports/patient-access?nhsNumber=${p1}&from=2025-01-01&to=2025-12-31&_cursor=${Buffer.from('{"s":"9999999999999999999"}').toString('base64url')}`],
      ['a chart of a list', `/api/audit/reports/patient-access?nhsNumber=${p1}&from=2025-01-01&to=2025-12-31&_format=svg`],
      ['both agent and organisation', `/api/audit/reports/agent-access?agent=a&organisation=AMB01&from=2025-01-01&to=2025-12-31`],
      ['neither agent nor organisation', `/api/audit/reports/agent-access?from=2025-01-01&to=2025-12-31`],
      ['a page too big', `/api/audit/reports/agent-access?agent=a&from=2025-01-01&to=2025-12-31&_count=100000`],
    ])('when %s, then 400 with an OperationOutcome', async (_what, url) => {
      const res = await get(url);
      expect(res.statusCode).toBe(400);
      const outcome = res.json<OperationOutcome>();
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue.length).toBeGreaterThan(0);
    });
  });

  describe('who may ask', () => {
    it('when a clinician or urgent-care user asks, then 403, recorded as refused', async () => {
      for (const [sub, role] of [['rep-clin', 'clinician'], ['rep-uc', 'urgent-care']] as const) {
        const res = await svc.app.inject({ method: 'GET', url: `/api/audit/reports/patient-access?nhsNumber=${p1}&from=2025-12-01&to=2025-12-31`, headers: { authorization: issuer.bearer({ sub, role, org: 'A11111' }) } });
        expect(res.statusCode).toBe(403);
        expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
        expect((await reportAccesses(sub)).map((a) => a.outcome)).toEqual(['refused']);
      }
    });

    it('when there is no token, then 401', async () => {
      expect((await svc.app.inject({ method: 'GET', url: '/api/audit/reports/outcomes?from=2026-01-01&to=2026-03-31' })).statusCode).toBe(401);
    });
  });
});
