/**
 * The audit log's append, checkpoint, proof and verification costs (issue #7). In a fresh schema of DATABASE_URL:
 *  1. BENCH_AUDIT_EVENTS access events (default 20000) through the audit service's consumer code, one message
 *     at a time as one partition is consumed: a transaction each with its processed_events row, the advisory
 *     lock, the head read and the insert (no transport in between: this is the log's own cost);
 *  2. as many again appended in batches of BENCH_AUDIT_BATCH (default 500) per transaction;
 *  3. the log grown to BENCH_AUDIT_VERIFY_ENTRIES (default both sets: 2 x BENCH_AUDIT_EVENTS), checkpoints
 *     signed over it (100,000 entries a step), 1,000 inclusion proofs of random entries (hashes, time, each
 *     verified) and 100 consistency proofs timed, then verification of the chain and the checkpoints, timed;
 *  4. unless BENCH_AUDIT_KAFKA=0, through the real consumer over Kafka (KAFKA_BROKERS, default
 *     127.0.0.1:9092; topics under a unique prefix, deleted at the end), the audit consumer definition as the
 *     service runs it (batches of its batchHandler), each into a fresh log schema:
 *     a. backlog: BENCH_AUDIT_EVENTS access events published first, then the consumer started; entries/s
 *        from its start (group join included) and from its first to its last append;
 *     b. live: the consumer started and joined, then as many events published as fast as the producer goes
 *        (chunks of 500); entries/s from the first publish until all are in the log, and the lag from each
 *        event's time to its appended_at (p50, p95, max);
 *     c. paced: as live, published at BENCH_AUDIT_RATE events/s (default 5,000: the issue's sustained rate).
 *     The service's checkpointer runs beside the consumer in each (every 1,000 entries or 10 s).
 * Drops its schemas at the end. Needs DATABASE_URL. Prints figures; asserts nothing; with BENCH_JSON_OUT set,
 * also appends its figures there as JSON lines (report.ts).
 */
import {
  AUDIT_CONSUMER,
  appendEvents,
  auditConsumer,
  auditService,
  checkpointStep,
  consistencyProof,
  generateSigningKey,
  inclusionProof,
  leafHash,
  startCheckpointer,
  verifyChain,
  verifyInclusion,
  type AuditDB,
} from '@cmc/audit-service';
import { ALL_TOPICS, makeEvent, TOPICS, topicOf, type CloudEvent } from '@cmc/contracts';
import { createDatabase, migrateToLatest, sql, type Kysely } from '@cmc/db';
import { EventConsumer, KafkaTransport, SqlTransport, toMessage } from '@cmc/events';
import { createLogger, type Logger } from '@cmc/logging';
import { Kafka, logLevel } from 'kafkajs';
import { percentile } from './load';
import { finite, ownPeakRssMb, ratioOf, record } from './report';
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
  lagP99Ms: number;
  lagMaxMs: number;
  stats: string;
  chainOk: boolean;
}

