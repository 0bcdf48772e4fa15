import type { Closeable } from '@cmc/http';
import type { Logger } from '@cmc/logging';
import { sql, type RawBuilder } from 'kysely';

/** The CloudEvents source of what this service publishes (cmc.notification.v1). */
export const NOTIFICATION_SOURCE = '/cmc/notification';

/** The wait before attempt `attempt + 1`: exponential from `baseMs`, at most `capMs`, with jitter (half to all of it). */
export function retryDelayMs(attempt: number, baseMs: number, capMs: number): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** When to try again after `attempts` failed attempts, as a database time. */
export const retryAt = (attempts: number, baseMs: number, capMs: number): RawBuilder<Date> =>
  sql<Date>`now() + make_interval(secs => ${retryDelayMs(attempts, baseMs, capMs) / 1000})`;

/**
 * Runs `step` in `concurrency` loops: each loop takes steps back to back while they find work (step returns
 * true), and sleeps `pollMs` when there is none or a step failed. Stopping waits for the steps in flight.
 */
export function startWorker(name: string, step: () => Promise<boolean>, opts: { pollMs: number; concurrency?: number }, logger: Pick<Logger, 'error'>): Closeable {
  let stopped = false;
  // Sleeping loops, woken at once when the worker stops.
  const sleepers = new Map<NodeJS.Timeout, () => void>();
  const loops: Promise<void>[] = [];
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        sleepers.delete(t);
        resolve();
      }, ms);
      sleepers.set(t, resolve);
    });
  const loop = async (): Promise<void> => {
    while (!stopped) {
      let worked = false;
      try {
        worked = await step();
      } catch (err) {
        if (!stopped) logger.error({ err }, `${name}: step failed; trying again shortly`);
      }
      if (!worked && !stopped) await sleep(opts.pollMs);
    }
  };
  for (let i = 0; i < (opts.concurrency ?? 1); i++) loops.push(loop());
  return {
    name,
    close: async () => {
      stopped = true;
      for (const [t, wake] of sleepers) {
        clearTimeout(t);
        wake();
      }
      sleepers.clear();
      await Promise.all(loops);
    },
  };
}
