import { Kysely, PostgresDialect, sql } from 'kysely';
import { Migrator, type Migration, type MigrationResultSet } from 'kysely/migration';
import pg from 'pg';

export { sql };
export type { Migration } from 'kysely/migration';
export type { Kysely, Transaction, Selectable, Insertable, Updateable, Generated, ColumnType } from 'kysely';

// int8 comes back as a string (pg's default: no precision lost); timestamps as Date; a DATE column as its
// 'YYYY-MM-DD' string, since a calendar date has no time zone and pg would otherwise make it local midnight.
pg.types.setTypeParser(pg.types.builtins.DATE, (value: string) => value);

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export interface DbOptions {
  /** postgres://user@host:port/database */
  url: string;
  /** The service's own schema; every unqualified table name resolves into it. */
  schema: string;
  /** Largest number of pooled connections. */
  poolMax?: number;
  /** Shown in pg_stat_activity. */
  applicationName?: string;
}

export interface Database<DB> {
  db: Kysely<DB>;
  pool: pg.Pool;
  schema: string;
  close: () => Promise<void>;
}

export function assertSchemaName(schema: string): void {
  if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid schema name "${schema}": use lower-case letters, digits and _`);
}

/**
 * A Kysely instance over a pg pool whose connections have `search_path` set to the service's schema, so
 * repositories and raw SQL alike name tables without a schema prefix.
 */
export function createDatabase<DB>(opts: DbOptions): Database<DB> {
  assertSchemaName(opts.schema);
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolMax ?? 10,
    application_name: opts.applicationName ?? `cmc-${opts.schema}`,
    options: `-c search_path=${opts.schema}`,
    idleTimeoutMillis: 30_000,
    connectionTimeoutMillis: 10_000,
  });
  // An idle client's error (e.g. the server restarted) must not crash the process; the pool replaces it.
  pool.on('error', () => undefined);
  // A client checked out of the pool (Kysely holds one for each query and transaction) has no listener of the
  // pool's: a socket error then (ECONNRESET when the server restarts under load) would be an unhandled 'error'
  // event and end the process (found by the fault suite). The client's queries fail all the same, and the pool
  // drops the client when it is released, as it is no longer queryable.
  pool.on('connect', (client) => client.on('error', () => undefined));
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  let closed = false;
  return {
    db,
    pool,
    schema: opts.schema,
    close: async () => {
      if (closed) return;
      closed = true;
      await db.destroy();
    },
  };
}

/** True when the database answers a trivial query within the pool's connection timeout. */
export async function databaseIsReady(db: Kysely<unknown>): Promise<boolean> {
  try {
    await sql`select 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}

export class MigrationError extends Error {
  constructor(message: string, readonly results: MigrationResultSet['results']) {
    super(message);
    this.name = 'MigrationError';
  }
}

/**
 * Creates the schema if needed and runs every migration not yet applied, in name order (names start with a
 * date, so that is the order they were written). Safe to call from several processes at once.
 */
export async function migrateToLatest(
  db: Kysely<unknown>,
  schema: string,
  migrations: Record<string, Migration>,
): Promise<string[]> {
  assertSchemaName(schema);
  // Only when missing: `create schema if not exists` needs CREATE on the database even when the schema is
  // there, and a service may run as a role without it (the audit service's writer role) once migrated.
  const exists = await sql`select 1 from pg_namespace where nspname = ${schema}`.execute(db);
  if (exists.rows.length === 0) {
    await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('cmc.create-schema'))`.execute(trx);
      await sql`create schema if not exists ${sql.id(schema)}`.execute(trx);
    });
  }
  const migrator = new Migrator({
    db,
    provider: { getMigrations: () => Promise.resolve(migrations) },
    migrationTableSchema: schema,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new MigrationError(`migration ${failed} of schema ${schema} failed: ${String((error as Error).message ?? error)}`, results);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}
