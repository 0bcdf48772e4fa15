/**
 * End to end, over real Kafka and over the SQL transport: the consent service serves data and records each
 * access through its outbox; the audit service appends each entry once, also when it is delivered again and
 * when the audit service was down while it was recorded.
 */
import { consentService, type ConsentDB } from '@cmc/consent-service';
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TRANSPORTS, TestIssuer, aConsent, newTransport, randomNhsNumber, startTestService, uniqueName, waitFor } from '@cmc/test-support';
import type { Consent } from 'fhir/r4';
import { sql } from 'kysely';
import { auditService, verifyChain, type AuditDB } from '../src';

describe.each(TRANSPORTS)('the audit log over the %s transport', (kind) => {
  const issuer = new TestIssuer();
  const clinician = issuer.bearer({ role: 'clinician', org: 'H81001' });
  const auditSchema = uniqueName('audit');
  let transport: Transport;
  let consent: RunningService<ConsentDB>;
  let audit: RunningService<AuditDB> | undefined;

  const startAudit = async () => {
    audit = await startTestService(auditService, { transport, issuer, env: { AUDIT_DB_SCHEMA: auditSchema } });
    return audit;
  };
  const log = () => {
    if (!audit) throw new Error('the audit service is down');
    return audit.database.db;
  };

  beforeAll(async () => {
    transport = await newTransport(kind);
    [consent] = await Promise.all([startTestService(consentService, { transport, issuer }), startAudit()]);
  });
  afterAll(async () => {
    await audit?.close();
    await consent?.close();
    await transport?.close();
  });

  /** Records a consent and reads it back: two accesses (create, read) and one domain event. */
  const recordAndRead = async (nhs: string) => {
    const created = await consent.app.inject({ method: 'POST', url: '/fhir/R4/Consent', headers: { authorization: clinician, 'content-type': 'application/fhir+json' }, payload: aConsent(nhs) });
    expect(created.statusCode).toBe(201);
    const read = await consent.app.inject({ method: 'GET', url: `/fhir/R4/Consent/${created.json<Consent>().id}`, headers: { authorization: clinician } });
    expect(read.statusCode).toBe(200);
  };
  /** What the consent service published about the patient, from its outbox. */
  const publishedAbout = (nhs: string) => consent.database.db.selectFrom('outbox').select(['event_id', 'type', 'topic', 'key', 'payload']).where('key', '=', nhs).orderBy('id').execute();
  const loggedAbout = async (nhs: string) =>
    (await log().selectFrom('audit_log').select(['event_id', 'event_type', 'interaction']).where('nhs_numbers', '@>', sql<string[]>`array[${nhs}]::text[]`).orderBy('seq').execute());
  const logSize = async () => Number((await log().selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);
  const waitUntilLogged = (nhs: string, n: number) =>
    waitFor(async () => {
      const rows = await loggedAbout(nhs);
      return rows.length >= n ? rows : undefined;
    }, 30_000, `${n} entries about the patient`);

  it('when a consent is recorded and read, then its create and read accesses and the consent event are each in the log exactly once', async () => {
    const nhs = randomNhsNumber();
    await recordAndRead(nhs);
    const published = await publishedAbout(nhs);
    expect(published.map((p) => p.type).sort()).toEqual(['cmc.access.recorded.v1', 'cmc.access.recorded.v1', 'cmc.consent.granted.v1']);
    const logged = await waitUntilLogged(nhs, 3);
    expect(logged.map((l) => l.event_id).sort()).toEqual(published.map((p) => p.event_id).sort());
    expect(logged.filter((l) => l.event_type === 'cmc.access.recorded.v1').map((l) => l.interaction).sort()).toEqual(['create', 'read']);
  });

  it('when the same events are delivered again, then the consumer sees duplicates and the log does not grow', async () => {
    const nhs = randomNhsNumber();
    await recordAndRead(nhs);
    await waitUntilLogged(nhs, 3);
    const [consumer] = audit!.consumers;
    if (!consumer) throw new Error('the audit service has no consumer');
    const duplicatesBefore = consumer.stats.duplicates;
    const sizeBefore = await logSize();
    const published = await publishedAbout(nhs);
    await transport.publish(published.map((p) => ({ topic: p.topic, key: p.key, value: p.payload, headers: {} })));
    await waitFor(async () => consumer.stats.duplicates >= duplicatesBefore + published.length || undefined, 30_000, 'the redeliveries');
    expect(await logSize()).toBe(sizeBefore);
    expect(await loggedAbout(nhs)).toHaveLength(3);
  });

  it('when the audit service is down while accesses happen, then after restart each arrives once, nothing is lost, and the chain verifies', async () => {
    const before = randomNhsNumber();
    await recordAndRead(before);
    await waitUntilLogged(before, 3);
    const sizeBefore = await logSize();
    await audit!.close();
    audit = undefined;
    const whileDown = randomNhsNumber();
    await recordAndRead(whileDown);
    await startAudit();
    const logged = await waitUntilLogged(whileDown, 3);
    expect(logged.map((l) => l.event_id).sort()).toEqual((await publishedAbout(whileDown)).map((p) => p.event_id).sort());
    expect(await loggedAbout(before)).toHaveLength(3);
    expect(await logSize()).toBe(sizeBefore + 3);
    expect(audit!.consumers.map((c) => c.stats.deadLettered)).toEqual([0]);
    expect(await verifyChain(audit!.database)).toMatchObject({ ok: true, firstProblem: null });
  });
});
