/**
 * Care-plan reads with their audit records, 64 connections: GET /fhir/R4/CarePlan/{id} and a search by NHS
 * number as an urgent-care user, cycling over BENCH_PATIENTS published plans, beside the same service's bare
 * /health/live, alternating runs. Every audited read writes its access record to the outbox in the read's
 * transaction; the access records written during each run are counted and shown beside its 2xx responses.
 * Then publishing: BENCH_PATIENTS drafts published, BENCH_PUBLISH_CONCURRENCY at a time, each timed.
 * At scale: with BENCH_CAREPLAN_PATIENTS=<total> above BENCH_PATIENTS, the first BENCH_CAREPLAN_TEMPLATES
 * (default 10) drafts are created and published untimed, the server copies them in bulk SQL (care-plan-server.ts,
 * `seed`), and only then are the other drafts created and published, timed, so that <total> patients have a
 * published plan; reads and searches then pick a random plan (patient) of all <total> per request.
 * Targets (issue): at least 3,000 audited reads/s with p99 under 50 ms; publishing under 100 ms p95.
 * Needs DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres). Prints tables; asserts nothing; with
 * BENCH_JSON_OUT set, also appends its figures there as JSON lines (report.ts).
 */
import { createDatabase, sql } from '@cmc/db';
import { aCarePlan } from '@cmc/test-support';
import { performance } from 'node:perf_hooks';
import { spawnServer } from './server-process';
import { latencyRow, load, percentile, printTable, type LoadResult } from './load';
import { finite, peakRssMbOf, ratioOf, record } from './report';

const NHS = 'https://fhir.nhs.uk/Id/nhs-number';

interface Ready {
  url: string;
  schema: string;
  nhsNumbers: string[];
  tokens: { urgentCare: string; clinician: string };
}

const ms = (v: number): string => v.toFixed(1);

/** Runs `task` over `items`, `concurrency` at a time; resolves to each item's result and its time in ms. */
async function timed<T, R>(items: T[], concurrency: number, task: (item: T) => Promise<R>): Promise<{ results: R[]; times: number[] }> {
  const results: R[] = new Array<R>(items.length);
  const times: number[] = new Array<number>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      for (let i = next++; i < items.length; i = next++) {
        const t0 = performance.now();
        results[i] = await task(items[i] as T);
        times[i] = performance.now() - t0;
      }
    }),
  );
  return { results, times };
}


