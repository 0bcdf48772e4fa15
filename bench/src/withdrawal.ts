/**
 * Consent withdrawal to flag down, on real Kafka (issue #4): "from the withdrawal's response to the flag being
 * down: p50 and p95 over 200 withdrawals. Target: p95 under 2 seconds."
 *
 * Starts the consent and care-plan services in this process as they run in production (startService with
 * their own transports built from the configuration: EVENT_TRANSPORT=kafka on KAFKA_BROKERS, the relay's
 * default poll interval, the consumers' default retries), each in a fresh schema, with a fresh topic prefix
 * (so fresh topics and consumer groups: no old offsets). Prepares BENCH_WITHDRAWALS patients (default 200)
 * over real HTTP, BENCH_PREPARE_CONCURRENCY at a time (default 4): consent recorded (POST Consent), projected
 * into the care-plan service, a plan created and published, the flag checked up. Then withdraws their consents
 * (PUT Consent with status inactive and the withdrawal reason, If-Match), BENCH_WITHDRAWAL_CONCURRENCY at a
 * time (default 1: one after another), and times each from the moment the PUT's response is received to the
 * moment the dispatch lookup GET /api/flags/{nhs} (real HTTP, a system client with scope system/Flag.rs) first
 * answers hasPlan false, polled every BENCH_POLL_MS (default 10) from the PUT's response on. A flag not down
 * within BENCH_WITHDRAWAL_TIMEOUT_MS (default 30000) is a failure: counted and reported, and ranked above every
 * time in the percentiles. Where the time goes is read afterwards from the timestamps the services wrote.
 * Drops its schemas, topics and consumer group at the end, also on error or Ctrl-C.
 * Needs DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) and a broker at KAFKA_BROKERS
 * (default 127.0.0.1:9092; `pnpm kafka:start`). Prints tables; asserts nothing; with BENCH_JSON_OUT set, also
 * appends its figures there as JSON lines (report.ts).
 */
import { activeConsentOf, carePlanService, type CarePlanDB } from '@cmc/care-plan-service';
import { consentService, type ConsentDB } from '@cmc/consent-service';
import { createDatabase, sql } from '@cmc/db';
import type { EventsTables } from '@cmc/events';
import { loadServiceConfig, startService, type RunningService, type ServiceDefinition } from '@cmc/service';
import { TestIssuer, aCarePlan, aConsent, randomNhsNumber } from '@cmc/test-support';
import type { Consent } from 'fhir/r4';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { deleteRunTopics } from './kafka-cleanup';
import { latencyRow, percentile } from './load';
import { finite, ownPeakRssMb, record } from './report';

const TOKEN_LIFETIME_S = 4 * 3600;
const WITHDRAWAL_REASON_URL = 'https://fhir.cmc.example/StructureDefinition/consent-withdrawal-reason';

/** Wall-clock time in ms with sub-ms resolution, comparable with the database's now() on this machine. */
const clock = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));
const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : Number.isNaN(v) ? '–' : 'not down');
const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};

/** Runs `task` over `items`, `concurrency` at a time. */
async function pool<T>(items: T[], concurrency: number, task: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      for (let i = next++; i < items.length; i = next++) await task(items[i] as T, i);
    }),
  );
}

interface Patient {
  nhs: string;
  consent: Consent;
}

interface Withdrawal {
  nhs: string;
  consentId: string;
  /** When the PUT's response was received (clock()). */
  respondedAt: number;
  /** The PUT's own round trip, ms. */
  putMs: number;
  /** When the lookup first answered hasPlan false (clock()); undefined when not within the timeout. */
  downAt?: number;
  polls: number;
}

