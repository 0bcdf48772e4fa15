/**
 * The server side of the care-plan benchmark, run in a process of its own so that the load generator does not
 * share its event loop: the care-plan service on DATABASE_URL, in a schema of this run's own, over the SQL
 * transport, trusting a key pair made at start. It grants consent to BENCH_PATIENTS patients through real
 * cmc.consent.granted.v1 events and waits for the projection, then prints one line of JSON (url, tokens, NHS
 * numbers). Afterwards it answers lines on stdin: `count` prints the access records in the outbox by
 * interaction and outcome (e.g. `{"read allowed": 1234}`); `seed <total>` grows the plans to <total> patients in
 * bulk SQL (below) and prints `{"added": n, "seconds": s}`; `close` stops the service, drops the run's schemas and exits.
 *
 * `seed`: every published plan so far is a template; each new patient (a valid 9xx NHS number made in SQL, none
 * already in use) gets a copy of one template's current row, its flag and its consent (a new consent id), with
 * the plan id and the NHS number replaced throughout the JSON (meta, content, resource), by INSERT ... SELECT
 * statements on BENCH_SEED_PARALLEL connections (default: the cores), then ANALYZE. The plan's versions
 * (care_plan_versions) are copied only with BENCH_CAREPLAN_SEED_VERSIONS=1, and allergies not at all: reads and
 * searches of CarePlan touch neither, and the versions would triple the seeding time. No HTTP and no events.
 */
import { activeConsentOf } from '@cmc/care-plan-service';
import { makeEvent } from '@cmc/contracts';
import { createDatabase, sql } from '@cmc/db';
import { toMessage } from '@cmc/events';
import { TestIssuer, randomNhsNumber, waitFor } from '@cmc/test-support';
import { startBenchCarePlan } from './server-process';
import { randomBytes, randomUUID } from 'node:crypto';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import type { CarePlanDB } from '@cmc/care-plan-service';
import type { Database } from '@cmc/db';
import { validNhsNumbers } from './flags-shared';

const TOKEN_LIFETIME_S = 4 * 3600;

/**
 * Grows the plans to `total` patients by copying the published ones in bulk SQL (see the header): the new
 * patients are numbered in a table of their own, then BENCH_SEED_PARALLEL connections (default: the number of
 * cores) each copy their share (k % parallel) with INSERT ... SELECT, since each copy's JSON is parsed and
 * compressed again, which is CPU-bound in the database. The table of new patients is dropped at the end.
 */
async function seedCopies(databaseUrl: string, database: Database<CarePlanDB>, total: number): Promise<{ added: number; seconds: number }> {
  const t0 = performance.now();
  const { rows } = await sql<{ existing: string; templates: string }>`
    select count(*) as existing, count(*) filter (where state = 'published') as templates from care_plans`.execute(database.db);
  const existing = Number(rows[0]?.existing ?? 0);
  const templates = Number(rows[0]?.templates ?? 0);
  const add = total - existing;
  if (add <= 0) return { added: 0, seconds: 0 };
  if (templates === 0) throw new Error('no published plan to copy');
  const parallel = Math.max(1, Number(process.env.BENCH_SEED_PARALLEL ?? cpus().length));
  await sql`drop table if exists bench_plan_seed`.execute(database.db);
  await sql`
    create unlogged table bench_plan_seed as
    with templates as (select id, nhs_number, row_number() over (order by id) - 1 as k from care_plans where state = 'published'),
    numbers as (
      select v.nhs_number, row_number() over () - 1 as k
      from (${validNhsNumbers(add + existing + 1000, 'seeded')}) as v
      -- Not a patient who has a plan, nor one whose consent is there for a plan still to be created (the timed ones).
      where not exists (select 1 from care_plans c where c.nhs_number = v.nhs_number)
        and not exists (select 1 from consent_projection p where p.nhs_number = v.nhs_number)
      limit ${add})
    select n.k, gen_random_uuid() as id, n.nhs_number::char(10) as nhs_number, t.id as template_id, t.id::text as template_id_text, t.nhs_number::text as template_nhs
    from numbers n join templates t on t.k = n.k % ${templates}`.execute(database.db);
  const seeders = createDatabase<CarePlanDB>({ url: databaseUrl, schema: database.schema, poolMax: parallel, applicationName: 'cmc-bench-seed' });
  try {
    const swap = (column: string) => sql.raw(`replace(replace(c.${column}::text, s.template_id_text, s.id::text), s.template_nhs, s.nhs_number::text)::jsonb`);
    await Promise.all(
      Array.from({ length: parallel }, (_, i) =>
        seeders.db.transaction().execute(async (trx) => {
          const mine = sql`(select * from bench_plan_seed where k % ${parallel} = ${i})`;
          await sql`
            insert into care_plans (id, nhs_number, state, version_id, organisation, created_by, created_at, updated_at, published_at, review_date, gp_practice, meta, content, resource)
            select s.id, s.nhs_number, c.state, c.version_id, c.organisation, c.created_by, c.created_at, c.updated_at, c.published_at, c.review_date, c.gp_practice,
              ${swap('meta')}, ${swap('content')}, ${swap('resource')}
            from ${mine} as s join care_plans c on c.id = s.template_id`.execute(trx);
          // The versions table is not read by reads or searches; copying every version triples the seeding time.
          if (process.env.BENCH_CAREPLAN_SEED_VERSIONS === '1') {
            await sql`
              insert into care_plan_versions (id, version_id, state, meta, content, resource, recorded_by, recorded_at)
              select s.id, c.version_id, c.state, ${swap('meta')}, ${swap('content')}, ${swap('resource')}, c.recorded_by, c.recorded_at
              from ${mine} as s join care_plan_versions c on c.id = s.template_id`.execute(trx);
          }
          await sql`
            insert into flags (plan_id, nhs_number, status, version_id, plan_version, resuscitation, alerts, plan_modified_at, active_from, active_until, down_reason, updated_at)
            select s.id, s.nhs_number, f.status, f.version_id, f.plan_version, f.resuscitation, f.alerts, f.plan_modified_at, f.active_from, f.active_until, f.down_reason, f.updated_at
            from ${mine} as s join flags f on f.plan_id = s.template_id`.execute(trx);
          await sql`
            insert into consent_projection (consent_id, nhs_number, version_id, status, basis_code, changed_at, updated_at)
            select gen_random_uuid(), s.nhs_number, p.version_id, p.status, p.basis_code, p.changed_at, p.updated_at
            from ${mine} as s join consent_projection p on p.nhs_number = s.template_nhs::char(10) and p.status = 'active'`.execute(trx);
        }),
      ),
    );
  } finally {
    await seeders.close();
    await sql`drop table if exists bench_plan_seed`.execute(database.db);
  }
  for (const table of ['care_plans', 'care_plan_versions', 'flags', 'consent_projection']) await sql`analyze ${sql.id(table)}`.execute(database.db);
  return { added: add, seconds: (performance.now() - t0) / 1000 };
}

