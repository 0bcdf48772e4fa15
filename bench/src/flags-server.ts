/**
 * The server side of the flag-lookup benchmark, run in a process of its own so that the load generator does not
 * share its event loop: the care-plan service on DATABASE_URL, in a schema of this run's own, over the SQL
 * transport, trusting a key pair made at start. It seeds BENCH_FLAG_PATIENTS (default 100,000) published plans
 * with their active flags in bulk SQL (the flag's plan_id references care_plans, so each flag has a plan row:
 * a minimal one, as the lookup reads the flag only), runs ANALYZE, and prints one line of JSON (urls, schema,
 * token). Beside the service, in this process, two harness apps on ports of their own:
 * - `GET /bare/:nhsNumber`: plain Fastify, no auth, no audit: the same repository lookup (activeFlag) over a
 *   pool like the service's, answered with the same JSON (toLookup, same response schema);
 * - `GET /percommit/:nhsNumber`: the service's flag route as it is (createApp, auth, same schemas; only the NHS
 *   number check is left out) except that its access record is written with recordAccess, one INSERT + NOTIFY +
 *   commit per request, where the service shares commits through its AccessLog. Harness only: it measures what
 *   group commit saves; the service itself has no switch.
 * Afterwards it answers lines on stdin: `count` prints the access records in the outbox by interaction and
 * outcome (e.g. `{"flag allowed": 1234}`); `stats` the service's AccessLog commits and entries and its outbox
 * relay's batches and rows; `mem` this process's peak and current resident memory and V8 heap; `close` stops
 * everything, drops the run's schemas and exits (as do the end of stdin, SIGINT/SIGTERM, or a failure at start).
 */
import { authPlugin } from '@cmc/auth';
import { accessLogOf, activeFlag, flagLookupSchema, toLookup, type CarePlanDB } from '@cmc/care-plan-service';
import { createDatabase, sql, type Database } from '@cmc/db';
import { SqlTransport } from '@cmc/events';
import { createApp, errorResponses } from '@cmc/http';
import { recordAccess, type RunningService } from '@cmc/service';
import { TestIssuer } from '@cmc/test-support';
import Fastify, { type FastifyInstance } from 'fastify';
import { startBenchCarePlan } from './server-process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { getHeapSpaceStatistics } from 'node:v8';
import { validNhsNumbers, type Memory, type Ready, type Stats } from './flags-shared';

const TOKEN_LIFETIME_S = 4 * 3600;
const FLAG_READERS = { roles: ['clinician', 'administrator', 'urgent-care', 'service-team'], scopes: ['system/Flag.r', 'system/Flag.rs', 'system/Flag.cruds'] } as const;
const nhsParams = { type: 'object', required: ['nhsNumber'], properties: { nhsNumber: { type: 'string', maxLength: 20 } } } as const;

/**
 * Peak (VmHWM) and current (VmRSS) resident memory of this process, and its V8 heap, in MB: the heap's size and
 * use, and the young generation's share of the size (V8 grows it under a high allocation rate).
 */
function memory(): Memory {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
  const { heapTotal, heapUsed } = process.memoryUsage();
  const young = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? NaN;
  return { peakRssMb: Math.round(kb('VmHWM') / 1024), rssMb: Math.round(kb('VmRSS') / 1024), heapTotalMb: mb(heapTotal), heapUsedMb: mb(heapUsed), youngGenerationMb: mb(young) };
}

/**
 * `patients` published plans, each with its active flag, in one transaction of bulk statements: valid NHS
 * numbers made in SQL, random plan ids, a mix of resuscitation decisions and of plans with and without alerts.
 */
async function seed(database: Database<CarePlanDB>, patients: number): Promise<void> {
  await database.db.transaction().execute(async (trx) => {
    await sql`
      create temp table flag_seed on commit drop as
      select nhs_number, gen_random_uuid() as id,
        case when x < 0.5 then 'not-for-cpr' when x < 0.8 then 'for-cpr' else 'not-recorded' end as resuscitation,
        random() < 0.3 as alerts, now() - random() * interval '365 days' as modified
      from (select nhs_number, random() as x from (${validNhsNumbers(patients, 'seeded')}) as n offset 0) as dice`.execute(trx);
    await sql`
      insert into care_plans (id, nhs_number, state, version_id, organisation, created_by, created_at, updated_at, published_at, meta, content, resource)
      select id, nhs_number, 'published', 1, 'A11111', 'bench', modified - interval '1 day', modified, modified,
        jsonb_build_object('id', id, 'versionId', 1, 'state', 'published', 'organisation', 'A11111', 'createdBy', 'bench',
          'createdAt', modified - interval '1 day', 'lastUpdated', modified, 'lastUpdatedBy', 'bench', 'publishedAt', modified, 'publishedBy', 'bench'),
        jsonb_strip_nulls(jsonb_build_object(
          'resuscitation', case when resuscitation <> 'not-recorded' then jsonb_build_object('decision', resuscitation) end,
          'alerts', case when alerts then jsonb_build_array(jsonb_build_object('category', 'clinical-risk', 'text', 'Benchmark alert')) end)),
        jsonb_build_object('resourceType', 'CarePlan', 'id', id, 'meta', jsonb_build_object('versionId', '1', 'lastUpdated', modified),
          'status', 'active', 'intent', 'plan', 'subject', jsonb_build_object('identifier', jsonb_build_object('system', 'https://fhir.nhs.uk/Id/nhs-number', 'value', nhs_number)))
      from flag_seed`.execute(trx);
    await sql`
      insert into flags (plan_id, nhs_number, status, version_id, plan_version, resuscitation, alerts, plan_modified_at, active_from, active_until, down_reason, updated_at)
      select id, nhs_number, 'active', 1, 1, resuscitation, alerts, modified, modified, null, null, modified
      from flag_seed`.execute(trx);
  });
  await sql`analyze care_plans`.execute(database.db);
  await sql`analyze flags`.execute(database.db);
}

