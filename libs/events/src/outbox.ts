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
  // Delivered only on commit; the same statement wakes the relay at once instead of at its next poll.
  await publishMany(trx, schema, [ev]);
  return ev;
}

/**
 * Writes several events to the outbox in one statement, and wakes the relay in the same statement: one round
 * trip and, outside a transaction, one commit for all of them (the access log's group commit). The events are
 * made (and checked against their contracts) by the caller, so that a bad one fails its own request only.
 */
export async function publishMany<DB extends EventsTables>(db: Kysely<DB> | Transaction<DB>, schema: string, events: readonly CloudEvent<EventType>[]): Promise<void> {
  if (events.length === 0) return;
  const rows = events.map((ev) => sql`(${ev.id}::uuid, ${topicOf(ev.type)}, ${ev.partitionkey}, ${ev.type}, ${JSON.stringify(ev)})`);
  await sql`with written as (
      insert into outbox (event_id, topic, key, type, payload) values ${sql.join(rows)} returning 1
    ) select pg_notify(${outboxChannel(schema)}, '') from (select count(*) from written) as n`.execute(db);
}
