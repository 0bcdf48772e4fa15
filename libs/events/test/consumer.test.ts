import { makeEvent, TOPICS, dlqTopic, type CloudEvent } from '@cmc/contracts';
import { createDatabase, sql, type Database } from '@cmc/db';
import { EventConsumer, SqlTransport, isInfrastructureError, toMessage, type EventsTables, type Transport } from '@cmc/events';
import { TRANSPORTS, collect, eventsTestDatabase, newTransport, randomNhsNumber, testDatabaseUrl, testLogger, uniqueName, waitFor, waitForMessages } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';

interface TestDB extends EventsTables {
  effects: { event_id: string; nhs_number: string };
}

function granted(nhsNumber: string): CloudEvent<'cmc.consent.granted.v1'> {
  return makeEvent({
    type: 'cmc.consent.granted.v1',
    source: '/test',
    key: nhsNumber,
    data: { consentId: randomUUID(), versionId: '1', nhsNumber, status: 'active', dateTime: new Date().toISOString() },
  });
}

const asMessage = (ev: CloudEvent) =>
  toMessage({ event_id: ev.id, topic: TOPICS.consent, key: ev.partitionkey, type: ev.type, payload: JSON.stringify(ev) });

const effectsOf = async (database: Database<TestDB>, nhsNumber: string) =>
  database.db.selectFrom('effects').selectAll().where('nhs_number', '=', nhsNumber).execute();

