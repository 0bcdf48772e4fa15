import autocannon from 'autocannon';

export interface LoadResult {
  label: string;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  /** Responses with a 2xx status. */
  ok: number;
}

/** Runs autocannon against one URL and keeps the figures we report. */
export async function load(label: string, opts: autocannon.Options): Promise<LoadResult> {
  const r = await autocannon({ connections: 64, duration: 10, ...opts });
  return {
    label,
    requestsPerSecond: Math.round(r.requests.average),
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
    ok: r['2xx'],
  };
}

export function printTable(title: string, rows: LoadResult[]): void {
  const out = [`\n${title}`, '| run | req/s | p50 ms | p99 ms | errors | non-2xx |', '|---|---:|---:|---:|---:|---:|'];
  for (const r of rows) out.push(`| ${r.label} | ${r.requestsPerSecond} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.non2xx} |`);
  process.stdout.write(`${out.join('\n')}\n`);
}

/** Nearest-rank percentile of sorted values (NaN when there are none). */
export const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;

/** A markdown row: label, n, p50, p95, p99, max of `values` (any order), each written by `fmt`. */
export function latencyRow(label: string, values: number[], fmt: (v: number) => string = (v) => v.toFixed(1)): string {
  const s = [...values].sort((a, b) => a - b);
  return `| ${label} | ${s.length} | ${fmt(percentile(s, 50))} | ${fmt(percentile(s, 95))} | ${fmt(percentile(s, 99))} | ${fmt(s[s.length - 1] ?? NaN)} |`;
}
