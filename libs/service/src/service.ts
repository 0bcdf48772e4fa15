import { authPlugin, type JwksSource } from '@cmc/auth';
import { createDatabase, databaseIsReady, migrateToLatest, type Database, type Migration } from '@cmc/db';
import { EventConsumer, OutboxRelay, startTransport, type BatchHandler, type EventsTables, type Handlers, type Transport } from '@cmc/events';
import { closeInOrder, createApp, type Closeable } from '@cmc/http';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import { createLogger, type Logger } from '@cmc/logging';
import type { ServiceConfig, ServiceIdentity } from './config';
import { recordRefusal } from './access';

/** What a service hands its routes and consumers. */
export interface ServiceContext<DB extends EventsTables> {
  config: ServiceConfig;
  database: Database<DB>;
  transport: Transport;
  logger: Logger;
  /** What the service's setup made (e.g. identity's key store), for its routes. */
  state?: unknown;
}

export interface ConsumerDefinition<DB extends EventsTables> {
  /** Consumer group name; also the key under which processed event ids are kept. */
  name: string;
  topics: readonly string[];
  /** Per event type, one transaction per message; not used when `batchHandler` is given. */
  handlers?: Handlers<DB>;
  /** Every valid event, several per transaction (see ConsumerOptions.batchHandler). */
  batchHandler?: BatchHandler<DB>;
}

export interface ServiceDefinition<DB extends EventsTables> extends ServiceIdentity {
  description: string;
  migrations: Record<string, Migration>;
  /**
   * The service's consumers; a function when their handlers need the database schema (to publish through the
   * outbox), or the configuration and logger (e.g. to send email from a handler).
   */
  consumers?: ConsumerDefinition<DB>[] | ((schema: string, ctx?: { config: ServiceConfig; logger: Logger }) => ConsumerDefinition<DB>[]);
  /**
   * Runs once at start, after migrations and before the app is built. It may make state for the routes and
   * name the keys tokens are checked against (identity trusts its own key store rather than a URL).
   */
  setup?: (ctx: ServiceContext<DB>) => Promise<{ state?: unknown; jwks?: JwksSource }>;
  routes?: (app: FastifyInstance, ctx: ServiceContext<DB>) => Promise<void>;
  /**
   * Work the service does on its own besides consuming (e.g. the audit log's checkpointer). Started by
   * startService after setup (never when the app is only built to print its documents), stopped before the
   * consumers.
   */
  background?: (ctx: ServiceContext<DB>) => Closeable[];
}

export interface StartOptions {
  /** Use this transport instead of building one from the configuration (tests). */
  transport?: Transport;
  /** Use these keys instead of fetching AUTH_JWKS_URL (tests, and the embedded setup before identity exists). */
  jwks?: JwksSource;
  /** false for no logs. */
  logger?: false;
  /** Relay tuning and fault injection (tests). */
  relay?: { afterPublish?: (eventIds: string[]) => Promise<void>; pollIntervalMs?: number };
  consumer?: { maxAttempts?: number; backoffBaseMs?: number };
  /**
   * Build the consumers but leave joining their groups to `startConsumers` (a service's own process: it listens
   * first, so that a restarted service answers while Kafka still holds its old member's partitions, up to the
   * session timeout, 30 s).
   */
  deferConsumers?: boolean;
}

export interface RunningService<DB extends EventsTables> extends ServiceContext<DB> {
  app: FastifyInstance;
  relay: OutboxRelay;
  consumers: EventConsumer<DB>[];
  /** Joins the consumers' groups (already done unless started with `deferConsumers`). */
  startConsumers: () => Promise<void>;
  /** Starts listening on the configured host and port; resolves to the base URL. */
  listen: () => Promise<string>;
  /** HTTP first, then consumers, relay, transport (when we built it) and database. */
  close: () => Promise<void>;
}

/**
 * The service's Fastify app: health (database and transport), auth, and the service's routes. Connects to
 * nothing itself, so it can also be built to print the OpenAPI document.
 */
