import { assertValidEvent, ContractError, dlqTopic, redactSecrets, type CloudEvent, type EventType } from '@cmc/contracts';
import type { Database } from '@cmc/db';
import type { Transaction } from 'kysely';
import { safeError, type Logger } from '@cmc/logging';
import type { EventsTables } from './tables';
import { backoffMs, DEFAULT_MAX_BATCH, sleep, type IncomingMessage, type Subscription, type Transport } from './transport';

export type Handler<DB, T extends EventType> = (trx: Transaction<DB>, event: CloudEvent<T>) => Promise<void>;
export type Handlers<DB> = { [T in EventType]?: Handler<DB, T> };
/**
 * Handles several events in one transaction (the consumer's, which also records their ids): the events are
 * valid, not seen before by this consumer, and in delivery order (per key, the order they were published).
 */
export type BatchHandler<DB> = (trx: Transaction<DB>, events: CloudEvent[]) => Promise<void>;

export interface ConsumerOptions<DB extends EventsTables> {
  /** The consumer group, and the name under which processed events are recorded. */
  name: string;
  database: Database<DB>;
  transport: Transport;
  topics: readonly string[];
  handlers: Handlers<DB>;
  /**
   * When given, the consumer takes messages in batches and this handles every valid event, whatever its type
   * (`handlers` is then not used): one transaction per batch. If that transaction fails for anything but the
   * infrastructure, the batch's events are taken again one by one (each on its own in a one-element array,
   * with the retries and the DLQ of a single message), so that a poison event does not hold up the others.
   */
  batchHandler?: BatchHandler<DB>;
  /** Most messages per batch when `batchHandler` is given (default 500). */
  maxBatch?: number;
  logger: Logger;
  /** Attempts before a failing message goes to the dead-letter topic (default 5). */
  maxAttempts?: number;
  /** Base of the exponential backoff between attempts (default 200 ms). */
  backoffBaseMs?: number;
  backoffCapMs?: number;
}

export interface ConsumerStats {
  processed: number;
  duplicates: number;
  ignored: number;
  deadLettered: number;
  retries: number;
}

export type Outcome = 'processed' | 'duplicate' | 'ignored' | 'dead-lettered';

/**
 * Errors that say the infrastructure is unwell (the database unreachable, restarting, out of connections)
 * rather than that the message is bad. Such a message is not dead-lettered: it waits until things recover.
 */
export function isInfrastructureError(e: unknown): boolean {
  if (typeof e !== 'object' || e === null) return false;
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) return true;
    // SQLSTATE: class 08 (connection), 57P01-57P03 (shutdown, crash, cannot connect now), 53300 (too many
    // connections), 40001 and 40P01 (serialization failure, deadlock: retry). Not 57014 (statement timeout):
    // a message that times out every time is the message's problem and must reach the DLQ.
    if (/^08/.test(code) || ['57P01', '57P02', '57P03', '53300', '40001', '40P01'].includes(code)) return true;
  }
  const msg = (e as { message?: unknown }).message;
  return typeof msg === 'string' && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(msg);
}

/** A short reason for logs and dead letters: the error's class and scrubbed message, never the payload. */
function reasonOf(e: unknown): string {
  const s = safeError(e);
  return `${s.type}: ${s.message}`;
}

/**
 * Runs handlers for events, idempotently: each event's id is recorded in the same transaction as the
 * handler's effect, so a redelivery changes nothing. A message that fails validation goes straight to
 * `<topic>.dlq`; one whose handler keeps failing goes there after `maxAttempts`; either way the messages
 * behind it carry on. The same code runs over Kafka and over the SQL transport.
 */
export class EventConsumer<DB extends EventsTables> {
  readonly stats: ConsumerStats = { processed: 0, duplicates: 0, ignored: 0, deadLettered: 0, retries: 0 };
  private subscription: Subscription | undefined;
  private readonly stopping = new AbortController();

  constructor(private readonly opts: ConsumerOptions<DB>) {}

