/**
 * The Merkle tree and signed checkpoints in the database: growing the tree and signing its head (the
 * checkpointer), and answering inclusion and consistency proofs from the stored subtrees.
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import { signCheckpoint, type SignedCheckpoint, type SigningKey } from '../domain/checkpoint';
import { consistencyRanges, coverOf, Frontier, hashOfRange, inclusionRanges, leafHash, type Perfect, type Range } from '../domain/merkle';
import type { AuditCheckpointTable, AuditDB } from './schema';

type Db = Kysely<AuditDB> | Transaction<AuditDB>;

/** Subtrees of 2^STORED_LEVEL leaves and up are stored; below that they are recomputed from entry hashes. */
export const STORED_LEVEL = 4;
const key = (p: Perfect): string => `${p.level}:${p.index}`;

export function checkpointOf(r: AuditCheckpointTable): SignedCheckpoint {
  return { origin: r.origin, treeSize: Number(r.tree_size), rootHash: r.root_hash, time: r.signed_at, keyId: r.key_id, signature: r.signature };
}

export async function latestCheckpoint(db: Db): Promise<SignedCheckpoint | undefined> {
  const row = await db.selectFrom('audit_checkpoint').selectAll().orderBy('tree_size', 'desc').limit(1).executeTakeFirst();
  return row && checkpointOf(row);
}

export async function checkpointAt(db: Db, treeSize: number): Promise<SignedCheckpoint | undefined> {
  const row = await db.selectFrom('audit_checkpoint').selectAll().where('tree_size', '=', String(treeSize)).executeTakeFirst();
  return row && checkpointOf(row);
}

/** Checkpoints in tree-size order, `limit` from after `afterSize`. */
export async function checkpointsAfter(db: Db, afterSize: number, limit: number): Promise<SignedCheckpoint[]> {
  const rows = await db.selectFrom('audit_checkpoint').selectAll().where('tree_size', '>', String(afterSize)).orderBy('tree_size').limit(limit).execute();
  return rows.map(checkpointOf);
}

/** The chain hashes of entries seq in (afterSeq, toSeq], checked to be all there. */
async function chainHashes(db: Db, afterSeq: number, toSeq: number): Promise<Buffer[]> {
  if (toSeq <= afterSeq) return [];
  const rows = await db.selectFrom('audit_log').select('hash').where('seq', '>', String(afterSeq)).where('seq', '<=', String(toSeq)).orderBy('seq').execute();
  if (rows.length !== toSeq - afterSeq) throw new Error(`the log holds ${rows.length} entries between ${afterSeq} and ${toSeq}, not ${toSeq - afterSeq}`);
  return rows.map((r) => r.hash);
}

/** The hashes of perfect subtrees: stored ones in one query, small ones from the entries below them. */
async function perfectHashes(db: Db, pieces: readonly Perfect[]): Promise<Map<string, Buffer>> {
  const found = new Map<string, Buffer>();
  const stored = pieces.filter((p) => p.level >= STORED_LEVEL);
  if (stored.length > 0) {
    const rows = await sql<{ level: number; idx: string; hash: Buffer }>`
      select level, idx, hash from audit_merkle_node
      where (level, idx) in (select * from unnest(${stored.map((p) => p.level)}::smallint[], ${stored.map((p) => String(p.index))}::bigint[]))`.execute(db);
    for (const r of rows.rows) found.set(`${r.level}:${r.idx}`, r.hash);
    const missing = stored.find((p) => !found.has(key(p)));
    if (missing) throw new Error(`the Merkle node at level ${missing.level}, index ${missing.index} is not stored`);
  }
  // The small subtrees (at most 15 leaves each, a few per proof) from their entries' hashes, in one query.
  const small = pieces.filter((q) => q.level < STORED_LEVEL);
  if (small.length > 0) {
    const seqs = [...new Set(small.flatMap((p) => Array.from({ length: 2 ** p.level }, (_, i) => p.index * 2 ** p.level + i + 1)))];
    const rows = await db.selectFrom('audit_log').select(['seq', 'hash']).where('seq', 'in', seqs.map(String)).execute();
    const bySeq = new Map(rows.map((r) => [Number(r.seq), r.hash]));
    for (const p of small) {
      const f = new Frontier();
      for (let seq = p.index * 2 ** p.level + 1; seq <= (p.index + 1) * 2 ** p.level; seq++) {
        const h = bySeq.get(seq);
        if (!h) throw new Error(`entry ${seq} is missing from the log`);
        f.push(leafHash(h));
      }
      found.set(key(p), f.root());
    }
  }
  return found;
}

