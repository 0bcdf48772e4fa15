import { eventTablesV2 } from '@cmc/events';
import type { Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  await eventTablesV2(db);
}
