/**
 * Signed checkpoints over a real log: the tree the checkpointer stores gives proofs that verify against the
 * signed roots, and verification catches what a hash chain alone cannot (a consistent rewrite, a cut tail, a
 * forged checkpoint).
 */
import type { Database } from '@cmc/db';
import { sql } from 'kysely';
import { chain } from '../src/domain/chain';
import { checkpointSignedBy, generateSigningKey, type SignedCheckpoint } from '../src/domain/checkpoint';
import { leafHash, verifyConsistency, verifyInclusion } from '../src/domain/merkle';
import { appendEvents, checkpointStep, consistencyProof, inclusionProof, verifyChain, type AuditDB } from '../src';
import { entriesAfter } from '../src/db/audit-log-repository';
import { anAccess, aFreshLog, tamper } from './support';

const signer = generateSigningKey('test.audit.log');
const keys = [{ origin: signer.origin, keyId: signer.keyId, publicKey: signer.publicKey }];
const everyStep = { minEntries: 1, maxAgeMs: 0 };

async function appendMany(database: Database<AuditDB>, n: number, perTransaction = 25): Promise<void> {
  for (let done = 0; done < n; done += perTransaction) {
    await database.db.transaction().execute((trx) => appendEvents(trx, Array.from({ length: Math.min(perTransaction, n - done) }, () => anAccess())));
  }
}

/** Checkpoints every `maxEntries` until the head, as the background job would under a backlog. */
async function checkpointAll(database: Database<AuditDB>, maxEntries: number): Promise<SignedCheckpoint[]> {
  const signed: SignedCheckpoint[] = [];
  for (let c = await checkpointStep(database.db, signer, { ...everyStep, maxEntries }); c; c = await checkpointStep(database.db, signer, { ...everyStep, maxEntries })) signed.push(c);
  return signed;
}

describe('signed checkpoints and proofs', () => {
  let database: Database<AuditDB>;
  let checkpoints: SignedCheckpoint[];

  beforeAll(async () => {
    database = await aFreshLog();
    await appendMany(database, 150);
    checkpoints = await checkpointAll(database, 37);
  });
  afterAll(async () => database?.close());

  it('when the checkpointer works off a backlog, then it signs checkpoints of at most its step, the last at the head, each signed by the key', () => {
    expect(checkpoints.map((c) => c.treeSize)).toEqual([37, 74, 111, 148, 150]);
    for (const c of checkpoints) expect(checkpointSignedBy(c, keys[0]!)).toBe(true);
    const other = generateSigningKey('test.audit.log');
    expect(checkpointSignedBy(checkpoints[0]!, other)).toBe(false);
  });

  it('when nothing is new, then no checkpoint is signed; when entries are new but fewer than asked and the last checkpoint is young, then none either', async () => {
    expect(await checkpointStep(database.db, signer, { ...everyStep, maxEntries: 100 })).toBeUndefined();
    const fresh = await aFreshLog();
    try {
      await appendMany(fresh, 3);
      expect(await checkpointStep(fresh.db, signer, { minEntries: 1, maxAgeMs: 60_000, maxEntries: 100 })).toMatchObject({ treeSize: 3 });
      await appendMany(fresh, 2);
      expect(await checkpointStep(fresh.db, signer, { minEntries: 10, maxAgeMs: 60_000, maxEntries: 100 })).toBeUndefined();
      expect(await checkpointStep(fresh.db, signer, { minEntries: 10, maxAgeMs: 0, maxEntries: 100 })).toMatchObject({ treeSize: 5 });
    } finally {
      await fresh.close();
    }
  });

  it('when every entry is proved in every checkpoint that holds it, then each proof verifies against the signed root with only the entry hash and the path', async () => {
    let proofs = 0;
    for (const c of checkpoints) {
      for (let seq = 1; seq <= c.treeSize; seq += c.treeSize > 100 ? 3 : 1) {
        const p = await inclusionProof(database.db, seq, c.treeSize);
        expect(p.leafHash.equals(leafHash(p.entryHash))).toBe(true);
        expect(verifyInclusion(leafHash(p.entryHash), seq - 1, c.treeSize, p.path, c.rootHash)).toBe(true);
        expect(verifyInclusion(leafHash(p.entryHash), seq - 1, c.treeSize, p.path, checkpoints[0] === c ? checkpoints[1]!.rootHash : checkpoints[0]!.rootHash)).toBe(false);
        proofs++;
      }
    }
    expect(proofs).toBe(37 + 74 + 37 + 50 + 50);
  });

  it('when each pair of checkpoints is proved consistent, then every proof verifies against the two signed roots', async () => {
    for (const [i, a] of checkpoints.entries()) {
      for (const b of checkpoints.slice(i)) {
        const proof = await consistencyProof(database.db, a.treeSize, b.treeSize);
        expect(verifyConsistency(a.treeSize, b.treeSize, a.rootHash, b.rootHash, proof)).toBe(true);
      }
    }
  });

  it('when the log is whole, then verification checks every checkpoint and its signature', async () => {
    const result = await verifyChain(database, { keys, chunkSize: 40 });
    expect(result).toMatchObject({ ok: true, entriesChecked: 150, checkpointsChecked: 5, latestCheckpoint: 150, signaturesChecked: true, firstProblem: null });
  });
});

