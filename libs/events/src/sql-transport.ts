import { randomUUID } from 'node:crypto';
import { createDatabase, migrateToLatest, type Database, type Migration } from '@cmc/db';
import { sql, type Kysely, type Generated } from 'kysely';
import type { Logger } from '@cmc/logging';
import { PgListener } from './pg-listener';
import { backoffMs, DEFAULT_MAX_BATCH, sleep, type IncomingMessage, type OutgoingMessage, type SubscribeOptions, type Subscription, type Transport } from './transport';

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
    lease_owner: string | null;
    lease_until: Date | null;
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
  '2026-11-24T01-bus-leases': {
    async up(db: Kysely<unknown>) {
      // A reader holds a lease on its group's topic instead of a transaction open while handlers run.
      await db.schema.alterTable('bus_offsets').addColumn('lease_owner', 'text').addColumn('lease_until', 'timestamptz').execute();
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
  /**
   * Messages older than this are deleted (default 7 days), but only once every consumer group of their
   * topic has read them: a group that was stopped for longer loses nothing.
   */
  retentionHours?: number;
  /** Connections of the transport's own pool (default 10); listening uses a connection of its own. */
  poolMax?: number;
  /** How long a reader's claim on a group's topic lasts without renewal (default 30 s). */
  leaseSeconds?: number;
}

export class SqlTransport implements Transport {
  readonly kind = 'sql' as const;
  private readonly database: Database<BusTables>;
  readonly schema: string;
  private readonly channel: string;
  private readonly waiters = new Set<() => void>();
  private listener: PgListener | undefined;
  private readonly stopping = new AbortController();
  private readonly loops = new Set<Promise<void>>();
  private started = false;

  constructor(private readonly opts: SqlTransportOptions) {
    this.schema = opts.schema ?? 'bus';
    this.channel = `cmc_bus_${this.schema}`;
    this.database = createDatabase<BusTables>({ url: opts.url, schema: this.schema, poolMax: opts.poolMax ?? 10, applicationName: 'cmc-bus' });
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await migrateToLatest(this.database.db as Kysely<unknown>, this.schema, busMigrations);
    this.listener = new PgListener(this.database.pool.options, this.channel, () => this.wakeAll());
    this.listener.start();
    this.track(this.purgeLoop());
  }

  private wakeAll(): void {
    for (const w of [...this.waiters]) w();
  }

  private wait(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.waiters.delete(done);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.waiters.add(done);
      signal.addEventListener('abort', done, { once: true });
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
    const stopped = AbortSignal.any([stop, this.stopping.signal]);
    const owner = randomUUID();
    let failures = 0;
    while (!stopped.aborted) {
      let handled: number;
      try {
        handled = await this.readBatch(opts, topic, owner, stopped);
        failures = 0;
      } catch (e) {
        failures++;
        this.opts.logger.warn({ err: e, groupId: opts.groupId, topic }, 'bus: delivery failed; will retry');
        await sleep(backoffMs(failures, 200, 10_000), stopped);
        continue;
      }
      if (handled === 0) await this.wait(this.opts.pollIntervalMs ?? 500, stopped);
    }
    // Hand the topic back at once rather than make another reader wait out the lease.
    await this.database.db
      .updateTable('bus_offsets')
      .set({ lease_owner: null, lease_until: null })
      .where('group_id', '=', opts.groupId)
      .where('topic', '=', topic)
      .where('lease_owner', '=', owner)
      .execute()
      .catch(() => undefined);
  }

  /**
   * Delivers the next batch of one topic to one group; returns how many messages were handled. One reader
   * per group and topic at a time, across processes, holds a lease (the group's "partition assignment");
   * no transaction stays open while handlers run, and the offset moves past each message as soon as its
   * handler returned (past the whole batch once `onBatch` returned), only while the lease is still ours.
   */
  private async readBatch(opts: SubscribeOptions, topic: string, owner: string, stopped: AbortSignal): Promise<number> {
    const lease = this.opts.leaseSeconds ?? 30;
    const { db } = this.database;
    await db
      .insertInto('bus_offsets')
      .values({ group_id: opts.groupId, topic, next_offset: '1', lease_owner: null, lease_until: null })
      .onConflict((oc) => oc.columns(['group_id', 'topic']).doNothing())
      .execute();
    const claimed = await db
      .updateTable('bus_offsets')
      .set({ lease_owner: owner, lease_until: sql<Date>`now() + make_interval(secs => ${lease})` })
      .where('group_id', '=', opts.groupId)
      .where('topic', '=', topic)
      .where((eb) => eb.or([eb('lease_owner', '=', owner), eb('lease_owner', 'is', null), eb('lease_until', '<', sql<Date>`now()`)]))
      .returning('next_offset')
      .executeTakeFirst();
    if (!claimed) return 0;
    const rows = await db
      .selectFrom('bus_messages')
      .selectAll()
      .where('topic', '=', topic)
      .where('offset', '>=', claimed.next_offset)
      .orderBy('offset')
      .limit(opts.onBatch ? Math.max(1, opts.maxBatch ?? DEFAULT_MAX_BATCH) : (this.opts.batchSize ?? 100))
      .execute();
    const toIncoming = (row: (typeof rows)[number]): IncomingMessage => ({
      topic,
      partition: 0,
      offset: String(row.offset),
      key: row.key,
      value: row.value,
      headers: JSON.parse(row.headers) as Record<string, string>,
    });
    const advance = async (pastOffset: string): Promise<boolean> => {
      const moved = await db
        .updateTable('bus_offsets')
        .set({ next_offset: String(BigInt(pastOffset) + 1n), lease_until: sql<Date>`now() + make_interval(secs => ${lease})` })
        .where('group_id', '=', opts.groupId)
        .where('topic', '=', topic)
        .where('lease_owner', '=', owner)
        .executeTakeFirst();
      // Lease lost (we were too slow): another reader has the topic now; it will deliver from our last offset.
      return moved.numUpdatedRows > 0n;
    };
    if (opts.onBatch) {
      // The whole fetch at once; the offset moves past all of it only after onBatch resolved.
      if (rows.length === 0 || stopped.aborted) return 0;
      await opts.onBatch(rows.map(toIncoming));
      return (await advance(String(rows[rows.length - 1]!.offset))) ? rows.length : 0;
    }
    let done = 0;
    for (const row of rows) {
      if (stopped.aborted) break;
      await opts.onMessage(toIncoming(row));
      if (!(await advance(String(row.offset)))) break;
      done++;
    }
    return done;
  }

  private async purgeLoop(): Promise<void> {
    while (!this.stopping.signal.aborted) {
      try {
        await this.purge();
      } catch (e) {
        this.opts.logger.warn({ err: e }, 'bus: purge failed');
      }
      await sleep(60 * 60 * 1000, this.stopping.signal);
    }
  }

  /**
   * Deletes messages past the retention time that every consumer group of their topic has read (a topic
   * nobody reads is kept for the retention time, as Kafka would, for a group that starts later). Returns how
   * many were deleted.
   */
  async purge(): Promise<number> {
    const hours = this.opts.retentionHours ?? 24 * 7;
    const res = await sql`delete from bus_messages m
      where m.created_at < now() - make_interval(hours => ${hours})
        and m."offset" < coalesce((select min(o.next_offset) from bus_offsets o where o.topic = m.topic), m."offset" + 1)`.execute(this.database.db);
    return Number(res.numAffectedRows ?? 0n);
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
