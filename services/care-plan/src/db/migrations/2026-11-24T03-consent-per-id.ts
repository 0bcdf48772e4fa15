import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
// One row per consent rather than per patient: withdrawing an older consent must not hide a newer one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('consent_projection_by_id')
    .addColumn('consent_id', 'uuid', (c) => c.primaryKey())
    .addColumn('nhs_number', 'char(10)', (c) => c.notNull())
    .addColumn('version_id', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'inactive')`))
    .addColumn('changed_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await sql`insert into consent_projection_by_id (consent_id, nhs_number, version_id, status, changed_at, updated_at)
    select consent_id, nhs_number, version_id, status, changed_at, updated_at from consent_projection`.execute(db);
  await db.schema.dropTable('consent_projection').execute();
  await db.schema.alterTable('consent_projection_by_id').renameTo('consent_projection').execute();
  await db.schema.createIndex('consent_projection_nhs_number').on('consent_projection').columns(['nhs_number', 'status']).execute();
}
