import { hash, type KeyObject } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Pool, PoolClient } from 'pg';
import type { AuditDB } from '../db/schema';
import { checkpointsAfter } from '../db/tree-repository';
import { streamVerificationRows } from '../db/verification-rows';
import { GENESIS_HASH } from './chain';
import { checkpointSignedBy, type SignedCheckpoint } from './checkpoint';
import { Frontier, HASH_BYTES } from './merkle';

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

/** What verification reads with: the service's query builder, and the pool under it (for the parallel COPY streams). */
export interface VerificationDatabase {
  db: Kysely<AuditDB>;
  pool: Pool;
}

export interface VerificationOptions {
  keys?: readonly VerifierKey[];
  /** Entries per chunk (default 65,536): the unit of work of one stream. */
  chunkSize?: number;
  /** Streams read at once, each on a connection of its own (default 2; at most the pool's size less one). */
  parallelism?: number;
}

/** What one chunk of the log showed: its good entries' leaf hashes, and its first problem. */
interface ChunkResult {
  /** Leaf hashes of the good entries, 32 bytes each, in seq order. */
  leaves: Buffer;
  /** Entries that passed every check the chunk alone can make. */
  good: number;
  /** prev_hash of the chunk's first entry, when that entry is where it should be (checked against the chunk before). */
  firstPrev: Buffer | null;
  /** hash of the last good entry. */
  lastHash: Buffer | null;
  problem: ChainProblem | null;
}

/**
 * Re-reads the log and recomputes every link: seq follows on from the one before (from 1), prev_hash is the
 * previous entry's stored hash (the genesis hash for entry 1), and hash is SHA-256(prev_hash || entry bytes).
 * Beside the chain it rebuilds the Merkle tree from the entries (never from the stored nodes) and, at each
 * signed checkpoint's size, compares the root and checks the signature against the given keys. A checkpoint
 * larger than the log means entries were cut from its end. Stops at the first problem, in seq order.
 *
 * One snapshot for the whole walk (entries appended meanwhile are left for the next run): a read-only
 * repeatable-read transaction exports it, and the log is read in chunks of seq by `parallelism` streams that
 * import it, each on its own connection, so PostgreSQL works on more than one core. Each entry's own checks
 * (its hash, its link to the entry before within the chunk) are made as its row arrives; the link across
 * chunks, the tree and the checkpoints are made in seq order as chunks complete. Memory stays bounded: at most
 * a few chunks' leaf hashes (32 bytes an entry) wait to be taken in order.
 */
export async function verifyChain(database: VerificationDatabase, opts: VerificationOptions = {}): Promise<VerificationResult> {
  const poolMax = database.pool.options.max ?? 10;
  if (poolMax < 2) throw new Error('verification needs a pool of at least two connections: one holds the snapshot, the others read');
  const parallelism = Math.max(1, Math.min(opts.parallelism ?? 2, poolMax - 1));
  const chunkSize = opts.chunkSize ?? 65_536;
  if (!Number.isSafeInteger(chunkSize) || chunkSize < 1) throw new RangeError('chunkSize must be a positive integer');
  return database.db
    .transaction()
    .setIsolationLevel('repeatable read')
    .setAccessMode('read only')
    .execute(async (trx) => {
      const { rows } = await sql<{ snapshot: string; last: string | null }>`select pg_export_snapshot() as snapshot, max(seq) as last from audit_log`.execute(trx);
      const { snapshot, last } = rows[0]!;
      return walk(trx, database.pool, snapshot, Number(last ?? 0), chunkSize, parallelism, opts.keys);
    });
}

/** Reads seq in (lo, hi] in the exported snapshot and makes each entry's own checks. */
async function readChunk(client: PoolClient, lo: number, hi: number): Promise<ChunkResult> {
  const leaves = Buffer.allocUnsafe((hi - lo) * HASH_BYTES);
  let good = 0;
  let firstPrev: Buffer | null = null;
  let lastHash: Buffer | null = null;
  let problem: ChainProblem | null = null;
  let expected = lo + 1;
  await streamVerificationRows(client, lo, hi, (row) => {
    if (problem) return;
    if (row.seq !== expected) {
      problem = { seq: expected, kind: 'gap', detail: `entry ${expected} is missing: the entry after ${expected - 1} is ${row.seq}` };
      return;
    }
    if (expected === lo + 1) {
      firstPrev = Buffer.from(row.prevHash);
    } else if (!row.prevHash.equals(lastHash!)) {
      problem = { seq: row.seq, kind: 'prev-hash-mismatch', detail: `prev_hash ${hex(row.prevHash)} is not the hash of entry ${row.seq - 1} (${hex(lastHash!)})` };
      return;
    }
    const recomputed = hash('sha256', row.hashed, 'buffer');
    if (!recomputed.equals(row.hash)) {
      problem = { seq: row.seq, kind: 'hash-mismatch', detail: `stored hash ${hex(row.hash)} differs from the hash of the entry's content (${hex(recomputed)}): the entry was changed` };
      return;
    }
    hash('sha256', row.leafInput, 'buffer').copy(leaves, good * HASH_BYTES);
    lastHash = row.hash;
    good++;
    expected++;
  });
  if (!problem && expected <= hi) {
    // Entries missing at the chunk's end (the log goes on after it: hi is at most the last seq).
    const { rows } = await client.query<{ next: string | null }>('select min(seq) as next from audit_log where seq > $1', [expected]);
    problem = { seq: expected, kind: 'gap', detail: `entry ${expected} is missing: the entry after ${expected - 1} is ${rows[0]?.next ?? 'none'}` };
  }
  return { leaves, good, firstPrev, lastHash: lastHash === null ? null : Buffer.from(lastHash), problem };
}

