import type { KeyObject } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { entryTextsAfter, type EntryTextRow } from '../db/audit-log-repository';
import type { AuditDB } from '../db/schema';
import { checkpointsAfter } from '../db/tree-repository';
import { entryTextHash, GENESIS_HASH } from './chain';
import { checkpointSignedBy, type SignedCheckpoint } from './checkpoint';
import { Frontier, leafHash } from './merkle';

export type ChainProblemKind =
  | 'gap'
  | 'prev-hash-mismatch'
  | 'hash-mismatch'
  | 'checkpoint-root-mismatch'
  | 'checkpoint-signature-invalid'
  | 'checkpoint-unknown-key'
  | 'checkpoint-beyond-log';

export interface ChainProblem {
  /** The seq at which the log breaks: the missing seq for a gap, else the entry that fails its check (for a checkpoint, its tree size). */
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
  /** Checkpoints whose root was recomputed from the entries and found equal (and whose signature was checked, when keys were given). */
  checkpointsChecked: number;
  /** Whether checkpoint signatures were checked (false when no verifier keys were given). */
  signaturesChecked: boolean;
  /** Tree size of the newest checkpoint checked (0 when none). */
  latestCheckpoint: number;
  firstProblem: ChainProblem | null;
  durationMs: number;
}

/** A key checkpoints may be signed with (the service's own, and older ones after a rotation). */
export interface VerifierKey {
  origin: string;
  keyId: string;
  publicKey: KeyObject;
}

const hex = (b: Buffer): string => b.toString('hex');

/**
 * Re-reads the log in seq order, a page at a time (memory stays flat however long the log), and recomputes
 * every link: seq follows on from the one before (from 1), prev_hash is the previous entry's stored hash (the
 * genesis hash for entry 1), and hash is SHA-256(prev_hash || entry bytes). Beside the chain it rebuilds the
 * Merkle tree from the entries (never from the stored nodes) and, at each signed checkpoint's size, compares
 * the root and checks the signature against the given keys. A checkpoint larger than the log means entries
 * were cut from its end. Stops at the first problem.
 */
export async function verifyChain(db: Kysely<AuditDB>, opts: { pageSize?: number; keys?: readonly VerifierKey[] } = {}): Promise<VerificationResult> {
  // One snapshot for the whole walk: entries appended meanwhile are left for the next run.
  return db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute((trx) => walk(trx, opts.pageSize ?? 5000, opts.keys));
}

async function walk(db: Transaction<AuditDB>, pageSize: number, keys: readonly VerifierKey[] | undefined): Promise<VerificationResult> {
  const started = performance.now();
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let checked = 0;
  let checkpointsChecked = 0;
  let latest = 0;
  const tree = new Frontier();
  const result = (firstProblem: ChainProblem | null): VerificationResult => ({
    ok: firstProblem === null,
    entriesChecked: checked,
    lastGoodSeq: expectedSeq - 1,
    checkpointsChecked,
    signaturesChecked: keys !== undefined,
    latestCheckpoint: latest,
    firstProblem,
    durationMs: Math.round(performance.now() - started),
  });

  // Checkpoints come a page at a time too, in tree-size order.
  const CHECKPOINT_PAGE = 1000;
  let pending: SignedCheckpoint[] = await checkpointsAfter(db, 0, CHECKPOINT_PAGE);
  let morePending = pending.length === CHECKPOINT_PAGE;
  const nextCheckpoint = async (): Promise<SignedCheckpoint | undefined> => {
    if (pending.length === 0 && morePending) {
      pending = await checkpointsAfter(db, latest, CHECKPOINT_PAGE);
      morePending = pending.length === CHECKPOINT_PAGE;
    }
    return pending[0];
  };
  const checkCheckpoint = (c: SignedCheckpoint): ChainProblem | null => {
    const root = tree.root();
    if (!root.equals(c.rootHash)) {
      return { seq: c.treeSize, kind: 'checkpoint-root-mismatch', detail: `the checkpoint of ${c.treeSize} entries signs root ${hex(c.rootHash)}, but the entries give ${hex(root)}: an entry up to ${c.treeSize} was changed, removed or reordered since it was signed` };
    }
    if (keys) {
      const key = keys.find((k) => k.origin === c.origin && k.keyId === c.keyId);
      if (!key) return { seq: c.treeSize, kind: 'checkpoint-unknown-key', detail: `the checkpoint of ${c.treeSize} entries is signed by key ${c.origin}/${c.keyId}, which is not a trusted key` };
      if (!checkpointSignedBy(c, key)) return { seq: c.treeSize, kind: 'checkpoint-signature-invalid', detail: `the signature of the checkpoint of ${c.treeSize} entries does not verify with key ${c.keyId}` };
    }
    return null;
  };

  // The next page is asked for before this one is checked, so the database reads it while we hash.
  // A page still being read when a problem ends the walk is left to finish before the transaction does (the
  // connection runs one query at a time); its failure, if any, is not ours to report.
  const pageAfter = (seq: number): Promise<EntryTextRow[]> => {
    const p = entryTextsAfter(db, seq, pageSize);
    p.catch(() => undefined);
    return p;
  };
  let nextPage = pageAfter(0);
  for (;;) {
    const page = await nextPage;
    if (page.length === pageSize) nextPage = pageAfter(page[page.length - 1]!.seq);
    for (const e of page) {
      if (e.seq !== expectedSeq) {
        return result({ seq: expectedSeq, kind: 'gap', detail: `entry ${expectedSeq} is missing: the entry after ${expectedSeq - 1} is ${e.seq}` });
      }
      if (!e.prevHash.equals(prevHash)) {
        const before = expectedSeq === 1 ? 'the genesis hash' : `the hash of entry ${expectedSeq - 1} (${hex(prevHash)})`;
        return result({ seq: e.seq, kind: 'prev-hash-mismatch', detail: `prev_hash ${hex(e.prevHash)} is not ${before}` });
      }
      const recomputed = entryTextHash(prevHash, e.seq, e);
      if (!recomputed.equals(e.hash)) {
        return result({ seq: e.seq, kind: 'hash-mismatch', detail: `stored hash ${hex(e.hash)} differs from the hash of the entry's content (${hex(recomputed)}): the entry was changed` });
      }
      tree.push(leafHash(e.hash));
      for (let c = await nextCheckpoint(); c && c.treeSize === e.seq; c = await nextCheckpoint()) {
        const problem = checkCheckpoint(c);
        if (problem) return result(problem);
        checkpointsChecked++;
        latest = c.treeSize;
        pending.shift();
      }
      checked++;
      expectedSeq++;
      prevHash = e.hash;
    }
    if (page.length < pageSize) break;
  }
  const beyond = await nextCheckpoint();
  if (beyond) {
    return result({
      seq: beyond.treeSize,
      kind: 'checkpoint-beyond-log',
      detail: `a checkpoint signs ${beyond.treeSize} entries but the log ends at ${expectedSeq - 1}: entries were cut from its end`,
    });
  }
  return result(null);
}
