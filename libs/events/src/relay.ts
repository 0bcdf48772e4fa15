import type { Database } from '@cmc/db';
import { sql, type Selectable } from 'kysely';
import type { Logger } from '@cmc/logging';
import { outboxChannel } from './outbox';
import { PgListener } from './pg-listener';
import type { EventsTables } from './tables';
import { backoffMs, PermanentPublishError, sleep, type OutgoingMessage, type Transport } from './transport';
import { safeError } from '@cmc/logging';

export interface RelayOptions {
  database: Database<EventsTables>;
  transport: Transport;
  logger: Logger;
  batchSize?: number;
  /** Largest batch in bytes of payload (default 512 KiB; Kafka's default limit per request is 1 MiB). */
  maxBatchBytes?: number;
  /** Longest wait for a batch in flight when stopping (default 10 s). */
  stopTimeoutMs?: number;
  /** How often to look for rows when no notification came (default 1000 ms). */
  pollIntervalMs?: number;
  /** Sent rows are deleted after this many hours (default 72). */
  retentionHours?: number;
  /**
   * Test seam: runs after the transport accepted a batch and before the rows are marked sent. Throwing here
   * is what a crash at that moment looks like: the rows stay unsent and go out again.
   */
  afterPublish?: (eventIds: string[]) => Promise<void>;
}

export interface RelayStats {
  sent: number;
  batches: number;
  /** Attempts that failed and were retried. */
  failures: number;
  /** Rows that could never be sent, marked failed in the outbox. */
  failedRows: number;
}

type OutboxRow = Selectable<EventsTables['outbox']>;

export function toMessage(row: Pick<OutboxRow, 'event_id' | 'topic' | 'key' | 'type' | 'payload'>): OutgoingMessage {
  return {
    topic: row.topic,
    key: row.key,
    value: row.payload,
    headers: { 'ce_id': row.event_id, 'ce_type': row.type, 'content-type': 'application/cloudevents+json' },
  };
}

/**
 * Sends the outbox to the transport, in order, at least once. One relay of a schema works at a time (an
 * advisory lock), so order holds even with several instances of a service running.
 */
export class OutboxRelay {
  readonly stats: RelayStats = { sent: 0, batches: 0, failures: 0, failedRows: 0 };
  private readonly batchSize: number;
  private readonly maxBatchBytes: number;
  /** Rows per batch now: the batch size, halved while isolating a row that cannot be sent. */
  private limit: number;
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly listener: PgListener;
  private wake: (() => void) | undefined;
  private lastPurge = 0;

  constructor(private readonly opts: RelayOptions) {
    this.batchSize = opts.batchSize ?? 200;
    this.maxBatchBytes = opts.maxBatchBytes ?? 512 * 1024;
    this.limit = this.batchSize;
    this.listener = new PgListener(opts.database.pool.options, outboxChannel(opts.database.schema), () => this.wake?.());
  }

  start(): void {
    if (this.loop) return;
    this.listener.start();
    this.loop = this.run();
  }

  private waitForWork(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wake = undefined;
        this.stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wake = done;
      this.stopping.signal.addEventListener('abort', done, { once: true });
    });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping.signal.aborted) {
      let sent: number;
      try {
        sent = await this.runOnce();
        failures = 0;
        await this.purgeIfDue();
      } catch (e) {
        if (e instanceof PermanentPublishError) {
          // Something in the batch can never be sent as it is (too large, malformed): narrow down to it.
          await this.isolate(e);
          continue;
        }
        failures++;
        this.stats.failures++;
        this.opts.logger.warn({ err: e, failures }, 'outbox relay: send failed; will retry');
        await sleep(backoffMs(failures, 200, 10_000), this.stopping.signal);
        continue;
      }
      // A full batch means more may wait; otherwise sleep until notified or the poll interval passes.
      if (sent < this.limit) await this.waitForWork(this.opts.pollIntervalMs ?? 1000);
      else this.limit = Math.min(this.batchSize, this.limit * 2);
    }
  }

  /**
   * After a permanent refusal, halve the batch until one row is alone; that row is marked failed (kept in
   * the outbox with its error, reported at error level and counted) so that the rows behind it go on.
   */
  private async isolate(e: PermanentPublishError): Promise<void> {
    if (this.limit > 1) {
      this.limit = Math.max(1, Math.floor(this.limit / 2));
      return;
    }
    const { db } = this.opts.database;
    const row = await db.selectFrom('outbox').select(['id', 'event_id', 'type', 'topic']).where('sent_at', 'is', null).where('failed_at', 'is', null).orderBy('id').limit(1).executeTakeFirst();
    if (!row) return;
    await db
      .updateTable('outbox')
      .set({ failed_at: sql<Date>`now()`, last_error: safeError(e).message })
      .where('id', '=', row.id)
      .execute();
    this.stats.failedRows++;
    this.opts.logger.error({ err: e, eventId: row.event_id, eventType: row.type, topic: row.topic }, 'outbox relay: event can never be sent; marked failed and skipped');
  }

  /** Sends one batch; returns how many rows it sent (0 when another relay holds the lock or none wait). */
  async runOnce(): Promise<number> {
    const { db, schema } = this.opts.database;
    return db.transaction().execute(async (trx) => {
      const lock = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(hashtext(${`cmc.outbox.relay.${schema}`})) as ok`.execute(trx);
      if (!lock.rows[0]?.ok) return 0;
      const candidates = await trx
        .selectFrom('outbox')
        .selectAll()
        .where('sent_at', 'is', null)
        .where('failed_at', 'is', null)
        .orderBy('id')
        .limit(this.limit)
        .execute();
      // Bounded by bytes as well as rows, so that a backlog of large events stays under the broker's limits.
      const rows: typeof candidates = [];
      let bytes = 0;
      for (const r of candidates) {
        bytes += Buffer.byteLength(r.payload);
        if (rows.length > 0 && bytes > this.maxBatchBytes) break;
        rows.push(r);
      }
      if (rows.length === 0) return 0;
      await this.opts.transport.publish(rows.map(toMessage));
      await this.opts.afterPublish?.(rows.map((r) => r.event_id));
      await trx
        .updateTable('outbox')
        .set({ sent_at: sql<Date>`now()` })
        .where('id', 'in', rows.map((r) => r.id))
        .execute();
      this.stats.sent += rows.length;
      this.stats.batches++;
      return rows.length;
    });
  }

  private async purgeIfDue(): Promise<void> {
    if (Date.now() - this.lastPurge < 10 * 60 * 1000) return;
    this.lastPurge = Date.now();
    const hours = this.opts.retentionHours ?? 72;
    await sql`delete from outbox where sent_at < now() - make_interval(hours => ${hours})`.execute(this.opts.database.db);
  }

  /**
   * Stops after the batch in flight, waiting at most `stopTimeoutMs` (a send to a broker that is down can
   * retry for long). Rows of an unfinished batch stay unsent and go out at the next start.
   */
  async stop(): Promise<void> {
    this.stopping.abort();
    this.listener.close();
    if (this.loop) {
      const timer = new AbortController();
      await Promise.race([this.loop, sleep(this.opts.stopTimeoutMs ?? 10_000, timer.signal)]);
      timer.abort();
    }
    this.loop = undefined;
  }
}
