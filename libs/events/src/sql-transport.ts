import { createDatabase, migrateToLatest, type Database, type Migration } from '@cmc/db';
import { sql, type Kysely, type Generated } from 'kysely';
import type { Logger } from '@cmc/logging';
import { PgListener } from './pg-listener';
import { backoffMs, sleep, type IncomingMessage, type OutgoingMessage, type SubscribeOptions, type Subscription, type Transport } from './transport';

/**
 * The Kafka-free transport of the embedded setup: a log of messages in PostgreSQL that consumer groups read
 * by offset, after Watermill's SQL pub/sub. Durable (it is the database), at least once (a group's offset
 * advances only after its handler returned), ordered (one writer at a time assigns offsets, and one reader per
 * group and topic at a time reads them).
 */
interface BusTables {
  bus_messages: {
    offset: Generated<string>;
    topic: string;
    key: string;
    value: string;
    headers: string;
    created_at: Generated<Date>;
  };
  bus_offsets: {
    group_id: string;
    topic: string;
    next_offset: string;
  };
}

const busMigrations: Record<string, Migration> = {
  '2026-11-24T00-bus': {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable('bus_messages')
        .addColumn('offset', 'bigserial', (c) => c.primaryKey())
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull())
        .addColumn('value', 'text', (c) => c.notNull())
        .addColumn('headers', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await sql`create index bus_messages_topic_offset on bus_messages (topic, "offset")`.execute(db);
      await db.schema
        .createTable('bus_offsets')
        .addColumn('group_id', 'text', (c) => c.notNull())
        .addColumn('topic', 'text', (c) => c.notNull())
        .addColumn('next_offset', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('bus_offsets_pk', ['group_id', 'topic'])
        .execute();
    },
  },
};

export interface SqlTransportOptions {
  url: string;
  /** Schema of the bus tables (default `bus`). */
  schema?: string;
  logger: Logger;
  /** How often a reader looks for messages when no notification came (default 500 ms). */
  pollIntervalMs?: number;
  batchSize?: number;
  /** Messages older than this are deleted (default 7 days), as Kafka's retention would. */
  retentionHours?: number;
}

export class SqlTransport implements Transport {
  readonly kind = 'sql' as const;
  private readonly database: Database<BusTables>;
  private readonly schema: string;
  private readonly channel: string;
  private readonly waiters = new Set<() => void>();
  private listener: PgListener | undefined;
  private readonly stopping = new AbortController();
  private readonly loops = new Set<Promise<void>>();
  private started = false;

  constructor(private readonly opts: SqlTransportOptions) {
    this.schema = opts.schema ?? 'bus';
    this.channel = `cmc_bus_${this.schema}`;
    this.database = createDatabase<BusTables>({ url: opts.url, schema: this.schema, poolMax: 5, applicationName: 'cmc-bus' });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await migrateToLatest(this.database.db as Kysely<unknown>, this.schema, busMigrations);
    this.listener = new PgListener(this.database.pool, this.channel, () => this.wakeAll());
    this.listener.start();
    this.track(this.purgeLoop());
  }

  private wakeAll(): void {
    for (const w of [...this.waiters]) w();
  }

