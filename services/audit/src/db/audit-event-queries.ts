import { sql, type Kysely, type RawBuilder, type Transaction } from 'kysely';
import type { AuditDB, AuditLogTable } from './schema';

type Db = Kysely<AuditDB> | Transaction<AuditDB>;

const ACCESS_EVENT = 'cmc.access.recorded.v1';

/** Rows of some domain event types, or accesses whose `column` holds one of `values`. */
export interface RowClass {
  domainTypes: string[];
  column: 'interaction' | 'outcome';
  values: string[];
}

/** A resource an entry is about: an access naming it, or a domain event of its type carrying its id. */
export interface EntityRef {
  resourceType: string;
  id: string;
  versionId?: string;
}

/** Each list is ANDed; each inner list (the alternatives of one parameter) ORed. */
export interface AuditEventSearch {
  patients: string[][];
  agents: string[][];
  entities: EntityRef[][];
  dates: { op: '>=' | '<'; at: Date }[];
  classes: RowClass[];
  /** Keyset paging: entries before this seq (newest first). */
  beforeSeq?: string;
  limit: number;
}

/** Where a domain event keeps the id of the resource it is about, and which actor is the user themself. */
export interface DomainKeys {
  resources: readonly { resourceType: string; typePrefix: string; idField: string }[];
  selfActed: readonly string[];
}

const eventJson = sql`(event::jsonb)`;

function entityMatch(ref: EntityRef, keys: DomainKeys): RawBuilder<boolean> {
  const inAccess = JSON.stringify([{ resourceType: ref.resourceType, id: ref.id, ...(ref.versionId ? { versionId: ref.versionId } : {}) }]);
  const parts = [sql`(event_type = ${ACCESS_EVENT} and ${eventJson} #> '{data,entities}' @> ${inAccess}::jsonb)`];
  for (const r of keys.resources.filter((x) => x.resourceType === ref.resourceType)) {
    const version = ref.versionId ? sql` and ${eventJson} #>> '{data,versionId}' = ${ref.versionId}` : sql``;
    parts.push(sql`(event_type like ${`${r.typePrefix}%`} and ${eventJson} -> 'data' ->> ${r.idField} = ${ref.id}${version})`);
  }
  return sql<boolean>`(${sql.join(parts, sql` or `)})`;
}

/** One entry by its event id (the AuditEvent's id). */
export async function findEntryByEventId(db: Db, eventId: string): Promise<AuditLogTable | undefined> {
  return db.selectFrom('audit_log').selectAll().where('event_id', '=', eventId).executeTakeFirst();
}

/**
 * Entries matching a search, newest (highest seq) first, at most `limit`. Patients use the GIN index on
 * nhs_numbers, agents the agent index, dates the recorded_at index, coded parameters the event_type index.
 */
export async function searchEntries(db: Db, search: AuditEventSearch, keys: DomainKeys): Promise<AuditLogTable[]> {
  let q = db.selectFrom('audit_log').selectAll();
  for (const any of search.patients) q = q.where(sql<boolean>`nhs_numbers && ${any}::text[]`);
  for (const any of search.agents) {
    q = q.where(sql<boolean>`(agent_id = any(${any}::text[]) or (event_type = any(${[...keys.selfActed]}::text[]) and ${eventJson} #>> '{data,userId}' = any(${any}::text[])))`);
  }
  for (const any of search.entities) q = q.where(any.length > 0 ? sql<boolean>`(${sql.join(any.map((ref) => entityMatch(ref, keys)), sql` or `)})` : sql<boolean>`false`);
  for (const d of search.dates) q = q.where('recorded_at', d.op, d.at);
  for (const c of search.classes) {
    const column = sql.ref(c.column);
    q = q.where(sql<boolean>`(event_type = any(${c.domainTypes}::text[]) or (event_type = ${ACCESS_EVENT} and ${column} = any(${c.values}::text[])))`);
  }
  if (search.beforeSeq !== undefined) q = q.where('seq', '<', search.beforeSeq);
  return q.orderBy('seq', 'desc').limit(search.limit).execute();
}
