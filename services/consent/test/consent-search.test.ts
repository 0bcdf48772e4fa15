import { TestIssuer, aConsent, randomNhsNumber } from '@cmc/test-support';
import { useConsentService } from './support';
import type { Bundle, Consent, OperationOutcome } from 'fhir/r4';

const NHS = 'https://fhir.nhs.uk/Id/nhs-number';
const REASON = 'https://fhir.cmc.example/StructureDefinition/consent-withdrawal-reason';

describe('searching a patient\'s consents', () => {
  const issuer = new TestIssuer();
  const clinicianA = issuer.bearer({ role: 'clinician', org: 'A11111' });
  const clinicianB = issuer.bearer({ role: 'clinician', org: 'B22222' });
  const serviceTeam = issuer.bearer({ role: 'service-team', org: 'X26' });
  const h = useConsentService(issuer);

  const record = async (nhs: string, dateTime: string, auth = clinicianA) => {
    const res = await h.svc.app.inject({
      method: 'POST',
      url: '/fhir/R4/Consent',
      headers: { authorization: auth, 'content-type': 'application/fhir+json' },
      payload: JSON.stringify(aConsent(nhs, { dateTime })),
    });
    expect(res.statusCode).toBe(201);
    return res.json<Consent>();
  };
  const search = (query: string, auth = clinicianA) => h.svc.app.inject({ method: 'GET', url: `/fhir/R4/Consent?${query}`, headers: { authorization: auth } });
  const byPatient = (nhs: string) => `patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}`;
  const idsOf = (body: string) => ((JSON.parse(body) as Bundle<Consent>).entry ?? []).map((e) => e.resource?.id);
  const searchAccesses = async (nhs: string) =>
    (await h.svc.database.db.selectFrom('outbox').select('payload').where('type', '=', 'cmc.access.recorded.v1').where('key', '=', nhs).execute())
      .map((r) => (JSON.parse(r.payload) as { data: { interaction: string; entities: unknown[]; query?: string } }).data)
      .filter((d) => d.interaction === 'search');

  it('when a patient\'s consents are searched, then a searchset Bundle newest first, and one access entry lists every consent returned', async () => {
    const nhs = randomNhsNumber();
    const older = await record(nhs, '2026-01-10T09:00:00Z');
    const newer = await record(nhs, '2026-06-01T09:00:00Z');
    await record(randomNhsNumber(), '2026-06-02T09:00:00Z');
    const res = await search(byPatient(nhs));
    expect(res.statusCode).toBe(200);
    const bundle = res.json<Bundle<Consent>>();
    expect(bundle.type).toBe('searchset');
    expect(idsOf(res.body)).toEqual([newer.id, older.id]);
    expect(await searchAccesses(nhs)).toEqual([
      expect.objectContaining({
        entities: [
          { resourceType: 'Consent', id: newer.id, versionId: '1', nhsNumber: nhs },
          { resourceType: 'Consent', id: older.id, versionId: '1', nhsNumber: nhs },
        ],
      }),
    ]);
  });

  it('when _count is smaller than the matches, then pages follow the next link until every consent is seen once', async () => {
    const nhs = randomNhsNumber();
    const made = [];
    for (const day of ['01', '02', '03', '04', '05']) made.push((await record(nhs, `2026-03-${day}T10:00:00Z`)).id);
    const seen: (string | undefined)[] = [];
    let url: string | undefined = `/fhir/R4/Consent?${byPatient(nhs)}&_count=2`;
    let pages = 0;
    while (url) {
      const res: Awaited<ReturnType<typeof search>> = await h.svc.app.inject({ method: 'GET', url, headers: { authorization: clinicianA } });
      expect(res.statusCode).toBe(200);
      seen.push(...idsOf(res.body));
      const next: string | undefined = res.json<Bundle>().link?.find((l) => l.relation === 'next')?.url;
      url = next ? new URL(next).pathname + new URL(next).search : undefined;
      pages += 1;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(made.reverse());
    expect(await searchAccesses(nhs)).toHaveLength(3);
  });

  it('when status and date are given, then only the consents that match', async () => {
    const nhs = randomNhsNumber();
    const jan = await record(nhs, '2026-01-15T10:00:00Z');
    const mar = await record(nhs, '2026-03-15T10:00:00Z');
    const withdrawn = await h.svc.app.inject({
      method: 'PUT',
      url: `/fhir/R4/Consent/${jan.id!}`,
      headers: { authorization: clinicianA, 'content-type': 'application/fhir+json', 'if-match': 'W/"1"' },
      payload: JSON.stringify({ ...jan, status: 'inactive', extension: [{ url: REASON, valueString: 'moved away' }] }),
    });
    expect(withdrawn.statusCode).toBe(200);
    expect(idsOf((await search(`${byPatient(nhs)}&status=active`)).body)).toEqual([mar.id]);
    expect(idsOf((await search(`${byPatient(nhs)}&status=inactive`)).body)).toEqual([jan.id]);
    expect(idsOf((await search(`${byPatient(nhs)}&date=2026-01`)).body)).toEqual([jan.id]);
    expect(idsOf((await search(`${byPatient(nhs)}&date=ge2026-02-01`)).body)).toEqual([mar.id]);
    expect(idsOf((await search(`${byPatient(nhs)}&date=ge2026-01-01&date=lt2026-03-15`)).body)).toEqual([jan.id]);
  });

  it('when another organisation searches, then it sees none of them; the service team sees every one', async () => {
    const nhs = randomNhsNumber();
    const a = await record(nhs, '2026-01-01');
    const b = await record(nhs, '2026-02-01', clinicianB);
    expect(idsOf((await search(byPatient(nhs), clinicianB)).body)).toEqual([b.id]);
    expect(idsOf((await search(byPatient(nhs), clinicianA)).body)).toEqual([a.id]);
    expect(idsOf((await search(byPatient(nhs), serviceTeam)).body)).toEqual([b.id, a.id]);
  });

  it('when the NHS number is invalid, the patient is missing, or a parameter is unknown, then 400 OperationOutcome', async () => {
    const good = randomNhsNumber();
    const bad = `${good.slice(0, 9)}${(Number(good[9]) + 1) % 10}`;
    for (const q of [byPatient(bad), 'status=active', `${byPatient(good)}&colour=blue`, `${byPatient(good)}&date=2026-02-31`, `${byPatient(good)}&_cursor=nonsense`, `${byPatient(good)}&_cursor=${Buffer.from(JSON.stringify({ d: '2026-01-01T00:00:00Z', id: 'not-a-uuid' })).toString('base64url')}`, `patient:identifier=${good}`]) {
      const res = await search(q);
      expect({ q, status: res.statusCode }).toEqual({ q, status: 400 });
      expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    }
    const unknown = await search(`${byPatient(good)}&colour=blue`);
    expect(unknown.json<OperationOutcome>().issue[0]?.diagnostics).toMatch(/unknown search parameter colour/);
  });
});
