import type { Database } from '@cmc/db';
import { sql, type Selectable } from 'kysely';
import type { Logger } from '@cmc/logging';
import { outboxChannel } from './outbox';
import { PgListener } from './pg-listener';
import type { EventsTables } from './tables';
import { backoffMs, sleep, type OutgoingMessage, type Transport } from './transport';

export interface RelayOptions {
  database: Database<EventsTables>;
  transport: Transport;
  logger: Logger;
  batchSize?: number;
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
  failures: number;
}

type OutboxRow = Selectable<EventsTables['outbox']>;

export function toMessage(row: OutboxRow): OutgoingMessage {
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
  readonly stats: RelayStats = { sent: 0, batches: 0, failures: 0 };
  private readonly stopping = new AbortController();
  private loop: Promise<void> | undefined;
  private readonly listener: PgListener;
  private wake: (() => void) | undefined;
  private lastPurge = 0;

  constructor(private readonly opts: RelayOptions) {
    this.listener = new PgListener(opts.database.pool, outboxChannel(opts.database.schema), () => this.wake?.());
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
    const batchSize = this.opts.batchSize ?? 200;
    while (!this.stopping.signal.aborted) {
      let sent: number;
      try {
        sent = await this.runOnce();
        failures = 0;
        await this.purgeIfDue();
      } catch (e) {
        failures++;
        this.stats.failures++;
        this.opts.logger.warn({ err: e, failures }, 'outbox relay: send failed; will retry');
        await sleep(backoffMs(failures, 200, 10_000), this.stopping.signal);
        continue;
      }
      if (sent < batchSize) await this.waitForWork(this.opts.pollIntervalMs ?? 1000);
    }
  }

  /** Sends one batch; returns how many rows it sent (0 when another relay holds the lock or none wait). */
  async runOnce(): Promise<number> {
    const { db, schema } = this.opts.database;
    return db.transaction().execute(async (trx) => {
      const lock = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(hashtext(${`cmc.outbox.relay.${schema}`})) as ok`.execute(trx);
      if (!lock.rows[0]?.ok) return 0;
      const rows = await trx
        .selectFrom('outbox')
        .selectAll()
        .where('sent_at', 'is', null)
        .orderBy('id')
        .limit(this.opts.batchSize ?? 200)
        .execute();
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

  /** Stops after the batch in flight, if any. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.loop;
    this.loop = undefined;
    this.listener.close();
  }
}
