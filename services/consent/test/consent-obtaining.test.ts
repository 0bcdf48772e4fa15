import { TestIssuer, aConsent, consentProvisions, randomNhsNumber } from '@cmc/test-support';
import { useConsentService } from './support';
import type { OperationOutcome } from 'fhir/r4';

const SNOMED = 'http://snomed.info/sct';
const JUSTIFICATION = 'https://fhir.cmc.example/StructureDefinition/consent-justification';
const PURPOSE = 'https://fhir.cmc.example/CodeSystem/consent-purpose';
const GIVEN_BY_PATIENT = '882921000000109';
const LPA = '883001000000106';
const BEST_INTERESTS = '882961000000101';

const category = (...codes: string[]) => [{ coding: codes.map((code) => ({ system: SNOMED, code })) }];
const justification = (text: string) => [{ url: JUSTIFICATION, valueString: text }];

describe('how consent was obtained, and what it permits', () => {
  const issuer = new TestIssuer();
  const clinician = issuer.bearer({ role: 'clinician', org: 'A11111' });
  const h = useConsentService(issuer);

  const post = (payload: unknown) =>
    h.svc.app.inject({ method: 'POST', url: '/fhir/R4/Consent', headers: { authorization: clinician, 'content-type': 'application/fhir+json' }, payload: JSON.stringify(payload) });
  const issuesOf = (body: string) => (JSON.parse(body) as OperationOutcome).issue;
  const grantedData = async (nhs: string) => {
    const rows = await h.svc.database.db.selectFrom('outbox').select('payload').where('key', '=', nhs).where('type', '=', 'cmc.consent.granted.v1').execute();
    return rows.map((r) => (JSON.parse(r.payload) as { data: Record<string, unknown> }).data);
  };
  const expectNothingStored = async (nhs: string) => {
    expect(await h.svc.database.db.selectFrom('consents').select('id').where('nhs_number', '=', nhs).execute()).toHaveLength(0);
    expect(await h.svc.database.db.selectFrom('outbox').select('id').where('key', '=', nhs).execute()).toHaveLength(0);
  };

  it('when the patient gave consent themselves, then 201 with no justification needed', async () => {
    const res = await post(aConsent(randomNhsNumber(), { category: category(GIVEN_BY_PATIENT) }));
    expect(res.statusCode).toBe(201);
  });

  it('when consent comes from a Lasting Power of Attorney with who holds it, then 201 and the justification is stored', async () => {
    const ext = justification('Jane Doe (daughter) holds the LPA for health and welfare');
    const res = await post(aConsent(randomNhsNumber(), { category: category(LPA), extension: ext }));
    expect(res.statusCode).toBe(201);
    expect(res.json<{ extension: unknown }>().extension).toEqual(ext);
  });

  it('when a best-interests decision names who took part, then 201', async () => {
    const res = await post(aConsent(randomNhsNumber(), { category: category(BEST_INTERESTS), extension: justification('Dr A (GP), B (son), C (IMCA)') }));
    expect(res.statusCode).toBe(201);
  });

  it.each([
    ['Lasting Power of Attorney', LPA],
    ['best-interests decision', BEST_INTERESTS],
  ])('when a %s has no justification, then 400 naming the justification extension, and nothing is stored', async (_name, code) => {
    const nhs = randomNhsNumber();
    const res = await post(aConsent(nhs, { category: category(code) }));
    expect(res.statusCode).toBe(400);
    expect(issuesOf(res.body)).toEqual([expect.objectContaining({ code: 'required', expression: [`Consent.extension('${JUSTIFICATION}')`] })]);
    await expectNothingStored(nhs);
  });

  it('when the justification is empty, blank or longer than 2000 characters, then 400', async () => {
    for (const text of ['', '   ', 'x'.repeat(2001)]) {
      const nhs = randomNhsNumber();
      const res = await post(aConsent(nhs, { category: category(LPA), extension: justification(text) }));
      expect({ len: text.length, status: res.statusCode }).toEqual({ len: text.length, status: 400 });
      await expectNothingStored(nhs);
    }
  });

  it('when the category has none of the three ways, or two of them, then 400 naming Consent.category, and nothing is stored', async () => {
    for (const cat of [category('59284002'), category(GIVEN_BY_PATIENT, LPA), [...category(GIVEN_BY_PATIENT), ...category(BEST_INTERESTS)], [{ coding: [{ system: 'http://example.org', code: GIVEN_BY_PATIENT }] }]]) {
      const nhs = randomNhsNumber();
      const res = await post(aConsent(nhs, { category: cat, extension: justification('someone') }));
      expect(res.statusCode).toBe(400);
      expect(issuesOf(res.body).flatMap((i) => i.expression ?? [])).toContain('Consent.category');
      await expectNothingStored(nhs);
    }
  });

  it('when an extension is not one we know, then 400 and nothing is stored', async () => {
    const nhs = randomNhsNumber();
    const res = await post(aConsent(nhs, { extension: [{ url: 'https://example.org/x', valueString: 'y' }] }));
    expect(res.statusCode).toBe(400);
    await expectNothingStored(nhs);
  });

  it('when secondary use is permitted or denied, then the stored provisions and the ConsentGranted event say so', async () => {
    for (const choice of ['permit', 'deny'] as const) {
      const nhs = randomNhsNumber();
      const res = await post(aConsent(nhs, { provision: consentProvisions({ secondaryUse: choice }) }));
      expect(res.statusCode).toBe(201);
      expect(res.json<{ provision: unknown }>().provision).toEqual(consentProvisions({ secondaryUse: choice }));
      expect(await grantedData(nhs)).toEqual([expect.objectContaining({ secondaryUse: choice })]);
    }
  });

  it.each([
    ['plan-creation', { planCreation: 'deny' }],
    ['sharing', { sharing: 'deny' }],
  ] as const)('when %s is denied, then 422 saying a plan needs both, and nothing is stored', async (_name, choices) => {
    const nhs = randomNhsNumber();
    const res = await post(aConsent(nhs, { provision: consentProvisions(choices) }));
    expect(res.statusCode).toBe(422);
    expect(issuesOf(res.body)[0]?.diagnostics).toMatch(/needs both plan-creation and sharing/);
    await expectNothingStored(nhs);
  });

  it('when a purpose is missing, repeated, unknown or from another system, then 400 naming the provisions, and nothing is stored', async () => {
    const nested = (code: string, system = PURPOSE) => ({ type: 'permit', purpose: [{ system, code }] });
    const cases = [
      [nested('plan-creation'), nested('sharing')],
      [nested('plan-creation'), nested('sharing'), nested('sharing')],
      [nested('plan-creation'), nested('sharing'), nested('research')],
      [nested('plan-creation'), nested('sharing'), nested('secondary-use', 'http://example.org')],
    ];
    for (const provision of cases) {
      const nhs = randomNhsNumber();
      const res = await post(aConsent(nhs, { provision: { type: 'deny', provision } }));
      expect(res.statusCode).toBe(400);
      expect(issuesOf(res.body).flatMap((i) => i.expression ?? []).join(' ')).toMatch(/Consent\.provision\.provision/);
      await expectNothingStored(nhs);
    }
  });

  it('when provisions are absent, the top is not deny, or a nested one has two purposes, then 400 and nothing is stored', async () => {
    const nhs = randomNhsNumber();
    const { provision: _p, ...noProvision } = aConsent(nhs);
    const twoPurposes = consentProvisions() as { type: string; provision: { purpose: unknown[] }[] };
    twoPurposes.provision[0]!.purpose.push({ system: PURPOSE, code: 'sharing' });
    for (const body of [noProvision, aConsent(nhs, { provision: { ...consentProvisions(), type: 'permit' } }), aConsent(nhs, { provision: twoPurposes })]) {
      const res = await post(body);
      expect(res.statusCode).toBe(400);
      expect(issuesOf(res.body)[0]?.expression?.[0]).toMatch(/^Consent\.provision/);
    }
    await expectNothingStored(nhs);
  });
});
