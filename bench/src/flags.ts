/**
 * Flag lookups with their durable audit records, 64 connections, over BENCH_FLAG_PATIENTS (default 100,000)
 * patients with a published plan: GET /api/flags/{nhsNumber} as an urgent-care user, each request for a random
 * patient (one in ten a valid NHS number with no flag: misses are audited too), beside, in the same run and
 * alternating, the same repository lookup on a bare Fastify route (no auth, no audit) and the service's route
 * with one commit per request instead of the access log's group commit (a harness route: the service has no
 * switch). The access records written during each run are counted in the outbox and shown beside its 2xx
 * responses, with the access log's commits. Then the batch lookup, POST /api/flags/$lookup with 100 NHS numbers
 * a request, BENCH_LOOKUP_CONNECTIONS (default 16) connections. Last, the server process's peak resident memory.
 * Targets (issue #6): audited lookups at least 80% of the bare lookup's throughput, p99 under 50 ms, under
 * 300 MB resident with 1,000,000 patients (BENCH_FLAG_PATIENTS=1000000); batch lookup p99 under 100 ms.
 * BENCH_SECONDS (default 10) per run; BENCH_SERVER_NODE_ARGS sets the server process's node flags (default
 * --max-semi-space-size=16, as the services' start scripts run them: V8's young generation otherwise grows to
 * 128 MB under load, which was all of the memory above the target).
 * Needs DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres). Prints tables; asserts nothing; with
 * BENCH_JSON_OUT set, also appends its figures there as JSON lines (report.ts).
 */
import { createDatabase, sql } from '@cmc/db';
import { performance } from 'node:perf_hooks';
import { validNhsNumbers, type Memory, type Ready, type Stats } from './flags-shared';
import { SERVICE_NODE_ARGS, spawnServer } from './server-process';
import { load, type LoadResult } from './load';
import { finite, ratioOf, record } from './report';

/** Share of lookups for an NHS number with no flag. */
const MISS_RATE = 0.1;
const LOOKUP_SIZE = 100;