describe.each(TRANSPORTS)('an idempotent consumer over the %s transport', (kind) => {
  let transport: Transport;
  let database: Database<TestDB>;
  let consumer: EventConsumer<TestDB>;
  let dlq: Awaited<ReturnType<typeof collect>>;
  // Patients whose events the handler fails on: always, or a given number of times before it succeeds.
  const alwaysFails = new Set<string>();
  const failuresLeft = new Map<string, number>();

  beforeAll(async () => {
    transport = await newTransport(kind);
    database = await eventsTestDatabase<TestDB>('consumer', async (db) => {
      await db.schema.createTable('effects').addColumn('event_id', 'uuid').addColumn('nhs_number', 'text').execute();
    });
    consumer = new EventConsumer<TestDB>({
      name: 'test.effects',
      database,
      transport,
      topics: [TOPICS.consent],
      logger: testLogger(),
      maxAttempts: 3,
      backoffBaseMs: 10,
      handlers: {
        'cmc.consent.granted.v1': async (trx, ev) => {
          // The effect is written before the failure, so a failure that leaked its effect would show.
          await trx.insertInto('effects').values({ event_id: ev.id, nhs_number: ev.data.nhsNumber }).execute();
          if (alwaysFails.has(ev.data.nhsNumber)) throw new Error('handler refuses this patient');
          const left = failuresLeft.get(ev.data.nhsNumber) ?? 0;
          if (left > 0) {
            failuresLeft.set(ev.data.nhsNumber, left - 1);
            throw new Error('transient handler failure');
          }
        },
      },
    });
    await consumer.start();
    dlq = await collect(transport, dlqTopic(TOPICS.consent));
  });

  afterAll(async () => {
    await dlq?.stop();
    await consumer?.stop();
    await transport?.close();
    await database?.close();
  });

  it('when an event arrives, then its effect is applied once and its id recorded with it', async () => {
    const nhs = randomNhsNumber();
    const ev = granted(nhs);
    await transport.publish([asMessage(ev)]);
    await waitFor(async () => (await effectsOf(database, nhs)).length === 1, 20_000, 'effect');
    const processed = await database.db.selectFrom('processed_events').selectAll().where('event_id', '=', ev.id).execute();
    expect(processed).toHaveLength(1);
    expect(processed[0]).toMatchObject({ consumer: 'test.effects', event_type: 'cmc.consent.granted.v1' });
  });

  it('when the same event is delivered again, then nothing changes', async () => {
    const nhs = randomNhsNumber();
    const ev = granted(nhs);
    await transport.publish([asMessage(ev)]);
    await waitFor(async () => (await effectsOf(database, nhs)).length === 1, 20_000, 'first delivery');
    const duplicatesBefore = consumer.stats.duplicates;
    // Redeliver, then send a marker behind it on the same key: once the marker is applied, the duplicate
    // has certainly been handled.
    const marker = granted(nhs);
    await transport.publish([asMessage(ev), asMessage(marker)]);
    await waitFor(async () => (await effectsOf(database, nhs)).length === 2, 20_000, 'marker');
    const effects = await effectsOf(database, nhs);
    expect(effects.map((e) => e.event_id).sort()).toEqual([ev.id, marker.id].sort());
    expect(consumer.stats.duplicates).toBe(duplicatesBefore + 1);
  });

  it('when a message fails its schema, then it goes to the DLQ at once and the message behind it is applied', async () => {
    const nhs = randomNhsNumber();
    const bad = granted(nhs);
    const badPayload = JSON.stringify({ ...bad, data: { ...bad.data, nhsNumber: '123' } });
    const good = granted(nhs);
    await transport.publish([{ ...asMessage(bad), value: badPayload }, asMessage(good)]);
    await waitFor(async () => (await effectsOf(database, nhs)).length === 1, 20_000, 'good message behind the poison');
    const [dead] = await waitForMessages(dlq.messages, 1, (m) => m.headers['ce_id'] === bad.id);
    expect(dead!.value).toBe(badPayload);
    expect(dead!.headers['dlq-reason']).toMatch(/invalid data for cmc.consent.granted.v1/);
    expect(dead!.headers['dlq-original-topic']).toBe(TOPICS.consent);
    expect(dead!.headers['dlq-attempts']).toBe('1');
    const row = await database.db.selectFrom('dead_letters').selectAll().where('payload', '=', badPayload).executeTakeFirst();
    expect(row).toMatchObject({ consumer: 'test.effects', topic: TOPICS.consent, attempts: 1 });
  });

  it('when a message is not JSON, then it goes to the DLQ without quoting its content in the reason', async () => {
    const nhs = randomNhsNumber();
    const good = granted(nhs);
    const garbage = `{"nhsNumber": "${nhs}", oops`;
    await transport.publish([{ topic: TOPICS.consent, key: nhs, value: garbage, headers: { ce_id: `garbage-${nhs}` } }, asMessage(good)]);
    await waitFor(async () => (await effectsOf(database, nhs)).length === 1, 20_000, 'good message behind the garbage');
    const [dead] = await waitForMessages(dlq.messages, 1, (m) => m.headers['ce_id'] === `garbage-${nhs}`);
    expect(dead!.headers['dlq-reason']).toBe('malformed message: not valid JSON');
    expect(dead!.headers['dlq-reason']).not.toContain(nhs);
  });

  it('when the handler throws every time, then after its attempts the message goes to the DLQ, its effects rolled back, and the next is applied', async () => {
    const poisoned = randomNhsNumber();
    alwaysFails.add(poisoned);
    const bad = granted(poisoned);
    const behind = granted(poisoned);
    await transport.publish([asMessage(bad)]);
    const [dead] = await waitForMessages(dlq.messages, 1, (m) => m.headers['ce_id'] === bad.id);
    expect(dead!.headers['dlq-attempts']).toBe('3');
    expect(dead!.headers['dlq-reason']).toBe('Error: handler refuses this patient');
    alwaysFails.delete(poisoned);
    await transport.publish([asMessage(behind)]);
    await waitFor(async () => (await effectsOf(database, poisoned)).length === 1, 20_000, 'message behind the poison');
    const effects = await effectsOf(database, poisoned);
    expect(effects.map((e) => e.event_id)).toEqual([behind.id]);
    const processedBad = await database.db.selectFrom('processed_events').select('event_id').where('event_id', '=', bad.id).execute();
    expect(processedBad).toHaveLength(0);
  });

  it('when the handler fails twice and then succeeds, then it is applied once and nothing is dead-lettered', async () => {
    const nhs = randomNhsNumber();
    failuresLeft.set(nhs, 2);
    const ev = granted(nhs);
    await transport.publish([asMessage(ev)]);
    await waitFor(async () => (await effectsOf(database, nhs)).length === 1, 20_000, 'effect after retries');
    expect(failuresLeft.get(nhs)).toBe(0);
    expect(dlq.messages.filter((m) => m.headers['ce_id'] === ev.id)).toHaveLength(0);
    const dead = await database.db.selectFrom('dead_letters').select('id').where('event_id', '=', ev.id).execute();
    expect(dead).toHaveLength(0);
  });
});