(async () => {
  if (!process.env.DATABASE_URL) throw new Error('DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const publishConcurrency = Number(process.env.BENCH_PUBLISH_CONCURRENCY ?? 4);
  const total = process.env.BENCH_CAREPLAN_PATIENTS !== undefined ? Number(process.env.BENCH_CAREPLAN_PATIENTS) : undefined;
  if (total !== undefined && !(Number.isInteger(total) && total > 0)) throw new Error('BENCH_CAREPLAN_PATIENTS must be a positive integer');
  const { server, nextLine, ask, stop } = spawnServer('care-plan-server.js', 'care-plan server');
  const accessRecords = async (kind: 'read' | 'search'): Promise<number> => (await ask<Record<string, number>>('count'))[`${kind} allowed`] ?? 0;

  try {
    const setupStart = performance.now();
    const { url, schema, nhsNumbers, tokens } = JSON.parse(await nextLine()) as Ready;
    process.stdout.write(`care-plan service at ${url}; consent projected for ${nhsNumbers.length} patients in ${ms((performance.now() - setupStart) / 1000)} s (service start included)\n`);
    const bulk = total !== undefined && total > nhsNumbers.length;
    const templateCount = bulk ? Math.max(1, Math.min(Number(process.env.BENCH_CAREPLAN_TEMPLATES ?? 10), nhsNumbers.length - 1)) : 0;
    if (bulk && nhsNumbers.length < 2) throw new Error('BENCH_CAREPLAN_PATIENTS needs BENCH_PATIENTS of at least 2 (templates and timed plans)');

    // Drafts, then publishing them: each request timed from this process (HTTP keep-alive, no other load).
    const asClinician = { authorization: `Bearer ${tokens.clinician}` };
    const createAndPublish = async (patients: string[]) => {
      const t0 = performance.now();
      const created = await timed(patients, publishConcurrency, async (nhs) => {
        const res = await fetch(`${url}/fhir/R4/CarePlan`, { method: 'POST', headers: { ...asClinician, 'content-type': 'application/fhir+json' }, body: JSON.stringify(aCarePlan(nhs)) });
        const body = (await res.json()) as { id?: string };
        if (res.status !== 201 || !body.id) throw new Error(`creating a plan: ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
        return body.id;
      });
      const t1 = performance.now();
      const published = await timed(created.results, publishConcurrency, async (id) => {
        const res = await fetch(`${url}/fhir/R4/CarePlan/${id}/$publish`, { method: 'POST', headers: { ...asClinician, 'if-match': 'W/"1"' } });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`publishing ${id}: ${res.status} ${text.slice(0, 500)}`);
      });
      return { created, published, createWallMs: t1 - t0, publishWallMs: performance.now() - t1 };
    };
    let seeded: { added: number; seconds: number } | undefined;
    let templateIds: string[] = [];
    if (bulk) {
      // The templates, published untimed; then the copies; then the timed drafts and publications, at scale.
      templateIds = (await createAndPublish(nhsNumbers.slice(0, templateCount))).created.results;
      // The timed plans come on top of the copies: `total` in all at the end.
      const answer = await ask<{ added: number; seconds: number } | { error: string }>(`seed ${total - (nhsNumbers.length - templateCount)}`);
      if ('error' in answer) throw new Error(`seeding ${total} patients: ${answer.error}`);
      seeded = answer;
      process.stdout.write(`${answer.added} published plans copied from ${templateCount} in bulk SQL in ${answer.seconds.toFixed(1)} s (${total} patients once the timed plans are published)\n`);
    }
    const writes = await createAndPublish(nhsNumbers.slice(templateCount));
    const { created, published } = writes;
    const ids = [...templateIds, ...created.results];

    const urgentCare = { authorization: `Bearer ${tokens.urgentCare}` };
    const readPath = (id: string) => `/fhir/R4/CarePlan/${id}`;
    const searchPath = (nhs: string) => `/fhir/R4/CarePlan?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}`;
    const cycling = (paths: string[]) => {
      let i = 0;
      return [{ method: 'GET' as const, headers: urgentCare, setupRequest: (req: { path?: string }) => ({ ...req, path: paths[i++ % paths.length] }) }];
    };
    const random = (values: string[], path: (v: string) => string) => [
      { method: 'GET' as const, headers: urgentCare, setupRequest: (req: { path?: string }) => ({ ...req, path: path(values[Math.floor(Math.random() * values.length)] as string) }) },
    ];
    let readRequests = cycling(ids.map(readPath));
    let searchRequests = cycling(nhsNumbers.map(searchPath));
    let plans = ids.length;
    if (bulk) {
      // Every plan of the run, read back from the database: each request picks one at random.
      const reader = createDatabase<unknown>({ url: process.env.DATABASE_URL, schema, poolMax: 1, applicationName: 'cmc-bench-load' });
      try {
        const { rows } = await sql<{ id: string; nhs_number: string }>`select id, nhs_number from care_plans where state = 'published'`.execute(reader.db);
        readRequests = random(rows.map((r) => r.id), readPath);
        searchRequests = random(rows.map((r) => r.nhs_number.trim()), searchPath);
        plans = rows.length;
      } finally {
        await reader.close();
      }
    }
    const readRun = (label: string, duration: number) => load(label, { url, requests: readRequests, duration });
    const searchRun = (label: string, duration: number) => load(label, { url, requests: searchRequests, duration });

    const rows: LoadResult[] = [];
    const audit: { label: string; ok: number; records: number }[] = [];
    /** A run of audited requests, with the access records its requests wrote (counted after it settles). */
    const audited = async (kind: 'read' | 'search', label: string, duration: number, keep = true) => {
      const before = await accessRecords(kind);
      const r = await (kind === 'read' ? readRun(label, duration) : searchRun(label, duration));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const records = (await accessRecords(kind)) - before;
      audit.push({ label, ok: r.ok, records });
      if (keep) rows.push(r);
    };

    await load('warm-up', { url: `${url}/health/live`, duration: 2 });
    await audited('read', 'warm-up read', 3, false);
    await audited('search', 'warm-up search', 3, false);
    for (let round = 1; round <= 2; round++) {
      rows.push(await load(`bare GET /health/live #${round}`, { url: `${url}/health/live`, duration: seconds }));
      await audited('read', `read CarePlan/{id} #${round}`, seconds);
      await audited('search', `search ?patient:identifier #${round}`, seconds);
    }

    const peakRssMb = peakRssMbOf(server.pid);
    printTable(
      bulk
        ? `Care-plan reads, each with its access record (urgent-care user; ${plans} published plans, one picked at random per request; 64 connections; ${seconds} s runs)`
        : `Care-plan reads, each with its access record (urgent-care user; ${ids.length} published plans cycled; 64 connections; ${seconds} s runs)`,
      rows,
    );
    const out = [
      '\nAccess records written to the outbox (cmc.access.recorded.v1, outcome allowed) per run, counted in the database',
      '(a request in flight when the run\'s clock stops, at most one per connection, is served and recorded but not counted as a response)',
      '| run | 2xx responses | access records | records − 2xx |',
      '|---|---:|---:|---:|',
      ...audit.map((a) => `| ${a.label} | ${a.ok} | ${a.records} | ${a.records - a.ok} |`),
      `\nWriting plans (${created.times.length} of each, ${publishConcurrency} at a time, timed in the client; no other load${bulk ? `; ${plans - created.times.length} published plans already there` : ''})`,
      '| request | n | p50 ms | p95 ms | p99 ms | max ms |',
      '|---|---:|---:|---:|---:|---:|',
      latencyRow('POST /fhir/R4/CarePlan (create a draft)', created.times),
      latencyRow('POST /fhir/R4/CarePlan/{id}/$publish', published.times),
    ];
    process.stdout.write(`${out.join('\n')}\n`);

    const mean = (prefix: string) => rows.filter((r) => r.label.startsWith(prefix)).reduce((s, r) => s + r.requestsPerSecond, 0) / 2;
    const worstP99 = (prefix: string) => Math.max(...rows.filter((r) => r.label.startsWith(prefix)).map((r) => r.p99));
    const publishP95 = percentile([...published.times].sort((a, b) => a - b), 95);
    process.stdout.write(
      `\nbare ${Math.round(mean('bare'))} req/s; read by id ${Math.round(mean('read'))} req/s (worst p99 ${worstP99('read')} ms); ` +
        `search by NHS number ${Math.round(mean('search'))} req/s (worst p99 ${worstP99('search')} ms) (target >= 3000 audited reads/s, p99 < 50 ms)\n` +
        `publish p95 ${ms(publishP95)} ms at ${publishConcurrency} concurrent (target < 100 ms)\n`,
    );

    // The same figures as JSON lines, when BENCH_JSON_OUT is set (report.ts).
    const rssOf = 'server process (care-plan service)';
    const bareName = 'bare GET /health/live (same service, no auth, no database)';
    const bareRps = mean('bare');
    for (const [prefix, name] of [
      ['bare', bareName],
      ['read', 'read GET /fhir/R4/CarePlan/{id} (audited)'],
      ['search', 'search GET /fhir/R4/CarePlan?patient:identifier (audited)'],
    ] as const) {
      const runs = rows.filter((r) => r.label.startsWith(prefix));
      record({
        bench: 'careplan',
        name,
        patients: plans,
        throughput: Math.round(mean(prefix)),
        unit: 'req/s',
        p50Ms: runs.reduce((s, r) => s + r.p50, 0) / runs.length,
        p99Ms: worstP99(prefix),
        peakRssMb,
        rssOf,
        baseline: bareName,
        baselineThroughput: Math.round(bareRps),
        ratio: ratioOf(mean(prefix), bareRps),
        extra: {
          runs: runs.map((r) => ({ rps: r.requestsPerSecond, p50: r.p50, p99: r.p99, errors: r.errors, non2xx: r.non2xx, ok: r.ok })),
          accessRecords: audit.filter((a) => a.label.startsWith(prefix)).map((a) => ({ ok: a.ok, records: a.records })),
          seconds,
          connections: 64,
          ...(seeded ? { copiedInSql: seeded.added, seedSeconds: seeded.seconds } : {}),
        },
      });
    }
    for (const [name, t, wallMs] of [
      ['POST /fhir/R4/CarePlan (create a draft)', created.times, writes.createWallMs],
      ['POST /fhir/R4/CarePlan/{id}/$publish', published.times, writes.publishWallMs],
    ] as const) {
      const sorted = [...t].sort((a, b) => a - b);
      record({
        bench: 'careplan',
        name: `${name}, ${publishConcurrency} at a time`,
        patients: plans,
        throughput: finite(Math.round((t.length / wallMs) * 1000 * 10) / 10),
        unit: 'req/s',
        p50Ms: finite(percentile(sorted, 50)),
        p99Ms: finite(percentile(sorted, 99)),
        peakRssMb,
        rssOf,
        baseline: null,
        baselineThroughput: null,
        ratio: null,
        extra: { n: t.length, p95Ms: finite(percentile(sorted, 95)), concurrency: publishConcurrency },
      });
    }
  } finally {
    await stop();
  }
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