  async start(): Promise<void> {
    if (this.subscription) return;
    this.subscription = await this.opts.transport.subscribe({
      groupId: this.opts.name,
      topics: this.opts.topics,
      onMessage: (msg) => this.handle(msg).then(() => undefined),
      ...(this.opts.batchHandler ? { onBatch: (msgs: IncomingMessage[]) => this.handleBatch(msgs), maxBatch: this.opts.maxBatch ?? DEFAULT_MAX_BATCH } : {}),
    });
    // Stopped while joining (a service closed during its start): leave at once rather than keep the subscription.
    if (this.stopping.signal.aborted) await this.stop();
  }

  async stop(): Promise<void> {
    this.stopping.abort();
    await this.subscription?.stop();
    this.subscription = undefined;
  }

  /**
   * Handles delivered messages as a batch (with `batchHandler`). Invalid messages go to the DLQ at once; the
   * valid ones are recorded and handled in one transaction. Throws only when they must all be delivered
   * again (infrastructure trouble).
   */
  async handleBatch(msgs: IncomingMessage[]): Promise<void> {
    const batchHandler = this.opts.batchHandler;
    if (!batchHandler) throw new Error(`consumer ${this.opts.name} has no batch handler`);
    const valid: { msg: IncomingMessage; event: CloudEvent }[] = [];
    for (const msg of msgs) {
      const event = await this.parse(msg);
      if (event) valid.push({ msg, event });
    }
    if (valid.length === 0) return;
    try {
      await this.applyBatchOnce(valid.map((v) => v.event), batchHandler);
      return;
    } catch (e) {
      if (this.stopping.signal.aborted) throw e;
      if (isInfrastructureError(e)) {
        this.opts.logger.warn({ err: safeError(e), events: valid.length }, 'consumer: infrastructure error; batch will be redelivered');
        await sleep(backoffMs(1, this.opts.backoffBaseMs ?? 200, this.opts.backoffCapMs ?? 5000), this.stopping.signal);
        throw e;
      }
      // Some event of the batch is refused (or the batch as a whole): find which, one at a time.
      this.opts.logger.warn({ err: safeError(e), events: valid.length }, 'consumer: batch failed; handling its events one by one');
    }
    for (const { msg, event } of valid) {
      await this.handleValid(msg, event, (trx, ev) => batchHandler(trx, [ev]));
    }
  }

  /** Handles one delivered message. Throws only when it must be delivered again (infrastructure trouble). */
  async handle(msg: IncomingMessage): Promise<Outcome> {
    const event = await this.parse(msg);
    if (!event) return 'dead-lettered';
    const batchHandler = this.opts.batchHandler;
    const handler = batchHandler
      ? (trx: Transaction<DB>, ev: CloudEvent) => batchHandler(trx, [ev])
      : (this.opts.handlers[event.type] as Handler<DB, EventType> | undefined);
    return this.handleValid(msg, event, handler);
  }

  /** The message's event if it is valid; otherwise it is sent to the DLQ and undefined returned. */
  private async parse(msg: IncomingMessage): Promise<CloudEvent | undefined> {
    try {
      const parsed: unknown = JSON.parse(msg.value);
      assertValidEvent(parsed);
      return parsed;
    } catch (e) {
      // JSON.parse's message quotes the input, which may hold patient data: say only what kind of fault it was.
      const reason = e instanceof ContractError ? reasonOf(e) : 'malformed message: not valid JSON';
      await this.deadLetter(msg, undefined, reason, 1);
      return undefined;
    }
  }

