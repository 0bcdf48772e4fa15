import { CompressionTypes, Kafka, Partitioners, logLevel, type Admin, type Consumer, type KafkaMessage, type LogEntry, type Producer } from 'kafkajs';
import { safeError, type Logger } from '@cmc/logging';
import { DEFAULT_MAX_BATCH, PermanentPublishError, sleep, type IncomingMessage, type OutgoingMessage, type SubscribeOptions, type Subscription, type Transport } from './transport';

/** Broker errors that are the message's fault: sending it again cannot succeed. */
const MESSAGE_FAULTS = new Set(['MESSAGE_TOO_LARGE', 'RECORD_LIST_TOO_LARGE', 'INVALID_RECORD', 'CORRUPT_MESSAGE']);

function messageFault(e: unknown): string | undefined {
  for (let cur: unknown = e, depth = 0; cur && depth < 4; depth++) {
    const type = (cur as { type?: unknown }).type;
    if (typeof type === 'string' && MESSAGE_FAULTS.has(type)) return type;
    cur = (cur as { originalError?: unknown; cause?: unknown }).originalError ?? (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

export interface KafkaTransportOptions {
  brokers: string[];
  clientId: string;
  /** Prefixed to every topic name; lets tests and side-by-side installations share a broker. */
  topicPrefix?: string;
  partitions?: number;
  /** Replication factor of topics this transport creates; 1 for a single broker, 3 in production. */
  replicationFactor?: number;
  logger: Logger;
}

function kafkaLogCreator(logger: Logger) {
  return () =>
    ({ level, log }: LogEntry) => {
      // kafkajs adds the error that a message handler threw (with its stack) to some entries; handler errors
      // can quote patient data, so only a sanitised form of any error is kept, and nothing else free-form.
      const { message, error, stack: _stack, timestamp: _t, logger: _l, ...rest } = log as LogEntry['log'] & { error?: unknown; stack?: unknown };
      const fields: Record<string, unknown> = { kafka: rest };
      if (error !== undefined) fields.err = safeError(typeof error === 'string' ? new Error(error) : error);
      if (level === logLevel.ERROR) logger.error(fields, message);
      else if (level === logLevel.WARN) logger.warn(fields, message);
      else logger.debug(fields, message);
    };
}

export class KafkaTransport implements Transport {
  readonly kind = 'kafka' as const;
  private readonly kafka: Kafka;
  private readonly prefix: string;
  private producer: Producer | undefined;
  private admin: Admin | undefined;
  private readonly consumers = new Set<Consumer>();
  /** Set when a consumer crashed for good (kafkajs gave up restarting it): the service is no longer ready. */
  private crashed: string | undefined;

  constructor(private readonly opts: KafkaTransportOptions) {
    this.prefix = opts.topicPrefix ?? '';
    this.kafka = new Kafka({
      clientId: opts.clientId,
      brokers: opts.brokers,
      logLevel: logLevel.WARN,
      logCreator: kafkaLogCreator(opts.logger.child({ component: 'kafkajs' })),
      connectionTimeout: 3000,
      requestTimeout: 10000,
      retry: { initialRetryTime: 200, retries: 8, maxRetryTime: 5000 },
    });
  }

  private physical(topic: string): string {
    return this.prefix + topic;
  }

  private logical(topic: string): string {
    return this.prefix && topic.startsWith(this.prefix) ? topic.slice(this.prefix.length) : topic;
  }

  async start(): Promise<void> {
    if (this.producer) return;
    // Idempotent producer: a retried send is not written twice, and order per partition holds.
    // Not the idempotent producer: after a timed-out send kafkajs keeps its sequence numbers and the broker
    // can refuse every later batch for good (OUT_OF_ORDER_SEQUENCE_NUMBER). Duplicates are the consumers'
    // business anyway (they are idempotent); one request in flight keeps the order per partition.
    // The Java client's partitioner (murmur2 of the key), so other Kafka clients agree on a patient's partition.
    const producer = this.kafka.producer({
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    await producer.connect();
    this.producer = producer;
    const admin = this.kafka.admin();
    await admin.connect();
    this.admin = admin;
  }

  async publish(messages: OutgoingMessage[]): Promise<void> {
    if (messages.length === 0) return;
    if (!this.producer) throw new Error('Kafka transport not started');
    // One request per topic keeps the outbox order within each partition.
    const byTopic = new Map<string, OutgoingMessage[]>();
    for (const m of messages) byTopic.set(m.topic, [...(byTopic.get(m.topic) ?? []), m]);
    try {
      await this.producer.sendBatch({
        acks: -1,
        compression: CompressionTypes.GZIP,
        topicMessages: [...byTopic].map(([topic, ms]) => ({
          topic: this.physical(topic),
          messages: ms.map((m) => ({ key: m.key, value: m.value, headers: m.headers })),
        })),
      });
    } catch (e) {
      const fault = messageFault(e);
      if (fault) throw new PermanentPublishError(`Kafka refused the batch: ${fault}`, e);
      throw e;
    }
  }

  async subscribe(opts: SubscribeOptions): Promise<Subscription> {
    const consumer = this.kafka.consumer({
      groupId: this.prefix + opts.groupId,
      sessionTimeout: 30000,
      rebalanceTimeout: 30000,
      heartbeatInterval: 3000,
      allowAutoTopicCreation: false,
      retry: { initialRetryTime: 300, retries: 10, maxRetryTime: 10000 },
    });
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) {
        this.crashed = opts.groupId;
        this.opts.logger.error({ err: payload.error, groupId: opts.groupId }, 'kafka consumer crashed and will not restart');
      }
    });
    await consumer.connect();
    await consumer.subscribe({ topics: opts.topics.map((t) => this.physical(t)), fromBeginning: true });
    this.consumers.add(consumer);
    const toIncoming = (topic: string, partition: number, message: KafkaMessage): IncomingMessage => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) {
        if (v !== undefined) headers[k] = Array.isArray(v) ? String(v[0]) : String(v);
      }
      return {
        topic: this.logical(topic),
        partition,
        offset: message.offset,
        key: message.key ? message.key.toString('utf8') : null,
        value: message.value ? message.value.toString('utf8') : '',
        headers,
      };
    };
    const onBatch = opts.onBatch;
    const maxBatch = Math.max(1, opts.maxBatch ?? DEFAULT_MAX_BATCH);
    if (onBatch) {
      await consumer.run({
        autoCommit: true,
        autoCommitInterval: 1000,
        partitionsConsumedConcurrently: 3,
        eachBatchAutoResolve: false,
        // A fetched batch of one partition is handed on in chunks of maxBatch, in offset order. A chunk's
        // offsets are resolved only once onBatch resolved; if it throws, the rest of the batch is left and
        // kafkajs delivers again from the last resolved offset (as when eachMessage throws).
        eachBatch: async (payload) => {
          const { batch } = payload;
          for (let i = 0; i < batch.messages.length; i += maxBatch) {
            if (!payload.isRunning() || payload.isStale()) break;
            const chunk = batch.messages.slice(i, i + maxBatch);
            await onBatch(chunk.map((m) => toIncoming(batch.topic, batch.partition, m)));
            for (const m of chunk) payload.resolveOffset(m.offset);
            await payload.heartbeat();
          }
        },
      });
    } else {
      await consumer.run({
        autoCommit: true,
        autoCommitInterval: 1000,
        partitionsConsumedConcurrently: 3,
        eachMessage: async ({ topic, partition, message }) => {
          await opts.onMessage(toIncoming(topic, partition, message));
        },
      });
    }
    return {
      stop: async () => {
        this.consumers.delete(consumer);
        await consumer.disconnect();
      },
    };
  }

  async ensureTopics(topics: readonly string[]): Promise<void> {
    if (!this.admin) throw new Error('Kafka transport not started');
    const existing = new Set(await this.admin.listTopics());
    const missing = topics.map((t) => this.physical(t)).filter((t) => !existing.has(t));
    if (missing.length === 0) return;
    await this.admin.createTopics({
      waitForLeaders: false,
      topics: missing.map((topic) => ({ topic, numPartitions: this.opts.partitions ?? 3, replicationFactor: this.opts.replicationFactor ?? 1 })),
    });
    // Wait until every partition has a leader. kafkajs's own wait gives up when the broker still answers
    // UNKNOWN_TOPIC_OR_PARTITION for a topic it has only just created (seen on a loaded machine).
    const deadline = Date.now() + 30_000;
    for (;;) {
      try {
        const { topics } = await this.admin.fetchTopicMetadata({ topics: missing });
        if (topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
      } catch (e) {
        if (Date.now() > deadline) throw e;
      }
      if (Date.now() > deadline) throw new Error(`Kafka topics have no leaders yet: ${missing.join(', ')}`);
      await sleep(100);
    }
  }

  async isReady(): Promise<boolean> {
    if (!this.admin || !this.producer || this.crashed) return false;
    try {
      const cluster = await Promise.race([
        this.admin.describeCluster(),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 2000).unref()),
      ]);
      return cluster.brokers.length > 0;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.consumers].map((c) => c.disconnect()));
    this.consumers.clear();
    await this.producer?.disconnect();
    await this.admin?.disconnect();
    this.producer = undefined;
    this.admin = undefined;
  }
}
