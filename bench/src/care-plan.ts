/**
 * Care-plan reads with their audit records, 64 connections: GET /fhir/R4/CarePlan/{id} and a search by NHS
 * number as an urgent-care user, cycling over BENCH_PATIENTS published plans, beside the same service's bare
 * /health/live, alternating runs. Every audited read writes its access record to the outbox in the read's
 * transaction; the access records written during each run are counted and shown beside its 2xx responses.
 * Then publishing: BENCH_PATIENTS drafts published, BENCH_PUBLISH_CONCURRENCY at a time, each timed.
 * Targets (issue): at least 3,000 audited reads/s with p99 under 50 ms; publishing under 100 ms p95.
 * Needs DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres). Prints tables; asserts nothing.
 */
import { aCarePlan } from '@cmc/test-support';
import { performance } from 'node:perf_hooks';
import { spawnServer } from './server-process';
import { latencyRow, load, percentile, printTable, type LoadResult } from './load';

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
  const { nextLine, ask, stop } = spawnServer('care-plan-server.js', 'care-plan server');
  const accessRecords = async (kind: 'read' | 'search'): Promise<number> => (await ask<Record<string, number>>('count'))[`${kind} allowed`] ?? 0;

  try {
    const setupStart = performance.now();
    const { url, nhsNumbers, tokens } = JSON.parse(await nextLine()) as Ready;
    process.stdout.write(`care-plan service at ${url}; consent projected for ${nhsNumbers.length} patients in ${ms((performance.now() - setupStart) / 1000)} s (service start included)\n`);

    // Drafts, then publishing them: each request timed from this process (HTTP keep-alive, no other load).
    const asClinician = { authorization: `Bearer ${tokens.clinician}` };
    const created = await timed(nhsNumbers, publishConcurrency, async (nhs) => {
      const res = await fetch(`${url}/fhir/R4/CarePlan`, { method: 'POST', headers: { ...asClinician, 'content-type': 'application/fhir+json' }, body: JSON.stringify(aCarePlan(nhs)) });
      const body = (await res.json()) as { id?: string };
      if (res.status !== 201 || !body.id) throw new Error(`creating a plan: ${res.status} ${JSON.stringify(body).slice(0, 500)}`);
      return body.id;
    });
    const ids = created.results;
    const published = await timed(ids, publishConcurrency, async (id) => {
      const res = await fetch(`${url}/fhir/R4/CarePlan/${id}/$publish`, { method: 'POST', headers: { ...asClinician, 'if-match': 'W/"1"' } });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`publishing ${id}: ${res.status} ${text.slice(0, 500)}`);
    });

    const urgentCare = { authorization: `Bearer ${tokens.urgentCare}` };
    const readPaths = ids.map((id) => `/fhir/R4/CarePlan/${id}`);
    const searchPaths = nhsNumbers.map((nhs) => `/fhir/R4/CarePlan?patient:identifier=${encodeURIComponent(`${NHS}|${nhs}`)}`);
    const cycling = (paths: string[]) => {
      let i = 0;
      return [{ method: 'GET' as const, headers: urgentCare, setupRequest: (req: { path?: string }) => ({ ...req, path: paths[i++ % paths.length] }) }];
    };
    const readRun = (label: string, duration: number) => load(label, { url, requests: cycling(readPaths), duration });
    const searchRun = (label: string, duration: number) => load(label, { url, requests: cycling(searchPaths), duration });

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

    printTable(`Care-plan reads, each with its access record (urgent-care user; ${ids.length} published plans cycled; 64 connections; ${seconds} s runs)`, rows);
    const out = [
      '\nAccess records written to the outbox (cmc.access.recorded.v1, outcome allowed) per run, counted in the database',
      '(a request in flight when the run\'s clock stops, at most one per connection, is served and recorded but not counted as a response)',
      '| run | 2xx responses | access records | records − 2xx |',
      '|---|---:|---:|---:|',
      ...audit.map((a) => `| ${a.label} | ${a.ok} | ${a.records} | ${a.records - a.ok} |`),
      `\nWriting plans (${ids.length} of each, ${publishConcurrency} at a time, timed in the client; no other load)`,
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
  } finally {
    await stop();
  }
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
