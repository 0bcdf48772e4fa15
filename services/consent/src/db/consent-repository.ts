import type { Kysely, Selectable, Transaction } from '@cmc/db';
import type { ConsentDB, ConsentVersionsTable, ConsentsTable } from './schema';

type Db = Kysely<ConsentDB> | Transaction<ConsentDB>;
export type ConsentRow = Selectable<ConsentsTable>;

export async function insertConsent(db: Db, row: Omit<ConsentRow, 'created_at'>): Promise<void> {
  await db.insertInto('consents').values(row).execute();
  await db
    .insertInto('consent_versions')
    .values({ id: row.id, version_id: row.version_id, resource: row.resource, recorded_by: row.recorded_by, recorded_at: row.updated_at })
    .execute();
}

export async function findConsent(db: Db, id: string): Promise<ConsentRow | undefined> {
  return db.selectFrom('consents').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The current row, locked until the transaction ends (so two withdrawals cannot both pass the version check). */
export async function findConsentForUpdate(db: Db, id: string): Promise<ConsentRow | undefined> {
  return db.selectFrom('consents').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

/** Writes a new version: the current row moves on only from `fromVersion`; every version is kept. */
export async function updateConsentVersion(
  db: Db,
  row: Pick<ConsentRow, 'id' | 'version_id' | 'status' | 'resource' | 'updated_at'>,
  fromVersion: number,
  recordedBy: string,
): Promise<boolean> {
  const result = await db
    .updateTable('consents')
    .set({ version_id: row.version_id, status: row.status, resource: row.resource, updated_at: row.updated_at })
    .where('id', '=', row.id)
    .where('version_id', '=', fromVersion)
    .executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) return false;
  await db
    .insertInto('consent_versions')
    .values({ id: row.id, version_id: row.version_id, resource: row.resource, recorded_by: recordedBy, recorded_at: row.updated_at })
    .execute();
  return true;
}

export type ConsentVersionRow = Selectable<ConsentVersionsTable>;

/** One version, or every version newest first. */
export async function findConsentVersion(db: Db, id: string, versionId: number): Promise<ConsentVersionRow | undefined> {
  return db.selectFrom('consent_versions').selectAll().where('id', '=', id).where('version_id', '=', versionId).executeTakeFirst();
}

export async function listConsentVersions(db: Db, id: string): Promise<ConsentVersionRow[]> {
  return db.selectFrom('consent_versions').selectAll().where('id', '=', id).orderBy('version_id', 'desc').execute();
}

export interface ConsentSearch {
  nhsNumber: string;
  status?: string;
  /** Each bound of `date`: the consent's dateTime compared with an instant. */
  dateBounds: { op: '>=' | '<'; at: Date }[];
  /** Only consents recorded by this organisation; undefined means every organisation (service team). */
  recordedByOrg?: string;
  /** Keyset: rows after this one in (date_time desc, id desc) order. */
  after?: { dateTime: Date; id: string };
  limit: number;
}

/** One page of a patient's consents, newest dateTime first. */
export async function searchConsents(db: Db, q: ConsentSearch): Promise<ConsentRow[]> {
  let query = db.selectFrom('consents').selectAll().where('nhs_number', '=', q.nhsNumber);
  if (q.status) query = query.where('status', '=', q.status);
  for (const b of q.dateBounds) query = query.where('date_time', b.op, b.at);
  if (q.recordedByOrg !== undefined) query = query.where('recorded_by_org', '=', q.recordedByOrg);
  if (q.after) {
    const { dateTime, id } = q.after;
    query = query.where((eb) => eb.or([eb('date_time', '<', dateTime), eb.and([eb('date_time', '=', dateTime), eb('id', '<', id)])]));
  }
  return query.orderBy('date_time', 'desc').orderBy('id', 'desc').limit(q.limit).execute();
}
