/** GET /api/audit/verify: the service team's check of the chain, itself an audited access. */
import { createDatabase, type Database } from '@cmc/db';
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, startTestService, testDatabaseUrl, uniqueName, waitFor } from '@cmc/test-support';
import type { OperationOutcome } from 'fhir/r4';
import { sql } from 'kysely';
import { randomBytes } from 'node:crypto';
import { appendEvents, auditService, verifyChain, type AuditDB, type VerificationResult } from '../src';
import { anAccess, tamper } from './support';

describe('GET /api/audit/verify', () => {
  const issuer = new TestIssuer();
  const serviceTeam = { sub: 'st-1', role: 'service-team', org: 'X26' };
  let transport: Transport;
  let svc: RunningService<AuditDB>;

  beforeAll(async () => {
    transport = await newTransport('sql');
    svc = await startTestService(auditService, { transport, issuer });
    await svc.database.db.transaction().execute((trx) => appendEvents(trx, [anAccess(), anAccess(), anAccess()]));
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
  });

  const verify = (authorization?: string) => svc.app.inject({ method: 'GET', url: '/api/audit/verify', headers: authorization ? { authorization } : {} });
  const accessesOf = async (agentId: string) =>
    svc.database.db.selectFrom('audit_log').select(['interaction', 'outcome', 'agent_role']).where('agent_id', '=', agentId).where('event_type', '=', 'cmc.access.recorded.v1').execute();

  it('when the service team asks, then 200 with the entries checked and no problem, and the request reaches the log as an access', async () => {
    const res = await verify(issuer.bearer(serviceTeam));
    expect(res.statusCode).toBe(200);
    const body = res.json<VerificationResult>();
    expect(body).toMatchObject({ ok: true, firstProblem: null });
    expect(body.entriesChecked).toBeGreaterThanOrEqual(3);
    const [entry] = await waitFor(async () => {
      const rows = await accessesOf('st-1');
      return rows.length > 0 ? rows : undefined;
    }, 20_000, 'the verification in the log');
    expect(entry).toEqual({ interaction: 'read', outcome: 'allowed', agent_role: 'service-team' });
  });

  it('when a clinician, an urgent-care user or a system client asks, then 403 with an OperationOutcome, recorded as refused', async () => {
    for (const [sub, auth] of [
      ['clin-1', issuer.bearer({ sub: 'clin-1', role: 'clinician', org: 'A11111' })],
      ['uc-1', issuer.bearer({ sub: 'uc-1', role: 'urgent-care', org: 'RRU' })],
      ['client-1', `Bearer ${issuer.token({ sub: 'client-1', kind: 'client', org: 'A11111', scope: 'system/Consent.cruds' })}`],
    ] as const) {
      const res = await verify(auth);
      expect(res.statusCode).toBe(403);
      expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
      const refused = await svc.database.db.selectFrom('outbox').select('payload').where('type', '=', 'cmc.access.recorded.v1').where(sql<boolean>`payload::jsonb #>> '{data,agent,id}' = ${sub}`).execute();
      expect(refused.map((r) => (JSON.parse(r.payload) as { data: { outcome: string } }).data.outcome)).toEqual(['refused']);
    }
  });

  it('when there is no token, then 401', async () => {
    expect((await verify()).statusCode).toBe(401);
  });

  it('when a row was changed behind the trigger, then 200 with ok false and the seq that broke', async () => {
    await tamper(svc.database, sql`update audit_log set outcome = 'refused' where seq = 2`);
    const res = await verify(issuer.bearer(serviceTeam));
    expect(res.statusCode).toBe(200);
    expect(res.json<VerificationResult>()).toMatchObject({ ok: false, entriesChecked: 1, lastGoodSeq: 1, firstProblem: { seq: 2, kind: 'hash-mismatch' } });
  });
});

describe('running the service as a login role granted cmc_audit_writer', () => {
  const issuer = new TestIssuer();
  const schema = uniqueName('audit');
  const login = uniqueName('cmc_audit_login');
  const password = randomBytes(16).toString('hex');
  let transport: Transport;
  let admin: Database<AuditDB>;
  let writer: RunningService<AuditDB> | undefined;

  beforeAll(async () => {
    transport = await newTransport('sql');
    admin = createDatabase<AuditDB>({ url: testDatabaseUrl(), schema, poolMax: 1 });
    // Migrations run as the owner (here the superuser), as `pnpm migrate` would in production.
    await (await startTestService(auditService, { transport, issuer, env: { AUDIT_DB_SCHEMA: schema } })).close();
    await sql`create role ${sql.id(login)} login password ${sql.lit(password)} in role cmc_audit_writer`.execute(admin.db);
  });
  afterAll(async () => {
    await writer?.close();
    await sql`drop role if exists ${sql.id(login)}`.execute(admin.db);
    await admin.close();
    await transport?.close();
  });

  it('when started as that role on a migrated schema, then it appends what it consumes, and UPDATE is denied to it', async () => {
    const url = new URL(testDatabaseUrl());
    url.username = login;
    url.password = password;
    writer = await startTestService(auditService, { transport, issuer, env: { AUDIT_DB_SCHEMA: schema, DATABASE_URL: url.toString(), AUDIT_CHECKPOINT_SECONDS: '1' } });
    const event = anAccess();
    await transport.publish([{ topic: 'cmc.access.v1', key: event.partitionkey, value: JSON.stringify(event), headers: {} }]);
    await waitFor(async () => (await writer!.database.db.selectFrom('audit_log').select('seq').where('event_id', '=', event.id).executeTakeFirst()) ?? undefined, 20_000, 'the entry');
    const { rows } = await sql<{ user: string }>`select current_user as user`.execute(writer.database.db);
    expect(rows[0]!.user).toBe(login);
    await expect(sql`update audit_log set outcome = 'refused'`.execute(writer.database.db)).rejects.toThrow('permission denied for table audit_log');
    expect(await verifyChain(writer.database)).toMatchObject({ ok: true, entriesChecked: 1 });
  });

  it('when it runs as that role, then its checkpointer signs and stores checkpoints, and checkpoints and tree nodes cannot be changed by it', async () => {
    await waitFor(async () => (await writer!.database.db.selectFrom('audit_checkpoint').select('tree_size').executeTakeFirst()) ?? undefined, 20_000, 'a checkpoint');
    for (const table of ['audit_checkpoint', 'audit_merkle_node']) {
      await expect(sql`delete from ${sql.table(table)}`.execute(writer!.database.db)).rejects.toThrow(`permission denied for table ${table}`);
    }
    await expect(sql`update audit_checkpoint set origin = 'x'`.execute(admin.db)).rejects.toThrow('append-only: UPDATE refused');
  });
});
