import { eventTablesV1, eventTablesV2 } from '@cmc/events';
import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await eventTablesV1(db);
  await eventTablesV2(db);

  // Projection of identity's users: who can be told, and how. No names.
  await sql`create table recipients (
    user_id text primary key,
    role text not null,
    organisation text,
    email text,
    active boolean not null default true,
    updated_at timestamptz not null default now()
  )`.execute(db);
  await sql`create index recipients_organisation on recipients (organisation, role) where active`.execute(db);

  // Projection of care plans from their events: whom a change concerns, and when the plan is due for review.
  await sql`create table plans (
    plan_id uuid primary key,
    nhs_number text not null,
    organisation text not null,
    author text not null,
    reviewer text,
    gp_practice text,
    review_date date,
    state text not null,
    version_id integer not null,
    updated_at timestamptz not null default now()
  )`.execute(db);
  await sql`create index plans_nhs_number on plans (nhs_number)`.execute(db);
  await sql`create index plans_review_date on plans (review_date) where state = 'published'`.execute(db);

  // The in-app inbox. "source" is what caused it (an event id, or a reminder's key): one per source and user.
  await sql`create table notifications (
    id uuid primary key,
    user_id text not null,
    source text not null,
    kind text not null,
    plan_id uuid,
    created_at timestamptz not null default now(),
    read_at timestamptz,
    constraint notifications_once unique (source, user_id)
  )`.execute(db);
  await sql`create index notifications_inbox on notifications (user_id, created_at desc, id desc)`.execute(db);

  // Emails to send and sent: written in the transaction of the event (or reminder) that caused them, and
  // rendered when sent (they carry no clinical detail, only that something changed and where to sign in).
  await sql`create table email_deliveries (
    id bigserial primary key,
    source text not null,
    recipient text not null,
    address text not null,
    kind text not null,
    status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error text,
    sent_at timestamptz,
    created_at timestamptz not null default now(),
    constraint email_deliveries_once unique (source, recipient)
  )`.execute(db);
  await sql`create index email_deliveries_due on email_deliveries (next_attempt_at) where status = 'pending'`.execute(db);

  // FHIR Subscriptions (rest-hook) of system clients.
  await sql`create table subscriptions (
    id uuid primary key,
    client_id text not null,
    organisation text,
    criteria text not null,
    criteria_kind text not null check (criteria_kind in ('patient', 'gp-practice')),
    criteria_value text not null,
    endpoint text not null,
    headers text[] not null default '{}',
    reason text not null,
    status text not null check (status in ('active', 'error', 'off')),
    error text,
    events_since_start bigint not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
  )`.execute(db);
  await sql`create index subscriptions_match on subscriptions (criteria_kind, criteria_value) where status = 'active'`.execute(db);
  await sql`create index subscriptions_client on subscriptions (client_id)`.execute(db);

  // Hook notifications: one per subscription and event, sent in id order per subscription and patient.
  await sql`create table hook_deliveries (
    id bigserial primary key,
    subscription_id uuid not null references subscriptions (id),
    event_id uuid not null,
    event_number bigint not null,
    nhs_number text not null,
    plan_id uuid not null,
    event_type text not null,
    status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    first_attempt_at timestamptz,
    last_error text,
    sent_at timestamptz,
    created_at timestamptz not null default now(),
    constraint hook_deliveries_once unique (subscription_id, event_id)
  )`.execute(db);
  await sql`create index hook_deliveries_due on hook_deliveries (next_attempt_at) where status = 'pending'`.execute(db);
  await sql`create index hook_deliveries_order on hook_deliveries (subscription_id, nhs_number, id) where status = 'pending'`.execute(db);

  // Review reminders sent: one per plan, kind and review date, whichever instance (or day) sends it.
  await sql`create table review_reminders (
    plan_id uuid not null,
    kind text not null check (kind in ('review-due', 'review-overdue')),
    review_date date not null,
    created_at timestamptz not null default now(),
    primary key (plan_id, kind, review_date)
  )`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const t of ['review_reminders', 'hook_deliveries', 'subscriptions', 'email_deliveries', 'notifications', 'plans', 'recipients']) {
    await sql`drop table if exists ${sql.id(t)}`.execute(db);
  }
}
