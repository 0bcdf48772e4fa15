/**
 * The checkpoint and proof routes of a running audit service, checked the way an outside auditor would: with
 * nothing but the published verifier key and the RFC 9162 algorithms.
 */
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, startTestService, waitFor } from '@cmc/test-support';
import type { OperationOutcome } from 'fhir/r4';
import { generateKeyPairSync, verify } from 'node:crypto';
import { appendEvents, auditService, checkpointBody, leafHash, parseVerifierKey, verifyConsistency, verifyInclusion, type AuditDB } from '../src';
import { anAccess } from './support';

interface CheckpointJson {
  origin: string;
  treeSize: number;
  rootHash: string;
  time: string;
  keyId: string;
  signature: string;
  note: string;
}

describe('checkpoint and proof routes', () => {
  const issuer = new TestIssuer();
  const serviceTeam = issuer.bearer({ sub: 'st-proofs', role: 'service-team', org: 'X26' });
  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  let transport: Transport;
  let svc: RunningService<AuditDB>;
  const events = [anAccess(), anAccess(), anAccess(), anAccess(), anAccess()];

  beforeAll(async () => {
    transport = await newTransport('sql');
    svc = await startTestService(auditService, {
      transport,
      issuer,
      env: { AUDIT_SIGNING_KEY: pem, AUDIT_LOG_ORIGIN: 'test.example/audit', AUDIT_CHECKPOINT_SECONDS: '1', AUDIT_CHECKPOINT_ENTRIES: '1000' },
    });
    await svc.database.db.transaction().execute((trx) => appendEvents(trx, events.slice(0, 3)));
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
  });

  const get = (url: string, authorization?: string) => svc.app.inject({ method: 'GET', url, headers: authorization ? { authorization } : {} });
  const latestAtLeast = (size: number) =>
    waitFor(async () => {
      const res = await get('/api/audit/checkpoints/latest');
      return res.statusCode === 200 && res.json<CheckpointJson>().treeSize >= size ? res.json<CheckpointJson>() : undefined;
    }, 20_000, `a checkpoint of ${size} entries`);

  /** What an auditor does with a checkpoint: check its signature with the verifier key alone. */
  const signatureHolds = (c: CheckpointJson, verifierKey: string): boolean => {
    const key = parseVerifierKey(verifierKey);
    const body = checkpointBody({ origin: c.origin, treeSize: c.treeSize, rootHash: Buffer.from(c.rootHash, 'base64'), time: new Date(c.time) });
    return c.note.startsWith(body) && key.keyId === c.keyId && verify(null, Buffer.from(body), key.publicKey, Buffer.from(c.signature, 'base64'));
  };

  it('when entries arrive, then the background checkpointer signs them within its interval, and anyone can read the checkpoint and the key without a token', async () => {
    const first = await latestAtLeast(3);
    expect(first).toMatchObject({ origin: 'test.example/audit', treeSize: 3 });
    expect(first.note).toMatch(/^test\.example\/audit\n3\n[A-Za-z0-9+/=]{44}\ntime \d{4}-\d\d-\d\dT[\d:.]+Z\n\n\u2014 test\.example\/audit [A-Za-z0-9+/=]+\n$/);
    const key = await get('/api/audit/checkpoints/key');
    expect(key.statusCode).toBe(200);
    expect(key.json()).toMatchObject({ origin: 'test.example/audit', algorithm: 'Ed25519', keyId: first.keyId });
    expect(signatureHolds(first, key.json<{ verifierKey: string }>().verifierKey)).toBe(true);
    expect(signatureHolds({ ...first, treeSize: 4 }, key.json<{ verifierKey: string }>().verifierKey)).toBe(false);
    expect((await get('/api/audit/checkpoints/3')).json()).toEqual(first);
  });

  it('when the service team asks for an inclusion proof by event id, then the path verifies against the signed root; the request is audited', async () => {
    const c = await latestAtLeast(3);
    const res = await get(`/api/audit/proofs/inclusion?eventId=${events[1]!.id}`, serviceTeam);
    expect(res.statusCode).toBe(200);
    const proof = res.json<{ seq: number; leafIndex: number; entryHash: string; leafHash: string; path: string[]; checkpoint: CheckpointJson }>();
    expect(proof).toMatchObject({ seq: 2, leafIndex: 1 });
    const leaf = leafHash(Buffer.from(proof.entryHash, 'base64'));
    expect(leaf.toString('base64')).toBe(proof.leafHash);
    expect(verifyInclusion(leaf, proof.leafIndex, proof.checkpoint.treeSize, proof.path.map((h) => Buffer.from(h, 'base64')), Buffer.from(c.rootHash, 'base64'))).toBe(true);
    const row = await svc.database.db.selectFrom('audit_log').select('hash').where('event_id', '=', events[1]!.id).executeTakeFirstOrThrow();
    expect(row.hash.toString('base64')).toBe(proof.entryHash);
    await waitFor(async () => {
      const rows = await svc.database.db.selectFrom('audit_log').select('interaction').where('agent_id', '=', 'st-proofs').execute();
      return rows.length > 0 ? rows : undefined;
    }, 20_000, 'the proof request in the log');
  });

  it('when the log grows, then a consistency proof between the old and the new checkpoint verifies against both signed roots, without a token', async () => {
    const old = await latestAtLeast(3);
    await svc.database.db.transaction().execute((trx) => appendEvents(trx, events.slice(3)));
    const next = await latestAtLeast(old.treeSize + 2);
    const res = await get(`/api/audit/proofs/consistency?first=${old.treeSize}&second=${next.treeSize}`);
    expect(res.statusCode).toBe(200);
    const body = res.json<{ first: CheckpointJson; second: CheckpointJson; proof: string[] }>();
    expect(body.first).toEqual(old);
    const b = (s: string): Buffer => Buffer.from(s, 'base64');
    expect(verifyConsistency(old.treeSize, next.treeSize, b(old.rootHash), b(next.rootHash), body.proof.map(b))).toBe(true);
  });

  it('when asked wrongly, then 4xx with an OperationOutcome: no such checkpoint, first after second, both or neither of seq and eventId, an unknown parameter, an entry not yet signed; and 401/403 for inclusion proofs to others', async () => {
    const latest = await latestAtLeast(1);
    const cases: [string, number, string | undefined][] = [
      ['/api/audit/checkpoints/999999', 404, undefined],
      ['/api/audit/checkpoints/0', 400, undefined],
      [`/api/audit/proofs/consistency?first=${latest.treeSize + 1}&second=${latest.treeSize}`, 400, undefined],
      ['/api/audit/proofs/consistency?first=2&colour=blue', 400, undefined],
      ['/api/audit/proofs/inclusion', 400, serviceTeam],
      [`/api/audit/proofs/inclusion?seq=1&eventId=${events[0]!.id}`, 400, serviceTeam],
      ['/api/audit/proofs/inclusion?seq=999999', 404, serviceTeam],
      ['/api/audit/proofs/inclusion?seq=1', 401, undefined],
      ['/api/audit/proofs/inclusion?seq=1', 403, issuer.bearer({ sub: 'clin-p', role: 'clinician', org: 'A11111' })],
    ];
    for (const [url, status, auth] of cases) {
      const res = await get(url, auth);
      expect([url, res.statusCode]).toEqual([url, status]);
      expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    }
  });

  it('when the service team verifies, then the checkpoints are checked too, with the service key', async () => {
    await latestAtLeast(5);
    const res = await get('/api/audit/verify', serviceTeam);
    expect(res.json()).toMatchObject({ ok: true, signaturesChecked: true });
    expect(res.json<{ checkpointsChecked: number }>().checkpointsChecked).toBeGreaterThanOrEqual(2);
  });
});
