/**
 * The walking skeleton end to end: the consent service records a Consent and emits ConsentGranted through
 * its outbox; the care-plan service consumes it and keeps its projection. The same tests run over real
 * Kafka and over the Kafka-free SQL transport.
 */
import { carePlanService, activeConsentOf, type CarePlanDB } from '@cmc/care-plan-service';
import { TOPICS } from '@cmc/contracts';
import { consentService, type ConsentDB } from '@cmc/consent-service';
import { toMessage, type Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TRANSPORTS, TestIssuer, aConsent, collect, newTransport, randomNhsNumber, startTestService, waitFor, waitForMessages } from '@cmc/test-support';


describe.each(TRANSPORTS)('consent reaches the care-plan projection over the %s transport', (kind) => {
  const issuer = new TestIssuer();
  const clinician = issuer.bearer({ role: 'clinician', org: 'H81001' });
  let transport: Transport;
  let consent: RunningService<ConsentDB>;
  let carePlan: RunningService<CarePlanDB>;

  const record = async (svc: RunningService<ConsentDB>, nhsNumber: string, dateTime?: string) => {
    const res = await svc.app.inject({
      method: 'POST',
      url: '/fhir/R4/Consent',
      headers: { authorization: clinician, 'content-type': 'application/fhir+json' },
      payload: aConsent(nhsNumber, dateTime ? { dateTime } : {}),
    });
    expect(res.statusCode).toBe(201);
    return res.json<{ id: string }>();
  };
  const projection = (nhsNumber: string) => activeConsentOf(carePlan.database.db, nhsNumber);
  const processedCount = async (eventId: string) =>
    (await carePlan.database.db.selectFrom('processed_events').select('event_id').where('event_id', '=', eventId).execute()).length;
  const grantedEventOf = async (svc: RunningService<ConsentDB>, consentId: string) =>
    svc.database.db.selectFrom('outbox').selectAll().where('type', '=', 'cmc.consent.granted.v1').where('payload', 'like', `%${consentId}%`).executeTakeFirstOrThrow();

  beforeAll(async () => {
    transport = await newTransport(kind);
    [consent, carePlan] = await Promise.all([
      startTestService(consentService, { transport, issuer }),
      startTestService(carePlanService, { transport, issuer }),
    ]);
  });

  afterAll(async () => {
    await consent?.close();
    await carePlan?.close();
    await transport?.close();
  });

  it('when a clinician records consent, then the event arrives and the projection shows active consent', async () => {
    const nhs = randomNhsNumber();
    expect(await projection(nhs)).toBeUndefined();
    const created = await record(consent, nhs);
    const row = await waitFor(() => projection(nhs), 20_000, 'projection');
    expect(row).toMatchObject({ consent_id: created.id, version_id: 1, status: 'active' });
  });

  it('when the same event is delivered twice, then the second delivery changes nothing', async () => {
    const nhs = randomNhsNumber();
    const created = await record(consent, nhs);
    const first = await waitFor(() => projection(nhs), 20_000, 'projection');
    const event = await grantedEventOf(consent, created.id);
    const duplicatesBefore = carePlan.consumers[0]!.stats.duplicates;
    await transport.publish([toMessage(event)]);
    await waitFor(async () => carePlan.consumers[0]!.stats.duplicates > duplicatesBefore, 20_000, 'duplicate seen');
    expect(await projection(nhs)).toEqual(first);
    expect(await processedCount(event.event_id)).toBe(1);
  });

  it('when the relay stops after sending and before marking the row sent, then nothing is lost and no effect is duplicated', async () => {
    let crashes = 1;
    const crashing = await startTestService(consentService, {
      transport,
      issuer,
      start: {
        logger: false,
        relay: {
          pollIntervalMs: 100,
          afterPublish: async () => {
            if (crashes-- > 0) throw new Error('relay stopped between send and mark');
          },
        },
      },
    });
    try {
      const nhs = randomNhsNumber();
      const duplicatesBefore = carePlan.consumers[0]!.stats.duplicates;
      const created = await record(crashing, nhs);
      await waitFor(() => projection(nhs), 20_000, 'projection');
      // The resend reaches the consumer as a duplicate, which it ignores.
      await waitFor(async () => carePlan.consumers[0]!.stats.duplicates > duplicatesBefore, 20_000, 'the resent event');
      // The consumer can see the resent event before the relay's transaction that marks it sent commits.
      const event = await waitFor(async () => {
        const row = await grantedEventOf(crashing, created.id);
        return row.sent_at !== null ? row : undefined;
      }, 20_000, 'the row marked sent');
      expect(event.sent_at).not.toBeNull();
      expect(crashing.relay.stats.failures).toBe(1);
      expect(await processedCount(event.event_id)).toBe(1);
      expect(await projection(nhs)).toMatchObject({ consent_id: created.id, status: 'active' });
    } finally {
      await crashing.close();
    }
  });

  it('when consent is recorded, then its access entry goes out on cmc.access.v1 with who, what and where', async () => {
    const access = await collect(transport, TOPICS.access);
    try {
      const nhs = randomNhsNumber();
      const created = await record(consent, nhs);
      const [msg] = await waitForMessages(access.messages, 1, (m) => m.key === nhs);
      const ev = JSON.parse(msg!.value) as { type: string; requestid?: string; data: Record<string, unknown> };
      expect(ev.type).toBe('cmc.access.recorded.v1');
      expect(ev.requestid).toBeDefined();
      expect(ev.data).toMatchObject({
        agent: { kind: 'user', role: 'clinician', organisation: 'H81001' },
        interaction: 'create',
        outcome: 'allowed',
        entities: [{ resourceType: 'Consent', id: created.id, versionId: '1', nhsNumber: nhs }],
        source: { service: 'consent' },
      });
    } finally {
      await access.stop();
    }
  });
});
