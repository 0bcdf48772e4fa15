/**
 * Token verification's cost: the same route, open and behind the auth plugin (ES256 signature, claims,
 * deny-by-default rule), 64 connections, alternating runs. Target: verification costs under 5% of the
 * open route's throughput. Prints a table; asserts nothing; with BENCH_JSON_OUT set, also appends its figures
 * there as JSON lines (report.ts).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { load, printTable, type LoadResult } from './load';
import { peakRssMbOf, ratioOf, record } from './report';

(async () => {
  const server = spawn(process.execPath, ['--disable-warning=TimeoutNegativeWarning', path.join(__dirname, 'auth-server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await new Promise<string>((resolve) => createInterface({ input: server.stdout }).once('line', resolve));
  const { url, token } = JSON.parse(first) as { url: string; token: string };
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const rows: LoadResult[] = [];
  let peakRssMb: number | null;
  try {
    await load('warm-up', { url: `${url}/protected`, headers: { authorization: `Bearer ${token}` }, duration: 3 });
    for (let round = 1; round <= 2; round++) {
      rows.push(await load(`open #${round}`, { url: `${url}/open`, duration: seconds }));
      rows.push(await load(`protected #${round}`, { url: `${url}/protected`, headers: { authorization: `Bearer ${token}` }, duration: seconds }));
    }
    peakRssMb = peakRssMbOf(server.pid);
  } finally {
    server.kill();
  }
  printTable('Token verification overhead (same handler; 64 connections)', rows);
  const mean = (prefix: string) => rows.filter((r) => r.label.startsWith(prefix)).reduce((s, r) => s + r.requestsPerSecond, 0) / 2;
  const open = mean('open');
  const protectedRps = mean('protected');
  for (const [prefix, name] of [
    ['open', 'GET /open (no auth)'],
    ['protected', 'GET /protected (ES256 token verified)'],
  ] as const) {
    const of = rows.filter((r) => r.label.startsWith(prefix));
    const throughput = mean(prefix);
    record({
      bench: 'auth',
      name,
      patients: null,
      throughput: Math.round(throughput),
      unit: 'req/s',
      p50Ms: of.reduce((s, r) => s + r.p50, 0) / of.length,
      p99Ms: Math.max(...of.map((r) => r.p99)),
      peakRssMb,
      rssOf: 'server process',
      baseline: 'GET /open (no auth)',
      baselineThroughput: Math.round(open),
      ratio: ratioOf(throughput, open),
      extra: { runs: of.map((r) => ({ rps: r.requestsPerSecond, p50: r.p50, p99: r.p99, errors: r.errors, non2xx: r.non2xx })), seconds },
    });
  }
  process.stdout.write(`\nopen ${Math.round(open)} req/s, protected ${Math.round(protectedRps)} req/s: verification costs ${(((open - protectedRps) / open) * 100).toFixed(1)}% of throughput (target < 5%)\n`);
})().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
