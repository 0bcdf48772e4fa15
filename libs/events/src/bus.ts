import { ALL_TOPICS } from '@cmc/contracts';
import { list, oneOf, optionalStr, optionalUrl, int, str, type ConfigOf } from '@cmc/config';
import type { Logger } from '@cmc/logging';
import { KafkaTransport } from './kafka-transport';
import { SqlTransport } from './sql-transport';
import type { Transport } from './transport';

/** The settings of the event transport, shared by every service. */
export const eventsConfigSpec = {
  EVENT_TRANSPORT: oneOf(['kafka', 'sql'] as const, {
    doc: 'How events travel: `kafka` (distributed setup) or `sql` (PostgreSQL tables; the embedded setup).',
    default: 'kafka',
  }),
  KAFKA_BROKERS: list({
    doc: 'Kafka bootstrap servers, comma-separated host:port (with EVENT_TRANSPORT=kafka).',
    default: ['127.0.0.1:9092'],
    item: /^[^\s:,]+:\d+$/,
  }),
  KAFKA_TOPIC_PREFIX: optionalStr({ doc: 'Prefix for every topic and consumer group name, to share a broker between installations.' }),
  KAFKA_REPLICATION_FACTOR: int({ doc: 'Replication factor of topics the services create at start.', default: 1, min: 1, max: 5 }),
  BUS_DATABASE_URL: optionalUrl({
    doc: 'PostgreSQL of the SQL transport (with EVENT_TRANSPORT=sql); defaults to the service database.',
    protocols: ['postgres', 'postgresql'],
    secret: true,
  }),
  BUS_SCHEMA: str({ doc: 'Schema of the SQL transport\'s tables.', default: 'bus', pattern: /^[a-z_][a-z0-9_]{0,62}$/ }),
} as const;

export type EventsConfig = ConfigOf<typeof eventsConfigSpec>;

/** Builds and starts the configured transport, creating every platform topic on Kafka if missing. */
export async function startTransport(
  config: EventsConfig,
  opts: { clientId: string; databaseUrl: string; logger: Logger },
): Promise<Transport> {
  const transport: Transport =
    config.EVENT_TRANSPORT === 'kafka'
      ? new KafkaTransport({
          brokers: config.KAFKA_BROKERS,
          clientId: opts.clientId,
          replicationFactor: config.KAFKA_REPLICATION_FACTOR,
          logger: opts.logger,
          ...(config.KAFKA_TOPIC_PREFIX ? { topicPrefix: config.KAFKA_TOPIC_PREFIX } : {}),
        })
      : new SqlTransport({ url: config.BUS_DATABASE_URL ?? opts.databaseUrl, schema: config.BUS_SCHEMA, logger: opts.logger });
  await transport.start();
  await transport.ensureTopics(ALL_TOPICS);
  return transport;
}
