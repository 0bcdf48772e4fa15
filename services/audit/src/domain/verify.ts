import type { Kysely, Transaction } from 'kysely';
import { entriesAfter } from '../db/audit-log-repository';
import type { AuditDB } from '../db/schema';
import { entryHash, GENESIS_HASH } from './chain';

export type ChainProblemKind = 'gap' | 'prev-hash-mismatch' | 'hash-mismatch';

export interface ChainProblem {
  /** The seq at which the chain breaks: the missing seq for a gap, else the entry that fails its check. */
  seq: number;
  kind: ChainProblemKind;
  detail: string;
}

export interface VerificationResult {
  ok: boolean;
  /** Entries read before the first problem (all of them when ok). */
  entriesChecked: number;
  /** seq of the last entry checked and found good (0 when none). */
  lastGoodSeq: number;
  firstProblem: ChainProblem | null;
  durationMs: number;
}

const hex = (b: Buffer): string => b.toString('hex');

/**
 * Re-reads the log in seq order, a page at a time (memory stays flat however long the log), and recomputes
 * every link: seq follows on from the one before (from 1), prev_hash is the previous entry's stored hash (the
 * genesis hash for entry 1), and hash is SHA-256(prev_hash || entry bytes). Stops at the first problem.
 * What this cannot see alone is entries cut from the end: that is for signed checkpoints (a later slice).
 */
export async function verifyChain(db: Kysely<AuditDB>, opts: { pageSize?: number } = {}): Promise<VerificationResult> {
  // One snapshot for the whole walk: entries appended meanwhile are left for the next run.
  return db.transaction().setIsolationLevel('repeatable read').setAccessMode('read only').execute((trx) => walk(trx, opts.pageSize ?? 5000));
}

async function walk(db: Transaction<AuditDB>, pageSize: number): Promise<VerificationResult> {
  const started = performance.now();
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let checked = 0;
  const result = (firstProblem: ChainProblem | null): VerificationResult => ({
    ok: firstProblem === null,
    entriesChecked: checked,
    lastGoodSeq: expectedSeq - 1,
    firstProblem,
    durationMs: Math.round(performance.now() - started),
  });
  for (;;) {
    const page = await entriesAfter(db, expectedSeq - 1, pageSize);
    for (const e of page) {
      if (e.seq !== expectedSeq) {
        return result({ seq: expectedSeq, kind: 'gap', detail: `entry ${expectedSeq} is missing: the entry after ${expectedSeq - 1} is ${e.seq}` });
      }
      if (!e.prevHash.equals(prevHash)) {
        const before = expectedSeq === 1 ? 'the genesis hash' : `the hash of entry ${expectedSeq - 1} (${hex(prevHash)})`;
        return result({ seq: e.seq, kind: 'prev-hash-mismatch', detail: `prev_hash ${hex(e.prevHash)} is not ${before}` });
      }
      const recomputed = entryHash(prevHash, e.seq, e);
      if (!recomputed.equals(e.hash)) {
        return result({ seq: e.seq, kind: 'hash-mismatch', detail: `stored hash ${hex(e.hash)} differs from the hash of the entry's content (${hex(recomputed)}): the entry was changed` });
      }
      checked++;
      expectedSeq++;
      prevHash = e.hash;
    }
    if (page.length < pageSize) return result(null);
  }
}
