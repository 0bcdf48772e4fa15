import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  // Identity's invitation and password reset emails, sent from the consumer's handler: one row per event, written
  // in the event's transaction. Never the link (a bearer secret), never the address: only that it was handled.
  await sql`create table identity_emails (
    event_id uuid primary key,
    kind text not null check (kind in ('invitation', 'password-reset')),
    status text not null,
    sent_at timestamptz
  )`.execute(db);

  // The last sign-in of each recipient (login-succeeded), for the account lock warning.
  await sql`alter table recipients add column last_login_at timestamptz`.execute(db);
  await sql`create index recipients_last_login on recipients (last_login_at) where active and email is not null`.execute(db);

  // One lock warning per user and last-login date.
  await sql`create table lock_warnings (
    user_id text not null,
    last_login_date date not null,
    created_at timestamptz not null default now(),
    primary key (user_id, last_login_date)
  )`.execute(db);
}
