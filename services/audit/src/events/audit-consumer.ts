import { EVENT_DEFINITIONS, TOPICS, type EventType } from '@cmc/contracts';
import type { Handler, Handlers } from '@cmc/events';
import type { ConsumerDefinition } from '@cmc/service';
import { appendEvents } from '../db/audit-log-repository';
import type { AuditDB } from '../db/schema';

/** The consumer group of the log; also the key of its processed event ids. */
export const AUDIT_CONSUMER = 'audit.log';

/**
 * Appends every event of every topic to the log. Idempotent twice over: the consumer records each event id in
 * processed_events in the same transaction as the append (a redelivery is a no-op before the log is touched),
 * and appendEvents leaves out any event already in the log (event_id is unique), whatever path it came by.
 */
export function auditConsumer(): ConsumerDefinition<AuditDB> {
  const append: Handler<AuditDB, EventType> = async (trx, event) => {
    await appendEvents(trx, [event]);
  };
  const handlers = Object.fromEntries(Object.keys(EVENT_DEFINITIONS).map((type) => [type, append])) as Handlers<AuditDB>;
  return { name: AUDIT_CONSUMER, topics: Object.values(TOPICS), handlers };
}
