import { makeEvent, TOPICS, dlqTopic, type CloudEvent } from '@cmc/contracts';
import type { Database, Generated } from '@cmc/db';
import { EventConsumer, toMessage, type EventsTables, type IncomingMessage, type Transport } from '@cmc/events';
import { TRANSPORTS, collect, eventsTestDatabase, newTransport, randomNhsNumber, testLogger, uniqueName, waitFor, waitForMessages } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';

interface TestDB extends EventsTables {
  effects: { seq: Generated<string>; event_id: string; nhs_number: string; n: number };
}

/** A consent event for the patient; `n` (its place in the test's sequence) travels in consentId's version. */
function granted(nhsNumber: string, n = 0): CloudEvent<'cmc.consent.granted.v1'> {
  return makeEvent({
    type: 'cmc.consent.granted.v1',
    source: '/test',
    key: nhsNumber,
    data: { consentId: randomUUID(), versionId: String(n + 1), nhsNumber, status: 'active', dateTime: new Date().toISOString() },
  });
}

const asMessage = (ev: CloudEvent) =>
  toMessage({ event_id: ev.id, topic: TOPICS.consent, key: ev.partitionkey, type: ev.type, payload: JSON.stringify(ev) });

const MAX_BATCH = 100;

describe.each(TRANSPORTS)('a batch consumer over the %s transport', (kind) => {
  let transport: Transport;
  let database: Database<TestDB>;
  let consumer: EventConsumer<TestDB>;
  let dlq: Awaited<ReturnType<typeof collect>>;
  /** The events of every call of the batch handler, committed or not. */
  const calls: CloudEvent[][] = [];
  /** Events that make any batch holding one of them fail. */
  const poisoned = new Set<string>();

  const effectsOf = async (nhsNumbers: readonly string[]) =>
    database.db.selectFrom('effects').selectAll().where('nhs_number', 'in', nhsNumbers).orderBy('seq').execute();

  beforeAll(async () => {
    transport = await newTransport(kind);
    database = await eventsTestDatabase<TestDB>('batch', async (db) => {
      await db.schema
        .createTable('effects')
        .addColumn('seq', 'bigserial', (c) => c.primaryKey())
        .addColumn('event_id', 'uuid', (c) => c.notNull())
        .addColumn('nhs_number', 'text', (c) => c.notNull())
        .addColumn('n', 'integer', (c) => c.notNull())
        .execute();
    });
    consumer = new EventConsumer<TestDB>({
      name: 'test.batch',
      database,
      transport,
      topics: [TOPICS.consent],
      logger: testLogger(),
      maxAttempts: 3,
      backoffBaseMs: 10,
      maxBatch: MAX_BATCH,
      handlers: {},
      batchHandler: async (trx, events) => {
        calls.push(events);
        // The effects are written before the failure, so a failure that leaked them would show.
        await trx
          .insertInto('effects')
          .values(
            events.map((ev) => {
              const data = (ev as CloudEvent<'cmc.consent.granted.v1'>).data;
              return { event_id: ev.id, nhs_number: data.nhsNumber, n: Number(data.versionId) - 1 };
            }),
          )
          .execute();
        if (events.some((ev) => poisoned.has(ev.id))) throw new Error('handler refuses this event');
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

  const patients = Array.from({ length: 20 }, () => randomNhsNumber());
  const events = Array.from({ length: 1000 }, (_, n) => granted(patients[n % patients.length]!, n));

  it('when 1,000 events arrive, then they are handled in batches, each once, in order per key', async () => {
    const callsBefore = calls.length;
    const processedBefore = consumer.stats.processed;
    await transport.publish(events.map(asMessage));
    await waitFor(async () => (await effectsOf(patients)).length >= 1000, 45_000, '1,000 effects');
    const effects = await effectsOf(patients);
    expect(effects).toHaveLength(1000);
    expect(new Set(effects.map((e) => e.event_id)).size).toBe(1000);
    expect(consumer.stats.processed - processedBefore).toBe(1000);
    const processed = await database.db.selectFrom('processed_events').select('event_id').where('consumer', '=', 'test.batch').execute();
    expect(new Set(processed.map((p) => p.event_id))).toEqual(new Set(events.map((e) => e.id)));
    // Per patient (key), in the order published.
    for (const nhs of patients) {
      const ns = effects.filter((e) => e.nhs_number === nhs).map((e) => e.n);
      expect(ns).toHaveLength(50);
      expect(ns).toEqual([...ns].sort((a, b) => a - b));
    }
    const sizes = calls.slice(callsBefore).map((c) => c.length);
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(MAX_BATCH);
    expect(sizes.length).toBeLessThan(1000);
  });

  it('when the same events are delivered again, then all are counted duplicates and nothing changes', async () => {
    const before = await effectsOf(patients);
    expect(before).toHaveLength(1000);
    const duplicatesBefore = consumer.stats.duplicates;
    const processedBefore = consumer.stats.processed;
    // Redeliver, then a marker behind them on one key: once the marker is applied, the redelivery of that key
    // has certainly been handled; the count of duplicates says when the other keys' have.
    const marker = granted(patients[0]!, 1000);
    await transport.publish([...events.map(asMessage), asMessage(marker)]);
    await waitFor(async () => consumer.stats.duplicates - duplicatesBefore >= 1000 && (await effectsOf([patients[0]!])).length === 51, 45_000, 'redelivery');
    expect(consumer.stats.duplicates - duplicatesBefore).toBe(1000);
    expect(consumer.stats.processed - processedBefore).toBe(1);
    const after = (await effectsOf(patients)).filter((e) => e.event_id !== marker.id);
    expect(after).toEqual(before);
  });

  it('when a batch holds an invalid message and an event the handler always refuses, then the invalid goes to the DLQ at once, the refused one after its attempts, and the rest are handled once', async () => {
    const others = Array.from({ length: 5 }, () => randomNhsNumber());
    const before = Array.from({ length: 20 }, (_, n) => granted(others[n % others.length]!, n));
    const after = Array.from({ length: 20 }, (_, n) => granted(others[n % others.length]!, 20 + n));
    // On the key of events before and after it, so that it shares their partition (and batch) on Kafka.
    const refused = granted(others[1]!, 19);
    poisoned.add(refused.id);
    const invalid = granted(others[0]!);
    const invalidPayload = JSON.stringify({ ...invalid, data: { ...invalid.data, nhsNumber: '123' } });
    const deadBefore = consumer.stats.deadLettered;
    await transport.publish([
      ...before.map(asMessage),
      { ...asMessage(invalid), value: invalidPayload },
      asMessage(refused),
      ...after.map(asMessage),
    ]);
    const [deadInvalid] = await waitForMessages(dlq.messages, 1, (m) => m.headers['ce_id'] === invalid.id, 30_000);
    expect(deadInvalid!.headers['dlq-attempts']).toBe('1');
    expect(deadInvalid!.headers['dlq-reason']).toMatch(/invalid data for cmc.consent.granted.v1/);
    const [deadRefused] = await waitForMessages(dlq.messages, 1, (m) => m.headers['ce_id'] === refused.id, 30_000);
    expect(deadRefused!.headers['dlq-attempts']).toBe('3');
    expect(deadRefused!.headers['dlq-reason']).toBe('Error: handler refuses this event');
    await waitFor(async () => (await effectsOf(others)).length >= 40, 30_000, 'the events around the poison');
    const effects = await effectsOf(others);
    expect(effects.map((e) => e.event_id).sort()).toEqual([...before, ...after].map((e) => e.id).sort());
    for (const nhs of others) {
      const ns = effects.filter((e) => e.nhs_number === nhs).map((e) => e.n);
      expect(ns).toEqual([...ns].sort((a, b) => a - b));
    }
    // The refused event left no effect and no processed id; it was once in a batch with others.
    const processedRefused = await database.db.selectFrom('processed_events').select('event_id').where('event_id', '=', refused.id).execute();
    expect(processedRefused).toHaveLength(0);
    expect(calls.some((c) => c.length > 1 && c.some((e) => e.id === refused.id))).toBe(true);
    expect(consumer.stats.deadLettered - deadBefore).toBe(2);
    const rows = await database.db.selectFrom('dead_letters').select(['event_id', 'attempts']).where('consumer', '=', 'test.batch').execute();
    expect(rows).toEqual(expect.arrayContaining([{ event_id: refused.id, attempts: 3 }, { event_id: null, attempts: 1 }]));
    poisoned.delete(refused.id);
  });
});

describe.each(TRANSPORTS)('batch delivery over the %s transport', (kind) => {
  it('when onBatch throws, then the batch is delivered again from the first unfinished message and nothing is skipped', async () => {
    const transport = await newTransport(kind);
    try {
      let failOnce = true;
      const got: string[] = [];
      const sizes: number[] = [];
      const sub = await transport.subscribe({
        groupId: uniqueName('batch-redeliver'),
        topics: [TOPICS.careplan],
        maxBatch: 4,
        onMessage: () => Promise.reject(new Error('onMessage must not be called when onBatch is given')),
        onBatch: async (msgs: IncomingMessage[]) => {
          sizes.push(msgs.length);
          if (failOnce && msgs.some((m) => m.value === '5')) {
            failOnce = false;
            throw new Error('database down');
          }
          got.push(...msgs.map((m) => m.value));
        },
      });
      await transport.publish(Array.from({ length: 10 }, (_, i) => ({ topic: TOPICS.careplan, key: 'k', value: String(i), headers: {} })));
      await waitFor(async () => got.length >= 10, 30_000, 'ten messages');
      await sub.stop();
      expect(got).toEqual(Array.from({ length: 10 }, (_, i) => String(i)));
      expect(Math.max(...sizes)).toBeLessThanOrEqual(4);
      expect(failOnce).toBe(false);
    } finally {
      await transport.close();
    }
  });
});
