/**
 * Logins per second at the chosen password-hashing cost, and the memory each hash takes.
 * 1. argon2id alone (node:crypto, libuv threadpool), at the service's default cost.
 * 2. POST /auth/login end to end (identity service on DATABASE_URL, default cost), 16 connections.
 * Drops its schemas at the end. Needs DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres). Prints figures;
 * asserts nothing; with BENCH_JSON_OUT set, also appends its figures there as JSON lines (report.ts).
 */
import { identityService } from '@cmc/identity-service';
import { hashPassword, verifyPassword } from '@cmc/identity-service';
import { createDatabase, sql } from '@cmc/db';
import { SqlTransport } from '@cmc/events';
import { createLogger } from '@cmc/logging';
import { loadServiceConfig, startService } from '@cmc/service';
import { randomBytes } from 'node:crypto';
import { load, printTable } from './load';
import { ownPeakRssMb, ratioOf, record } from './report';

const MEMORY_KIB = Number(process.env.IDENTITY_ARGON2_MEMORY_KIB ?? 19456);
const PASSES = Number(process.env.IDENTITY_ARGON2_PASSES ?? 2);

async function hashesAlone(seconds: number): Promise<{ perSecond: number; peakRssMiB: number; concurrency: number }> {
  const stored = await hashPassword('Bench-Passw0rd', { memoryKiB: MEMORY_KIB, passes: PASSES });
  const concurrency = Number(process.env.UV_THREADPOOL_SIZE ?? 4);
  let done = 0;
  let peak = 0;
  const until = Date.now() + seconds * 1000;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < until) {
        await verifyPassword('Bench-Passw0rd', stored);
        done++;
      }
    }),
  );
  clearInterval(sampler);
  return { perSecond: done / seconds, peakRssMiB: peak / 2 ** 20, concurrency };
}

(async () => {
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const alone = await hashesAlone(seconds);
  process.stdout.write(
    `\nargon2id m=${MEMORY_KIB} KiB (${(MEMORY_KIB / 1024).toFixed(1)} MiB per hash), t=${PASSES}, p=1: ` +
      `${alone.perSecond.toFixed(1)} verifications/s with ${alone.concurrency} threads; peak RSS ${alone.peakRssMiB.toFixed(0)} MiB\n`,
  );

  const aloneName = `argon2id verify alone (m=${MEMORY_KIB} KiB, t=${PASSES}, ${alone.concurrency} threads; no HTTP, no database)`;
  record({
    bench: 'logins',
    name: aloneName,
    patients: null,
    throughput: Math.round(alone.perSecond * 10) / 10,
    unit: 'verifications/s',
    p50Ms: null,
    p99Ms: null,
    peakRssMb: Math.round(alone.peakRssMiB),
    rssOf: 'benchmark process',
    baseline: null,
    baselineThroughput: null,
    ratio: null,
    extra: { memoryKiB: MEMORY_KIB, passes: PASSES, seconds },
  });

  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) {
    process.stdout.write('DATABASE_URL is not set: skipping the end-to-end login benchmark\n');
    return;
  }
  const schema = `identity_bench_${randomBytes(4).toString('hex')}`;
  const env = {
    DATABASE_URL: databaseUrl,
    IDENTITY_DB_SCHEMA: schema,
    IDENTITY_PORT: '0',
    LOG_LEVEL: 'silent',
    CMC_BOOTSTRAP_ADMIN_EMAIL: 'bench@cmc.test',
    CMC_BOOTSTRAP_ADMIN_PASSWORD: 'Bench-Passw0rd',
  };
  const logger = createLogger({ service: 'bench', level: 'silent' });
  const transport = new SqlTransport({ url: databaseUrl, schema: `bus_${schema}`, logger });
  await transport.start();
  const svc = await startService(identityService, loadServiceConfig(identityService, env), { logger: false, transport });
  const url = await svc.listen();
  try {
    const body = JSON.stringify({ email: 'bench@cmc.test', password: 'Bench-Passw0rd' });
    const rows = [await load('POST /auth/login', { url: `${url}/auth/login`, method: 'POST', headers: { 'content-type': 'application/json' }, body, connections: 16, duration: seconds })];
    printTable('Logins end to end (argon2id verify, gates, token signing, refresh token and events written)', rows);
    const [login] = rows;
    if (login) {
      record({
        bench: 'logins',
        name: 'POST /auth/login end to end (16 connections)',
        patients: null,
        throughput: login.requestsPerSecond,
        unit: 'logins/s',
        p50Ms: login.p50,
        p99Ms: login.p99,
        peakRssMb: ownPeakRssMb(),
        rssOf: 'benchmark process (identity service in-process with the load generator)',
        baseline: aloneName,
        baselineThroughput: Math.round(alone.perSecond * 10) / 10,
        ratio: ratioOf(login.requestsPerSecond, alone.perSecond),
        extra: { errors: login.errors, non2xx: login.non2xx, seconds },
      });
    }
  } finally {
    await svc.close();
    await transport.close();
    await svc.database.close();
    // The run's schemas go too, so that the database does not fill up with benchmark runs.
    const admin = createDatabase<unknown>({ url: databaseUrl, schema: 'public', poolMax: 1, applicationName: 'cmc-bench' });
    try {
      for (const s of [schema, `bus_${schema}`]) await sql`drop schema if exists ${sql.id(s)} cascade`.execute(admin.db);
    } finally {
      await admin.close();
    }
  }
})().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
