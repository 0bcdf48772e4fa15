/**
 * Token verification's cost: the same route, open and behind the auth plugin (ES256 signature, claims,
 * deny-by-default rule), 64 connections, alternating runs. Target: verification costs under 5% of the
 * open route's throughput. Prints a table; asserts nothing.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { load, printTable, type LoadResult } from './load';

(async () => {
  const server = spawn(process.execPath, ['--disable-warning=TimeoutNegativeWarning', path.join(__dirname, 'auth-server.js')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const first = await new Promise<string>((resolve) => createInterface({ input: server.stdout }).once('line', resolve));
  const { url, token } = JSON.parse(first) as { url: string; token: string };
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const rows: LoadResult[] = [];
  try {
    await load('warm-up', { url: `${url}/protected`, headers: { authorization: `Bearer ${token}` }, duration: 3 });
    for (let round = 1; round <= 2; round++) {
      rows.push(await load(`open #${round}`, { url: `${url}/open`, duration: seconds }));
      rows.push(await load(`protected #${round}`, { url: `${url}/protected`, headers: { authorization: `Bearer ${token}` }, duration: seconds }));
    }
  } finally {
    server.kill();
  }
  printTable('Token verification overhead (same handler; 64 connections)', rows);
  const mean = (prefix: string) => rows.filter((r) => r.label.startsWith(prefix)).reduce((s, r) => s + r.requestsPerSecond, 0) / 2;
  const open = mean('open');
  const protectedRps = mean('protected');
  process.stdout.write(`\nopen ${Math.round(open)} req/s, protected ${Math.round(protectedRps)} req/s: verification costs ${(((open - protectedRps) / open) * 100).toFixed(1)}% of throughput (target < 5%)\n`);
})().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
