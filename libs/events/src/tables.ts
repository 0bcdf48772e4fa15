import { sql, type Generated, type Kysely } from 'kysely';

/** The event tables every service keeps in its own schema. A service's DB type extends this. */
export interface EventsTables {
  outbox: {
    id: Generated<string>;
    event_id: string;
    topic: string;
    key: string;
    type: string;
    payload: string;
    created_at: Generated<Date>;
    sent_at: Date | null;
    /** Set when the transport refused the event for good (see eventTablesV2). */
    failed_at: Generated<Date | null>;
    last_error: Generated<string | null>;
  };
  processed_events: {
    consumer: string;
    event_id: string;
    event_type: string;
    processed_at: Generated<Date>;
  };
  dead_letters: {
    id: Generated<string>;
    consumer: string;
    topic: string;
    partition: number;
    offset: string;
    event_id: string | null;
    event_type: string | null;
    reason: string;
    payload: string;
    attempts: number;
    created_at: Generated<Date>;
  };
}

/**
 * Frozen DDL of the event tables, version 1. Services call it from a dated migration of their own. It is never
 * edited: a change to these tables is a new function (`eventTablesV2`) called from a new migration.
 */
export async function eventTablesV1(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('outbox')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('event_id', 'uuid', (c) => c.notNull().unique())
    .addColumn('topic', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('sent_at', 'timestamptz')
    .execute();
  // The relay reads unsent rows in id order; a partial index keeps that cheap however large the table grows.
  await sql`create index outbox_unsent on outbox (id) where sent_at is null`.execute(db);
  await sql`create index outbox_sent_at on outbox (sent_at) where sent_at is not null`.execute(db);

  await db.schema
    .createTable('processed_events')
    .addColumn('consumer', 'text', (c) => c.notNull())
    .addColumn('event_id', 'uuid', (c) => c.notNull())
    .addColumn('event_type', 'text', (c) => c.notNull())
    .addColumn('processed_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('processed_events_pk', ['consumer', 'event_id'])
    .execute();

  await db.schema
    .createTable('dead_letters')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('consumer', 'text', (c) => c.notNull())
    .addColumn('topic', 'text', (c) => c.notNull())
    .addColumn('partition', 'integer', (c) => c.notNull())
    .addColumn('offset', 'text', (c) => c.notNull())
    .addColumn('event_id', 'text')
    .addColumn('event_type', 'text')
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('dead_letters_position', ['consumer', 'topic', 'partition', 'offset'])
    .execute();
}

/**
 * Frozen DDL, version 2: outbox rows the transport can never accept are marked failed (kept, with the error)
 * so that the rows behind them go on. Never edited; a further change is eventTablesV3.
 */
export async function eventTablesV2(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('outbox').addColumn('failed_at', 'timestamptz').addColumn('last_error', 'text').execute();
  await sql`drop index outbox_unsent`.execute(db);
  await sql`create index outbox_unsent on outbox (id) where sent_at is null and failed_at is null`.execute(db);
  await sql`create index outbox_failed on outbox (failed_at) where failed_at is not null`.execute(db);
}
