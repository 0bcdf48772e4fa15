import { TOPICS } from '@cmc/contracts';
import type { Database } from '@cmc/db';
import { OutboxRelay, publish, type EventsTables, type Transport } from '@cmc/events';
import { TRANSPORTS, collect, eventsTestDatabase, newTransport, randomNhsNumber, testLogger, waitFor, waitForMessages } from '@cmc/test-support';
import { randomBytes, randomUUID } from 'node:crypto';

const outboxDatabase = (): Promise<Database<EventsTables>> => eventsTestDatabase('relay');

const grant = (nhsNumber: string) =>
  ({
    type: 'cmc.consent.granted.v1',
    source: '/test',
    key: nhsNumber,
    data: { consentId: randomUUID(), versionId: '1', nhsNumber, status: 'active', dateTime: new Date().toISOString() },
  }) as const;

describe.each(TRANSPORTS)('the outbox relay over the %s transport', (kind) => {
  let transport: Transport;
  let consents: Awaited<ReturnType<typeof collect>>;

  beforeAll(async () => {
    transport = await newTransport(kind);
    consents = await collect(transport, TOPICS.consent);
  });

  afterAll(async () => {
    await consents?.stop();
    await transport?.close();
  });

  it('when the change rolls back, then its event is never sent; when it commits, the event is sent and marked', async () => {
    const database = await outboxDatabase();
    const relay = new OutboxRelay({ database, transport, logger: testLogger(), pollIntervalMs: 100 });
    try {
      const nhs = randomNhsNumber();
      await expect(
        database.db.transaction().execute(async (trx) => {
          await publish(trx, database.schema, grant(nhs));
          throw new Error('the change fails');
        }),
      ).rejects.toThrow('the change fails');
      const committed = await database.db.transaction().execute((trx) => publish(trx, database.schema, grant(nhs)));
      relay.start();
      await waitForMessages(consents.messages, 1, (m) => m.headers['ce_id'] === committed.id);
      await waitFor(async () => {
        const rows = await database.db.selectFrom('outbox').select(['event_id', 'sent_at']).execute();
        return rows.length === 1 && rows[0]!.sent_at !== null;
      }, 10_000, 'outbox row marked sent');
      expect(consents.messages.filter((m) => m.key === nhs)).toHaveLength(1);
    } finally {
      await relay.stop();
      await database.close();
    }
  });

  it('when the relay dies after sending and before marking the rows sent, then they are sent again and none is lost', async () => {
    const database = await outboxDatabase();
    let crashes = 1;
    const relay = new OutboxRelay({
      database,
      transport,
      logger: testLogger(),
      pollIntervalMs: 100,
      afterPublish: async () => {
        if (crashes-- > 0) throw new Error('relay crashed here');
      },
    });
    try {
      const nhs = randomNhsNumber();
      const events = await database.db.transaction().execute(async (trx) => [
        await publish(trx, database.schema, grant(nhs)),
        await publish(trx, database.schema, grant(nhs)),
      ]);
      relay.start();
      // Each event arrives twice: once before the crash, once after.
      for (const ev of events) await waitForMessages(consents.messages, 2, (m) => m.headers['ce_id'] === ev.id);
      await waitFor(async () => {
        const unsent = await database.db.selectFrom('outbox').select('id').where('sent_at', 'is', null).execute();
        return unsent.length === 0;
      }, 10_000, 'rows marked sent');
      expect(relay.stats.failures).toBe(1);
      // Order per key held through the resend: a, b, a, b.
      expect(consents.messages.filter((m) => m.key === nhs).map((m) => m.headers['ce_id'])).toEqual([events[0]!.id, events[1]!.id, events[0]!.id, events[1]!.id]);
    } finally {
      await relay.stop();
      await database.close();
    }
  });

  it('when two relays work the same outbox, then every event goes out once and in order', async () => {
    const database = await outboxDatabase();
    const relays = [1, 2].map(() => new OutboxRelay({ database, transport, logger: testLogger(), pollIntervalMs: 50, batchSize: 7 }));
    try {
      const nhs = randomNhsNumber();
      const ids: string[] = [];
      for (let i = 0; i < 60; i++) ids.push((await database.db.transaction().execute((trx) => publish(trx, database.schema, grant(nhs)))).id);
      for (const r of relays) r.start();
      await waitFor(async () => (await database.db.selectFrom('outbox').select('id').where('sent_at', 'is', null).execute()).length === 0, 20_000, 'all sent');
      for (const r of relays) await r.stop();
      // A marker on the same key arrives after everything sent before it: once it is here, nothing is in flight.
      await transport.publish([{ topic: TOPICS.consent, key: nhs, value: 'marker', headers: { ce_id: 'marker' } }]);
      await waitForMessages(consents.messages, 1, (m) => m.key === nhs && m.headers['ce_id'] === 'marker');
      const seen = consents.messages.filter((m) => m.key === nhs).map((m) => m.headers['ce_id']);
      expect(seen).toEqual([...ids, 'marker']);
    } finally {
      for (const r of relays) await r.stop();
      await database.close();
    }
  });
});

describe('the outbox relay against a broker that refuses an event for good', () => {
  it('when one event is larger than Kafka accepts, then it is marked failed with its error and the events around it go out in order', async () => {
    const transport = await newTransport('kafka');
    const consents = await collect(transport, TOPICS.consent);
    const database = await outboxDatabase();
    const relay = new OutboxRelay({ database, transport, logger: testLogger(), pollIntervalMs: 50 });
    try {
      const nhs = randomNhsNumber();
      const before = await database.db.transaction().execute((trx) => publish(trx, database.schema, grant(nhs)));
      // Written straight to the outbox (publish() would refuse it): 1.5 MB that gzip cannot shrink.
      const hugeId = randomUUID();
      await database.db
        .insertInto('outbox')
        .values({ event_id: hugeId, topic: TOPICS.consent, key: nhs, type: 'cmc.consent.granted.v1', payload: randomBytes(1_100_000).toString('base64'), sent_at: null })
        .execute();
      const after = await database.db.transaction().execute((trx) => publish(trx, database.schema, grant(nhs)));
      relay.start();
      await waitForMessages(consents.messages, 2, (m) => m.key === nhs, 30_000);
      expect(consents.messages.filter((m) => m.key === nhs).map((m) => m.headers['ce_id'])).toEqual([before.id, after.id]);
      const huge = await database.db.selectFrom('outbox').select(['sent_at', 'failed_at', 'last_error']).where('event_id', '=', hugeId).executeTakeFirstOrThrow();
      expect(huge.sent_at).toBeNull();
      expect(huge.failed_at).not.toBeNull();
      expect(huge.last_error).toMatch(/MESSAGE_TOO_LARGE/);
      expect(relay.stats.failedRows).toBe(1);
    } finally {
      await relay.stop();
      await consents.stop();
      await database.close();
      await transport.close();
    }
  });
});
