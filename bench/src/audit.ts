/**
 * The audit log's append and verification costs (issue #7, first slice). In a fresh schema of DATABASE_URL:
 *  1. BENCH_AUDIT_EVENTS access events (default 20000) through the audit service's consumer code, one message
 *     at a time as one partition is consumed: a transaction each with its processed_events row, the advisory
 *     lock, the head read and the insert (no transport in between: this is the log's own cost);
 *  2. as many again appended in batches of BENCH_AUDIT_BATCH (default 500) per transaction;
 *  3. verification of the whole chain (both sets), timed.
 * Drops its schemas at the end. Needs DATABASE_URL. Prints figures; asserts nothing.
 */
import { AUDIT_CONSUMER, appendEvents, auditService, verifyChain, type AuditDB } from '@cmc/audit-service';
import { makeEvent, topicOf, type CloudEvent } from '@cmc/contracts';
import { createDatabase, migrateToLatest, sql, type Kysely } from '@cmc/db';
import { EventConsumer, SqlTransport } from '@cmc/events';
import { createLogger } from '@cmc/logging';
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
