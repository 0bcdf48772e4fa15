import type { Kysely, Selectable, Transaction } from '@cmc/db';
import type { ConsentDB, ConsentsTable } from './schema';

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
