/**
 * Every benchmark in one go (`pnpm bench:all`), then bench/RESULTS.md (and RESULTS.json): the machine, the date,
 * and for each measurement its throughput, p50/p99 latency, peak resident memory and its ratio to the bare route
 * measured beside it in the same run; flags and care-plan reads/searches at each patient count (scaling table).
 *
 * `pnpm bench:all` builds once (`pnpm run build`, whose tsconfig.build.json includes bench/), then runs this,
 * which builds nothing unless BENCH_ALL_BUILD=1 (`pnpm run build` and `tsc -b bench`). It starts the local Kafka
 * (deploy/local/kafka.sh start) when nothing answers at KAFKA_BROKERS (default 127.0.0.1:9092) and a benchmark
 * needs it, then runs the benchmarks one after another, each as its own `node dist/<bench>.js` with
 * BENCH_JSON_OUT set to a file of its own (report.ts), its output shown as it runs and kept for RESULTS.md.
 * A benchmark that fails is reported as failed; the others still run. Kafka is left running.
 *
 * Settings (environment):
 * - BENCH_ALL_QUICK=1: small sizes and short runs, to try it in a few minutes (figures not representative);
 * - BENCH_ALL_SIZES: patient counts for flags and care-plan (default 10000,100000,1000000; quick 1000,10000);
 * - BENCH_ALL_ONLY: benchmarks to run, comma-separated (auth,logins,flags,careplan,audit,notification,withdrawal);
 * - BENCH_ALL_LOCK=<file>: run each benchmark under `flock <file>` (exclusive), so that a shared machine's other
 *   benchmark runs wait for it and it for them, and the build is not under the lock;
 * - BENCH_ALL_OUT: where to write (default bench/RESULTS.md; RESULTS.json beside it);
 * - BENCH_ALL_NOTE: a line put at the top of RESULTS.md (e.g. "noisy machine");
 * - any benchmark's own setting (BENCH_SECONDS, BENCH_NOTIFY_EVENTS, ...) passes through and wins over the
 *   quick defaults. Needs DATABASE_URL.
 */
import { createDatabase, sql } from '@cmc/db';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { BenchRecord } from './report';

const ROOT = path.resolve(__dirname, '..', '..');
const BENCHES = ['auth', 'logins', 'flags', 'careplan', 'audit', 'notification', 'withdrawal'] as const;
type Bench = (typeof BENCHES)[number];
const SCRIPT: Record<Bench, string> = {
  auth: 'auth-overhead.js',
  logins: 'logins.js',
  flags: 'flags.js',
  careplan: 'care-plan.js',
  audit: 'audit.js',
  notification: 'notification.js',
  withdrawal: 'withdrawal.js',
};
const NEEDS_KAFKA: Bench[] = ['audit', 'notification', 'withdrawal'];

/** Short runs and small sizes: a few minutes in all. */
const QUICK_ENV: Record<string, string> = {
  BENCH_SECONDS: '2',
  BENCH_PATIENTS: '30',
  BENCH_AUDIT_EVENTS: '2000',
  BENCH_AUDIT_RATE: '2000',
  BENCH_NOTIFY_EVENTS: '100',
  BENCH_NOTIFY_SECONDS: '5',
  BENCH_NOTIFY_RATE: '10',
  BENCH_NOTIFY_ORGS: '3',
  BENCH_NOTIFY_PRACTICES: '3',
  BENCH_WITHDRAWALS: '20',
};

interface Step {
  bench: Bench;
  /** Patients for the scaled benchmarks. */
  patients?: number;
  env: Record<string, string>;
}

interface StepResult extends Step {
  label: string;
  exitCode: number | null;
  seconds: number;
  output: string;
  records: (BenchRecord & { at?: string })[];
}

const quick = process.env.BENCH_ALL_QUICK === '1';
const fmtInt = (v: number) => Math.round(v).toLocaleString('en-GB');
const cell = (v: number | null | undefined, digits = 0): string => (v === null || v === undefined || !Number.isFinite(v) ? '–' : digits === 0 ? fmtInt(v) : v.toFixed(digits));
const escape = (s: string) => s.replace(/\|/g, '\\|');

