import { ALL_TOPICS } from '@cmc/contracts';
import { createDatabase, migrateToLatest, type Database, type Kysely } from '@cmc/db';
import { KafkaTransport, SqlTransport, eventTablesV1, eventTablesV2, type IncomingMessage, type Transport } from '@cmc/events';
import { Kafka, logLevel } from 'kafkajs';
import { testDatabaseUrl, testKafkaBrokers, testLogger, uniqueName, waitFor } from './index';

export type TransportKind = 'kafka' | 'sql';
export const TRANSPORTS: TransportKind[] = ['kafka', 'sql'];

/**
 * A started transport of its own: on Kafka, topics under a unique prefix (created here, as at service start);
 * on the SQL transport, a unique bus schema. Tests running at once never see each other's messages.
 */
export async function newTransport(kind: TransportKind): Promise<Transport> {
  if (kind === 'sql') {
    const t = new SqlTransport({ url: testDatabaseUrl(), schema: uniqueName('bus'), logger: testLogger(), pollIntervalMs: 100 });
    await t.start();
    return t;
  }
  const prefix = `${uniqueName('t')}.`;
  const t = new KafkaTransport({ brokers: testKafkaBrokers(), clientId: uniqueName('test'), topicPrefix: prefix, partitions: 3, logger: testLogger() });
  await t.start();
  await t.ensureTopics(ALL_TOPICS);
  // On close, the prefix's topics go too, so that a long-lived broker (KAFKA_BROKERS) does not fill up.
  const close = t.close.bind(t);
  t.close = async () => {
    await close();
    const admin = new Kafka({ brokers: testKafkaBrokers(), clientId: uniqueName('cleanup'), logLevel: logLevel.NOTHING }).admin();
    try {
      await admin.connect();
      await admin.deleteTopics({ topics: ALL_TOPICS.map((topic) => prefix + topic), timeout: 10_000 });
    } catch {
      // Best effort: a broker that is going away with the test run takes its topics with it.
    } finally {
      await admin.disconnect();
    }
  };
  return t;
}

/** Every message that arrives on `topic`, read by a consumer group of its own from the beginning. */
export async function collect(transport: Transport, topic: string): Promise<{ messages: IncomingMessage[]; stop: () => Promise<void> }> {
  const messages: IncomingMessage[] = [];
  const sub = await transport.subscribe({
    groupId: uniqueName('collector'),
    topics: [topic],
    onMessage: async (m) => void messages.push(m),
  });
  return { messages, stop: () => sub.stop() };
}

/** Waits until `messages` holds at least `n` items matching `pred`, and returns those. */
export async function waitForMessages(messages: IncomingMessage[], n: number, pred: (m: IncomingMessage) => boolean = () => true, timeoutMs = 20_000): Promise<IncomingMessage[]> {
  return waitFor(async () => {
    const found = messages.filter(pred);
    return found.length >= n ? found : undefined;
  }, timeoutMs, `${n} message(s)`);
}

/** Creates the event tables (outbox, processed_events, dead_letters) in `schema`, then `more`: the test's own tables. */
export async function migrateEventTables(db: Kysely<unknown>, schema: string, more?: (db: Kysely<unknown>) => Promise<void>): Promise<void> {
  await migrateToLatest(db, schema, {
    '2026-11-24T00-test': {
      up: async (trx) => {
        await eventTablesV1(trx);
        await eventTablesV2(trx);
        await more?.(trx);
      },
    },
  });
}

/** A database in a schema of its own (named after `prefix`) holding the event tables and `more`. */
export async function eventsTestDatabase<DB>(prefix: string, more?: (db: Kysely<unknown>) => Promise<void>): Promise<Database<DB>> {
  const schema = uniqueName(prefix);
  const database = createDatabase<DB>({ url: testDatabaseUrl(), schema });
  await migrateEventTables(database.db as Kysely<unknown>, schema, more);
  return database;
}
