import { TestIssuer, aConsent, randomNhsNumber } from '@cmc/test-support';
import { useConsentService } from './support';
import type { Bundle, Consent, OperationOutcome } from 'fhir/r4';

const REASON = 'https://fhir.cmc.example/StructureDefinition/consent-withdrawal-reason';
const JUSTIFICATION = 'https://fhir.cmc.example/StructureDefinition/consent-justification';

describe('withdrawing a consent, and its versions', () => {
  const issuer = new TestIssuer();
  const clinicianA = issuer.bearer({ role: 'clinician', org: 'A11111' });
  const adminA = issuer.bearer({ role: 'administrator', org: 'A11111' });
  const clinicianB = issuer.bearer({ role: 'clinician', org: 'B22222' });
  const serviceTeam = issuer.bearer({ role: 'service-team', org: 'X26' });
  const clientA = `Bearer ${issuer.token({ kind: 'client', org: 'A11111', scope: 'system/Consent.cruds' })}`;
  const h = useConsentService(issuer);

  const issuesOf = (body: string) => (JSON.parse(body) as OperationOutcome).issue;

  const recordConsent = async (nhs = randomNhsNumber(), overrides: Record<string, unknown> = {}) => {
    const res = await h.svc.app.inject({
      method: 'POST',
      url: '/fhir/R4/Consent',
      headers: { authorization: clinicianA, 'content-type': 'application/fhir+json' },
      payload: JSON.stringify(aConsent(nhs, overrides)),
    });
    expect(res.statusCode).toBe(201);
    return { nhs, consent: res.json<Consent>() };
  };

  const withdrawal = (consent: Consent, reason = 'patient changed their mind'): Consent => ({
    ...consent,
    status: 'inactive',
    extension: [...(consent.extension ?? []), { url: REASON, valueString: reason }],
  });

  const put = (id: string, body: unknown, headers: Record<string, string> = { 'if-match': 'W/"1"' }, auth = clinicianA) =>
    h.svc.app.inject({
      method: 'PUT',
      url: `/fhir/R4/Consent/${id}`,
      headers: { authorization: auth, 'content-type': 'application/fhir+json', ...headers },
      payload: JSON.stringify(body),
    });

  const get = (url: string, auth = clinicianA) => h.svc.app.inject({ method: 'GET', url, headers: { authorization: auth } });

  const eventsOf = async (nhs: string, type: string) =>
    (await h.svc.database.db.selectFrom('outbox').select('payload').where('key', '=', nhs).where('type', '=', type).orderBy('id').execute()).map(
      (r) => (JSON.parse(r.payload) as { data: Record<string, unknown> }).data,
    );

  it('when a clinician of the recording organisation withdraws with If-Match and a reason, then version 2 is inactive, both versions are kept, and the event and access entry are written', async () => {
    const { nhs, consent } = await recordConsent();
    const res = await put(consent.id!, withdrawal(consent));
    expect(res.statusCode).toBe(200);
    expect(res.headers.etag).toBe('W/"2"');
    const body = res.json<Consent>();
    expect(body).toMatchObject({ id: consent.id, status: 'inactive', meta: { versionId: '2' }, extension: [{ url: REASON, valueString: 'patient changed their mind' }] });
    const row = await h.svc.database.db.selectFrom('consents').selectAll().where('id', '=', consent.id!).executeTakeFirstOrThrow();
    expect({ version: row.version_id, status: row.status }).toEqual({ version: 2, status: 'inactive' });
    const versions = await h.svc.database.db.selectFrom('consent_versions').select(['version_id', 'resource']).where('id', '=', consent.id!).orderBy('version_id').execute();
    expect(versions.map((v) => [v.version_id, v.resource.status])).toEqual([[1, 'active'], [2, 'inactive']]);
    expect(await eventsOf(nhs, 'cmc.consent.withdrawn.v1')).toEqual([
      { consentId: consent.id, versionId: '2', nhsNumber: nhs, status: 'inactive', withdrawnAt: body.meta?.lastUpdated, reason: 'patient changed their mind' },
    ]);
    expect(await eventsOf(nhs, 'cmc.access.recorded.v1')).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ interaction: 'update', outcome: 'allowed', entities: [{ resourceType: 'Consent', id: consent.id, versionId: '2', nhsNumber: nhs }] }),
      ]),
    );
  });

  it('when the service team withdraws a consent recorded under a justification, then 200 and the justification stays', async () => {
    const { consent } = await recordConsent(randomNhsNumber(), {
      category: [{ coding: [{ system: 'http://snomed.info/sct', code: '883001000000106' }] }],
      extension: [{ url: JUSTIFICATION, valueString: 'J Doe holds the LPA' }],
    });
    const res = await put(consent.id!, withdrawal(consent), { 'if-match': 'W/"1"' }, serviceTeam);
    expect(res.statusCode).toBe(200);
    expect(res.json<Consent>().extension?.map((e) => e.url)).toEqual([JUSTIFICATION, REASON]);
  });

  it('when If-Match is missing, then 428; when it is stale, then 412; both OperationOutcome, and nothing changes', async () => {
    const { nhs, consent } = await recordConsent();
    const missing = await put(consent.id!, withdrawal(consent), {});
    expect(missing.statusCode).toBe(428);
    expect(missing.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    const stale = await put(consent.id!, withdrawal(consent), { 'if-match': 'W/"7"' });
    expect(stale.statusCode).toBe(412);
    expect(stale.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    expect(await eventsOf(nhs, 'cmc.consent.withdrawn.v1')).toEqual([]);
    expect((await get(`/fhir/R4/Consent/${consent.id!}`)).json<Consent>().status).toBe('active');
  });

  it('when an administrator, a clinician of another organisation or a system client tries to withdraw, then 403 and the consent stays active', async () => {
    const { nhs, consent } = await recordConsent();
    for (const auth of [adminA, clinicianB, clientA]) {
      const res = await put(consent.id!, withdrawal(consent), { 'if-match': 'W/"1"' }, auth);
      expect(res.statusCode).toBe(403);
    }
    expect(await eventsOf(nhs, 'cmc.consent.withdrawn.v1')).toEqual([]);
    expect((await get(`/fhir/R4/Consent/${consent.id!}`)).json<Consent>().status).toBe('active');
    const refused = (await eventsOf(nhs, 'cmc.access.recorded.v1')).filter((a) => a.interaction === 'update' && a.outcome === 'refused');
    expect(refused).toHaveLength(1); // clinician B reached the consent; the others were stopped by the route's rule
  });

  it('when a withdrawn consent is changed again, then 409', async () => {
    const { consent } = await recordConsent();
    expect((await put(consent.id!, withdrawal(consent))).statusCode).toBe(200);
    const again = await put(consent.id!, withdrawal(consent, 'again'), { 'if-match': 'W/"2"' });
    expect(again.statusCode).toBe(409);
    expect(issuesOf(again.body)[0]?.code).toBe('conflict');
  });

  it('when the change is not a withdrawal, then 422 saying only withdrawal is supported, and nothing changes', async () => {
    const { nhs, consent } = await recordConsent();
    const notInactive = await put(consent.id!, { ...withdrawal(consent), status: 'active' });
    const otherChange = await put(consent.id!, { ...withdrawal(consent), dateTime: '2020-01-01' });
    for (const res of [notInactive, otherChange]) {
      expect(res.statusCode).toBe(422);
      expect(issuesOf(res.body)[0]?.diagnostics).toMatch(/only change supported is a withdrawal/);
    }
    expect(issuesOf(otherChange.body)[0]?.expression).toEqual(['Consent.dateTime']);
    expect(await eventsOf(nhs, 'cmc.consent.withdrawn.v1')).toEqual([]);
  });

  it('when the withdrawal has no reason, or the body id is not the URL id, then 400', async () => {
    const { consent } = await recordConsent();
    const noReason = await put(consent.id!, { ...consent, status: 'inactive' });
    expect(noReason.statusCode).toBe(400);
    expect(issuesOf(noReason.body)[0]?.expression).toEqual([`Consent.extension('${REASON}')`]);
    const otherId = await put(consent.id!, { ...withdrawal(consent), id: '00000000-0000-4000-8000-000000000000' });
    expect(otherId.statusCode).toBe(400);
  });

  it('when the consent does not exist, then 404', async () => {
    const { consent } = await recordConsent();
    const res = await put('00000000-0000-4000-8000-000000000000', { ...withdrawal(consent), id: undefined });
    expect(res.statusCode).toBe(404);
  });

  it('when a version is read, then that version with its ETag; an unknown version is 404; each read is in the access log as vread', async () => {
    const { nhs, consent } = await recordConsent();
    await put(consent.id!, withdrawal(consent));
    const v1 = await get(`/fhir/R4/Consent/${consent.id!}/_history/1`, adminA);
    expect(v1.statusCode).toBe(200);
    expect(v1.headers.etag).toBe('W/"1"');
    expect(v1.json<Consent>()).toMatchObject({ status: 'active', meta: { versionId: '1' } });
    const v2 = await get(`/fhir/R4/Consent/${consent.id!}/_history/2`, serviceTeam);
    expect(v2.json<Consent>()).toMatchObject({ status: 'inactive', meta: { versionId: '2' } });
    expect((await get(`/fhir/R4/Consent/${consent.id!}/_history/3`)).statusCode).toBe(404);
    const vreads = (await eventsOf(nhs, 'cmc.access.recorded.v1')).filter((a) => a.interaction === 'vread');
    expect(vreads).toEqual([
      expect.objectContaining({ outcome: 'allowed', entities: [{ resourceType: 'Consent', id: consent.id, versionId: '1', nhsNumber: nhs }] }),
      expect.objectContaining({ outcome: 'allowed', entities: [{ resourceType: 'Consent', id: consent.id, versionId: '2', nhsNumber: nhs }] }),
    ]);
  });

  it('when the history is read, then a history Bundle newest first, recorded as one access naming every version', async () => {
    const { nhs, consent } = await recordConsent();
    await put(consent.id!, withdrawal(consent));
    const res = await get(`/fhir/R4/Consent/${consent.id!}/_history`);
    expect(res.statusCode).toBe(200);
    const bundle = res.json<Bundle<Consent>>();
    expect(bundle.type).toBe('history');
    expect(bundle.entry?.map((e) => [e.resource?.meta?.versionId, e.resource?.status, e.response?.etag])).toEqual([
      ['2', 'inactive', 'W/"2"'],
      ['1', 'active', 'W/"1"'],
    ]);
    const history = (await eventsOf(nhs, 'cmc.access.recorded.v1')).filter((a) => a.interaction === 'history');
    expect(history).toEqual([expect.objectContaining({ outcome: 'allowed', entities: [expect.objectContaining({ versionId: '2' }), expect.objectContaining({ versionId: '1' })] })]);
  });

  it('when another organisation asks for a version or the history, then 403, recorded as refused', async () => {
    const { nhs, consent } = await recordConsent();
    expect((await get(`/fhir/R4/Consent/${consent.id!}/_history/1`, clinicianB)).statusCode).toBe(403);
    expect((await get(`/fhir/R4/Consent/${consent.id!}/_history`, clinicianB)).statusCode).toBe(403);
    const refused = (await eventsOf(nhs, 'cmc.access.recorded.v1')).filter((a) => a.outcome === 'refused').map((a) => a.interaction);
    expect(refused).toEqual(['vread', 'history']);
  });
});
