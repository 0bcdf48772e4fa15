/**
 * The log itself (issue #7, first slice): appends chained from the genesis hash, each event once; the
 * database refuses to change it; the service's role may only add and read; verification names the first
 * broken entry when a superuser edits, deletes or reorders rows behind the trigger's back.
 */
import { makeEvent } from '@cmc/contracts';
import type { Database } from '@cmc/db';
import { randomNhsNumber } from '@cmc/test-support';
import { createHash, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { appendEvents, canonicalJson, entriesAfter, verifyChain, type AuditDB } from '../src';
import { entryOf, entryText } from '../src/domain/chain';
import { runVerifyCommand } from '../src/verify-command';
import { aFreshLog, anAccess, tamper } from './support';

const append = (database: Database<AuditDB>, events: Parameters<typeof appendEvents>[1]) =>
  database.db.transaction().execute((trx) => appendEvents(trx, events));


describe('the canonical form', () => {
  it('when keys come in any order, then the same text: sorted keys, no whitespace, undefined left out', () => {
    expect(canonicalJson({ b: [2, { z: 1, a: 'x' }], a: null, c: undefined })).toBe('{"a":null,"b":[2,{"a":"x","z":1}]}');
    expect(canonicalJson({ a: 1, b: 2 })).toBe(canonicalJson({ b: 2, a: 1 }));
  });

  it('when an entry is written out by the fast form verification uses, then it is exactly the canonical JSON of its columns', () => {
    const entries = [
      { ...entryOf(anAccess([randomNhsNumber(), randomNhsNumber()]), new Date()), agentRole: null },
      entryOf(makeEvent({ type: 'cmc.identity.login-failed.v1', source: '/t', key: 'k', data: { reason: 'bad "password" \\ \u2028 caf\u00e9 \ud83d\ude00' } }), new Date(0)),
      { ...entryOf(anAccess([]), new Date(Date.UTC(2026, 0, 1, 23, 59, 59, 999))), agentId: 'o\'brien\n\t', nhsNumbers: [] },
    ];
    for (const [i, e] of entries.entries()) {
      const columns = { ...e, seq: i + 1, recordedAt: e.recordedAt.toISOString(), appendedAt: e.appendedAt.toISOString() };
      expect(entryText(i + 1, columns)).toBe(canonicalJson(columns));
    }
  });
});

describe('appending to the log', () => {
  let log: Database<AuditDB>;
  beforeAll(async () => {
    log = await aFreshLog();
  });
  afterAll(async () => log?.close());

  it('when events are appended, then seq runs 1, 2, 3 without gaps, each prev_hash is the hash before (32 zero bytes first), and each hash is SHA-256(prev_hash || entry)', async () => {
    const [a, b] = [randomNhsNumber(), randomNhsNumber()];
    const search = anAccess([a, b, a]);
    const written = await append(log, [anAccess([a]), search]);
    await append(log, [anAccess([b], { outcome: 'refused', outcomeReason: 'not your patient' })]);
    const rows = await log.db.selectFrom('audit_log').selectAll().orderBy('seq').execute();
    expect(rows.map((r) => r.seq)).toEqual(['1', '2', '3']);
    expect(rows[0]!.prev_hash).toEqual(Buffer.alloc(32));
    expect(rows[1]!.prev_hash).toEqual(rows[0]!.hash);
    expect(rows[2]!.prev_hash).toEqual(rows[1]!.hash);
    const e = (await entriesAfter(log.db, 0, 10))[1]!;
    const bytes = canonicalJson({
      seq: 2, eventId: e.eventId, eventType: e.eventType, topic: e.topic, recordedAt: e.recordedAt.toISOString(), appendedAt: e.appendedAt.toISOString(),
      agentKind: e.agentKind, agentId: e.agentId, agentRole: e.agentRole, agentOrganisation: e.agentOrganisation, interaction: e.interaction, outcome: e.outcome,
      nhsNumbers: e.nhsNumbers, event: e.event,
    });
    expect(rows[1]!.hash).toEqual(createHash('sha256').update(rows[0]!.hash).update(bytes, 'utf8').digest());
    expect(rows[1]).toMatchObject({
      event_id: search.id, event_type: 'cmc.access.recorded.v1', topic: 'cmc.access.v1', agent_kind: 'user', agent_id: search.data.agent.id,
      agent_role: 'urgent-care', agent_organisation: 'RRU', interaction: 'search', outcome: 'allowed', nhs_numbers: [a, b].sort(),
    });
    expect(JSON.parse(rows[1]!.event)).toEqual(JSON.parse(JSON.stringify(search)));
    expect(rows[2]).toMatchObject({ outcome: 'refused', nhs_numbers: [b] });
    expect(written.map((w) => w.seq)).toEqual([1, 2]);
    expect(await verifyChain(log)).toMatchObject({ ok: true, entriesChecked: 3, lastGoodSeq: 3, firstProblem: null });
  });

  it('when an event already in the log comes again, alone or in a batch, then it is left out and the chain goes on without a gap', async () => {
    const first = anAccess();
    await append(log, [first]);
    const before = await log.db.selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(await append(log, [first])).toEqual([]);
    const fresh = anAccess();
    const again = await append(log, [first, fresh, fresh]);
    expect(again.map((e) => e.eventId)).toEqual([fresh.id]);
    const after = await log.db.selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n) + 1);
    expect((await verifyChain(log)).ok).toBe(true);
  });

  it('when entries hold quotes, backslashes, control characters and non-ASCII text, then verification (the database encoding each column) gets the very bytes the append hashed', async () => {
    const log = await aFreshLog();
    try {
      const awkward = 'o\'brien "q" \\ \b\f\n\r\t \u0001\u001f\u007f caf\u00e9 \u2028\u2029 \ud83d\ude00 </script>';
      const events = [
        anAccess([randomNhsNumber(), randomNhsNumber(), randomNhsNumber()], { agent: { kind: 'user', id: awkward, role: 'urgent-care', organisation: awkward.slice(0, 20) } }),
        anAccess([], { outcomeReason: awkward, query: awkward }),
        makeEvent({ type: 'cmc.identity.login-failed.v1', source: '/t', key: 'k', data: { reason: awkward } }),
      ];
      await append(log, events);
      // The row holds the text as JavaScript wrote it; verification reads PostgreSQL's JSON encoding of it.
      const row = await log.db.selectFrom('audit_log').select(['agent_id', 'event']).where('seq', '=', '1').executeTakeFirstOrThrow();
      expect(row.agent_id).toBe(awkward);
      expect(await verifyChain(log, { chunkSize: 2 })).toMatchObject({ ok: true, entriesChecked: 3, firstProblem: null });
      // And it is the encoding that is checked, not just the row count: one character changed is found.
      await tamper(log, sql`update audit_log set agent_id = replace(agent_id, '\u00e9', 'e') where seq = 1`);
      expect((await verifyChain(log)).firstProblem).toMatchObject({ seq: 1, kind: 'hash-mismatch' });
    } finally {
      await log.close();
    }
  });

  it('when the log spans several chunks read by parallel streams, then every link across chunks and every entry is checked, and a break in any chunk is the one named', async () => {
    const log = await aFreshLog();
    try {
      await append(log, Array.from({ length: 23 }, () => anAccess()));
      for (const [chunkSize, parallelism] of [[1, 2], [4, 2], [5, 3], [7, 1], [23, 2], [100, 2]] as const) {
        expect(await verifyChain(log, { chunkSize, parallelism })).toMatchObject({ ok: true, entriesChecked: 23, lastGoodSeq: 23 });
      }
      // A break at a chunk's first entry (8 with chunks of 7: only the link across chunks sees it) and one deep in a later chunk.
      await tamper(log, sql`update audit_log set prev_hash = hash where seq = 8`);
      expect(await verifyChain(log, { chunkSize: 7 })).toMatchObject({ ok: false, entriesChecked: 7, firstProblem: { seq: 8, kind: 'prev-hash-mismatch' } });
      expect(await verifyChain(log, { chunkSize: 4 })).toMatchObject({ ok: false, entriesChecked: 7, firstProblem: { seq: 8, kind: 'prev-hash-mismatch' } });
      await tamper(log, sql`delete from audit_log where seq = 21`);
      expect(await verifyChain(log, { chunkSize: 20, parallelism: 2 })).toMatchObject({ firstProblem: { seq: 8 } });
    } finally {
      await log.close();
    }
  });

  it('when many transactions append at once, then the chain is still linear', async () => {
    await Promise.all(Array.from({ length: 8 }, () => append(log, [anAccess(), anAccess()])));
    const result = await verifyChain(log, { chunkSize: 3 });
    expect(result).toMatchObject({ ok: true });
    const { n } = await log.db.selectFrom('audit_log').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow();
    expect(result.entriesChecked).toBe(Number(n));
  });

  it('when a domain event is appended, then its patient and agent are in the report columns, and a password-reset link is not kept', async () => {
    const nhs = randomNhsNumber();
    const granted = makeEvent({
      type: 'cmc.consent.granted.v1', source: '/cmc/consent', key: nhs,
      data: { consentId: '0b8e3a9e-0f5c-4a53-9d39-7c6a4c1f1a11', versionId: '1', nhsNumber: nhs, status: 'active', dateTime: new Date().toISOString() },
    });
    const userId = randomUUID();
    const reset = makeEvent({
      type: 'cmc.identity.password-reset-requested.v1', source: '/cmc/identity', key: userId,
      data: { userId, email: 'someone@example.nhs.uk', resetUrl: 'https://cmc.test/reset?token=secret-token', expiresAt: new Date().toISOString() },
    });
    await append(log, [granted, reset]);
    const rows = await log.db.selectFrom('audit_log').selectAll().where('event_id', 'in', [granted.id, reset.id]).orderBy('seq').execute();
    expect(rows.map((r) => [r.topic, r.nhs_numbers])).toEqual([['cmc.consent.v1', [nhs]], ['cmc.identity.v1', []]]);
    expect(rows[1]!.event).not.toContain('secret-token');
    expect(JSON.parse(rows[1]!.event)).toMatchObject({ data: { resetUrl: '[redacted]', userId } });
    expect((await log.db.selectFrom('audit_log').select('seq').where('nhs_numbers', '@>', sql<string[]>`array[${nhs}]::text[]`).execute()).length).toBe(1);
  });
});

