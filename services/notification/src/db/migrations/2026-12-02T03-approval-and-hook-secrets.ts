import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  // Hook header values sealed with AES-256-GCM (decision 0016): `headers` keeps only the names. Rows stored
  // before hold their values in clear in `headers`; the service seals them at start (it alone has the key).
  await sql`alter table subscriptions add column header_secret text`.execute(db);

  // When the plan was last submitted for approval, for the reminder and the escalation. Plans already awaiting
  // approval take the time their projection last changed: the best this service knows.
  await sql`alter table plans add column submitted_at timestamptz`.execute(db);
  await sql`update plans set submitted_at = updated_at where state = 'awaiting-approval'`.execute(db);
  await sql`create index plans_awaiting_approval on plans (submitted_at) where state = 'awaiting-approval'`.execute(db);

  // Approval reminders and escalations made: one per plan, kind and submission.
  await sql`create table approval_reminders (
    plan_id uuid not null,
    kind text not null check (kind in ('approval-reminder', 'approval-escalation')),
    submitted_at timestamptz not null,
    recipients integer not null,
    created_at timestamptz not null default now(),
    primary key (plan_id, kind, submitted_at)
  )`.execute(db);

  // What the service team records of an organisation for notifications: its CMC lead (an email address), and
  // whether it has agreed with its patients' GP practices that they approve its plans.
  await sql`create table organisation_settings (
    organisation text primary key,
    lead_email text,
    gp_practice_approves boolean not null default false,
    updated_by text not null,
    updated_at timestamptz not null default now()
  )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop table if exists organisation_settings`.execute(db);
  await sql`drop table if exists approval_reminders`.execute(db);
  await sql`alter table plans drop column if exists submitted_at`.execute(db);
  await sql`alter table subscriptions drop column if exists header_secret`.execute(db);
}
