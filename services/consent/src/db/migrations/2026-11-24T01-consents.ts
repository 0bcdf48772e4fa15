import { eventTablesV1 } from '@cmc/events';
import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await eventTablesV1(db);
  await db.schema
    .createTable('consents')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('version_id', 'integer', (c) => c.notNull())
    .addColumn('nhs_number', 'char(10)', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('date_time', 'timestamptz', (c) => c.notNull())
    .addColumn('resource', 'jsonb', (c) => c.notNull())
    .addColumn('recorded_by', 'text', (c) => c.notNull())
    .addColumn('recorded_by_org', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('consents_nhs_number').on('consents').columns(['nhs_number', 'date_time']).execute();
  await db.schema
    .createTable('consent_versions')
    .addColumn('id', 'uuid', (c) => c.notNull().references('consents.id'))
    .addColumn('version_id', 'integer', (c) => c.notNull())
    .addColumn('resource', 'jsonb', (c) => c.notNull())
    .addColumn('recorded_by', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('consent_versions_pk', ['id', 'version_id'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('consent_versions').execute();
  await db.schema.dropTable('consents').execute();
}
