import { makeEvent, topicOf, type CloudEvent, type EventType, type NewEvent } from '@cmc/contracts';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { EventsTables } from './tables';

/** The NOTIFY channel a schema's relay listens on. */
export const outboxChannel = (schema: string): string => `cmc_outbox_${schema}`;

/**
 * Writes an event to the outbox in the caller's transaction: it is sent if and only if the change commits.
 * The event is checked against its contract here, so a bad event fails the change rather than a consumer.
 */
export async function publish<T extends EventType, DB extends EventsTables>(
  trx: Transaction<DB> | Kysely<DB>,
  schema: string,
  event: NewEvent<T>,
): Promise<CloudEvent<T>> {
  const ev = makeEvent(event);
  // Kysely's types are invariant in DB; every DB here has the outbox table (DB extends EventsTables).
  const db = trx as unknown as Kysely<EventsTables>;
  await db
    .insertInto('outbox')
    .values({
      event_id: ev.id,
      topic: topicOf(ev.type),
      key: ev.partitionkey,
      type: ev.type,
      payload: JSON.stringify(ev),
      sent_at: null,
    })
    .execute();
  // Delivered only on commit; wakes the relay at once instead of at its next poll.
  await sql`select pg_notify(${outboxChannel(schema)}, '')`.execute(db);
  return ev;
}