async function walk(
  db: Transaction<AuditDB>,
  pool: Pool,
  snapshot: string,
  last: number,
  chunkSize: number,
  parallelism: number,
  keys: readonly VerifierKey[] | undefined,
): Promise<VerificationResult> {
  const started = performance.now();
  let checked = 0;
  let checkpointsChecked = 0;
  let latest = 0;
  const tree = new Frontier();
  const result = (firstProblem: ChainProblem | null): VerificationResult => ({
    ok: firstProblem === null,
    entriesChecked: checked,
    lastGoodSeq: checked,
    checkpointsChecked,
    signaturesChecked: keys !== undefined,
    latestCheckpoint: latest,
    firstProblem,
    durationMs: Math.round(performance.now() - started),
  });

  // Checkpoints come a page at a time, in tree-size order.
  const CHECKPOINT_PAGE = 1000;
  let pending: SignedCheckpoint[] = await checkpointsAfter(db, 0, CHECKPOINT_PAGE);
  let morePending = pending.length === CHECKPOINT_PAGE;
  const refill = async (): Promise<void> => {
    if (pending.length === 0 && morePending) {
      pending = await checkpointsAfter(db, latest, CHECKPOINT_PAGE);
      morePending = pending.length === CHECKPOINT_PAGE;
    }
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

  /** Takes a chunk's entries into the tree in order, checking each checkpoint at its size; the first problem, if any. */
  let lastHash = GENESIS_HASH;
  const merge = async (index: number, chunk: ChunkResult): Promise<ChainProblem | null> => {
    const first = index * chunkSize + 1;
    if (chunk.firstPrev && !chunk.firstPrev.equals(lastHash)) {
      const before = first === 1 ? 'the genesis hash' : `the hash of entry ${first - 1} (${hex(lastHash)})`;
      return { seq: first, kind: 'prev-hash-mismatch', detail: `prev_hash ${hex(chunk.firstPrev)} is not ${before}` };
    }
    for (let i = 0; i < chunk.good; i++) {
      const seq = first + i;
      tree.push(chunk.leaves.subarray(i * HASH_BYTES, (i + 1) * HASH_BYTES));
      while (pending.length > 0 && pending[0]!.treeSize <= seq) {
        const c = pending[0]!;
        const problem = c.treeSize === seq ? checkCheckpoint(c) : null;
        if (problem) return problem;
        if (c.treeSize === seq) {
          checkpointsChecked++;
          latest = c.treeSize;
        }
        pending.shift();
        await refill();
      }
      checked = seq;
    }
    if (chunk.problem) return chunk.problem;
    if (chunk.lastHash) lastHash = chunk.lastHash;
    return null;
  };

  const chunks = Math.ceil(last / chunkSize);
  const done = new Map<number, ChunkResult>();
  let nextToMerge = 0;
  let nextToRead = 0;
  let firstProblem: ChainProblem | null = null;
  let failure: Error | null = null;
  // A reader waits while too many chunks are read ahead of the merge (memory stays bounded).
  const window = 2 * parallelism;
  let wake: (() => void)[] = [];
  const wakeAll = () => {
    const w = wake;
    wake = [];
    for (const f of w) f();
  };
  let merging = Promise.resolve();
  const mergeReady = (): Promise<void> =>
    (merging = merging.then(async () => {
      while (!firstProblem && done.has(nextToMerge)) {
        const chunk = done.get(nextToMerge)!;
        done.delete(nextToMerge);
        firstProblem = await merge(nextToMerge, chunk);
        nextToMerge++;
        wakeAll();
      }
    }));

  const reader = async (): Promise<void> => {
    const client = await pool.connect();
    let broken: unknown;
    try {
      await client.query('begin transaction isolation level repeatable read read only');
      await client.query(`set transaction snapshot '${snapshot.replace(/[^0-9A-F-]/gi, '')}'`);
      for (;;) {
        while (!firstProblem && !failure && nextToRead >= nextToMerge + window) await new Promise<void>((resolve) => wake.push(resolve));
        if (firstProblem || failure || nextToRead >= chunks) break;
        const index = nextToRead++;
        const lo = index * chunkSize;
        done.set(index, await readChunk(client, lo, Math.min(lo + chunkSize, last)));
        await mergeReady();
      }
      await client.query('commit');
    } catch (e) {
      broken = e;
      failure ??= e instanceof Error ? e : new Error(String(e));
      wakeAll();
    } finally {
      client.release(broken instanceof Error ? broken : undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallelism, Math.max(chunks, 1)) }, reader));
  await merging;
  // Both are set inside the readers (TypeScript cannot see that through the closures).
  const failed = failure as Error | null;
  if (failed) throw failed;
  const problem = firstProblem as ChainProblem | null;
  if (problem) return result(problem);

  // Checkpoints larger than the log: entries were cut from its end.
  await refill();
  const beyond = pending[0];
  if (beyond) {
    return result({
      seq: beyond.treeSize,
      kind: 'checkpoint-beyond-log',
      detail: `a checkpoint signs ${beyond.treeSize} entries but the log ends at ${checked}: entries were cut from its end`,
    });
  }
  return result(null);
}
