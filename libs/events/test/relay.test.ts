import { TOPICS } from '@cmc/contracts';
import { createDatabase, migrateToLatest, type Database, type Kysely } from '@cmc/db';
import { OutboxRelay, eventTablesV1, publish, type EventsTables, type Transport } from '@cmc/events';
import { TRANSPORTS, collect, newTransport, randomNhsNumber, testDatabaseUrl, testLogger, uniqueName, waitFor, waitForMessages } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';

async function outboxDatabase(): Promise<Database<EventsTables>> {
  const schema = uniqueName('relay');
  const database = createDatabase<EventsTables>({ url: testDatabaseUrl(), schema });
  await migrateToLatest(database.db as Kysely<unknown>, schema, { '2026-11-24T00-test': { up: (db) => eventTablesV1(db) } });
  return database;
}

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
      await waitForMessages(consents.messages, 60, (m) => m.key === nhs);
      await new Promise((r) => setTimeout(r, 300));
      expect(consents.messages.filter((m) => m.key === nhs).map((m) => m.headers['ce_id'])).toEqual(ids);
    } finally {
      for (const r of relays) await r.stop();
      await database.close();
    }
  });
});