describe('the log cannot be changed', () => {
  let log: Database<AuditDB>;
  beforeAll(async () => {
    log = await aFreshLog();
    await append(log, [anAccess(), anAccess()]);
  });
  afterAll(async () => log?.close());

  it('when the service (here the owner, even a superuser) tries UPDATE, DELETE or TRUNCATE, then the trigger refuses each and the rows stay', async () => {
    await expect(sql`update audit_log set outcome = 'refused' where seq = 1`.execute(log.db)).rejects.toThrow('audit_log is append-only: UPDATE refused');
    await expect(sql`delete from audit_log where seq = 2`.execute(log.db)).rejects.toThrow('audit_log is append-only: DELETE refused');
    await expect(sql`truncate audit_log`.execute(log.db)).rejects.toThrow('audit_log is append-only: TRUNCATE refused');
    expect(await verifyChain(log)).toMatchObject({ ok: true, entriesChecked: 2 });
  });

  it('when running as cmc_audit_writer, then appending and reading work, and UPDATE, DELETE and TRUNCATE are not permitted', async () => {
    const written = await log.db.transaction().execute(async (trx) => {
      await sql`set local role cmc_audit_writer`.execute(trx);
      return appendEvents(trx, [anAccess()]);
    });
    expect(written.map((e) => e.seq)).toEqual([3]);
    for (const statement of [sql`update audit_log set outcome = 'refused'`, sql`delete from audit_log`, sql`truncate audit_log`]) {
      await expect(
        log.db.transaction().execute(async (trx) => {
          await sql`set local role cmc_audit_writer`.execute(trx);
          await statement.execute(trx);
        }),
      ).rejects.toThrow('permission denied for table audit_log');
    }
    expect(await verifyChain(log)).toMatchObject({ ok: true, entriesChecked: 3 });
  });
});