  private async handleValid(msg: IncomingMessage, event: CloudEvent, handler: Handler<DB, EventType> | undefined): Promise<Outcome> {
    if (!handler) {
      this.stats.ignored++;
      return 'ignored';
    }
    const maxAttempts = this.opts.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.applyOnce(event, handler);
      } catch (e) {
        if (this.stopping.signal.aborted) throw e;
        if (isInfrastructureError(e)) {
          // Not the message's fault: leave it to be delivered again once things recover.
          this.opts.logger.warn({ err: safeError(e), eventId: event.id, eventType: event.type }, 'consumer: infrastructure error; message will be redelivered');
          await sleep(backoffMs(attempt, this.opts.backoffBaseMs ?? 200, this.opts.backoffCapMs ?? 5000), this.stopping.signal);
          throw e;
        }
        if (attempt >= maxAttempts) {
          await this.deadLetter(msg, event, reasonOf(e), attempt);
          return 'dead-lettered';
        }
        this.stats.retries++;
        await sleep(backoffMs(attempt, this.opts.backoffBaseMs ?? 200, this.opts.backoffCapMs ?? 5000), this.stopping.signal);
      }
    }
  }

  private async applyOnce(event: CloudEvent, handler: Handler<DB, EventType>): Promise<Outcome> {
    const db = this.opts.database.db as unknown as import('kysely').Kysely<EventsTables>;
    return db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto('processed_events')
        .values({ consumer: this.opts.name, event_id: event.id, event_type: event.type })
        .onConflict((oc) => oc.columns(['consumer', 'event_id']).doNothing())
        .returning('event_id')
        .executeTakeFirst();
      if (!inserted) {
        this.stats.duplicates++;
        return 'duplicate' as const;
      }
      await handler(trx as unknown as Transaction<DB>, event);
      this.stats.processed++;
      return 'processed' as const;
    });
  }

  /** One transaction for all the events: records their ids, and hands the ones not seen before on, in order. */
  private async applyBatchOnce(events: CloudEvent[], batchHandler: BatchHandler<DB>): Promise<void> {
    const db = this.opts.database.db as unknown as import('kysely').Kysely<EventsTables>;
    const { fresh, duplicates } = await db.transaction().execute(async (trx) => {
      // event_id is a uuid column, which comes back in lower case: compare in lower case. An id twice in one
      // batch (a redelivery right behind the original) is inserted once; the second is a duplicate.
      const idOf = (e: CloudEvent): string => e.id.toLowerCase();
      const unique = [...new Map(events.map((e) => [idOf(e), e])).values()];
      const ids = new Set<string>();
      for (let i = 0; i < unique.length; i += 1000) {
        const inserted = await trx
          .insertInto('processed_events')
          .values(unique.slice(i, i + 1000).map((e) => ({ consumer: this.opts.name, event_id: e.id, event_type: e.type })))
          .onConflict((oc) => oc.columns(['consumer', 'event_id']).doNothing())
          .returning('event_id')
          .execute();
        for (const r of inserted) ids.add(r.event_id.toLowerCase());
      }
      const fresh: CloudEvent[] = [];
      for (const e of events) {
        if (ids.delete(idOf(e))) fresh.push(e);
      }
      if (fresh.length > 0) await batchHandler(trx as unknown as Transaction<DB>, fresh);
      return { fresh: fresh.length, duplicates: events.length - fresh.length };
    });
    // Counted only once committed: a batch that fails and is taken again one by one is not counted twice.
    this.stats.processed += fresh;
    this.stats.duplicates += duplicates;
  }

  private async deadLetter(msg: IncomingMessage, event: CloudEvent | undefined, reason: string, attempts: number): Promise<void> {
    // Kept for as long as someone looks at them: never with a bearer secret (a reset or invitation link) in it.
    const payload = redactSecrets(msg.value);
    await this.opts.transport.publish([
      {
        topic: dlqTopic(msg.topic),
        key: msg.key ?? '',
        value: payload,
        headers: {
          ...msg.headers,
          'dlq-reason': reason,
          'dlq-consumer': this.opts.name,
          'dlq-original-topic': msg.topic,
          'dlq-original-partition': String(msg.partition),
          'dlq-original-offset': msg.offset,
          'dlq-attempts': String(attempts),
        },
      },
    ]);
    const db = this.opts.database.db as unknown as import('kysely').Kysely<EventsTables>;
    await db
      .insertInto('dead_letters')
      .values({
        consumer: this.opts.name,
        topic: msg.topic,
        partition: msg.partition,
        offset: msg.offset,
        event_id: event?.id ?? null,
        event_type: event?.type ?? null,
        reason,
        payload,
        attempts,
      })
      .onConflict((oc) => oc.columns(['consumer', 'topic', 'partition', 'offset']).doNothing())
      .execute();
    this.stats.deadLettered++;
    // Reported, never silently dropped: the dead_letters table and this warning say which message and why.
    this.opts.logger.warn(
      { eventId: event?.id, eventType: event?.type, topic: msg.topic, partition: msg.partition, offset: msg.offset, attempts, reason },
      'consumer: message sent to the dead-letter topic',
    );
  }
}