/** One run through the audit consumer over Kafka, into a fresh log schema; see the header. */
async function viaKafka(url: string, brokers: string[], n: number, mode: 'backlog' | 'live' | 'paced', logger: Logger, rate = 5000): Promise<KafkaRun> {
  const suffix = randomBytes(4).toString('hex');
  const prefix = `bench_${suffix}.`;
  const database = createDatabase<AuditDB>({ url, schema: `bench_audit_k${suffix}`, poolMax: 4 });
  const transport = new KafkaTransport({ brokers, clientId: `bench-audit-${suffix}`, topicPrefix: prefix, partitions: 3, logger });
  let consumer: EventConsumer<AuditDB> | undefined;
  // The service's checkpointer runs beside the consumer, as in production (every 1,000 entries or 10 s).
  const signer = generateSigningKey('bench.audit');
  let checkpointer: ReturnType<typeof startCheckpointer> | undefined;
  const publishAll = async (): Promise<void> => {
    // paced: chunks of `rate / 10` every 100 ms, so the log is fed at `rate` events/s and the lag is the log's own.
    const chunkSize = mode === 'paced' ? Math.max(1, Math.round(rate / 10)) : 500;
    const t0 = performance.now();
    for (let i = 0, k = 0; i < n; i += chunkSize, k++) {
      if (mode === 'paced') {
        const wait = t0 + k * 100 - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const chunk = Array.from({ length: Math.min(chunkSize, n - i) }, (_, j) => anAccess(i + j));
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
    checkpointer = startCheckpointer(database.db, signer, { entries: 1000, seconds: 10 }, logger);
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
    await checkpointer.close();
    checkpointer = undefined;
    const { rows } = await sql<{ span_ms: number; p50: number; p95: number; p99: number; max: number }>`
      with e as (select appended_at, extract(epoch from appended_at - (event::jsonb->>'time')::timestamptz) * 1000 as lag
                 from audit_log where seq > ${base})
      select extract(epoch from max(appended_at) - min(appended_at)) * 1000 as span_ms,
             percentile_cont(0.5) within group (order by lag) as p50,
             percentile_cont(0.95) within group (order by lag) as p95,
             percentile_cont(0.99) within group (order by lag) as p99,
             max(lag) as max
      from e`.execute(database.db);
    const r = rows[0]!;
    const chain = await verifyChain(database, { keys: [{ origin: signer.origin, keyId: signer.keyId, publicKey: signer.publicKey }] });
    return {
      mode,
      n,
      wallMs,
      appendMs: Number(r.span_ms),
      lagP50Ms: Number(r.p50),
      lagP95Ms: Number(r.p95),
      lagP99Ms: Number(r.p99),
      lagMaxMs: Number(r.max),
      stats,
      chainOk: chain.ok && chain.entriesChecked === base + n && chain.checkpointsChecked > 0,
    };
  } finally {
    await consumer?.stop();
    await checkpointer?.close();
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

    // Optionally grow the log to BENCH_AUDIT_VERIFY_ENTRIES for the verification figure (1,000,000 for the
    // issue's target; it takes minutes to fill).
    const target = num('BENCH_AUDIT_VERIFY_ENTRIES', 2 * n);
    for (let have = 2 * n; have < target; have += 1000) {
      const fill = Array.from({ length: Math.min(1000, target - have) }, (_, i) => anAccess(have + i));
      await database.db.transaction().execute((trx) => appendEvents(trx, fill));
    }

    // Checkpoints over the whole log, 100,000 entries a step (as the job works off a backlog).
    const signer = generateSigningKey('bench.audit');
    t = performance.now();
    let signed = 0;
    let head = 0;
    for (let c = await checkpointStep(database.db, signer, { minEntries: 1, maxAgeMs: 0, maxEntries: 100_000 }); c; c = await checkpointStep(database.db, signer, { minEntries: 1, maxAgeMs: 0, maxEntries: 100_000 })) {
      signed++;
      head = c.treeSize;
    }
    const checkpointMs = performance.now() - t;
    const latest = (await database.db.selectFrom('audit_checkpoint').selectAll().where('tree_size', '=', String(head)).executeTakeFirstOrThrow());

    // Inclusion proofs of 1,000 random entries in the newest checkpoint, each checked; and consistency proofs.
    const proofMs: number[] = [];
    const proofHashes: number[] = [];
    for (let i = 0; i < 1000; i++) {
      const seq = 1 + Math.floor(Math.random() * head);
      const p0 = performance.now();
      const proof = await inclusionProof(database.db, seq, head);
      proofMs.push(performance.now() - p0);
      proofHashes.push(proof.path.length);
      if (!verifyInclusion(leafHash(proof.entryHash), seq - 1, head, proof.path, latest.root_hash)) throw new Error(`inclusion proof of ${seq} does not verify`);
    }
    proofMs.sort((a, b) => a - b);
    const consistencyMs: number[] = [];
    for (let i = 0; i < 100; i++) {
      const first = 1 + Math.floor(Math.random() * head);
      const p0 = performance.now();
      await consistencyProof(database.db, first, head);
      consistencyMs.push(performance.now() - p0);
    }
    consistencyMs.sort((a, b) => a - b);

    t = performance.now();
    const result = await verifyChain(database, { keys: [{ origin: signer.origin, keyId: signer.keyId, publicKey: signer.publicKey }] });
    const verifyMs = performance.now() - t;
    const { bytes } = (await sql<{ bytes: string }>`select pg_total_relation_size('audit_log') as bytes`.execute(database.db)).rows[0]!;

    const rate = (count: number, ms: number) => Math.round((count / ms) * 1000).toLocaleString('en-GB');
    process.stdout.write(
      [
        `audit log, ${n.toLocaleString('en-GB')} access events each way (consumer stats: ${JSON.stringify(consumer.stats)})`,
        `  through the consumer, one transaction per event: ${(perEventMs / 1000).toFixed(2)} s, ${rate(n, perEventMs)} entries/s`,
        `  appendEvents, ${batch} per transaction:           ${(batchedMs / 1000).toFixed(2)} s, ${rate(n, batchedMs)} entries/s`,
        `  checkpoints over ${head.toLocaleString('en-GB')} entries (${signed} signed, 100,000 a step): ${(checkpointMs / 1000).toFixed(2)} s, ${rate(head, checkpointMs)} entries/s`,
        `  inclusion proofs in a tree of ${head.toLocaleString('en-GB')}: ${Math.min(...proofHashes)}-${Math.max(...proofHashes)} hashes (log2 n = ${Math.log2(head).toFixed(1)}), p50 ${percentile(proofMs, 50).toFixed(2)} ms, p95 ${percentile(proofMs, 95).toFixed(2)} ms, p99 ${percentile(proofMs, 99).toFixed(2)} ms (1,000, each verified)`,
        `  consistency proofs to ${head.toLocaleString('en-GB')}: p50 ${percentile(consistencyMs, 50).toFixed(2)} ms, p95 ${percentile(consistencyMs, 95).toFixed(2)} ms (100)`,
        `  verification of ${result.entriesChecked.toLocaleString('en-GB')} entries and ${result.checkpointsChecked} checkpoints (ok: ${result.ok}): ${(verifyMs / 1000).toFixed(2)} s, ${rate(result.entriesChecked, verifyMs)} entries/s; 1,000,000 would take about ${((verifyMs / result.entriesChecked) * 1000).toFixed(1)} s`,
        `  table with indexes: ${(Number(bytes) / 1024 / 1024).toFixed(1)} MiB`,
        '',
      ].join('\n'),
    );
    // The same figures as JSON lines, when BENCH_JSON_OUT is set (report.ts).
    const perSecond = (count: number, ms: number) => Math.round((count / ms) * 1000);
    const batchedName = `appendEvents, ${batch} per transaction (no consumer, no transport)`;
    const batchedRate = perSecond(n, batchedMs);
    const auditRecord = (name: string, throughput: number | null, unit: string, p50: number | null, p99: number | null, withBaseline: boolean, extra: Record<string, unknown>) =>
      record({
        bench: 'audit',
        name,
        patients: null,
        throughput,
        unit,
        p50Ms: p50,
        p99Ms: p99,
        peakRssMb: ownPeakRssMb(),
        rssOf: 'benchmark process (audit code in-process)',
        baseline: withBaseline ? batchedName : null,
        baselineThroughput: withBaseline ? batchedRate : null,
        ratio: withBaseline ? ratioOf(throughput, batchedRate) : null,
        extra,
      });
    auditRecord('append through the consumer, one transaction per event', perSecond(n, perEventMs), 'entries/s', null, null, true, { events: n });
    auditRecord(batchedName, batchedRate, 'entries/s', null, null, true, { events: n });
    auditRecord(`checkpoints over ${head} entries (100,000 a step)`, perSecond(head, checkpointMs), 'entries/s', null, null, false, { signed });
    auditRecord(`inclusion proof in a tree of ${head}`, finite(Math.round(1000 / (proofMs.reduce((a, b) => a + b, 0) / 1000))), 'proofs/s (one at a time)', finite(percentile(proofMs, 50)), finite(percentile(proofMs, 99)), false, { n: 1000 });
    auditRecord(`verification of ${result.entriesChecked} entries and ${result.checkpointsChecked} checkpoints`, perSecond(result.entriesChecked, verifyMs), 'entries/s', null, null, false, {
      ok: result.ok,
      seconds: verifyMs / 1000,
      tableMiB: Number(bytes) / 1024 / 1024,
    });
    if (process.env.BENCH_AUDIT_KAFKA !== '0') {
      const brokers = (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',');
      const pacedRate = num('BENCH_AUDIT_RATE', 5000);
      const runs = [
        await viaKafka(url, brokers, n, 'backlog', logger),
        await viaKafka(url, brokers, n, 'live', logger),
        await viaKafka(url, brokers, n, 'paced', logger, pacedRate),
      ];
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
          `  paced: published at ${pacedRate.toLocaleString('en-GB')} events/s (the issue's sustained rate); lag as live. The checkpointer runs beside the consumer in every mode.`,
          '',
        ].join('\n'),
      );
      for (const r of runs) {
        auditRecord(
          `over Kafka, ${r.mode}${r.mode === 'paced' ? ` at ${pacedRate} events/s` : ''} (consumer, 3 partitions; lag = event time to appended_at)`,
          perSecond(r.n, r.wallMs),
          'entries/s',
          finite(r.lagP50Ms),
          finite(r.lagP99Ms),
          true,
          { events: r.n, appendSpanEntriesPerSecond: perSecond(r.n, r.appendMs), lagP95Ms: finite(r.lagP95Ms), lagMaxMs: finite(r.lagMaxMs), chainOk: r.chainOk },
        );
      }
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
