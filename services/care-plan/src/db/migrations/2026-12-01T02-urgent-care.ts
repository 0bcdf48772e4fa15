import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  // The flag: one row per plan that was ever published, kept in the transaction of every change of its plan.
  // Dispatch lookups read it by NHS number (one index probe), never the plan.
  await db.schema
    .createTable('flags')
    .addColumn('plan_id', 'uuid', (c) => c.primaryKey().references('care_plans.id'))
    .addColumn('nhs_number', 'char(10)', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status in ('active', 'inactive')`))
    .addColumn('version_id', 'integer', (c) => c.notNull())
    .addColumn('plan_version', 'integer', (c) => c.notNull())
    .addColumn('resuscitation', 'text', (c) => c.notNull().check(sql`resuscitation in ('for-cpr', 'not-for-cpr', 'not-recorded')`))
    .addColumn('alerts', 'boolean', (c) => c.notNull())
    .addColumn('plan_modified_at', 'timestamptz', (c) => c.notNull())
    .addColumn('active_from', 'timestamptz', (c) => c.notNull())
    .addColumn('active_until', 'timestamptz')
    .addColumn('down_reason', 'text')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await sql`create unique index flags_one_active_per_patient on flags (nhs_number) where status = 'active'`.execute(db);
  await db.schema.createIndex('flags_nhs_number').on('flags').columns(['nhs_number', 'updated_at']).execute();

  // Notes from urgent care on a published plan (kept with the plan, never edited).
  await db.schema
    .createTable('plan_notes')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('plan_id', 'uuid', (c) => c.notNull().references('care_plans.id'))
    .addColumn('nhs_number', 'char(10)', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('admission', 'boolean', (c) => c.notNull())
    .addColumn('author', 'text', (c) => c.notNull())
    .addColumn('author_role', 'text', (c) => c.notNull())
    .addColumn('organisation', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('plan_notes_plan').on('plan_notes').columns(['plan_id', 'created_at']).execute();

  // Change requests from the patient (or their proxy) to the care team; the care team closes them.
  await db.schema
    .createTable('change_requests')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('plan_id', 'uuid', (c) => c.notNull().references('care_plans.id'))
    .addColumn('nhs_number', 'char(10)', (c) => c.notNull())
    .addColumn('text', 'text', (c) => c.notNull())
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('requested_by_role', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('change_requests_plan').on('change_requests').columns(['plan_id', 'created_at']).execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('change_requests').execute();
  await db.schema.dropTable('plan_notes').execute();
  await db.schema.dropTable('flags').execute();
}