(async () => {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
  const brokers = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
  const count = num('BENCH_WITHDRAWALS', 200);
  const concurrency = num('BENCH_WITHDRAWAL_CONCURRENCY', 1);
  const prepareConcurrency = num('BENCH_PREPARE_CONCURRENCY', 4);
  const pollMs = num('BENCH_POLL_MS', 10);
  const timeoutMs = num('BENCH_WITHDRAWAL_TIMEOUT_MS', 30_000);

  const run = randomBytes(4).toString('hex');
  const consentSchema = `consent_bench_${run}`;
  const carePlanSchema = `careplan_bench_${run}`;
  const topicPrefix = `bench_withdrawal_${run}.`;
  const issuer = new TestIssuer();
  const bearer = (claims: Parameters<TestIssuer['token']>[0]) => `Bearer ${issuer.token(claims, { exp: Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_S })}`;
  const clinician = bearer({ role: 'clinician', org: 'H81001' });
  const dispatch = bearer({ kind: 'client', sub: 'bench-dispatch', scope: 'system/Flag.rs' });

  const running: RunningService<EventsTables>[] = [];
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      for (const svc of [...running].reverse()) await svc.close().catch((e: unknown) => process.stderr.write(`closing a service: ${String(e)}\n`));
      const admin = createDatabase<unknown>({ url: databaseUrl, schema: 'public', poolMax: 1, applicationName: 'cmc-bench' });
      try {
        for (const schema of [consentSchema, carePlanSchema]) await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(admin.db);
      } finally {
        await admin.close();
      }
      // The run's topics and consumer group go too, so that the broker does not fill up with benchmark runs.
      const groups = (typeof carePlanService.consumers === 'function' ? carePlanService.consumers(carePlanSchema) : (carePlanService.consumers ?? [])).map((c) => topicPrefix + c.name);
      await deleteRunTopics(brokers, run, topicPrefix, groups);
    })());
  process.once('SIGINT', () => {
    process.stderr.write('interrupted: closing the services and dropping the run\'s schemas and topics\n');
    void cleanup().finally(() => process.exit(130));
  });

  const start = async <DB extends EventsTables>(def: ServiceDefinition<DB>, schema: string): Promise<{ svc: RunningService<DB>; url: string }> => {
    const config = loadServiceConfig(def, {
      DATABASE_URL: databaseUrl,
      [`${def.envPrefix}_DB_SCHEMA`]: schema,
      [`${def.envPrefix}_PORT`]: '0',
      EVENT_TRANSPORT: 'kafka',
      KAFKA_BROKERS: brokers,
      KAFKA_TOPIC_PREFIX: topicPrefix,
      AUTH_ISSUER: issuer.issuer,
      AUTH_AUDIENCE: issuer.audience,
      LOG_LEVEL: 'silent',
    });
    // As in production: the transport from the configuration, the relay's and consumers' default settings.
    const svc = await startService(def, config, { logger: false, jwks: issuer.jwks });
    running.push(svc as unknown as RunningService<EventsTables>);
    return { svc, url: await svc.listen() };
  };

  try {
    const setupStart = performance.now();
    // One after the other: the first creates the run's topics, the second finds them.
    const consent = await start<ConsentDB>(consentService, consentSchema);
    const carePlan = await start<CarePlanDB>(carePlanService, carePlanSchema);
    process.stdout.write(`consent service at ${consent.url}, care-plan service at ${carePlan.url}; topics ${topicPrefix}*; started in ${ms(performance.now() - setupStart)} ms\n`);

    const flagUp = async (nhs: string): Promise<boolean> => {
      const res = await fetch(`${carePlan.url}/api/flags/${nhs}`, { headers: { authorization: dispatch } });
      const body = (await res.json()) as { hasPlan?: boolean };
      if (res.status !== 200 || typeof body.hasPlan !== 'boolean') throw new Error(`flag lookup: ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
      return body.hasPlan;
    };

    // Preparation, through the real routes: consent, its projection, a published plan, its flag up.
    const prepStart = performance.now();
    const patients: Patient[] = [];
    await pool(
      Array.from({ length: count }, () => randomNhsNumber()),
      prepareConcurrency,
      async (nhs) => {
        const recorded = await fetch(`${consent.url}/fhir/R4/Consent`, {
          method: 'POST',
          headers: { 'authorization': clinician, 'content-type': 'application/fhir+json' },
          body: JSON.stringify(aConsent(nhs)),
        });
        const stored = (await recorded.json()) as Consent;
        if (recorded.status !== 201 || !stored.id) throw new Error(`recording consent: ${recorded.status} ${JSON.stringify(stored).slice(0, 300)}`);
        const deadline = Date.now() + timeoutMs;
        while (!(await activeConsentOf(carePlan.svc.database.db, nhs))) {
          if (Date.now() > deadline) throw new Error(`the consent of a prepared patient did not reach the care-plan service within ${timeoutMs} ms`);
          await sleep(20);
        }
        const created = await fetch(`${carePlan.url}/fhir/R4/CarePlan`, {
          method: 'POST',
          headers: { 'authorization': clinician, 'content-type': 'application/fhir+json' },
          body: JSON.stringify(aCarePlan(nhs)),
        });
        const plan = (await created.json()) as { id?: string };
        if (created.status !== 201 || !plan.id) throw new Error(`creating a plan: ${created.status} ${JSON.stringify(plan).slice(0, 300)}`);
        const published = await fetch(`${carePlan.url}/fhir/R4/CarePlan/${plan.id}/$publish`, { method: 'POST', headers: { 'authorization': clinician, 'if-match': 'W/"1"' } });
        if (published.status !== 200) throw new Error(`publishing a plan: ${published.status} ${(await published.text()).slice(0, 300)}`);
        await published.arrayBuffer().catch(() => undefined);
        if (!(await flagUp(nhs))) throw new Error('a published plan\'s flag is not up');
        patients.push({ nhs, consent: stored });
      },
    );
    process.stdout.write(`prepared ${patients.length} patients (consent projected, plan published, flag up) in ${ms((performance.now() - prepStart) / 1000)} s, ${prepareConcurrency} at a time\n`);
    // Let the preparation's own events (plans published, access records) drain before measuring.
    await sleep(2000);

    const withdrawals: Withdrawal[] = [];
    const failures: string[] = [];
    await pool(patients, concurrency, async ({ nhs, consent: stored }) => {
      const body = { ...stored, status: 'inactive', extension: [...(stored.extension ?? []), { url: WITHDRAWAL_REASON_URL, valueString: 'the patient asked' }] };
      const sentAt = clock();
      const res = await fetch(`${consent.url}/fhir/R4/Consent/${stored.id ?? ''}`, {
        method: 'PUT',
        headers: { 'authorization': clinician, 'content-type': 'application/fhir+json', 'if-match': 'W/"1"' },
        body: JSON.stringify(body),
      });
      const respondedAt = clock();
      const text = await res.text();
      if (res.status !== 200) {
        failures.push(`withdrawal refused: ${res.status} ${text.slice(0, 200)}`);
        return;
      }
      const w: Withdrawal = { nhs, consentId: stored.id ?? '', respondedAt, putMs: respondedAt - sentAt, polls: 0 };
      withdrawals.push(w);
      // Poll the dispatch lookup from the response on, one request every pollMs (or back to back when slower).
      for (;;) {
        const pollStart = clock();
        w.polls++;
        const up = await flagUp(nhs);
        if (!up) {
          w.downAt = clock();
          break;
        }
        if (pollStart - respondedAt > timeoutMs) {
          failures.push(`flag not down within ${timeoutMs} ms`);
          break;
        }
        await sleep(pollMs - (clock() - pollStart));
      }
    });

    // Where the time went, from the services' own timestamps (the database's clock, this machine's clock).
    const { rows: outbox } = await sql<{ event_id: string; key: string; created: number; sent: number | null }>`
      select event_id, key, extract(epoch from created_at)::float8 * 1000 as created, extract(epoch from sent_at)::float8 * 1000 as sent
      from ${sql.id(consentSchema)}.outbox where type = 'cmc.consent.withdrawn.v1'`.execute(carePlan.svc.database.db);
    const { rows: processed } = await sql<{ event_id: string; processed: number }>`
      select event_id, extract(epoch from processed_at)::float8 * 1000 as processed
      from ${sql.id(carePlanSchema)}.processed_events where event_type = 'cmc.consent.withdrawn.v1'`.execute(carePlan.svc.database.db);
    const outboxOf = new Map(outbox.map((r) => [r.key, r]));
    const processedOf = new Map(processed.map((r) => [r.event_id, r.processed]));
    const stages: Record<string, number[]> = {
      'PUT round trip (request sent → response received)': [],
      'response received → relay picked the event up (consent outbox sent_at: the relay transaction\'s start)': [],
      'relay picked up → care-plan consumer began the event (processed_events.processed_at: the handler transaction\'s start)': [],
      'consumer began → lookup first answered hasPlan false (handler, commit, polling)': [],
    };
    const [put, toRelay, toConsumer, toLookup] = Object.values(stages) as [number[], number[], number[], number[]];
    for (const w of withdrawals) {
      put.push(w.putMs);
      const row = outboxOf.get(w.nhs);
      if (row?.sent != null) toRelay.push(row.sent - w.respondedAt);
      const began = row ? processedOf.get(row.event_id) : undefined;
      if (row?.sent != null && began !== undefined) toConsumer.push(began - row.sent);
      if (began !== undefined && w.downAt !== undefined) toLookup.push(w.downAt - began);
    }

    const times = withdrawals.map((w) => (w.downAt === undefined ? Infinity : w.downAt - w.respondedAt));
    const refused = failures.filter((f) => f.startsWith('withdrawal refused')).length;
    for (let i = 0; i < refused; i++) times.push(Infinity);
    const sorted = [...times].sort((a, b) => a - b);
    const notDown = sorted.filter((t) => !Number.isFinite(t)).length;
    const p95 = percentile(sorted, 95);
    const polls = withdrawals.map((w) => w.polls).sort((a, b) => a - b);

    const listening = await sql<{ n: number }>`select count(*)::int as n from pg_stat_activity where query ilike ${`listen cmc_outbox_${consentSchema}%`}`.execute(carePlan.svc.database.db);
    const stageRow = (label: string, values: number[]) => latencyRow(label, values, ms);
    const out = [
      `\nConsent withdrawal → flag down, real Kafka (${brokers}); ${withdrawals.length + refused} withdrawals, ${concurrency} at a time;`,
      `time from the withdrawal's HTTP response to the first GET /api/flags/{nhs} (real HTTP, system client, system/Flag.rs) answering hasPlan false, polled every ${pollMs} ms`,
      '| n | p50 ms | p95 ms | p99 ms | max ms | not down within ' + `${timeoutMs / 1000} s (failures) |`,
      '|---:|---:|---:|---:|---:|---:|',
      `| ${sorted.length} | ${ms(percentile(sorted, 50))} | ${ms(p95)} | ${ms(percentile(sorted, 99))} | ${ms(sorted[sorted.length - 1] ?? NaN)} | ${notDown} |`,
      ...(failures.length > 0 ? ['', 'Failures (ranked above every time in the percentiles):', ...[...new Set(failures)].map((f) => `- ${failures.filter((x) => x === f).length} × ${f}`)] : []),
      '\nWhere the time went (per withdrawal; from the services\' timestamps in the database, same machine clock)',
      '| stage | n | p50 ms | p95 ms | p99 ms | max ms |',
      '|---|---:|---:|---:|---:|---:|',
      ...Object.entries(stages).map(([label, values]) => stageRow(label, values)),
      `\nLookups per withdrawal until down: p50 ${percentile(polls, 50)}, max ${polls[polls.length - 1] ?? 0}`,
      '\nSettings that bound the figure (as the services run in production; libs/events):',
      `- outbox relay (OutboxRelay, relay.ts): woken by NOTIFY ${'cmc_outbox_<schema>'} from the statement that writes the event, delivered at commit ` +
        `(LISTEN connection of the consent relay up: ${listening.rows[0]?.n ? 'yes' : 'NO'}); otherwise polls every 1000 ms (pollIntervalMs default; startService sets none); batches up to 200 rows / 512 KiB`,
      '- producer (KafkaTransport.publish, kafka-transport.ts): kafkajs sendBatch per relay batch, no linger (kafkajs does not batch on a timer), acks -1 (all in-sync replicas), GZIP, maxInFlightRequests 1',
      '- consumer (KafkaTransport.subscribe): kafkajs fetch long poll with its defaults maxWaitTimeInMs 5000, minBytes 1 (the broker answers as soon as one byte is there), ' +
        'maxBytesPerPartition 1 MiB; partitionsConsumedConcurrently 3; autoCommit every 1000 ms; heartbeat 3000 ms; 3 partitions per topic',
      '- care-plan consumer (EventConsumer, care-plan.consent-projection): one transaction per event: processed_events row, consent projection, plan withdrawn, flag down, cmc.careplan.withdrawn.v1 to its outbox',
      `\np95 ${ms(p95)} ms over ${sorted.length} withdrawals (target < 2000 ms): ${Number.isFinite(p95) && p95 < 2000 ? 'met' : 'NOT met'}; ${notDown} not down within ${timeoutMs / 1000} s`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);

    // The same figures as JSON lines, when BENCH_JSON_OUT is set (report.ts).
    record({
      bench: 'withdrawal',
      name: `consent withdrawal to flag down over Kafka (${concurrency} at a time; response of the PUT to the lookup answering hasPlan false)`,
      patients: null,
      throughput: null,
      unit: '',
      p50Ms: finite(percentile(sorted, 50)),
      p99Ms: finite(percentile(sorted, 99)),
      peakRssMb: ownPeakRssMb(),
      rssOf: 'benchmark process (consent and care-plan services in-process)',
      baseline: null,
      baselineThroughput: null,
      ratio: null,
      extra: { n: sorted.length, p95Ms: finite(p95), maxMs: finite(sorted[sorted.length - 1]), notDown, failures: failures.length, putP50Ms: finite(percentile([...put].sort((a, b) => a - b), 50)) },
    });
  } finally {
    await cleanup();
  }
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