export async function buildServiceApp<DB extends EventsTables>(
  def: ServiceDefinition<DB>,
  ctx: ServiceContext<DB>,
  opts: { jwks?: JwksSource; logger?: Logger | false } = {},
): Promise<FastifyInstance> {
  const { config, database, transport } = ctx;
  const prepared = def.setup ? await def.setup(ctx) : {};
  if (prepared.state !== undefined) ctx.state = prepared.state;
  const app = await createApp({
    service: def.name,
    description: def.description,
    bodyLimit: config.bodyLimit,
    trustProxy: config.trustProxy,
    logger: opts.logger === false ? false : (opts.logger ?? { level: config.logLevel }),
    readiness: [
      { name: 'database', check: () => databaseIsReady(database.db as Kysely<unknown>) },
      { name: 'events', check: () => transport.isReady() },
    ],
  });
  await app.register(authPlugin, {
    issuer: config.auth.issuer,
    audience: config.auth.audience,
    jwks: prepared.jwks ?? opts.jwks ?? { url: config.auth.jwksUrl },
    // A provider is the service's own key store (cheap to ask, and it bounds its own reloads).
    ...(prepared.jwks && 'provider' in prepared.jwks ? { jwksCooldownMs: 0 } : {}),
    onRefused: recordRefusal(database.db, database.schema, def.name),
  });
  if (def.routes) await def.routes(app, ctx);
  return app;
}

/**
 * Starts a service: database and migrations, transport, outbox relay, consumers, and the Fastify app with
 * auth, health and routes. Does not listen until asked.
 */
export async function startService<DB extends EventsTables>(
  def: ServiceDefinition<DB>,
  config: ServiceConfig,
  opts: StartOptions = {},
): Promise<RunningService<DB>> {
  const logger: Logger = createLogger({ service: def.name, level: opts.logger === false ? 'silent' : config.logLevel });
  const database = createDatabase<DB>({ url: config.databaseUrl, schema: config.schema, poolMax: config.poolMax, applicationName: `cmc-${def.name}` });
  // Each resource is listed as it starts; closing goes in reverse: consumers, relay, transport, database.
  const started: Closeable[] = [{ name: 'database', close: () => database.close() }];
  const closeStarted = async (): Promise<void> => {
    for (const r of [...started].reverse()) await r.close().catch(() => undefined);
  };
  try {
    await migrateToLatest(database.db as Kysely<unknown>, config.schema, def.migrations);
    const transport =
      opts.transport ?? (await startTransport(config.events, { clientId: `cmc-${def.name}`, databaseUrl: config.databaseUrl, logger }));
    if (!opts.transport) started.push({ name: 'transport', close: () => transport.close() });

    const relay = new OutboxRelay({
      database: database as unknown as Database<EventsTables>,
      transport,
      logger: logger.child({ component: 'relay' }),
      ...(opts.relay?.afterPublish ? { afterPublish: opts.relay.afterPublish } : {}),
      ...(opts.relay?.pollIntervalMs ? { pollIntervalMs: opts.relay.pollIntervalMs } : {}),
    });
    relay.start();
    started.push({ name: 'relay', close: () => relay.stop() });

    const consumers: EventConsumer<DB>[] = [];
    const definitions = typeof def.consumers === 'function' ? def.consumers(config.schema, { config, logger: logger.child({ component: 'consumer' }) }) : (def.consumers ?? []);
    for (const c of definitions) {
      const consumer = new EventConsumer<DB>({
        name: c.name,
        database,
        transport,
        topics: c.topics,
        handlers: c.handlers ?? {},
        ...(c.batchHandler ? { batchHandler: c.batchHandler } : {}),
        logger: logger.child({ component: 'consumer', consumer: c.name }),
        ...opts.consumer,
      });
      if (!opts.deferConsumers) await consumer.start();
      consumers.push(consumer);
      started.push({ name: `consumer ${c.name}`, close: () => consumer.stop() });
    }

    const ctx: ServiceContext<DB> = { config, database, transport, logger };
    const app = await buildServiceApp(def, ctx, { ...opts, ...(opts.logger === false ? {} : { logger }) });
    if (def.background) started.push(...def.background(ctx));
    closeInOrder(app, [...started].reverse());
    await app.ready();

    return {
      ...ctx,
      app,
      relay,
      consumers,
      startConsumers: async () => {
        for (const c of consumers) await c.start();
      },
      listen: async () => app.listen({ host: config.host, port: config.port }),
      close: () => app.close(),
    };
  } catch (e) {
    await closeStarted();
    throw e;
  }
}
