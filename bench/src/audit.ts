/**
 * The audit log's append and verification costs (issue #7, first slice). In a fresh schema of DATABASE_URL:
 *  1. BENCH_AUDIT_EVENTS access events (default 20000) through the audit service's consumer code, one message
 *     at a time as one partition is consumed: a transaction each with its processed_events row, the advisory
 *     lock, the head read and the insert (no transport in between: this is the log's own cost);
 *  2. as many again appended in batches of BENCH_AUDIT_BATCH (default 500) per transaction;
 *  3. verification of the whole chain (both sets), timed;
 *  4. unless BENCH_AUDIT_KAFKA=0, through the real consumer over Kafka (KAFKA_BROKERS, default
 *     127.0.0.1:9092; topics under a unique prefix, deleted at the end), the audit consumer definition as the
 *     service runs it (batches of its batchHandler), each into a fresh log schema:
 *     a. backlog: BENCH_AUDIT_EVENTS access events published first, then the consumer started; entries/s
 *        from its start (group join included) and from its first to its last append;
 *     b. live: the consumer started and joined, then as many events published as fast as the producer goes
 *        (chunks of 500); entries/s from the first publish until all are in the log, and the lag from each
 *        event's time to its appended_at (p50, p95, max).
 * Drops its schemas at the end. Needs DATABASE_URL. Prints figures; asserts nothing.
 */
import { AUDIT_CONSUMER, appendEvents, auditConsumer, auditService, verifyChain, type AuditDB } from '@cmc/audit-service';
import { ALL_TOPICS, makeEvent, TOPICS, topicOf, type CloudEvent } from '@cmc/contracts';
import { createDatabase, migrateToLatest, sql, type Kysely } from '@cmc/db';
import { EventConsumer, KafkaTransport, SqlTransport, toMessage } from '@cmc/events';
import { createLogger, type Logger } from '@cmc/logging';
import { Kafka, logLevel } from 'kafkajs';
import { randomNhsNumber } from '@cmc/test-support';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(v) || v <= 0) throw new Error(`${name} must be a positive integer`);
  return v;
};

function anAccess(i: number): CloudEvent<'cmc.access.recorded.v1'> {
  const nhs = randomNhsNumber();
  return makeEvent({
    type: 'cmc.access.recorded.v1',
    source: '/cmc/bench',
    key: nhs,
    data: {
      agent: { kind: 'user', id: `user-${i % 500}`, role: 'urgent-care', organisation: 'RRU' },
      interaction: 'read',
      outcome: 'allowed',
      recordedAt: new Date().toISOString(),
      entities: [{ resourceType: 'CarePlan', id: `plan-${i}`, versionId: '1', nhsNumber: nhs }],
      source: { service: 'care-plan', clientAddress: '10.0.0.1', userAgent: 'bench' },
    },
  });
}

const asMessage = (ev: CloudEvent) =>
  toMessage({ event_id: ev.id, topic: TOPICS.access, key: ev.partitionkey, type: ev.type, payload: JSON.stringify(ev) });

interface KafkaRun {
  mode: string;
  n: number;
  /** From the consumer's start (backlog) or the first publish (live) until the last entry was in the log. */
  wallMs: number;
  /** From the first append to the last (the consumer's own rate, once running). */
  appendMs: number;
  lagP50Ms: number;
  lagP95Ms: number;
  lagMaxMs: number;
  stats: string;
  chainOk: boolean;
}

