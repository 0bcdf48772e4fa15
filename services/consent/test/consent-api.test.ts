import { TestIssuer, aConsent, randomNhsNumber } from '@cmc/test-support';
import { useConsentService } from './support';
import type { OperationOutcome } from 'fhir/r4';

const validConsent = (nhsNumber: string) => aConsent(nhsNumber);

describe('the consent API', () => {
  const issuer = new TestIssuer();
  const clinicianA = issuer.bearer({ role: 'clinician', org: 'A11111' });
  const adminA = issuer.bearer({ role: 'administrator', org: 'A11111' });
  const clinicianB = issuer.bearer({ role: 'clinician', org: 'B22222' });
  const serviceTeam = issuer.bearer({ role: 'service-team', org: 'X26' });
  const urgentCare = issuer.bearer({ role: 'urgent-care', org: 'RRU' });
  const h = useConsentService(issuer, { BODY_LIMIT_BYTES: '4096' });

  const post = (payload: unknown, headers: Record<string, string> = {}) =>
    h.svc.app.inject({
      method: 'POST',
      url: '/fhir/R4/Consent',
      headers: { authorization: clinicianA, 'content-type': 'application/fhir+json', ...headers },
      payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
    });

  /** Nothing of this patient was stored: no consent, no version, no event in the outbox. */
  const expectNothingStored = async (nhsNumber: string) => {
    const consents = await h.svc.database.db.selectFrom('consents').select('id').where('nhs_number', '=', nhsNumber).execute();
    const outbox = await h.svc.database.db.selectFrom('outbox').select('id').where('key', '=', nhsNumber).execute();
    expect(consents).toHaveLength(0);
    expect(outbox).toHaveLength(0);
  };

  const issuesOf = (body: string) => (JSON.parse(body) as OperationOutcome).issue;

  /** Row counts of every table a consent touches (this file's schema is its own, and its tests run in turn). */
  const rowCounts = async () => {
    const count = async (table: 'consents' | 'consent_versions' | 'outbox') =>
      Number((await h.svc.database.db.selectFrom(table).select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
    return { consents: await count('consents'), versions: await count('consent_versions'), outbox: await count('outbox') };
  };

  it('when a clinician records a consent, then 201 with Location, a weak ETag and the stored resource', async () => {
    const nhs = randomNhsNumber();
    const res = await post(validConsent(nhs));
    expect(res.statusCode).toBe(201);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    const body = res.json<{ id: string; meta: { versionId: string; lastUpdated: string }; patient: unknown; organization: unknown }>();
    expect(body.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.meta.versionId).toBe('1');
    expect(res.headers.etag).toBe('W/"1"');
    expect(res.headers.location).toMatch(new RegExp(`/fhir/R4/Consent/${body.id}/_history/1$`));
    expect(body.patient).toEqual({ identifier: { system: 'https://fhir.nhs.uk/Id/nhs-number', value: nhs } });
    expect(body.organization).toEqual([{ identifier: { system: 'https://fhir.nhs.uk/Id/ods-organization-code', value: 'A11111' } }]);
    const versions = await h.svc.database.db.selectFrom('consent_versions').selectAll().where('id', '=', body.id).execute();
    expect(versions).toHaveLength(1);
  });

  it('when the client prefers a minimal return, then 201 with Location and no body', async () => {
    const res = await post(validConsent(randomNhsNumber()), { prefer: 'return=minimal', authorization: adminA });
    expect(res.statusCode).toBe(201);
    expect(res.headers.location).toBeDefined();
    expect(res.body).toBe('');
  });

  it('when someone of the recording organisation or the service team reads it, then 200; another organisation gets 403, recorded as refused', async () => {
    const nhs = randomNhsNumber();
    const id = (await post(validConsent(nhs))).json<{ id: string }>().id;
    const read = (auth: string) => h.svc.app.inject({ method: 'GET', url: `/fhir/R4/Consent/${id}`, headers: { authorization: auth } });
    const own = await read(adminA);
    expect(own.statusCode).toBe(200);
    expect(own.headers.etag).toBe('W/"1"');
    expect(own.json<{ id: string }>().id).toBe(id);
    expect((await read(serviceTeam)).statusCode).toBe(200);
    const other = await read(clinicianB);
    expect(other.statusCode).toBe(403);
    const accesses = await h.svc.database.db.selectFrom('outbox').select('payload').where('key', '=', nhs).where('type', '=', 'cmc.access.recorded.v1').execute();
    const outcomes = accesses.map((a) => (JSON.parse(a.payload) as { data: { interaction: string; outcome: string } }).data);
    expect(outcomes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ interaction: 'create', outcome: 'allowed' }),
        expect.objectContaining({ interaction: 'read', outcome: 'allowed' }),
        expect.objectContaining({ interaction: 'read', outcome: 'refused' }),
      ]),
    );
    expect(outcomes).toHaveLength(4);
  });

  it('when a system client reads a consent, then only one recorded by its own organisation (a role claim cannot widen that)', async () => {
    const id = (await post(validConsent(randomNhsNumber()))).json<{ id: string }>().id;
    const asClient = (org: string, extra: Record<string, unknown> = {}) =>
      h.svc.app.inject({ method: 'GET', url: `/fhir/R4/Consent/${id}`, headers: { authorization: `Bearer ${issuer.token({ kind: 'client', org, scope: 'system/Consent.r' }, extra)}` } });
    expect((await asClient('A11111')).statusCode).toBe(200);
    expect((await asClient('B22222')).statusCode).toBe(403);
    expect((await asClient('B22222', { cmc_role: 'service-team' })).statusCode).toBe(401);
  });

  it('when the consent does not exist, or the id could not be one of ours, then 404 OperationOutcome', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', 'a.b-c']) {
      const res = await h.svc.app.inject({ method: 'GET', url: `/fhir/R4/Consent/${id}`, headers: { authorization: clinicianA } });
      expect({ id, status: res.statusCode, code: issuesOf(res.body)[0]?.code }).toEqual({ id, status: 404, code: 'not-found' });
    }
  });

  it('when the date does not exist on the calendar, then 400 naming dateTime, and nothing is stored', async () => {
    const nhs = randomNhsNumber();
    const res = await post(aConsent(nhs, { dateTime: '2026-02-31' }));
    expect(res.statusCode).toBe(400);
    expect(issuesOf(res.body)).toEqual([expect.objectContaining({ expression: ['Consent.dateTime'] })]);
    await expectNothingStored(nhs);
  });

  it('when the date is partial, then it is kept as given and its first moment is what the event says', async () => {
    const nhs = randomNhsNumber();
    const res = await post(aConsent(nhs, { dateTime: '2026-03' }));
    expect(res.statusCode).toBe(201);
    expect(res.json<{ dateTime: string }>().dateTime).toBe('2026-03');
    const event = await h.svc.database.db.selectFrom('outbox').select('payload').where('key', '=', nhs).where('type', '=', 'cmc.consent.granted.v1').executeTakeFirstOrThrow();
    expect((JSON.parse(event.payload) as { data: { dateTime: string } }).data.dateTime).toBe('2026-03-01T00:00:00.000Z');
  });

  it('when the body has an unknown element, then 400 naming it, and nothing is stored', async () => {
    const nhs = randomNhsNumber();
    const res = await post({ ...validConsent(nhs), colour: 'blue' });
    expect(res.statusCode).toBe(400);
    expect(issuesOf(res.body)).toEqual([expect.objectContaining({ code: 'structure', expression: ['Consent.colour'] })]);
    await expectNothingStored(nhs);
  });

  it('when the NHS number fails its check digit, then 400 naming the identifier, and nothing is stored', async () => {
    const good = randomNhsNumber();
    const bad = `${good.slice(0, 9)}${(Number(good[9]) + 1) % 10}`;
    const res = await post(validConsent(bad));
    expect(res.statusCode).toBe(400);
    expect(issuesOf(res.body)).toEqual([
      expect.objectContaining({ expression: ['Consent.patient.identifier.value'], diagnostics: expect.stringMatching(/check digit/) as unknown }),
    ]);
    await expectNothingStored(bad);
  });

  it('when several things are wrong, then each is named in one OperationOutcome', async () => {
    const before = await rowCounts();
    const res = await post({
      ...validConsent('123'),
      patient: { identifier: { system: 'urn:oid:1.2.3', value: '123' } },
      dateTime: new Date(Date.now() + 86_400_000).toISOString(),
    });
    expect(res.statusCode).toBe(400);
    const expressions = issuesOf(res.body).flatMap((i) => i.expression ?? []);
    expect(expressions).toEqual(expect.arrayContaining(['Consent.patient.identifier.value', 'Consent.patient.identifier.system', 'Consent.dateTime']));
    expect(await rowCounts()).toEqual(before);
  });

  it('when a required element is missing or has the wrong type, then 400 naming it', async () => {
    const nhs = randomNhsNumber();
    const { patient: _p, ...noPatient } = validConsent(nhs);
    const missing = await post(noPatient);
    expect(missing.statusCode).toBe(400);
    expect(issuesOf(missing.body)).toEqual([expect.objectContaining({ code: 'required', expression: ['Consent.patient'] })]);
    const wrongType = await post({ ...validConsent(nhs), category: 'consent' });
    expect(wrongType.statusCode).toBe(400);
    expect(issuesOf(wrongType.body)[0]?.expression).toEqual(['Consent.category']);
    await expectNothingStored(nhs);
  });

  it('when the status is not active, then 400', async () => {
    const nhs = randomNhsNumber();
    const res = await post({ ...validConsent(nhs), status: 'inactive' });
    expect(res.statusCode).toBe(400);
    expect(issuesOf(res.body)[0]?.expression).toEqual(['Consent.status']);
    await expectNothingStored(nhs);
  });

  it('when the body is not JSON, then 400; when the content type is not JSON, 415; when it is too big, 413; nothing is stored', async () => {
    const nhs = randomNhsNumber();
    const malformed = await post(`{"resourceType":"Consent","patient":{"identifier":{"value":"${nhs}"`);
    expect(malformed.statusCode).toBe(400);
    expect(issuesOf(malformed.body)[0]?.diagnostics).toMatch(/not valid JSON/);
    const xml = await post(`<Consent><patient>${nhs}</patient></Consent>`, { 'content-type': 'application/fhir+xml' });
    expect(xml.statusCode).toBe(415);
    const huge = await post({ ...validConsent(nhs), category: Array.from({ length: 10 }, () => ({ text: 'x'.repeat(1000) })) });
    expect(huge.statusCode).toBe(413);
    for (const r of [malformed, xml, huge]) expect(r.headers['content-type']).toMatch(/^application\/fhir\+json/);
    await expectNothingStored(nhs);
  });

  it('when an attempt is refused before it reaches the consent, then the refusal is in the access log with who and why', async () => {
    const id = (await post(validConsent(randomNhsNumber()))).json<{ id: string }>().id;
    const refusalsOf = async () =>
      (await h.svc.database.db.selectFrom('outbox').select('payload').where('type', '=', 'cmc.access.recorded.v1').where('key', '=', id).execute()).map(
        (r) => (JSON.parse(r.payload) as { data: { agent: unknown; interaction: string; outcome: string; outcomeReason: string; entities: unknown } }).data,
      );
    expect(await refusalsOf()).toEqual([]);
    const anonymous = await h.svc.app.inject({ method: 'GET', url: `/fhir/R4/Consent/${id}` });
    expect(anonymous.statusCode).toBe(401);
    const wrongRole = await h.svc.app.inject({ method: 'GET', url: `/fhir/R4/Consent/${id}`, headers: { authorization: urgentCare } });
    expect(wrongRole.statusCode).toBe(403);
    expect(await refusalsOf()).toEqual([
      expect.objectContaining({ agent: { kind: 'anonymous', id: 'anonymous' }, interaction: 'read', outcome: 'refused', entities: [{ resourceType: 'Consent', id }] }),
      expect.objectContaining({
        agent: expect.objectContaining({ kind: 'user', role: 'urgent-care', organisation: 'RRU' }) as unknown,
        interaction: 'read',
        outcome: 'refused',
        outcomeReason: "role 'urgent-care' may not do this",
      }),
    ]);
  });

  it('when there is no token, then 401; when the role may not record consent, then 403; nothing is stored', async () => {
    const nhs = randomNhsNumber();
    const anonymous = await h.svc.app.inject({ method: 'POST', url: '/fhir/R4/Consent', headers: { 'content-type': 'application/fhir+json' }, payload: validConsent(nhs) });
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Bearer');
    const forbidden = await post(validConsent(nhs), { authorization: urgentCare });
    expect(forbidden.statusCode).toBe(403);
    await expectNothingStored(nhs);
  });
});
