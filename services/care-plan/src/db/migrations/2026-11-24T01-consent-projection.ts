import { eventTablesV1 } from '@cmc/events';
import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await eventTablesV1(db);
  await db.schema
    .createTable('consent_projection')
    .addColumn('nhs_number', 'char(10)', (c) => c.primaryKey())
    .addColumn('consent_id', 'uuid', (c) => c.notNull())
    .addColumn('version_id', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'inactive')`))
    .addColumn('changed_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('consent_projection').execute();
}