  private wait(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.waiters.delete(done);
        this.stopping.signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.waiters.add(done);
      this.stopping.signal.addEventListener('abort', done, { once: true });
    });
  }

  private track(p: Promise<void>): void {
    this.loops.add(p);
    void p.finally(() => this.loops.delete(p));
  }

  async publish(messages: OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await this.database.db.transaction().execute(async (trx) => {
      // One writer at a time: offsets then commit in the order they were assigned, so a reader that has seen
      // offset n never later finds a smaller offset appear behind it.
      await sql`select pg_advisory_xact_lock(hashtext(${`cmc.bus.publish.${this.schema}`}))`.execute(trx);
      await trx
        .insertInto('bus_messages')
        .values(messages.map((m) => ({ topic: m.topic, key: m.key, value: m.value, headers: JSON.stringify(m.headers) })))
        .execute();
      await sql`select pg_notify(${this.channel}, '')`.execute(trx);
    });
  }

  async subscribe(opts: SubscribeOptions): Promise<Subscription> {
    const stop = new AbortController();
    const loops = opts.topics.map((topic) => this.readLoop(opts, topic, stop.signal));
    for (const l of loops) this.track(l);
    return {
      stop: async () => {
        stop.abort();
        this.wakeAll();
        await Promise.allSettled(loops);
      },
    };
  }

  private async readLoop(opts: SubscribeOptions, topic: string, stop: AbortSignal): Promise<void> {
    let failures = 0;
    while (!stop.aborted && !this.stopping.signal.aborted) {
      let handled: number;
      try {
        handled = await this.readBatch(opts, topic);
        failures = 0;
      } catch (e) {
        failures++;
        this.opts.logger.warn({ err: e, groupId: opts.groupId, topic }, 'bus: delivery failed; will retry');
        await sleep(backoffMs(failures, 200, 10_000), this.stopping.signal);
        continue;
      }
      if (handled === 0) await this.wait(this.opts.pollIntervalMs ?? 500);
    }
  }

  /** Delivers the next batch of one topic to one group; returns how many messages were handled. */
  private async readBatch(opts: SubscribeOptions, topic: string): Promise<number> {
    const batchSize = this.opts.batchSize ?? 100;
    let failure: Error | undefined;
    const handled = await this.database.db.transaction().execute(async (trx) => {
      // One reader per group and topic at a time, across processes: the group's "partition assignment".
      const lock = await sql<{ ok: boolean }>`select pg_try_advisory_xact_lock(hashtext(${`cmc.bus.read.${this.schema}.${opts.groupId}.${topic}`})) as ok`.execute(trx);
      if (!lock.rows[0]?.ok) return 0;
      await trx
        .insertInto('bus_offsets')
        .values({ group_id: opts.groupId, topic, next_offset: '1' })
        .onConflict((oc) => oc.columns(['group_id', 'topic']).doNothing())
        .execute();
      const pos = await trx
        .selectFrom('bus_offsets')
        .select('next_offset')
        .where('group_id', '=', opts.groupId)
        .where('topic', '=', topic)
        .executeTakeFirstOrThrow();
      const rows = await trx
        .selectFrom('bus_messages')
        .selectAll()
        .where('topic', '=', topic)
        .where('offset', '>=', pos.next_offset)
        .orderBy('offset')
        .limit(batchSize)
        .execute();
      let done = 0;
      let next = pos.next_offset;
      for (const row of rows) {
        try {
          await opts.onMessage({
            topic,
            partition: 0,
            offset: String(row.offset),
            key: row.key,
            value: row.value,
            headers: JSON.parse(row.headers) as Record<string, string>,
          } satisfies IncomingMessage);
        } catch (e) {
          failure = e instanceof Error ? e : new Error(typeof e === 'string' ? e : 'message handler failed');
          break;
        }
        done++;
        next = String(BigInt(row.offset) + 1n);
      }
      if (done > 0) {
        await trx
          .updateTable('bus_offsets')
          .set({ next_offset: next })
          .where('group_id', '=', opts.groupId)
          .where('topic', '=', topic)
          .execute();
      }
      return done;
    });
    if (failure) throw failure;
    return handled;
  }

  private async purgeLoop(): Promise<void> {
    const hours = this.opts.retentionHours ?? 24 * 7;
    while (!this.stopping.signal.aborted) {
      try {
        await sql`delete from bus_messages where created_at < now() - make_interval(hours => ${hours})`.execute(this.database.db);
      } catch (e) {
        this.opts.logger.warn({ err: e }, 'bus: purge failed');
      }
      await sleep(60 * 60 * 1000, this.stopping.signal);
    }
  }

  ensureTopics(): Promise<void> {
    return Promise.resolve();
  }

  async isReady(): Promise<boolean> {
    try {
      await sql`select 1 from bus_offsets limit 1`.execute(this.database.db);
      return this.started;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    this.stopping.abort();
    this.wakeAll();
    await Promise.allSettled([...this.loops]);
    this.listener?.close();
    await this.database.close();
  }
}