function parseSizes(): number[] {
  const raw = process.env.BENCH_ALL_SIZES ?? (quick ? '1000,10000' : '10000,100000,1000000');
  const sizes = raw.split(',').map((s) => Number(s.trim()));
  if (sizes.some((n) => !Number.isInteger(n) || n <= 0)) throw new Error(`BENCH_ALL_SIZES must be positive integers, comma-separated (got ${raw})`);
  return sizes;
}

function parseOnly(): Bench[] {
  if (!process.env.BENCH_ALL_ONLY) return [...BENCHES];
  const only = process.env.BENCH_ALL_ONLY.split(',').map((s) => s.trim());
  for (const b of only) if (!(BENCHES as readonly string[]).includes(b)) throw new Error(`BENCH_ALL_ONLY: unknown benchmark ${b} (known: ${BENCHES.join(', ')})`);
  return BENCHES.filter((b) => only.includes(b));
}

/** Whether something accepts TCP connections at host:port within 2 s. */
const answers = (hostPort: string) =>
  new Promise<boolean>((resolve) => {
    const [host, port] = hostPort.split(':');
    const socket = connect({ host: host ?? '127.0.0.1', port: Number(port ?? 9092) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });

function run(command: string, args: string[], cwd: string): void {
  process.stdout.write(`\n$ ${[command, ...args].join(' ')}\n`);
  const r = spawnSync(command, args, { cwd, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (exit ${r.status ?? r.signal})`);
}

/** Runs one benchmark, showing its output as it comes and keeping it; resolves with its figures. */
async function runStep(step: Step, baseEnv: NodeJS.ProcessEnv, workDir: string, index: number): Promise<StepResult> {
  const label = step.patients !== undefined ? `${step.bench} (${fmtInt(step.patients)} patients)` : step.bench;
  const jsonOut = path.join(workDir, `${index}-${step.bench}.jsonl`);
  const env = { ...baseEnv, ...step.env, BENCH_JSON_OUT: jsonOut };
  const node = [process.execPath, '--disable-warning=TimeoutNegativeWarning', path.join(__dirname, SCRIPT[step.bench])];
  const lock = process.env.BENCH_ALL_LOCK;
  const [command, ...args] = lock ? ['flock', lock, ...node] : node;
  const shown = Object.entries(step.env).map(([k, v]) => `${k}=${v}`).join(' ');
  process.stdout.write(`\n=== ${label}${shown ? ` [${shown}]` : ''} (${new Date().toISOString()})\n`);
  const t0 = performance.now();
  const child = spawn(command as string, args, { cwd: path.join(ROOT, 'bench'), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (c: Buffer) => {
    output += c.toString('utf8');
    process.stdout.write(c);
  });
  child.stderr.on('data', (c: Buffer) => {
    output += c.toString('utf8');
    process.stderr.write(c);
  });
  const exitCode = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  const seconds = (performance.now() - t0) / 1000;
  const records = existsSync(jsonOut)
    ? readFileSync(jsonOut, 'utf8')
        .split('\n')
        .filter((l) => l.trim().length > 0)
        .map((l) => JSON.parse(l) as BenchRecord)
    : [];
  process.stdout.write(`=== ${label}: ${exitCode === 0 ? 'done' : `FAILED (exit ${exitCode})`} in ${seconds.toFixed(0)} s${lock ? ' (lock wait included)' : ''}, ${records.length} measurements\n`);
  return { ...step, label, exitCode, seconds, output, records };
}

async function postgresVersion(url: string): Promise<string> {
  const db = createDatabase<unknown>({ url, schema: 'public', poolMax: 1, applicationName: 'cmc-bench-all' });
  try {
    return (await sql<{ v: string }>`select version() as v`.execute(db.db)).rows[0]?.v ?? 'unknown';
  } finally {
    await db.close();
  }
}

function gitCommit(): string {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  const dirty = spawnSync('git', ['status', '--porcelain'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  return head ? `${head}${dirty ? ` with uncommitted changes (${dirty.split('\n').length} files)` : ''}` : 'unknown';
}

function kafkaVersion(): string {
  const pom = path.join(ROOT, 'deploy/local/kafka/pom.xml');
  const v = existsSync(pom) ? /<kafka\.version>([^<]+)</.exec(readFileSync(pom, 'utf8'))?.[1] : undefined;
  return v ? `${v} (deploy/local/kafka.sh's pinned version; the broker that answered was not asked)` : 'unknown';
}

function recordRow(r: BenchRecord): string {
  const ratio = r.ratio === null ? '–' : `${(100 * r.ratio).toFixed(1)}%`;
  return `| ${escape(r.name)} | ${r.patients === null ? '–' : fmtInt(r.patients)} | ${cell(r.throughput)} ${r.unit} | ${cell(r.p50Ms, 1)} | ${cell(r.p99Ms, 1)} | ${cell(r.peakRssMb)} | ${r.baseline === null ? '–' : `${ratio} of ${escape(r.baseline)} (${cell(r.baselineThroughput)})`} |`;
}

function writeResults(out: string, meta: Record<string, string>, steps: StepResult[], sizes: number[]): void {
  const lines: string[] = [];
  lines.push('# Benchmark results', '');
  if (quick) lines.push('> **QUICK RUN (BENCH_ALL_QUICK=1): small sizes and 2-second runs. These figures are a smoke test of the harness, not measurements; do not quote them.**', '');
  if (process.env.BENCH_ALL_NOTE) lines.push(`> **${process.env.BENCH_ALL_NOTE}**`, '');
  lines.push('Written by `pnpm bench:all` (bench/src/all.ts); the raw figures are in RESULTS.json beside this file.', '');
  for (const [k, v] of Object.entries(meta)) lines.push(`- ${k}: ${v}`);
  lines.push(
    '',
    'How to read the tables: throughput is the mean of the benchmark\'s runs of that measurement (64 connections unless',
    'named); p50 is the mean of the runs\' p50, p99 the worst run\'s (for lags: from the event\'s time to its effect);',
    'peak RSS is VmHWM in MB of the process named under each table (the server process where the benchmark runs the',
    'service apart from its load generator, otherwise the benchmark\'s own process, load generator included); the',
    'ratio is the throughput as a share of the bare route measured in the same run, alternating with it.',
  );

  // Scaling: the patient-sized measurements, one column per size.
  const scaled = steps.filter((s) => s.patients !== undefined);
  if (scaled.length > 0) {
    lines.push('', '## Scaling with patients', '', 'Each cell: throughput, p99 ms, server peak RSS MB (ratio to the bare route of that run).', '');
    const names = [...new Set(scaled.flatMap((s) => s.records.map((r) => `${s.bench}\u0000${r.name}`)))];
    lines.push(`| benchmark | measurement | ${sizes.map((n) => `${fmtInt(n)} patients`).join(' | ')} |`, `|---|---|${sizes.map(() => '---:|').join('')}`);
    for (const key of names) {
      const [bench, name] = key.split('\u0000') as [string, string];
      const cells = sizes.map((n) => {
        const step = scaled.find((s) => s.bench === bench && s.patients === n);
        if (!step) return 'not run';
        const r = step.records.find((x) => x.name === name);
        if (!r) return step.exitCode === 0 ? '–' : 'failed';
        return `${cell(r.throughput)} ${r.unit}, p99 ${cell(r.p99Ms, 1)}, ${cell(r.peakRssMb)} MB${r.ratio === null ? '' : ` (${(100 * r.ratio).toFixed(1)}%)`}`;
      });
      lines.push(`| ${bench} | ${escape(name)} | ${cells.join(' | ')} |`);
    }
    lines.push('', 'In the care-plan rows the patient count includes the timed plans published over HTTP; the others were copied in SQL.');
  }

  lines.push('', '## Each benchmark');
  for (const s of steps) {
    lines.push('', `### ${s.label}`, '');
    lines.push(`${s.exitCode === 0 ? 'Completed' : `**FAILED (exit ${s.exitCode})**`} in ${s.seconds.toFixed(0)} s.${Object.keys(s.env).length ? ` Settings: ${Object.entries(s.env).map(([k, v]) => `\`${k}=${v}\``).join(' ')}.` : ''}`, '');
    if (s.records.length === 0) {
      lines.push('No figures recorded.');
    } else {
      lines.push('| measurement | patients | throughput | p50 ms | p99 ms | peak RSS MB | ratio to baseline (baseline throughput) |', '|---|---:|---:|---:|---:|---:|---|');
      for (const r of s.records) lines.push(recordRow(r));
      const whose = [...new Set(s.records.map((r) => r.rssOf))];
      lines.push('', `Peak RSS of: ${whose.join('; ')}.`);
    }
    lines.push('', '<details><summary>Output</summary>', '', '```', s.output.trimEnd(), '```', '', '</details>');
  }
  writeFileSync(out, `${lines.join('\n')}\n`);
  writeFileSync(out.replace(/\.md$/, '') + '.json', `${JSON.stringify({ meta, quick, sizes, steps: steps.map(({ output: _output, ...rest }) => rest) }, null, 2)}\n`);
}

(async () => {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
  const sizes = parseSizes();
  const only = parseOnly();
  const out = path.resolve(process.env.BENCH_ALL_OUT ?? path.join(ROOT, 'bench', 'RESULTS.md'));
  const started = new Date();
  const loadAtStart = loadavg();

  if (process.env.BENCH_ALL_BUILD === '1') {
    run('pnpm', ['run', 'build'], ROOT);
    run('pnpm', ['exec', 'tsc', '-b', 'bench'], ROOT);
  }

  const brokers = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
  let kafkaStarted = false;
  if (only.some((b) => NEEDS_KAFKA.includes(b)) && !(await answers(brokers.split(',')[0] ?? '127.0.0.1:9092'))) {
    process.stdout.write(`nothing answers at ${brokers}: starting the local Kafka (deploy/local/kafka.sh start)\n`);
    run(path.join(ROOT, 'deploy/local/kafka.sh'), ['start'], ROOT);
    kafkaStarted = true;
  }

  const steps: Step[] = [];
  for (const bench of only) {
    if (bench === 'flags') for (const n of sizes) steps.push({ bench, patients: n, env: { BENCH_FLAG_PATIENTS: String(n) } });
    else if (bench === 'careplan') for (const n of sizes) steps.push({ bench, patients: n, env: { BENCH_CAREPLAN_PATIENTS: String(n) } });
    else steps.push({ bench, env: {} });
  }
  const baseEnv: NodeJS.ProcessEnv = { ...(quick ? QUICK_ENV : {}), ...process.env, KAFKA_BROKERS: brokers };
  delete baseEnv.BENCH_JSON_OUT;
  const workDir = mkdtempSync(path.join(tmpdir(), 'cmc-bench-all-'));
  const results: StepResult[] = [];
  try {
    for (const [i, step] of steps.entries()) results.push(await runStep(step, baseEnv, workDir, i));
  } finally {
    rmSync(workDir, { recursive: true, force: true });
  }

  const ended = new Date();
  const cpu = cpus();
  const settings = Object.entries(baseEnv)
    .filter(([k]) => (k.startsWith('BENCH_') && k !== 'BENCH_ALL_NOTE') || k === 'DB_POOL_MAX' || k === 'KAFKA_BROKERS' || k === 'UV_THREADPOOL_SIZE')
    .map(([k, v]) => `\`${k}=${v ?? ''}\``)
    .join(' ');
  const meta: Record<string, string> = {
    Date: `${started.toISOString()} to ${ended.toISOString()} (${((ended.getTime() - started.getTime()) / 60_000).toFixed(1)} min${process.env.BENCH_ALL_BUILD === '1' ? ', build included' : ', build before it not included'}${process.env.BENCH_ALL_LOCK ? ', waits for the lock included' : ''})`,
    Mode: quick ? 'quick (BENCH_ALL_QUICK=1)' : 'full',
    Machine: `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB memory, Linux ${release()}`,
    'Load average (1, 5, 15 min)': `at start ${loadAtStart.map((v) => v.toFixed(2)).join(', ')}; at end ${loadavg().map((v) => v.toFixed(2)).join(', ')} (above the core count means other work shared the machine)`,
    Node: process.version,
    PostgreSQL: await postgresVersion(databaseUrl).catch((e: unknown) => `unknown (${String(e)})`),
    Kafka: `${brokers}, ${kafkaVersion()}${kafkaStarted ? '; started by this run and left running' : ''}`,
    Commit: gitCommit(),
    'Patient counts (flags, care-plan)': sizes.map(fmtInt).join(', '),
    Settings: settings || 'the benchmarks\' defaults',
  };
  writeResults(out, meta, results, sizes);
  const failed = results.filter((r) => r.exitCode !== 0);
  process.stdout.write(`\nwrote ${out}: ${results.length} runs, ${failed.length} failed${failed.length ? ` (${failed.map((f) => f.label).join(', ')})` : ''}; ${((ended.getTime() - started.getTime()) / 60_000).toFixed(1)} min\n`);
  if (failed.length > 0) process.exitCode = 1;
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
