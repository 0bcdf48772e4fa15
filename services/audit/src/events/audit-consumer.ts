import { TOPICS } from '@cmc/contracts';
import type { BatchHandler } from '@cmc/events';
import type { ConsumerDefinition } from '@cmc/service';
import { appendEvents } from '../db/audit-log-repository';
import type { AuditDB } from '../db/schema';

/** The consumer group of the log; also the key of its processed event ids. */
export const AUDIT_CONSUMER = 'audit.log';

/**
 * Appends every event of every topic to the log, in batches: each batch of messages the transport delivers is
 * one transaction and one appendEvents call (one advisory lock, one head read), which is what makes the rate
 * (issue #7). Idempotent twice over: the consumer records each event id in processed_events in the same
 * transaction as the append (a redelivery is a no-op before the log is touched), and appendEvents leaves out
 * any event already in the log (event_id is unique), whatever path it came by. An event the append refuses is
 * isolated by the consumer (the batch is taken again one event at a time) and dead-lettered on its own.
 */
export function auditConsumer(): ConsumerDefinition<AuditDB> {
  const batchHandler: BatchHandler<AuditDB> = async (trx, events) => {
    await appendEvents(trx, events);
  };
  return { name: AUDIT_CONSUMER, topics: Object.values(TOPICS), batchHandler };
}