/** One run through the audit consumer over Kafka, into a fresh log schema; see the header. */
async function viaKafka(url: string, brokers: string[], n: number, mode: 'backlog' | 'live', logger: Logger): Promise<KafkaRun> {
  const suffix = randomBytes(4).toString('hex');
  const prefix = `bench_${suffix}.`;
  const database = createDatabase<AuditDB>({ url, schema: `bench_audit_k${suffix}`, poolMax: 4 });
  const transport = new KafkaTransport({ brokers, clientId: `bench-audit-${suffix}`, topicPrefix: prefix, partitions: 3, logger });
  let consumer: EventConsumer<AuditDB> | undefined;
  const publishAll = async (): Promise<void> => {
    for (let i = 0; i < n; i += 500) {
      const chunk = Array.from({ length: Math.min(500, n - i) }, (_, j) => anAccess(i + j));
      await transport.publish(chunk.map(asMessage));
    }
  };
  const count = async (): Promise<number> =>
    Number((await sql<{ n: string }>`select count(*) as n from audit_log`.execute(database.db)).rows[0]!.n);
  const waitForCount = async (want: number): Promise<void> => {
    const deadline = Date.now() + 10 * 60_000;
    while ((await count()) < want) {
      if (Date.now() > deadline) throw new Error(`timed out with ${await count()} of ${want} entries`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  try {
    await migrateToLatest(database.db as Kysely<unknown>, database.schema, auditService.migrations);
    await transport.start();
    await transport.ensureTopics(ALL_TOPICS);
    const def = auditConsumer();
    const start = (): EventConsumer<AuditDB> =>
      new EventConsumer<AuditDB>({
        name: def.name,
        database,
        transport,
        topics: def.topics,
        handlers: def.handlers ?? {},
        ...(def.batchHandler ? { batchHandler: def.batchHandler } : {}),
        logger,
      });
    let t0: number;
    let base = 0;
    if (mode === 'backlog') {
      await publishAll();
      consumer = start();
      t0 = performance.now();
      await consumer.start();
    } else {
      consumer = start();
      await consumer.start();
      // Joined and assigned once a first event is through; it is left out of the figures.
      await transport.publish([asMessage(anAccess(-1))]);
      await waitForCount(1);
      base = 1;
      t0 = performance.now();
      await publishAll();
    }
    await waitForCount(base + n);
    const wallMs = performance.now() - t0;
    const stats = JSON.stringify(consumer.stats);
    await consumer.stop();
    consumer = undefined;
    const { rows } = await sql<{ span_ms: number; p50: number; p95: number; max: number }>`
      with e as (select appended_at, extract(epoch from appended_at - (event::jsonb->>'time')::timestamptz) * 1000 as lag
                 from audit_log where seq > ${base})
      select extract(epoch from max(appended_at) - min(appended_at)) * 1000 as span_ms,
             percentile_cont(0.5) within group (order by lag) as p50,
             percentile_cont(0.95) within group (order by lag) as p95,
             max(lag) as max
      from e`.execute(database.db);
    const r = rows[0]!;
    const chain = await verifyChain(database.db);
    return {
      mode,
      n,
      wallMs,
      appendMs: Number(r.span_ms),
      lagP50Ms: Number(r.p50),
      lagP95Ms: Number(r.p95),
      lagMaxMs: Number(r.max),
      stats,
      chainOk: chain.ok && chain.entriesChecked === base + n,
    };
  } finally {
    await consumer?.stop();
    await transport.close();
    const admin = new Kafka({ brokers, clientId: `bench-cleanup-${suffix}`, logLevel: logLevel.NOTHING }).admin();
    try {
      await admin.connect();
      await admin.deleteTopics({ topics: ALL_TOPICS.map((t) => prefix + t), timeout: 10_000 });
    } catch {
      // Best effort.
    } finally {
      await admin.disconnect();
    }
    await sql`drop schema if exists ${sql.id(database.schema)} cascade`.execute(database.db).catch(() => undefined);
    await database.close();
  }
}

async function main(): Promise<void> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL is required');
  const n = num('BENCH_AUDIT_EVENTS', 20_000);
  const batch = num('BENCH_AUDIT_BATCH', 500);
  const suffix = randomBytes(4).toString('hex');
  const logger = createLogger({ service: 'bench', level: 'silent' });
  const database = createDatabase<AuditDB>({ url, schema: `bench_audit_${suffix}`, poolMax: 4 });
  const transport = new SqlTransport({ url, schema: `bench_bus_${suffix}`, logger });
  try {
    await migrateToLatest(database.db as Kysely<unknown>, database.schema, auditService.migrations);
    await transport.start();
    const consumer = new EventConsumer<AuditDB>({
      name: AUDIT_CONSUMER,
      database,
      transport,
      topics: [],
      handlers: { 'cmc.access.recorded.v1': async (trx, event) => void (await appendEvents(trx, [event])) },
      logger,
    });

    const one = Array.from({ length: n }, (_, i) => anAccess(i));
    let t = performance.now();
    for (const [i, ev] of one.entries()) {
      await consumer.handle({ topic: topicOf(ev.type), partition: 0, offset: String(i), key: ev.partitionkey, value: JSON.stringify(ev), headers: {} });
    }
    const perEventMs = performance.now() - t;

    const many = Array.from({ length: n }, (_, i) => anAccess(n + i));
    t = performance.now();
    for (let i = 0; i < many.length; i += batch) {
      const slice = many.slice(i, i + batch);
      await database.db.transaction().execute((trx) => appendEvents(trx, slice));
    }
    const batchedMs = performance.now() - t;

    t = performance.now();
    const result = await verifyChain(database.db);
    const verifyMs = performance.now() - t;
    const { bytes } = (await sql<{ bytes: string }>`select pg_total_relation_size('audit_log') as bytes`.execute(database.db)).rows[0]!;

    const rate = (count: number, ms: number) => Math.round((count / ms) * 1000).toLocaleString('en-GB');
    process.stdout.write(
      [
        `audit log, ${n.toLocaleString('en-GB')} access events each way (consumer stats: ${JSON.stringify(consumer.stats)})`,
        `  through the consumer, one transaction per event: ${(perEventMs / 1000).toFixed(2)} s, ${rate(n, perEventMs)} entries/s`,
        `  appendEvents, ${batch} per transaction:           ${(batchedMs / 1000).toFixed(2)} s, ${rate(n, batchedMs)} entries/s`,
        `  verification of ${result.entriesChecked.toLocaleString('en-GB')} entries (ok: ${result.ok}): ${(verifyMs / 1000).toFixed(2)} s, ${rate(result.entriesChecked, verifyMs)} entries/s`,
        `  table with indexes: ${(Number(bytes) / 1024 / 1024).toFixed(1)} MiB`,
        '',
      ].join('\n'),
    );
    if (process.env.BENCH_AUDIT_KAFKA !== '0') {
      const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
      const runs = [await viaKafka(url, brokers, n, 'backlog', logger), await viaKafka(url, brokers, n, 'live', logger)];
      const pad = (v: string, w: number) => v.padStart(w);
      process.stdout.write(
        [
          `through the audit consumer over Kafka (3 partitions, batches of up to 500), ${n.toLocaleString('en-GB')} access events`,
          `  ${'mode'.padEnd(8)} ${pad('wall s', 7)} ${pad('entries/s', 10)} ${pad('append-span entries/s', 22)} ${pad('lag p50 ms', 11)} ${pad('lag p95 ms', 11)} ${pad('lag max ms', 11)}  chain ok  consumer stats`,
          ...runs.map(
            (r) =>
              `  ${r.mode.padEnd(8)} ${pad((r.wallMs / 1000).toFixed(2), 7)} ${pad(rate(r.n, r.wallMs), 10)} ${pad(rate(r.n, r.appendMs), 22)} ${pad(r.lagP50Ms.toFixed(0), 11)} ${pad(r.lagP95Ms.toFixed(0), 11)} ${pad(r.lagMaxMs.toFixed(0), 11)}  ${String(r.chainOk).padEnd(8)}  ${r.stats}`,
          ),
          '  backlog: wall from consumer start (group join included); lag there is mostly time queued before the start.',
          '  live: wall from the first publish until all are in the log (producer included); lag = event time -> appended_at.',
          '',
        ].join('\n'),
      );
    }
  } finally {
    await transport.close();
    await sql`drop schema if exists ${sql.id(database.schema)} cascade`.execute(database.db).catch(() => undefined);
    await sql`drop schema if exists ${sql.id(`bench_bus_${suffix}`)} cascade`.execute(database.db).catch(() => undefined);
    await database.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`audit bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
