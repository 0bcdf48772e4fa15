import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
// One active patient account per NHS number (proxies may be several).
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create unique index users_one_patient_account on users (patient_nhs_number) where role = 'patient' and active`.execute(db);
}
