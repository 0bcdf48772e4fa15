import { ALL_TOPICS } from '@cmc/contracts';
import { KafkaTransport, SqlTransport, type IncomingMessage, type Transport } from '@cmc/events';
import { testDatabaseUrl, testKafkaBrokers, testLogger, uniqueName, waitFor } from './index';

export type TransportKind = 'kafka' | 'sql';
export const TRANSPORTS: TransportKind[] = ['kafka', 'sql'];

/**
 * A started transport of its own: on Kafka, topics under a unique prefix (created here, as at service start);
 * on the SQL transport, a unique bus schema. Tests running at once never see each other's messages.
 */
export async function newTransport(kind: TransportKind): Promise<Transport> {
  const t: Transport =
    kind === 'kafka'
      ? new KafkaTransport({ brokers: testKafkaBrokers(), clientId: uniqueName('test'), topicPrefix: `${uniqueName('t')}.`, partitions: 3, logger: testLogger() })
      : new SqlTransport({ url: testDatabaseUrl(), schema: uniqueName('bus'), logger: testLogger(), pollIntervalMs: 100 });
  await t.start();
  await t.ensureTopics(ALL_TOPICS);
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
