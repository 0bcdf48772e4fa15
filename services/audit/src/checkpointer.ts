import type { Closeable } from '@cmc/http';
import type { Logger } from '@cmc/logging';
import type { Kysely } from 'kysely';
import type { AuditDB } from './db/schema';
import { checkpointStep, type CheckpointStep } from './db/tree-repository';
import type { SigningKey } from './domain/checkpoint';

/**
 * Signs checkpoints in the background: every second (or the checkpoint interval, if shorter) it takes a step,
 * and takes another at once while steps sign (a backlog is worked off in steps of `maxEntries`). Safe with
 * several instances (one signs at a time) and after a crash (each step is one transaction). A failed step is
 * logged and retried at the next tick; nothing is lost, the next checkpoint just covers more.
 */
export function startCheckpointer(
  db: Kysely<AuditDB>,
  signer: SigningKey,
  policy: { entries: number; seconds: number },
  logger: Pick<Logger, 'error' | 'debug'>,
): Closeable {
  const step: CheckpointStep = { minEntries: policy.entries, maxAgeMs: policy.seconds * 1000, maxEntries: 100_000 };
  const tickMs = Math.min(1000, policy.seconds * 1000);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();

  const tick = async (): Promise<void> => {
    try {
      for (let signed = await checkpointStep(db, signer, step); signed && !stopped; signed = await checkpointStep(db, signer, step)) {
        logger.debug({ treeSize: signed.treeSize }, 'checkpoint signed');
      }
    } catch (err) {
      if (!stopped) logger.error({ err }, 'checkpoint step failed; retrying at the next tick');
    }
  };
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick().finally(schedule);
    }, tickMs);
    timer.unref();
  };
  schedule();
  return {
    name: 'checkpointer',
    close: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      await running;
    },
  };
}
