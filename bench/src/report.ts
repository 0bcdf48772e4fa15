/**
 * Machine-readable figures: when BENCH_JSON_OUT=<file> is set, each benchmark appends one JSON line per
 * measurement to it (what it prints is unchanged); `pnpm bench:all` (all.ts) collects them into RESULTS.md.
 * Without BENCH_JSON_OUT, record() does nothing.
 */
import { appendFileSync, readFileSync } from 'node:fs';

/** One measurement: a route or a pipeline under load, with its figures (null where it has none). */
export interface BenchRecord {
  /** The benchmark (auth, logins, flags, careplan, audit, notification, withdrawal). */
  bench: string;
  /** What was measured, as the benchmark's own table names it. */
  name: string;
  /** Patients (or plans) in the database during the measurement; null when not patient-sized. */
  patients: number | null;
  /** Mean over the benchmark's runs of this measurement. */
  throughput: number | null;
  /** Unit of throughput, e.g. req/s, entries/s, logins/s. */
  unit: string;
  /** Latency (ms); for lags, from the event's time to its effect. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Peak resident memory (VmHWM) in MB, of `rssOf`. */
  peakRssMb: number | null;
  /** Whose memory: e.g. "server process", or "benchmark process (service in-process)". */
  rssOf: string;
  /** The bare route measured beside it in the same run, and this measurement's throughput as a share of it. */
  baseline: string | null;
  baselineThroughput: number | null;
  ratio: number | null;
  /** Anything else the benchmark knows (runs, targets, counts). */
  extra?: Record<string, unknown>;
}

/** Appends `r` (with the time) to BENCH_JSON_OUT, when set. */
export function record(r: BenchRecord): void {
  const file = process.env.BENCH_JSON_OUT;
  if (!file) return;
  appendFileSync(file, `${JSON.stringify({ ...r, at: new Date().toISOString() })}\n`);
}

/** A measurement's throughput as a share of its baseline's (null when either is missing). */
export const ratioOf = (value: number | null, baseline: number | null): number | null =>
  value !== null && baseline !== null && Number.isFinite(value) && Number.isFinite(baseline) && baseline > 0 ? value / baseline : null;

/** A finite number, or null (JSON has no NaN or Infinity). */
export const finite = (v: number | undefined | null): number | null => (v !== undefined && v !== null && Number.isFinite(v) ? v : null);

/** Peak resident memory (VmHWM) of process `pid` in MB, from /proc (Linux); null when it cannot be read. */
export function peakRssMbOf(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const kb = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? null : Math.round(Number(kb) / 1024);
  } catch {
    return null;
  }
}

/** Peak resident memory of this process in MB. */
export const ownPeakRssMb = (): number => peakRssMbOf(process.pid) ?? Math.round(process.resourceUsage().maxRSS / 1024);

/** Mean of the values (NaN when there are none). */
export const mean = (values: number[]): number => values.reduce((s, v) => s + v, 0) / values.length;