describe('verification, when a superuser changes rows behind the trigger', () => {
  /** Runs `check` on a log of its own with ten entries (each case breaks its chain), then closes it. */
  const withTenEntries = async (check: (log: Database<AuditDB>) => Promise<void>) => {
    const log = await aFreshLog();
    try {
      await append(log, Array.from({ length: 10 }, () => anAccess()));
      await check(log);
    } finally {
      await log.close();
    }
  };

  it('when an entry\'s event is edited, then verification names that seq as a hash mismatch', async () => {
    await withTenEntries(async (log) => {
      await tamper(log, sql`update audit_log set event = replace(event, '"outcome":"allowed"', '"outcome":"refused"') where seq = 4`);
      expect(await verifyChain(log, { chunkSize: 3 })).toMatchObject({ ok: false, entriesChecked: 3, lastGoodSeq: 3, firstProblem: { seq: 4, kind: 'hash-mismatch' } });
    });
  });

  it('when only a report column is edited, then verification names that seq too', async () => {
    await withTenEntries(async (log) => {
      await tamper(log, sql`update audit_log set agent_organisation = 'X26' where seq = 9`);
      expect((await verifyChain(log)).firstProblem).toMatchObject({ seq: 9, kind: 'hash-mismatch' });
    });
  });

  it('when an entry is deleted, then verification names the missing seq as a gap', async () => {
    await withTenEntries(async (log) => {
      await tamper(log, sql`delete from audit_log where seq = 6`);
      // Within a chunk, at a chunk's end (chunks of 6: 1-6, 7-10) and at a chunk's start (chunks of 5: 1-5, 6-10).
      for (const chunkSize of [undefined, 6, 5]) {
        const result = await verifyChain(log, chunkSize ? { chunkSize } : {});
        expect(result).toMatchObject({ ok: false, entriesChecked: 5, firstProblem: { seq: 6, kind: 'gap' } });
        expect(result.firstProblem?.detail).toBe('entry 6 is missing: the entry after 5 is 7');
      }
    });
  });

  it('when two entries swap places, then verification names the first of them as not linked to the entry before', async () => {
    await withTenEntries(async (log) => {
      await tamper(log, sql`update audit_log set seq = 1000 where seq = 3`, sql`update audit_log set seq = 3 where seq = 7`, sql`update audit_log set seq = 7 where seq = 1000`);
      expect((await verifyChain(log)).firstProblem).toMatchObject({ seq: 3, kind: 'prev-hash-mismatch' });
    });
  });

  it('when an edited entry\'s hash is recomputed too, then the next entry no longer links to it', async () => {
    await withTenEntries(async (log) => {
      await tamper(log, sql`update audit_log set hash = sha256(prev_hash || convert_to('forged', 'UTF8')) where seq = 5`);
      expect((await verifyChain(log)).firstProblem).toMatchObject({ seq: 5, kind: 'hash-mismatch' });
    });
  });

  it('when the command-line tool checks a whole log, then it prints ok and exits 0; a broken one, the seq and exit 1; an unknown schema, exit 2', async () => {
    await withTenEntries(async (log) => {
      const env = { DATABASE_URL: process.env.TEST_DATABASE_URL, AUDIT_DB_SCHEMA: log.schema };
      const lines: string[] = [];
      expect(await runVerifyCommand(env, (l) => lines.push(l))).toBe(0);
      expect(JSON.parse(lines[0]!)).toMatchObject({ ok: true, entriesChecked: 10 });
      await tamper(log, sql`delete from audit_log where seq = 2`);
      lines.length = 0;
      expect(await runVerifyCommand(env, (l) => lines.push(l))).toBe(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ ok: false, firstProblem: { seq: 2, kind: 'gap' } });
      lines.length = 0;
      expect(await runVerifyCommand({ ...env, AUDIT_DB_SCHEMA: 'no_such_audit_schema' }, (l) => lines.push(l))).toBe(2);
      expect(lines[0]).toMatch(/could not run/);
    });
  });
});
