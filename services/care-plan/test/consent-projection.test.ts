import { activeConsentOf, carePlanService, consentsOf, hasActiveConsent, type CarePlanDB } from '@cmc/care-plan-service';
import { makeEvent, type EventType, type NewEvent } from '@cmc/contracts';
import { toMessage, type Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, randomNhsNumber, startTestService, waitFor } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';

describe('the care-plan service\'s projection of consent', () => {
  let transport: Transport;
  let svc: RunningService<CarePlanDB>;

  beforeAll(async () => {
    transport = await newTransport('sql');
    svc = await startTestService(carePlanService, { transport, issuer: new TestIssuer() });
  });

  afterAll(async () => {
    await svc?.close();
    await transport?.close();
  });

  const send = async <T extends EventType>(e: Omit<NewEvent<T>, 'source'>) => {
    const ev = makeEvent({ ...e, source: '/cmc/consent' });
    await transport.publish([toMessage({ event_id: ev.id, topic: 'cmc.consent.v1', key: ev.partitionkey, type: ev.type, payload: JSON.stringify(ev) })]);
    return ev;
  };
  const grant = (nhsNumber: string, consentId: string, versionId: string, dateTime: string) =>
    send({ type: 'cmc.consent.granted.v1', key: nhsNumber, data: { consentId, versionId, nhsNumber, status: 'active', dateTime } });
  const withdraw = (nhsNumber: string, consentId: string, versionId: string, withdrawnAt: string) =>
    send({ type: 'cmc.consent.withdrawn.v1', key: nhsNumber, data: { consentId, versionId, nhsNumber, status: 'inactive', withdrawnAt, reason: 'patient asked' } });
  const settled = (nhsNumber: string, n: number) => waitFor(async () => ((await consentsOf(svc.database.db, nhsNumber)).length === n ? true : undefined), 15_000, `${n} consents`);
  const processed = (eventId: string) =>
    waitFor(async () => (await svc.database.db.selectFrom('processed_events').select('event_id').where('event_id', '=', eventId).executeTakeFirst()) !== undefined || undefined, 15_000, 'event processed');

  it('when an older consent is withdrawn, then the newer active one still counts', async () => {
    const nhs = randomNhsNumber();
    const older = randomUUID();
    const newer = randomUUID();
    await grant(nhs, older, '1', '2026-01-10T09:00:00Z');
    await grant(nhs, newer, '1', '2026-06-01T09:00:00Z');
    await settled(nhs, 2);
    await processed((await withdraw(nhs, older, '2', '2026-11-01T09:00:00Z')).id);
    expect(await hasActiveConsent(svc.database.db, nhs)).toBe(true);
    expect((await activeConsentOf(svc.database.db, nhs))?.consent_id).toBe(newer);
    const all = await consentsOf(svc.database.db, nhs);
    expect(all.find((c) => c.consent_id === older)?.status).toBe('inactive');
  });

  it('when every consent is withdrawn, then the patient has no active consent', async () => {
    const nhs = randomNhsNumber();
    const id = randomUUID();
    await grant(nhs, id, '1', '2026-01-10T09:00:00Z');
    await settled(nhs, 1);
    expect(await hasActiveConsent(svc.database.db, nhs)).toBe(true);
    await processed((await withdraw(nhs, id, '2', '2026-02-01T09:00:00Z')).id);
    expect(await hasActiveConsent(svc.database.db, nhs)).toBe(false);
  });

  it('when an earlier version of a consent arrives after a later one, then the later one stands', async () => {
    const nhs = randomNhsNumber();
    const id = randomUUID();
    await grant(nhs, id, '1', '2026-01-10T09:00:00Z');
    await processed((await withdraw(nhs, id, '2', '2026-02-01T09:00:00Z')).id);
    // A replay of version 1 (a different event id, so not a duplicate): it must not bring consent back.
    await processed((await grant(nhs, id, '1', '2026-01-10T09:00:00Z')).id);
    expect(await hasActiveConsent(svc.database.db, nhs)).toBe(false);
    expect((await consentsOf(svc.database.db, nhs))[0]?.version_id).toBe(2);
  });
});