(async () => {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
  const patients = Number(process.env.BENCH_FLAG_PATIENTS ?? 100_000);
  const schema = `flags_bench_${randomBytes(4).toString('hex')}`;
  const busSchema = `bus_${schema}`;
  const issuer = new TestIssuer();
  const token = (claims: { role: string; org: string }) => issuer.token(claims, { exp: Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_S });

  // What is running, closed in reverse order of starting; the schemas go last, whatever failed before.
  let svc: RunningService<CarePlanDB> | undefined;
  const harness: FastifyInstance[] = [];
  let harnessDb: Database<CarePlanDB> | undefined;
  let transport: SqlTransport | undefined;
  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      for (const app of harness) await app.close().catch(() => undefined);
      await harnessDb?.close().catch(() => undefined);
      await svc?.close().catch(() => undefined);
      await transport?.close().catch(() => undefined);
      const admin = createDatabase<unknown>({ url: databaseUrl, schema: 'public', poolMax: 1, applicationName: 'cmc-bench' });
      try {
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(admin.db);
        await sql`drop schema if exists ${sql.id(busSchema)} cascade`.execute(admin.db);
      } finally {
        await admin.close();
      }
    })());
  const exitAfterClose = (code: number) => {
    void close()
      .catch((e: unknown) => process.stderr.write(`closing: ${String(e)}\n`))
      .finally(() => process.exit(code));
  };
  process.once('SIGINT', () => exitAfterClose(130));
  process.once('SIGTERM', () => exitAfterClose(143));

  try {
    let poolMax: number;
    ({ svc, transport, poolMax } = await startBenchCarePlan(databaseUrl, schema, busSchema, issuer));
    const url = await svc.listen();
    const database = svc.database;

    const seedStart = performance.now();
    await seed(database, patients);
    const seedSeconds = (performance.now() - seedStart) / 1000;

    // The harness: a pool like the service's (same type and size) for the bare and the per-commit routes.
    const hdb = createDatabase<CarePlanDB>({ url: databaseUrl, schema, poolMax: poolMax, applicationName: 'cmc-bench-harness' });
    harnessDb = hdb;
    const bare = Fastify({ logger: false });
    harness.push(bare);
    bare.get<{ Params: { nhsNumber: string } }>('/bare/:nhsNumber', { schema: { params: nhsParams, response: { 200: flagLookupSchema } } }, async (request) => {
      const { nhsNumber } = request.params;
      return toLookup(nhsNumber, await activeFlag(hdb.db, nhsNumber));
    });
    const bareUrl = await bare.listen({ host: '127.0.0.1', port: 0 });

    const perCommit = await createApp({ service: 'care-plan', logger: false });
    harness.push(perCommit);
    await perCommit.register(authPlugin, { issuer: issuer.issuer, audience: issuer.audience, jwks: issuer.jwks });
    perCommit.get<{ Params: { nhsNumber: string } }>(
      '/percommit/:nhsNumber',
      { config: { allow: FLAG_READERS }, schema: { params: nhsParams, response: { 200: flagLookupSchema, ...errorResponses } } },
      async (request) => {
        const { nhsNumber } = request.params;
        const row = await activeFlag(hdb.db, nhsNumber);
        await recordAccess(hdb.db, schema, 'care-plan', request, {
          interaction: 'flag',
          outcome: 'allowed',
          entities: [row ? { resourceType: 'Flag', id: row.plan_id, versionId: String(row.version_id), nhsNumber } : { resourceType: 'Flag', nhsNumber }],
        });
        return toLookup(nhsNumber, row);
      },
    );
    const perCommitUrl = await perCommit.listen({ host: '127.0.0.1', port: 0 });

    const write = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
    const ready: Ready = { url, bareUrl, perCommitUrl, schema, patients, seedSeconds, poolMax: poolMax, tokens: { urgentCare: token({ role: 'urgent-care', org: 'RRU' }) } };
    write(ready);

    const accessLog = accessLogOf(database);
    const { relay } = svc;
    for await (const line of createInterface({ input: process.stdin })) {
      if (line === 'count') {
        const { rows } = await sql<{ kind: string; n: string }>`
          select (payload::jsonb -> 'data' ->> 'interaction') || ' ' || (payload::jsonb -> 'data' ->> 'outcome') as kind, count(*) as n
          from outbox where type = 'cmc.access.recorded.v1' group by 1`.execute(database.db);
        write(Object.fromEntries(rows.map((r) => [r.kind, Number(r.n)])));
      } else if (line === 'stats') {
        const stats: Stats = { ...accessLog.stats, relayBatches: relay.stats.batches, relaySent: relay.stats.sent };
        write(stats);
      } else if (line === 'mem') {
        write(memory());
      } else if (line === 'close') {
        await close();
        write({ closed: true });
        process.exit(0);
      }
    }
    // stdin ended: the load process is gone.
    await close();
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
