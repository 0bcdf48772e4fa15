/** Shared by the audit tests: events to append, and a log of a test's own (a fresh schema, migrated). */
import { makeEvent, type AccessRecordedData, type CloudEvent } from '@cmc/contracts';
import { createDatabase, migrateToLatest, sql, type Database, type Kysely } from '@cmc/db';
import { randomNhsNumber, testDatabaseUrl, uniqueName } from '@cmc/test-support';
import { migrations } from '../src/db/migrations';
import type { AuditDB } from '../src';

/** An access entry as a service would record it; several NHS numbers make it a search. */
export function anAccess(nhsNumbers: string[] = [randomNhsNumber()], overrides: Partial<AccessRecordedData> = {}): CloudEvent<'cmc.access.recorded.v1'> {
  return makeEvent({
    type: 'cmc.access.recorded.v1',
    source: '/cmc/test',
    key: nhsNumbers[0] ?? 'none',
    data: {
      agent: { kind: 'user', id: `user-${uniqueName('u')}`, role: 'urgent-care', organisation: 'RRU' },
      interaction: nhsNumbers.length > 1 ? 'search' : 'read',
      outcome: 'allowed',
      recordedAt: new Date().toISOString(),
      entities: nhsNumbers.map((nhsNumber, i) => ({ resourceType: 'CarePlan', id: `plan-${i}`, versionId: '1', nhsNumber })),
      source: { service: 'care-plan', clientAddress: '10.0.0.1', userAgent: 'jest' },
      ...overrides,
    },
  });
}

/** A log in a schema of its own, migrated as the service would; close it after. */
export async function aFreshLog(): Promise<Database<AuditDB>> {
  const database = createDatabase<AuditDB>({ url: testDatabaseUrl(), schema: uniqueName('audit'), poolMax: 4 });
  await migrateToLatest(database.db as Kysely<unknown>, database.schema, migrations);
  return database;
}

/** As the database superuser with triggers off: what someone with raw database access could do. */
export const tamper = (database: Database<AuditDB>, ...statements: ReturnType<typeof sql>[]) =>
  database.db.transaction().execute(async (trx) => {
    await sql`set local session_replication_role = replica`.execute(trx);
    for (const statement of statements) await statement.execute(trx);
  });