describe('isInfrastructureError', () => {
  it('when the database is unreachable or restarting, then it is infrastructure, not the message', () => {
    expect(isInfrastructureError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true);
    expect(isInfrastructureError(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(true);
    expect(isInfrastructureError(new Error('Connection terminated unexpectedly'))).toBe(true);
    expect(isInfrastructureError(Object.assign(new Error('deadlock detected'), { code: '40P01' }))).toBe(true);
  });

  it('when a handler breaks a rule, then it is not infrastructure', () => {
    expect(isInfrastructureError(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBe(false);
    expect(isInfrastructureError(new Error('handler refuses'))).toBe(false);
    expect(isInfrastructureError('string')).toBe(false);
  });
});

describe('the SQL transport', () => {
  it('when several writers publish at once, then a reader sees every message exactly in offset order with none skipped', async () => {
    const transport = await newTransport('sql');
    try {
      const seen: number[] = [];
      const sub = await transport.subscribe({
        groupId: uniqueName('order'),
        topics: ['cmc.careplan.v1'],
        onMessage: async (m) => void seen.push(Number(JSON.parse(m.value))),
      });
      await Promise.all(
        Array.from({ length: 8 }, (_, w) =>
          (async () => {
            for (let i = 0; i < 25; i++) await transport.publish([{ topic: 'cmc.careplan.v1', key: `k${w}`, value: String(w * 100 + i), headers: {} }]);
          })(),
        ),
      );
      await waitFor(async () => seen.length >= 200, 20_000, '200 messages');
      await sub.stop();
      expect(seen).toHaveLength(200);
      expect(new Set(seen).size).toBe(200);
      // Per writer (key), order is kept.
      for (let w = 0; w < 8; w++) {
        const mine = seen.filter((v) => Math.floor(v / 100) === w);
        expect(mine).toEqual([...mine].sort((a, b) => a - b));
      }
    } finally {
      await transport.close();
    }
  });

  it('when two readers of one group run at once, then each message is handled once, in order', async () => {
    const transport = await newTransport('sql');
    const group = uniqueName('pair');
    try {
      const seen: { reader: number; value: number }[] = [];
      const subs = await Promise.all(
        [1, 2].map((reader) =>
          transport.subscribe({ groupId: group, topics: ['cmc.careplan.v1'], onMessage: async (m) => void seen.push({ reader, value: Number(m.value) }) }),
        ),
      );
      for (let i = 0; i < 60; i++) await transport.publish([{ topic: 'cmc.careplan.v1', key: 'k', value: String(i), headers: {} }]);
      await waitFor(async () => seen.length >= 60, 15_000, '60 messages');
      for (const sub of subs) await sub.stop();
      expect(seen.map((s) => s.value)).toEqual(Array.from({ length: 60 }, (_, i) => i));
    } finally {
      await transport.close();
    }
  });

  it('when old messages are purged, then those a stopped group has not read are kept', async () => {
    const transport = (await newTransport('sql')) as SqlTransport;
    const schema = transport.schema;
    const admin = createDatabase<unknown>({ url: testDatabaseUrl(), schema });
    try {
      const got: string[] = [];
      const sub = await transport.subscribe({ groupId: uniqueName('slow'), topics: ['cmc.careplan.v1'], onMessage: async (m) => void got.push(m.value) });
      await transport.publish([{ topic: 'cmc.careplan.v1', key: 'k', value: 'read', headers: {} }]);
      await waitFor(async () => got.length === 1, 10_000, 'first message');
      await sub.stop();
      await transport.publish([{ topic: 'cmc.careplan.v1', key: 'k', value: 'unread', headers: {} }]);
      await sql`update bus_messages set created_at = now() - interval '30 days'`.execute(admin.db);
      expect(await transport.purge()).toBe(1);
      const left = await sql<{ value: string }>`select value from bus_messages`.execute(admin.db);
      expect(left.rows.map((r) => r.value)).toEqual(['unread']);
    } finally {
      await admin.close();
      await transport.close();
    }
  });

  it('when a reader restarts, then it resumes after the last message it finished', async () => {
    const transport = await newTransport('sql');
    const group = uniqueName('resume');
    try {
      const first: string[] = [];
      const sub1 = await transport.subscribe({ groupId: group, topics: ['cmc.careplan.v1'], onMessage: async (m) => void first.push(m.value) });
      await transport.publish([1, 2, 3].map((i) => ({ topic: 'cmc.careplan.v1', key: 'k', value: String(i), headers: {} })));
      await waitFor(async () => first.length === 3, 10_000, 'first three');
      await sub1.stop();
      await transport.publish([4, 5].map((i) => ({ topic: 'cmc.careplan.v1', key: 'k', value: String(i), headers: {} })));
      const second: string[] = [];
      const sub2 = await transport.subscribe({ groupId: group, topics: ['cmc.careplan.v1'], onMessage: async (m) => void second.push(m.value) });
      await waitFor(async () => second.length === 2, 10_000, 'the two after the restart');
      await sub2.stop();
      expect(second).toEqual(['4', '5']);
    } finally {
      await transport.close();
    }
  });

  it('when a handler throws, then the message is delivered again and nothing after it is skipped', async () => {
    const transport = await newTransport('sql');
    try {
      let failOnce = true;
      const got: string[] = [];
      const sub = await transport.subscribe({
        groupId: uniqueName('redeliver'),
        topics: ['cmc.careplan.v1'],
        onMessage: async (m) => {
          if (m.value === 'b' && failOnce) {
            failOnce = false;
            throw new Error('database down');
          }
          got.push(m.value);
        },
      });
      await transport.publish(['a', 'b', 'c'].map((v) => ({ topic: 'cmc.careplan.v1', key: 'k', value: v, headers: {} })));
      await waitFor(async () => got.length === 3, 15_000, 'three messages');
      await sub.stop();
      expect(got).toEqual(['a', 'b', 'c']);
    } finally {
      await transport.close();
    }
  });
});

