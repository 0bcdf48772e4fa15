/** FHIR AuditEvent read and search over the audit log (IHE BALP), for the service team; itself audited. */
import { makeEvent, type AccessRecordedData, type CloudEvent } from '@cmc/contracts';
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, randomNhsNumber, startTestService, uniqueName, waitFor } from '@cmc/test-support';
import type { AuditEvent, AuditEventEntity, Bundle, OperationOutcome } from 'fhir/r4';
import { sql } from 'kysely';
import { randomUUID } from 'node:crypto';
import { appendEvents, auditService, type AuditDB } from '../src';
import { validate } from '../../care-plan/test/fhir-validator';
import { anAccess } from './support';

const NHS = 'https://fhir.nhs.uk/Id/nhs-number';
const ODS = 'https://fhir.nhs.uk/Id/ods-organization-code';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';

describe('FHIR AuditEvent', () => {
  const issuer = new TestIssuer();
  const teamSub = uniqueName('st');
  const serviceTeam = issuer.bearer({ sub: teamSub, role: 'service-team', org: 'X26' });
  let transport: Transport;
  let svc: RunningService<AuditDB>;

  // One patient of this file's own, and the events about them.
  const [p1, p2, p3] = [randomNhsNumber(), randomNhsNumber(), randomNhsNumber()];
  const reader = uniqueName('reader');
  const clinician = uniqueName('clin');
  const planId = randomUUID();
  const consentId = randomUUID();
  const user = (id: string, more: Partial<AccessRecordedData['agent']> = {}): AccessRecordedData['agent'] => ({ kind: 'user', id, role: 'urgent-care', organisation: 'RRU', ...more });
  const read = anAccess([p1], {
    agent: user(reader),
    interaction: 'read',
    recordedAt: '2026-03-10T09:00:00.000Z',
    entities: [{ resourceType: 'CarePlan', id: planId, versionId: '2', nhsNumber: p1 }],
    purposeOfUse: 'TREAT',
  });
  const search = anAccess([p1, p2, p3], {
    agent: user(reader),
    interaction: 'search',
    recordedAt: '2026-03-11T09:00:00.000Z',
    entities: [p1, p2, p3].map((n, i) => ({ resourceType: 'CarePlan', id: i === 0 ? planId : randomUUID(), versionId: '1', nhsNumber: n })),
    query: `/fhir/R4/CarePlan?patient:identifier=${NHS}|${p1}`,
  });
  const refused = anAccess([p2], {
    agent: { kind: 'client', id: uniqueName('client'), organisation: 'A11111' },
    interaction: 'read',
    outcome: 'refused',
    outcomeReason: 'not for this organisation',
    recordedAt: '2026-03-12T09:00:00.000Z',
    entities: [{ resourceType: 'Consent', id: consentId, versionId: '1', nhsNumber: p2 }],
  });
  const published = makeEvent({
    type: 'cmc.careplan.published.v1',
    source: '/cmc/care-plan',
    key: p1,
    time: new Date('2026-03-09T09:00:00.000Z'),
    data: { planId, versionId: '2', nhsNumber: p1, state: 'published', organisation: 'A11111', changedBy: clinician, changedByOrganisation: 'A11111', changedAt: '2026-03-09T09:00:00.000Z' },
  });
  const loginUser = randomUUID();
  const loginFailed = makeEvent({ type: 'cmc.identity.login-failed.v1', source: '/cmc/identity', key: loginUser, time: new Date('2026-03-13T09:00:00.000Z'), data: { userId: loginUser, reason: 'bad password', clientAddress: '10.1.2.3' } });
  const mine: CloudEvent[] = [published, read, search, refused, loginFailed];

  beforeAll(async () => {
    transport = await newTransport('sql');
    svc = await startTestService(auditService, { transport, issuer });
    await svc.database.db.transaction().execute((trx) => appendEvents(trx, mine));
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
  });

  const get = (url: string, authorization: string | null = serviceTeam) => svc.app.inject({ method: 'GET', url, headers: authorization ? { authorization } : {} });
  // This file's events are from March 2026; the accesses its own calls make are recorded now, and left out here.
  const searchIds = async (query: string): Promise<string[]> => {
    const res = await get(`/fhir/R4/AuditEvent?${query}&date=lt2026-04`);
    expect(res.statusCode).toBe(200);
    return (res.json<Bundle<AuditEvent>>().entry ?? []).map((e) => e.resource!.id!);
  };
  const patientsOf = (ae: AuditEvent) => (ae.entity ?? []).filter((e) => e.role?.code === '1').map((e) => e.what?.identifier?.value);
  const byRole = (ae: AuditEvent, code: string): AuditEventEntity[] => (ae.entity ?? []).filter((e) => e.role?.code === code);

  it('when the service team reads a read access, then it is a BALP rest/read AuditEvent with user, server, patient and plan version', async () => {
    const res = await get(`/fhir/R4/AuditEvent/${read.id}`);
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toContain('application/fhir+json');
    const ae = res.json<AuditEvent>();
    expect(validate(ae)).toEqual([]);
    expect(ae).toMatchObject({
      resourceType: 'AuditEvent',
      id: read.id,
      type: { system: 'http://terminology.hl7.org/CodeSystem/audit-event-type', code: 'rest' },
      subtype: [{ system: 'http://hl7.org/fhir/restful-interaction', code: 'read' }],
      action: 'R',
      outcome: '0',
      recorded: '2026-03-10T09:00:00.000Z',
      purposeOfEvent: [{ text: 'TREAT' }],
      source: { observer: { identifier: { value: 'care-plan' } } },
    });
    const [requestor, server] = ae.agent;
    expect(requestor).toMatchObject({
      requestor: true,
      type: { coding: [{ code: 'IRCP' }] },
      who: { identifier: { value: reader } },
      role: [{ coding: [{ code: 'urgent-care' }] }],
      network: { address: '10.0.0.1', type: '2' },
      extension: [{ valueReference: { identifier: { system: ODS, value: 'RRU' } } }],
    });
    expect(server).toMatchObject({ requestor: false, type: { coding: [{ system: DCM, code: '110152' }] }, who: { identifier: { value: 'care-plan' } } });
    expect(byRole(ae, '1')).toEqual([expect.objectContaining({ what: { type: 'Patient', identifier: { system: NHS, value: p1 } } })]);
    expect(byRole(ae, '4').map((e) => e.what?.reference)).toEqual([`CarePlan/${planId}/_history/2`]);
    expect(byRole(ae, '24')).toEqual([]);
  });

  it('when a search access is read, then it is rest/search-type, action E, with every patient returned and the query in base64', async () => {
    const ae = (await get(`/fhir/R4/AuditEvent/${search.id}`)).json<AuditEvent>();
    expect(validate(ae)).toEqual([]);
    expect(ae).toMatchObject({ subtype: [{ code: 'search-type' }], action: 'E', outcome: '0' });
    expect(patientsOf(ae).sort()).toEqual([p1, p2, p3].sort());
    expect(byRole(ae, '4')).toHaveLength(3);
    const [query] = byRole(ae, '24');
    expect(Buffer.from(query!.query!, 'base64').toString('utf8')).toBe(search.data.query);
  });

  it('when a refused client access and domain events are read, then outcome 4 with the reason, the client as Source Role, and DICOM codes for the domain events', async () => {
    const r = (await get(`/fhir/R4/AuditEvent/${refused.id}`)).json<AuditEvent>();
    expect(validate(r)).toEqual([]);
    expect(r).toMatchObject({ outcome: '4', outcomeDesc: 'not for this organisation' });
    expect(r.agent[0]).toMatchObject({ requestor: true, type: { coding: [{ code: '110153' }] }, who: { identifier: { system: 'https://fhir.cmc.example/Id/client', value: refused.data.agent.id } } });

    const p = (await get(`/fhir/R4/AuditEvent/${published.id}`)).json<AuditEvent>();
    expect(validate(p)).toEqual([]);
    expect(p).toMatchObject({ type: { system: DCM, code: '110110' }, subtype: [{ code: 'cmc.careplan.published.v1' }], action: 'U', outcome: '0', recorded: '2026-03-09T09:00:00.000Z' });
    expect(p.agent.map((a) => [a.who?.identifier?.value, a.requestor])).toEqual([[clinician, true], ['care-plan', false]]);
    expect(patientsOf(p)).toEqual([p1]);
    expect(byRole(p, '4').map((e) => e.what?.reference)).toEqual([`CarePlan/${planId}/_history/2`]);

    const l = (await get(`/fhir/R4/AuditEvent/${loginFailed.id}`)).json<AuditEvent>();
    expect(validate(l)).toEqual([]);
    expect(l).toMatchObject({ type: { code: '110114' }, subtype: [{ code: '110122' }, { code: 'cmc.identity.login-failed.v1' }], outcome: '4', outcomeDesc: 'bad password' });
    expect(l.agent[0]).toMatchObject({ requestor: true, who: { identifier: { value: loginUser } }, network: { address: '10.1.2.3' } });
  });

  it('when the id is unknown or not a uuid, then 404 with an OperationOutcome', async () => {
    for (const id of [randomUUID(), 'not-a-uuid']) {
      const res = await get(`/fhir/R4/AuditEvent/${id}`);
      expect(res.statusCode).toBe(404);
      expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    }
  });

  it('when searching by each parameter and their combinations, then exactly the matching entries, newest first', async () => {
    const ids = (...events: CloudEvent[]) => events.map((e) => e.id);
    // Newest first: seq order, which here is the order appended.
    expect(await searchIds(`patient=${p1}`)).toEqual(ids(search, read, published));
    expect(await searchIds(`patient=${encodeURIComponent(`${NHS}|${p2}`)}`)).toEqual(ids(refused, search));
    expect(await searchIds(`patient=${p1}&patient=${p2}`)).toEqual(ids(search));
    expect(await searchIds(`patient=${p3},${p2}`)).toEqual(ids(refused, search));
    expect(await searchIds(`agent=${reader}`)).toEqual(ids(search, read));
    expect(await searchIds(`agent=${clinician}`)).toEqual(ids(published));
    expect(await searchIds(`agent=${loginUser}`)).toEqual(ids(loginFailed));
    expect(await searchIds(`patient=${p1}&entity=CarePlan/${planId}`)).toEqual(ids(search, read, published));
    expect(await searchIds(`entity=CarePlan/${planId}/_history/2`)).toEqual(ids(read, published));
    expect(await searchIds(`entity=Consent/${consentId}`)).toEqual(ids(refused));
    expect(await searchIds(`patient=${p1}&date=ge2026-03-10&date=lt2026-03-11`)).toEqual(ids(read));
    expect(await searchIds(`patient=${p1}&date=2026-03-11`)).toEqual(ids(search));
    expect(await searchIds(`patient=${p1}&date=le2026-03-09T23:00:00Z`)).toEqual(ids(published));
    expect(await searchIds(`patient=${p1}&date=gt2026-03-10`)).toEqual(ids(search));
    expect(await searchIds(`patient=${p1}&action=R`)).toEqual(ids(read));
    expect(await searchIds(`patient=${p1}&action=E,U`)).toEqual(ids(search, published));
    expect(await searchIds(`patient=${p2}&outcome=4`)).toEqual(ids(refused));
    expect(await searchIds(`patient=${p1}&outcome=0`)).toEqual(ids(search, read, published));
    expect(await searchIds(`agent=${loginUser}&outcome=4`)).toEqual(ids(loginFailed));
    expect(await searchIds(`patient=${p1}&type=rest`)).toEqual(ids(search, read));
    expect(await searchIds(`patient=${p1}&type=${encodeURIComponent(`${DCM}|110110`)}`)).toEqual(ids(published));
    expect(await searchIds(`patient=${p1}&subtype=read`)).toEqual(ids(read));
    expect(await searchIds(`patient=${p1}&subtype=${encodeURIComponent('http://hl7.org/fhir/restful-interaction|search-type')}`)).toEqual(ids(search));
    expect(await searchIds(`patient=${p1}&subtype=cmc.careplan.published.v1`)).toEqual(ids(published));
    expect(await searchIds(`agent=${reader}&type=rest&subtype=read&action=R&outcome=0&patient=${p1}&date=2026-03`)).toEqual(ids(read));
    expect(await searchIds(`agent=${reader}&outcome=4`)).toEqual([]);
  });

  it('when paging with _count, then every entry comes exactly once, newest first, following the next links', async () => {
    const patient = randomNhsNumber();
    const events = Array.from({ length: 7 }, () => anAccess([patient]));
    await svc.database.db.transaction().execute((trx) => appendEvents(trx, events));
    const seen: string[] = [];
    let url: string | undefined = `/fhir/R4/AuditEvent?patient=${patient}&_count=3`;
    let pages = 0;
    while (url) {
      const res = await get(url);
      expect(res.statusCode).toBe(200);
      const bundle = res.json<Bundle<AuditEvent>>();
      expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'searchset' });
      expect(validate(bundle)).toEqual([]);
      seen.push(...(bundle.entry ?? []).map((e) => e.resource!.id!));
      const next = bundle.link?.find((l) => l.relation === 'next')?.url;
      url = next ? next.slice(new URL(next).origin.length) : undefined;
      pages += 1;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(events.map((e) => e.id).reverse());
  });

  it('when a parameter is unknown or a value is bad, then 400 with an OperationOutcome naming it', async () => {
    for (const [query, words] of [
      ['name=x', 'unknown search parameter name'],
      ['patient=1234567890', 'patient'],
      [`patient=${encodeURIComponent(`urn:other|${p1}`)}`, 'patient must be an NHS number'],
      ['date=yesterday', 'date must be'],
      ['date=2026-02-30', 'date must be'],
      ['action=X', 'action must be'],
      ['outcome=1', 'outcome must be'],
      ['entity=not a reference', 'entity must be'],
      ['_count=0', '_count'],
      ['_count=1&_count=2', '_count'],
      ['_cursor=bogus', '_cursor'],
      [`patient=${Array.from({ length: 101 }, () => randomNhsNumber()).join(',')}`, 'at most 100 per search'],
    ] as const) {
      const res = await get(`/fhir/R4/AuditEvent?${query}`);
      expect(res.statusCode).toBe(400);
      const outcome = res.json<OperationOutcome>();
      expect(outcome.resourceType).toBe('OperationOutcome');
      expect(outcome.issue.map((i) => i.diagnostics).join(' ')).toContain(words);
    }
  });

  it('when an entry names 1,000 patients and a search for one of them and another serves it, then 200, and the search is recorded in as many access events as it takes', async () => {
    const many = Array.from({ length: 1000 }, () => randomNhsNumber());
    const other = randomNhsNumber();
    const big = anAccess(many, { agent: user(uniqueName('bulk')), interaction: 'search', recordedAt: '2026-03-14T09:00:00.000Z' });
    await svc.database.db.transaction().execute((trx) => appendEvents(trx, [big]));
    // Another member of the team, so this search does not show among the ones the last test looks for.
    const res = await get(`/fhir/R4/AuditEvent?patient=${many[0]!},${other}&date=lt2026-04`, issuer.bearer({ sub: uniqueName('st'), role: 'service-team', org: 'X26' }));
    expect(res.statusCode).toBe(200);
    expect((res.json<Bundle<AuditEvent>>().entry ?? []).map((e) => e.resource!.id)).toContain(big.id);
    const recorded = await svc.database.db
      .selectFrom('outbox')
      .select('payload')
      .where('type', '=', 'cmc.access.recorded.v1')
      .where(sql<boolean>`payload::jsonb #>> '{data,query}' like ${`%${many[0]!},${other}%`}`)
      .execute();
    const named = recorded.flatMap((r) => (JSON.parse(r.payload) as { data: { entities: { nhsNumber?: string }[] } }).data.entities.map((e) => e.nhsNumber));
    expect(recorded.length).toBeGreaterThanOrEqual(2);
    expect(new Set(named)).toEqual(new Set([...many, other]));
  });

  it('when anyone but the service team asks, then 403 recorded as refused; with no token, 401', async () => {
    for (const [sub, auth] of [
      [uniqueName('clin'), (s: string) => issuer.bearer({ sub: s, role: 'clinician', org: 'A11111' })],
      [uniqueName('uc'), (s: string) => issuer.bearer({ sub: s, role: 'urgent-care', org: 'RRU' })],
      [uniqueName('client'), (s: string) => `Bearer ${issuer.token({ sub: s, kind: 'client', org: 'A11111', scope: 'system/Consent.cruds' })}`],
    ] as const) {
      for (const url of [`/fhir/R4/AuditEvent/${read.id}`, `/fhir/R4/AuditEvent?patient=${p1}`]) {
        const res = await get(url, auth(sub));
        expect(res.statusCode).toBe(403);
        expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
      }
      const rows = await waitFor(async () => {
        const r = await svc.database.db.selectFrom('audit_log').select(['interaction', 'outcome']).where('agent_id', '=', sub).orderBy('seq').execute();
        return r.length === 2 ? r : undefined;
      }, 20_000, 'the refusals in the log');
      expect(rows).toEqual([{ interaction: 'read', outcome: 'refused' }, { interaction: 'search', outcome: 'refused' }]);
    }
    expect((await get(`/fhir/R4/AuditEvent?patient=${p1}`, null)).statusCode).toBe(401);
  });

  it('when the service team reads and searches the log, then each is itself in the log, findable by patient, and shown as an AuditEvent about AuditEvents', async () => {
    const sub = uniqueName('st');
    const auth = issuer.bearer({ sub, role: 'service-team', org: 'X26' });
    expect((await get(`/fhir/R4/AuditEvent/${search.id}`, auth)).statusCode).toBe(200);
    expect((await get(`/fhir/R4/AuditEvent?patient=${p3}`, auth)).statusCode).toBe(200);
    const rows = await waitFor(async () => {
      const r = await svc.database.db.selectFrom('audit_log').selectAll().where('agent_id', '=', sub).orderBy('seq').execute();
      return r.length === 2 ? r : undefined;
    }, 20_000, 'the audit reads in the log');
    expect(rows.map((r) => [r.interaction, r.outcome, r.agent_role])).toEqual([['read', 'allowed', 'service-team'], ['search', 'allowed', 'service-team']]);
    expect(rows[0]!.nhs_numbers).toEqual([p1, p2, p3].sort());
    // The search for p3 served the search access about p1, p2 and p3: every patient served is named.
    expect(rows[1]!.nhs_numbers).toEqual([p1, p2, p3].sort());

    // "Who looked at this patient's audit?": a search of the log by the patient and the AuditEvent entity.
    const whoLooked = await svc.database.db
      .selectFrom('audit_log')
      .select('agent_id')
      .where(sql<boolean>`nhs_numbers @> ${[p3]}::text[]`)
      .where(sql<boolean>`(event::jsonb) #> '{data,entities}' @> '[{"resourceType":"AuditEvent"}]'::jsonb`)
      .execute();
    expect(whoLooked.map((r) => r.agent_id)).toEqual(expect.arrayContaining([sub]));

    const bundle = (await get(`/fhir/R4/AuditEvent?agent=${sub}&subtype=search-type`)).json<Bundle<AuditEvent>>();
    const [ae] = (bundle.entry ?? []).map((e) => e.resource!);
    expect(validate(ae!)).toEqual([]);
    expect(ae).toMatchObject({ action: 'E', agent: [{ who: { identifier: { value: sub } }, role: [{ coding: [{ code: 'service-team' }] }] }, { who: { identifier: { value: 'audit' } } }] });
    expect(patientsOf(ae!)).toEqual([p1, p2, p3].sort());
    expect(Buffer.from(byRole(ae!, '24')[0]!.query!, 'base64').toString('utf8')).toBe(`/fhir/R4/AuditEvent?patient=${p3}`);
  });
});
