import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('consent_projection').addColumn('basis_code', 'text').execute();
  await db.schema
    .createTable('care_plans')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('nhs_number', 'char(10)', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('draft', 'awaiting-approval', 'published', 'withdrawn', 'deceased')`))
    .addColumn('version_id', 'integer', (c) => c.notNull())
    .addColumn('organisation', 'text', (c) => c.notNull())
    .addColumn('created_by', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addColumn('published_at', 'timestamptz')
    .addColumn('review_date', 'date')
    .addColumn('gp_practice', 'text')
    .addColumn('meta', 'jsonb', (c) => c.notNull())
    .addColumn('content', 'jsonb', (c) => c.notNull())
    .addColumn('resource', 'jsonb', (c) => c.notNull())
    .execute();
  // One open plan per patient: the database refuses a second even when two requests race.
  await sql`create unique index care_plans_one_open_per_patient on care_plans (nhs_number)
    where state in ('draft', 'awaiting-approval', 'published')`.execute(db);
  await db.schema.createIndex('care_plans_nhs_number').on('care_plans').columns(['nhs_number', 'updated_at']).execute();
  await db.schema
    .createTable('care_plan_versions')
    .addColumn('id', 'uuid', (c) => c.notNull().references('care_plans.id'))
    .addColumn('version_id', 'integer', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('meta', 'jsonb', (c) => c.notNull())
    .addColumn('content', 'jsonb', (c) => c.notNull())
    .addColumn('resource', 'jsonb', (c) => c.notNull())
    .addColumn('recorded_by', 'text', (c) => c.notNull())
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('care_plan_versions_pk', ['id', 'version_id'])
    .execute();
  // The current version's allergies as AllergyIntolerance resources (rewritten with each version).
  await db.schema
    .createTable('plan_allergies')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('plan_id', 'uuid', (c) => c.notNull().references('care_plans.id'))
    .addColumn('nhs_number', 'char(10)', (c) => c.notNull())
    .addColumn('resource', 'jsonb', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('plan_allergies_plan').on('plan_allergies').column('plan_id').execute();
  await db.schema.createIndex('plan_allergies_nhs_number').on('plan_allergies').column('nhs_number').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('plan_allergies').execute();
  await db.schema.dropTable('care_plan_versions').execute();
  await db.schema.dropTable('care_plans').execute();
  await db.schema.alterTable('consent_projection').dropColumn('basis_code').execute();
}