/** MTH of each range, from the stored tree (which must cover them: ranges within the latest checkpoint). */
export async function rangeHashes(db: Db, ranges: readonly Range[]): Promise<Buffer[]> {
  const hashes = await perfectHashes(db, ranges.flatMap(coverOf));
  return ranges.map((r) => hashOfRange(r, (p) => hashes.get(key(p))!));
}

export interface InclusionProof {
  seq: number;
  leafIndex: number;
  treeSize: number;
  /** The entry's chain hash: the leaf's data. */
  entryHash: Buffer;
  leafHash: Buffer;
  path: Buffer[];
}

export async function inclusionProof(db: Db, seq: number, treeSize: number): Promise<InclusionProof> {
  const [entryHash] = await chainHashes(db, seq - 1, seq);
  const path = await rangeHashes(db, inclusionRanges(seq - 1, treeSize));
  return { seq, leafIndex: seq - 1, treeSize, entryHash: entryHash!, leafHash: leafHash(entryHash!), path };
}

export async function consistencyProof(db: Db, first: number, second: number): Promise<Buffer[]> {
  return rangeHashes(db, consistencyRanges(first, second));
}

export interface CheckpointStep {
  /** At most this many new entries per checkpoint (memory and transaction size stay bounded). */
  maxEntries: number;
  /** Sign only when at least this many entries are new, or... */
  minEntries: number;
  /** ...when the newest checkpoint is at least this old (and anything is new). */
  maxAgeMs: number;
}

/**
 * One step of the checkpointer, in one transaction: grows the stored tree from the newest checkpoint's size
 * to the log's head (at most maxEntries further), and signs and stores a checkpoint of it. Returns it, or
 * undefined when nothing was due or another instance holds the checkpointer's lock. Two instances never sign
 * concurrently (a transaction-scoped advisory lock keyed on the checkpoint table), and since the checkpoint
 * and its nodes commit together, a crash leaves either both or neither.
 */
export async function checkpointStep(db: Kysely<AuditDB>, signer: SigningKey, step: CheckpointStep, now: () => Date = () => new Date()): Promise<SignedCheckpoint | undefined> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<{ locked: boolean }>`select pg_try_advisory_xact_lock(${sql.lit('audit_checkpoint')}::regclass::oid::bigint) as locked`.execute(trx);
    if (!rows[0]?.locked) return undefined;
    const last = await latestCheckpoint(trx);
    const from = last?.treeSize ?? 0;
    const head = await trx.selectFrom('audit_log').select(sql<string | null>`max(seq)`.as('head')).executeTakeFirstOrThrow();
    const available = Number(head.head ?? 0) - from;
    if (available <= 0) return undefined;
    const old = last ? now().getTime() - last.time.getTime() >= step.maxAgeMs : true;
    if (available < step.minEntries && !old) return undefined;
    const to = from + Math.min(available, step.maxEntries);

    const edge = from === 0 ? [] : coverOf({ start: 0, end: from });
    const edgeHashes = await perfectHashes(trx, edge);
    const frontier = Frontier.of(from, edge.map((p) => edgeHashes.get(key(p))!));
    // The stored nodes are a cache: never grow (and sign) from an edge that does not give the signed root.
    if (last && !frontier.root().equals(last.rootHash)) {
      throw new Error(`the stored Merkle tree does not give the root of checkpoint ${last.treeSize}: not signing until that is looked into (run verification)`);
    }
    const nodes: { level: number; idx: string; hash: Buffer }[] = [];
    for (const h of await chainHashes(trx, from, to)) {
      frontier.push(leafHash(h), (p, hash) => {
        if (p.level >= STORED_LEVEL) nodes.push({ level: p.level, idx: String(p.index), hash });
      });
    }
    for (let i = 0; i < nodes.length; i += 2000) await trx.insertInto('audit_merkle_node').values(nodes.slice(i, i + 2000)).execute();
    const checkpoint = signCheckpoint(signer, { treeSize: to, rootHash: frontier.root(), time: new Date(Math.floor(now().getTime())) });
    await trx
      .insertInto('audit_checkpoint')
      .values({ tree_size: String(to), root_hash: checkpoint.rootHash, signed_at: checkpoint.time, origin: checkpoint.origin, key_id: checkpoint.keyId, signature: checkpoint.signature })
      .execute();
    return checkpoint;
  });
}