(async () => {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const lookupConnections = Number(process.env.BENCH_LOOKUP_CONNECTIONS ?? 16);
  const { nextLine, ask, stop } = spawnServer('flags-server.js', 'flag server');
  const accessRecords = async (): Promise<number> => (await ask<Record<string, number>>('count'))['flag allowed'] ?? 0;

  try {
    const setupStart = performance.now();
    const ready = JSON.parse(await nextLine()) as Ready;
    const { url, bareUrl, perCommitUrl, schema, patients, seedSeconds, poolMax, tokens } = ready;
    const afterSeed = await ask<Memory>('mem');

    // The patients to ask about: every seeded NHS number, read back from the flags; misses are valid numbers of
    // the prefixes the seeding skipped.
    const reader = createDatabase<unknown>({ url: databaseUrl, schema, poolMax: 1, applicationName: 'cmc-bench-load' });
    let hits: string[];
    let misses: string[];
    try {
      hits = (await sql<{ nhs_number: string }>`select nhs_number from flags where status = 'active'`.execute(reader.db)).rows.map((r) => r.nhs_number);
      misses = (await validNhsNumbers(Math.max(1000, Math.ceil(patients / 9)), 'unseeded').execute(reader.db)).rows.map((r) => r.nhs_number);
    } finally {
      await reader.close();
    }
    process.stdout.write(
      `care-plan service at ${url}; ${hits.length} active flags seeded in ${seedSeconds.toFixed(1)} s (ready in ${((performance.now() - setupStart) / 1000).toFixed(1)} s); ` +
        `server resident memory after seeding ${afterSeed.rssMb} MB; DB_POOL_MAX ${poolMax}\n`,
    );
    if (hits.length !== patients) throw new Error(`expected ${patients} flags, found ${hits.length}`);
    const pick = (): string => (Math.random() < MISS_RATE ? misses[Math.floor(Math.random() * misses.length)] : hits[Math.floor(Math.random() * hits.length)]) as string;

    // The routes answer alike, and a miss is a miss.
    const asUrgentCare = { authorization: `Bearer ${tokens.urgentCare}` };
    for (const [nhs, hasPlan] of [
      [hits[0], true],
      [misses[0], false],
    ] as const) {
      const answers = await Promise.all(
        [`${bareUrl}/bare/${nhs}`, `${url}/api/flags/${nhs}`, `${perCommitUrl}/percommit/${nhs}`].map(async (u) => {
          const res = await fetch(u, { headers: asUrgentCare });
          const text = await res.text();
          if (res.status !== 200) throw new Error(`GET ${u}: ${res.status} ${text.slice(0, 500)}`);
          return text;
        }),
      );
      if (new Set(answers).size !== 1 || (JSON.parse(answers[0] as string) as { hasPlan: boolean }).hasPlan !== hasPlan) {
        throw new Error(`the routes disagree on ${nhs} (expected hasPlan ${hasPlan}): ${answers.join(' / ')}`);
      }
    }

    const randomPath = (prefix: string) => [{ method: 'GET' as const, headers: asUrgentCare, setupRequest: (req: { path?: string }) => ({ ...req, path: `${prefix}${pick()}` }) }];
    const routes = {
      bare: { label: 'bare GET /bare/{nhs} (no auth, no audit)', url: bareUrl, requests: randomPath('/bare/') },
      audited: { label: 'audited GET /api/flags/{nhs} (group commit)', url, requests: randomPath('/api/flags/') },
      percommit: { label: 'harness GET /percommit/{nhs} (one commit per request)', url: perCommitUrl, requests: randomPath('/percommit/') },
    };
    type Route = keyof typeof routes;

    interface Row extends LoadResult {
      route: Route | 'lookup';
      records: number;
      /** Commits of the service's access log during the run (undefined when the route does not use it). */
      batches?: number;
      entries?: number;
      /** Rows the outbox relay sent on during the run, and in how many batches. */
      relayBatches: number;
      relaySent: number;
    }
    const rows: Row[] = [];
    /** A run, with the access records its requests wrote (counted after it settles) and the access log's commits. */
    const run = async (route: Route | 'lookup', label: string, opts: Parameters<typeof load>[1], keep = true): Promise<void> => {
      const before = { records: await accessRecords(), stats: await ask<Stats>('stats') };
      const r = await load(label, opts);
      await new Promise((resolve) => setTimeout(resolve, 500));
      const after = { records: await accessRecords(), stats: await ask<Stats>('stats') };
      const row: Row = { ...r, route, records: after.records - before.records, relayBatches: after.stats.relayBatches - before.stats.relayBatches, relaySent: after.stats.relaySent - before.stats.relaySent };
      if (route === 'audited' || route === 'lookup') {
        row.batches = after.stats.batches - before.stats.batches;
        row.entries = after.stats.entries - before.stats.entries;
      }
      if (keep) rows.push(row);
    };

    for (const route of ['bare', 'audited', 'percommit'] as const) await run(route, `warm-up ${route}`, { url: routes[route].url, requests: routes[route].requests, duration: 3 }, false);
    for (let round = 1; round <= 2; round++) {
      for (const route of ['bare', 'audited', 'percommit'] as const) {
        await run(route, `${routes[route].label} #${round}`, { url: routes[route].url, requests: routes[route].requests, duration: seconds });
      }
    }

    // The batch lookup: 100 NHS numbers a request, drawn as above.
    const lookupRequests = [
      {
        method: 'POST' as const,
        path: '/api/flags/$lookup',
        headers: { ...asUrgentCare, 'content-type': 'application/json' },
        setupRequest: (req: { body?: string | Buffer }) => ({ ...req, body: JSON.stringify({ nhsNumbers: Array.from({ length: LOOKUP_SIZE }, pick) }) }),
      },
    ];
    await run('lookup', 'warm-up lookup', { url, requests: lookupRequests, connections: lookupConnections, duration: 2 }, false);
    await run('lookup', `POST /api/flags/$lookup (${LOOKUP_SIZE} NHS numbers; ${lookupConnections} connections)`, { url, requests: lookupRequests, connections: lookupConnections, duration: seconds });
    const mem = await ask<Memory>('mem');

    const cell = (v: number | undefined, f: (n: number) => string = String) => (v === undefined ? '—' : f(v));
    const out = [
      `\nFlag lookups, each with its durable access record (urgent-care user; ${patients} patients with a flag, ${Math.round(MISS_RATE * 100)}% of lookups for a patient without one; ` +
        `64 connections, ${lookupConnections} for the batch lookup; ${seconds} s runs, alternating)`,
      'Access records: cmc.access.recorded.v1 (flag, allowed) written to the outbox during the run, counted in the database; a request in flight when the',
      'run\'s clock stops (at most one per connection) is served and recorded but not counted as a response. Commits: the access log\'s batches (group commit).',
      'Relayed: outbox rows the service\'s relay sent on to the (SQL) transport during the run, in so many batches (it works in the same process and database).',
      '| run | req/s | p50 ms | p99 ms | errors | non-2xx | 2xx | access records | records − 2xx | commits | entries/commit | relayed (batches) |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...rows.map(
        (r) =>
          `| ${r.label} | ${r.requestsPerSecond} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.non2xx} | ${r.ok} | ${r.records} | ${r.route === 'bare' ? '—' : r.records - r.ok} | ` +
          `${r.route === 'percommit' ? `${r.records} (one per request)` : cell(r.batches)} | ${r.route === 'percommit' ? '1' : cell(r.entries !== undefined && r.batches ? r.entries / r.batches : undefined, (n) => n.toFixed(1))} | ${r.relaySent} (${r.relayBatches}) |`,
      ),
    ];
    const of = (route: Row['route']) => rows.filter((r) => r.route === route);
    const mean = (route: Row['route']) => of(route).reduce((s, r) => s + r.requestsPerSecond, 0) / of(route).length;
    const worstP99 = (route: Row['route']) => Math.max(...of(route).map((r) => r.p99));
    const batches = of('audited').reduce((s, r) => s + (r.batches ?? 0), 0);
    const entries = of('audited').reduce((s, r) => s + (r.entries ?? 0), 0);
    const [bare, audited, percommit] = [mean('bare'), mean('audited'), mean('percommit')];
    const lookup = of('lookup')[0];
    const met = (ok: boolean) => (ok ? 'met' : 'NOT met');
    out.push(
      '',
      `bare ${Math.round(bare)} req/s; audited ${Math.round(audited)} req/s = ${((100 * audited) / bare).toFixed(1)}% of bare (target >= 80%: ${met(audited >= 0.8 * bare)}); ` +
        `one commit per request ${Math.round(percommit)} req/s = ${((100 * percommit) / bare).toFixed(1)}% of bare`,
      `audited worst p99 ${worstP99('audited')} ms (target < 50 ms: ${met(worstP99('audited') < 50)}); access log: ${entries} entries in ${batches} commits, ${(entries / Math.max(1, batches)).toFixed(1)} entries a commit`,
      `batch lookup of ${LOOKUP_SIZE}: ${lookup?.requestsPerSecond ?? NaN} req/s, p50 ${lookup?.p50 ?? NaN} ms, p99 ${lookup?.p99 ?? NaN} ms (target p99 < 100 ms: ${met((lookup?.p99 ?? Infinity) < 100)})`,
      `service process (care-plan service and harness routes; node ${(process.env.BENCH_SERVER_NODE_ARGS ?? SERVICE_NODE_ARGS.join(' ')) || 'without flags'}) resident memory with ${patients} patients: ` +
        `peak ${mem.peakRssMb} MB, now ${mem.rssMb} MB, after seeding ${afterSeed.rssMb} MB (target < 300 MB with 1,000,000 patients${patients >= 1_000_000 ? `: ${met(mem.peakRssMb < 300)}` : '; run with BENCH_FLAG_PATIENTS=1000000'}); ` +
        `V8 heap now ${mem.heapTotalMb} MB (${mem.heapUsedMb} MB used), of which young generation ${mem.youngGenerationMb} MB`,
    );
    process.stdout.write(`${out.join('\n')}\n`);

    // The same figures as JSON lines, when BENCH_JSON_OUT is set (report.ts).
    for (const route of ['bare', 'audited', 'percommit', 'lookup'] as const) {
      const runs = of(route);
      if (runs.length === 0) continue;
      const throughput = mean(route);
      record({
        bench: 'flags',
        name: route === 'lookup' ? `POST /api/flags/$lookup (${LOOKUP_SIZE} NHS numbers a request; ${lookupConnections} connections)` : routes[route].label,
        patients,
        throughput: Math.round(throughput),
        unit: 'req/s',
        p50Ms: runs.reduce((s, r) => s + r.p50, 0) / runs.length,
        p99Ms: worstP99(route),
        peakRssMb: mem.peakRssMb,
        rssOf: 'server process (care-plan service and harness routes)',
        baseline: route === 'lookup' ? null : routes.bare.label,
        baselineThroughput: route === 'lookup' ? null : Math.round(bare),
        ratio: route === 'lookup' ? null : ratioOf(throughput, bare),
        extra: {
          runs: runs.map((r) => ({ rps: r.requestsPerSecond, p50: r.p50, p99: r.p99, errors: r.errors, non2xx: r.non2xx, ok: r.ok, accessRecords: r.records })),
          ...(route === 'lookup' ? { nhsNumbersPerSecond: Math.round(throughput * LOOKUP_SIZE) } : {}),
          ...(route === 'audited' ? { entriesPerCommit: finite(entries / Math.max(1, batches)) } : {}),
          seconds,
          connections: route === 'lookup' ? lookupConnections : 64,
          seedSeconds,
          rssAfterSeedMb: afterSeed.rssMb,
        },
      });
    }
  } finally {
    await stop();
  }
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