(async () => {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
  const patients = Number(process.env.BENCH_PATIENTS ?? 200);
  const schema = `careplan_bench_${randomBytes(4).toString('hex')}`;
  const busSchema = `bus_${schema}`;
  const issuer = new TestIssuer();
  const token = (claims: { role: string; org: string }) => issuer.token(claims, { exp: Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_S });

  const { svc, transport } = await startBenchCarePlan(databaseUrl, schema, busSchema, issuer);
  const url = await svc.listen();

  // Consent, as the consent service would announce it: one event per patient, then wait for the projection.
  const nhsNumbers = Array.from({ length: patients }, () => randomNhsNumber());
  const consentIds = new Map(nhsNumbers.map((nhs) => [nhs, randomUUID()]));
  const messages = nhsNumbers.map((nhsNumber) => {
    const consentId = consentIds.get(nhsNumber) ?? '';
    const ev = makeEvent({
      type: 'cmc.consent.granted.v1',
      source: '/cmc/consent',
      key: nhsNumber,
      data: { consentId, versionId: '1', nhsNumber, status: 'active', dateTime: new Date(Date.now() - 60_000).toISOString(), secondaryUse: 'permit', basisCode: '882921000000109' },
    });
    return toMessage({ event_id: ev.id, topic: 'cmc.consent.v1', key: nhsNumber, type: ev.type, payload: JSON.stringify(ev) });
  });
  await transport.publish(messages);
  for (const nhs of nhsNumbers) {
    await waitFor(async () => (await activeConsentOf(svc.database.db, nhs))?.consent_id === consentIds.get(nhs) || undefined, 60_000, `consent of ${nhs} projected`);
  }

  const write = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
  write({
    url,
    schema,
    nhsNumbers,
    tokens: { urgentCare: token({ role: 'urgent-care', org: 'RRU' }), clinician: token({ role: 'clinician', org: 'A11111' }) },
  });

  const close = async () => {
    await svc.close();
    await transport.close();
    const admin = createDatabase<unknown>({ url: databaseUrl, schema: 'public', poolMax: 1, applicationName: 'cmc-bench' });
    try {
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(admin.db);
      await sql`drop schema if exists ${sql.id(busSchema)} cascade`.execute(admin.db);
    } finally {
      await admin.close();
    }
  };

  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'count') {
      const { rows } = await sql<{ kind: string; n: string }>`
        select (payload::jsonb -> 'data' ->> 'interaction') || ' ' || (payload::jsonb -> 'data' ->> 'outcome') as kind, count(*) as n
        from outbox where type = 'cmc.access.recorded.v1' group by 1`.execute(svc.database.db);
      write(Object.fromEntries(rows.map((r) => [r.kind, Number(r.n)])));
    } else if (line.startsWith('seed ')) {
      write(await seedCopies(databaseUrl, svc.database, Number(line.slice('seed '.length))).catch((e: unknown) => ({ error: e instanceof Error ? e.message : String(e) })));
    } else if (line === 'close') {
      await close();
      write({ closed: true });
      process.exit(0);
    }
  }
  await close();
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
