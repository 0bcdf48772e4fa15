import { eventTablesV1, eventTablesV2 } from '@cmc/events';
import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await eventTablesV1(db);
  await eventTablesV2(db);
  await sql`create table audit_log (
    seq bigint primary key check (seq >= 1),
    event_id uuid not null unique,
    event_type text not null,
    topic text not null,
    recorded_at timestamptz not null,
    appended_at timestamptz not null,
    agent_kind text,
    agent_id text,
    agent_role text,
    agent_organisation text,
    interaction text,
    outcome text,
    nhs_numbers text[] not null,
    event text not null,
    prev_hash bytea not null check (octet_length(prev_hash) = 32),
    hash bytea not null check (octet_length(hash) = 32)
  )`.execute(db);
  await sql`create index audit_log_nhs_numbers on audit_log using gin (nhs_numbers)`.execute(db);
  await sql`create index audit_log_agent on audit_log (agent_id, recorded_at)`.execute(db);
  await sql`create index audit_log_recorded_at on audit_log (recorded_at)`.execute(db);

  // Append-only for every role, the owner and superusers included: only a superuser who switches triggers off
  // (session_replication_role = replica, or disable trigger) can change a row, and verification catches that.
  await sql`create function audit_log_refuse_change() returns trigger language plpgsql as $$
    begin
      raise exception 'audit_log is append-only: % refused', tg_op using errcode = 'insufficient_privilege';
    end
  $$`.execute(db);
  await sql`create trigger audit_log_no_update_delete before update or delete on audit_log
    for each row execute function audit_log_refuse_change()`.execute(db);
  await sql`create trigger audit_log_no_truncate before truncate on audit_log
    for each statement execute function audit_log_refuse_change()`.execute(db);

  // The role the service runs as (through a login role granted it): INSERT and SELECT on the log, nothing
  // more; what the event tables need besides. Roles are cluster-wide and other schemas (tests, installations)
  // create it too, hence the guarded creation under a lock.
  await sql`select pg_advisory_xact_lock(hashtext('cmc.role.cmc_audit_writer'))`.execute(db);
  await sql`do $$ begin
      if not exists (select from pg_roles where rolname = 'cmc_audit_writer') then
        create role cmc_audit_writer nologin;
      end if;
    end $$`.execute(db);
  const { rows } = await sql<{ schema: string }>`select current_schema() as schema`.execute(db);
  const here = sql.id(rows[0]!.schema);
  await sql`grant usage on schema ${here} to cmc_audit_writer`.execute(db);
  await sql`revoke all on audit_log from public`.execute(db);
  await sql`grant select, insert on audit_log to cmc_audit_writer`.execute(db);
  await sql`grant select, insert, update on outbox, processed_events, dead_letters to cmc_audit_writer`.execute(db);
  await sql`grant usage on all sequences in schema ${here} to cmc_audit_writer`.execute(db);
  // The migrator's own tables, read at each start to see that nothing is left to apply.
  await sql`grant select on kysely_migration, kysely_migration_lock to cmc_audit_writer`.execute(db);
}

export async function down(): Promise<void> {
  throw new Error('the audit log is never dropped by a migration');
}
