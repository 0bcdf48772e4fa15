import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
// The reports read the log by event type over a period (plans, deaths, consents, organisations, urgent care
// views) and an organisation's accesses over a period; the patient and user reports use the indexes of T01.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index audit_log_event_type on audit_log (event_type, recorded_at)`.execute(db);
  await sql`create index audit_log_agent_organisation on audit_log (agent_organisation, recorded_at)`.execute(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`drop index audit_log_agent_organisation`.execute(db);
  await sql`drop index audit_log_event_type`.execute(db);
}
