import type { CloudEvent } from '@cmc/contracts';
import { sql, type Kysely, type Transaction } from 'kysely';
import { chain, entryOf, GENESIS_HASH, type ChainedEntry, type EntryFields } from '../domain/chain';
import type { AuditDB, AuditLogTable } from './schema';

type Db = Kysely<AuditDB> | Transaction<AuditDB>;

/**
 * Appends events to the log in one transaction (the caller's), each once: events already in the log are left
 * out. Appends are serialised by a transaction-scoped advisory lock keyed on the table's oid (so each schema
 * has its own chain and lock), which makes the chain linear: every entry's prev_hash is the hash of the entry
 * before it, and seq has no gaps. Returns the entries written.
 */
export async function appendEvents(trx: Transaction<AuditDB>, events: readonly CloudEvent[]): Promise<ChainedEntry[]> {
  if (events.length === 0) return [];
  await sql`select pg_advisory_xact_lock(${sql.lit('audit_log')}::regclass::oid::bigint)`.execute(trx);
  const ids = [...new Set(events.map((e) => e.id))];
  const present = new Set((await trx.selectFrom('audit_log').select('event_id').where('event_id', 'in', ids).execute()).map((r) => r.event_id));
  const appendedAt = new Date();
  const fresh: EntryFields[] = [];
  for (const event of events) {
    if (present.has(event.id)) continue;
    present.add(event.id);
    fresh.push(entryOf(event, appendedAt));
  }
  if (fresh.length === 0) return [];
  const last = await trx.selectFrom('audit_log').select(['seq', 'hash']).orderBy('seq', 'desc').limit(1).executeTakeFirst();
  const entries = chain(last ? { seq: Number(last.seq), hash: last.hash } : { seq: 0, hash: GENESIS_HASH }, fresh);
  // The report columns make rows wide; a few hundred per statement stays well under the bind-parameter limit.
  for (let i = 0; i < entries.length; i += 500) {
    await trx.insertInto('audit_log').values(entries.slice(i, i + 500).map(toRow)).execute();
  }
  return entries;
}

function toRow(e: ChainedEntry): AuditLogTable {
  return {
    seq: String(e.seq),
    event_id: e.eventId,
    event_type: e.eventType,
    topic: e.topic,
    recorded_at: e.recordedAt,
    appended_at: e.appendedAt,
    agent_kind: e.agentKind,
    agent_id: e.agentId,
    agent_role: e.agentRole,
    agent_organisation: e.agentOrganisation,
    interaction: e.interaction,
    outcome: e.outcome,
    nhs_numbers: e.nhsNumbers,
    event: e.event,
    prev_hash: e.prevHash,
    hash: e.hash,
  };
}

/** A row with its two times as T (Date as pg reads them, or text as verification asks for them). */
type RowWithTimes<T> = Omit<AuditLogTable, 'recorded_at' | 'appended_at'> & { recorded_at: T; appended_at: T };

/** A row's columns under the names the domain uses; the times stay as the row has them. */
function columnsOf<T>(r: RowWithTimes<T>) {
  return {
    seq: Number(r.seq),
    eventId: r.event_id,
    eventType: r.event_type,
    topic: r.topic,
    recordedAt: r.recorded_at,
    appendedAt: r.appended_at,
    agentKind: r.agent_kind,
    agentId: r.agent_id,
    agentRole: r.agent_role,
    agentOrganisation: r.agent_organisation,
    interaction: r.interaction,
    outcome: r.outcome,
    nhsNumbers: r.nhs_numbers,
    event: r.event,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

export function fromRow(r: AuditLogTable): ChainedEntry {
  return columnsOf(r);
}

/** Up to `limit` entries after `afterSeq`, in seq order (keyset paging: each page is one index range scan). */
export async function entriesAfter(db: Db, afterSeq: number, limit: number): Promise<ChainedEntry[]> {
  const rows = await db.selectFrom('audit_log').selectAll().where('seq', '>', String(afterSeq)).orderBy('seq').limit(limit).execute();
  return rows.map(fromRow);
}