describe('verification with checkpoints catches what the chain alone cannot', () => {
  let database: Database<AuditDB>;
  beforeEach(async () => {
    database = await aFreshLog();
    await appendMany(database, 40, 10);
    await checkpointAll(database, 16);
    await appendMany(database, 5, 5);
  });
  afterEach(async () => database?.close());

  it('when entry 10 is rewritten and every hash after it recomputed (a consistent chain), then the chain passes but the checkpoint of 16 does not', async () => {
    const entries = await entriesAfter(database.db, 0, 100);
    const edited = entries.slice(9).map((e) => (e.seq === 10 ? { ...e, agentId: 'someone-else' } : e));
    const rechained = chain({ seq: 9, hash: entries[8]!.hash }, edited);
    await tamper(
      database,
      ...rechained.map((e) => sql`update audit_log set agent_id = ${e.agentId}, prev_hash = ${e.prevHash}, hash = ${e.hash} where seq = ${String(e.seq)}`),
    );
    const chainOnly = await verifyChain(database, { keys });
    expect(chainOnly.firstProblem).toMatchObject({ seq: 16, kind: 'checkpoint-root-mismatch' });
    expect(chainOnly.entriesChecked).toBe(15);
  });

  it('when the newest entries are cut from the end (chain still whole), then verification names the checkpoint beyond the log', async () => {
    await tamper(database, sql`delete from audit_log where seq > 35`);
    const result = await verifyChain(database, { keys });
    expect(result.ok).toBe(false);
    expect(result.firstProblem).toMatchObject({ seq: 40, kind: 'checkpoint-beyond-log' });
  });

  it('when a stored Merkle node was changed, then the checkpointer refuses to grow the tree from it and signs nothing', async () => {
    // The tree of 40 is the subtree of leaves 0-31 (level 5) and 8 more: the first is stored.
    await tamper(database, sql`update audit_merkle_node set hash = set_byte(hash, 0, get_byte(hash, 0) # 1) where level = 5 and idx = 0`);
    await expect(checkpointStep(database.db, signer, { ...everyStep, maxEntries: 100 })).rejects.toThrow('the stored Merkle tree does not give the root of checkpoint 40');
    expect(await database.db.selectFrom('audit_checkpoint').select('tree_size').where('tree_size', '>', '40').execute()).toEqual([]);
  });

  it('when a checkpoint signature is altered, then it is named; when it was signed by a key nobody trusts, then that is named', async () => {
    await tamper(database, sql`update audit_checkpoint set signature = set_byte(signature, 0, get_byte(signature, 0) # 1) where tree_size = 32`);
    expect((await verifyChain(database, { keys })).firstProblem).toMatchObject({ seq: 32, kind: 'checkpoint-signature-invalid' });

    const other = await aFreshLog();
    try {
      await appendMany(other, 3);
      await checkpointStep(other.db, generateSigningKey('test.audit.log'), { ...everyStep, maxEntries: 10 });
      expect((await verifyChain(other, { keys })).firstProblem).toMatchObject({ seq: 3, kind: 'checkpoint-unknown-key' });
      // Without keys the roots are still checked, and the result says signatures were not.
      expect(await verifyChain(other)).toMatchObject({ ok: true, signaturesChecked: false, checkpointsChecked: 1 });
    } finally {
      await other.close();
    }
  });
});
