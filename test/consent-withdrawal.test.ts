/**
 * Consent comes first (issue #4 with #5): over real Kafka and over the SQL transport, a plan cannot be created
 * before the consent reaches the care-plan service, and a withdrawal takes the plan out of every view but the
 * service team's, also when the care-plan service was down when it happened.
 */
import { carePlanService, activeConsentOf, type CarePlanDB } from '@cmc/care-plan-service';
import { consentService, type ConsentDB } from '@cmc/consent-service';
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TRANSPORTS, TestIssuer, aCarePlan, aConsent, newTransport, randomNhsNumber, startTestService, uniqueName, waitFor } from '@cmc/test-support';
import type { CarePlan, Consent } from 'fhir/r4';

describe.each(TRANSPORTS)('consent withdrawal reaches the plan over the %s transport', (kind) => {
  const issuer = new TestIssuer();
  const clinician = issuer.bearer({ role: 'clinician', org: 'H81001' });
  const urgentCare = issuer.bearer({ role: 'urgent-care', org: 'RRU' });
  const serviceTeam = issuer.bearer({ role: 'service-team', org: 'X26' });
  const carePlanSchema = uniqueName('careplan');
  let transport: Transport;
  let consent: RunningService<ConsentDB>;
  let carePlan: RunningService<CarePlanDB> | undefined;

  const startCarePlan = async () => {
    carePlan = await startTestService(carePlanService, { transport, issuer, env: { CAREPLAN_DB_SCHEMA: carePlanSchema } });
    return carePlan;
  };
  const plans = () => {
    if (!carePlan) throw new Error('care-plan is down');
    return carePlan;
  };

  beforeAll(async () => {
    transport = await newTransport(kind);
    [consent] = await Promise.all([startTestService(consentService, { transport, issuer }), startCarePlan()]);
  });

  afterAll(async () => {
    await consent?.close();
    await carePlan?.close();
    await transport?.close();
  });

  const recordConsent = async (nhs: string) => {
    const res = await consent.app.inject({ method: 'POST', url: '/fhir/R4/Consent', headers: { authorization: clinician, 'content-type': 'application/fhir+json' }, payload: aConsent(nhs) });
    expect(res.statusCode).toBe(201);
    const stored = res.json<Consent>();
    await waitFor(() => activeConsentOf(plans().database.db, nhs), 20_000, 'consent projected');
    return stored;
  };
  const withdrawConsent = async (stored: Consent) => {
    const body = { ...stored, status: 'inactive', extension: [...(stored.extension ?? []), { url: 'https://fhir.cmc.example/StructureDefinition/consent-withdrawal-reason', valueString: 'the patient asked' }] };
    const res = await consent.app.inject({ method: 'PUT', url: `/fhir/R4/Consent/${stored.id}`, headers: { authorization: clinician, 'content-type': 'application/fhir+json', 'if-match': 'W/"1"' }, payload: body });
    expect(res.statusCode).toBe(200);
  };
  const publishedPlan = async (nhs: string) => {
    const created = await plans().app.inject({ method: 'POST', url: '/fhir/R4/CarePlan', headers: { authorization: clinician, 'content-type': 'application/fhir+json' }, payload: JSON.stringify(aCarePlan(nhs)) });
    expect(created.statusCode).toBe(201);
    const id = created.json<CarePlan>().id!;
    expect((await plans().app.inject({ method: 'POST', url: `/fhir/R4/CarePlan/${id}/$publish`, headers: { authorization: clinician, 'if-match': 'W/"1"' } })).statusCode).toBe(200);
    return id;
  };
  const read = (id: string, auth: string) => plans().app.inject({ method: 'GET', url: `/fhir/R4/CarePlan/${id}`, headers: { authorization: auth } });
  const flagOf = async (nhs: string) =>
    (await plans().app.inject({ method: 'GET', url: `/api/flags/${nhs}`, headers: { authorization: urgentCare } })).json<{ hasPlan: boolean }>().hasPlan;
  const stateOf = async (id: string) => (await plans().database.db.selectFrom('care_plans').select('state').where('id', '=', id).executeTakeFirst())?.state;

  it('when consent is withdrawn, then within seconds the plan is withdrawn and its flag down: urgent care gets 403, the service team still sees it', async () => {
    const nhs = randomNhsNumber();
    const stored = await recordConsent(nhs);
    const id = await publishedPlan(nhs);
    expect((await read(id, urgentCare)).statusCode).toBe(200);
    expect(await flagOf(nhs)).toBe(true);
    await withdrawConsent(stored);
    await waitFor(async () => (await stateOf(id)) === 'withdrawn' || undefined, 20_000, 'plan withdrawn');
    expect(await flagOf(nhs)).toBe(false);
    expect((await read(id, urgentCare)).statusCode).toBe(403);
    expect((await read(id, clinician)).statusCode).toBe(403);
    const seen = await read(id, serviceTeam);
    expect(seen.statusCode).toBe(200);
    expect(seen.json<CarePlan>().status).toBe('revoked');
    const events = await plans().database.db.selectFrom('outbox').select('payload').where('key', '=', nhs).where('type', '=', 'cmc.careplan.withdrawn.v1').execute();
    expect(events).toHaveLength(1);
    expect(JSON.parse(events[0]!.payload)).toMatchObject({ data: { byConsentWithdrawal: true, changedBy: 'system' } });
  });

  it('when the care-plan service is down during the withdrawal, then it catches up when it starts again', async () => {
    const nhs = randomNhsNumber();
    const stored = await recordConsent(nhs);
    const id = await publishedPlan(nhs);
    await plans().close();
    carePlan = undefined;
    await withdrawConsent(stored);
    await startCarePlan();
    await waitFor(async () => (await stateOf(id)) === 'withdrawn' || undefined, 30_000, 'plan withdrawn after restart');
    expect((await read(id, urgentCare)).statusCode).toBe(403);
    expect(await flagOf(nhs)).toBe(false);
  });
});
