import { describeConfig } from '@cmc/config';
import { eventsConfigSpec, SqlTransport, type EventsTables } from '@cmc/events';
import { buildGateway, GATEWAY_VERSION, gatewayConfigSpec, platformOpenApi, type OpenApiSource, type Upstream } from '@cmc/gateway';
import { buildServiceApp, commonConfigSpec, describeServiceConfig, loadServiceConfig } from '@cmc/service';
import { createDatabase, migrateToLatest, type Kysely } from '@cmc/db';
import { createLogger } from '@cmc/logging';
import { embeddedConfigSpec, SERVICES } from './platform';

/** The configuration reference (docs/configuration.md), made from the settings the code reads. */
export function configurationReference(): string {
  const parts = [
    '# Configuration reference',
    '',
    'Every setting is an environment variable, read and checked at start-up: a service refuses to start on a',
    'bad value and names every bad key. This page is generated from the code (`pnpm docs:generate`); a test fails when',
    'it is out of date.',
    '',
    '## Every service',
    '',
    describeConfig(Object.fromEntries(Object.entries(commonConfigSpec).filter(([k]) => !(k in eventsConfigSpec)))),
    '',
    '## Events (every service)',
    '',
    describeConfig(eventsConfigSpec),
    '',
    ...SERVICES.flatMap((def) => [`## ${def.name} service`, '', describeServiceConfig(def), '']),
    '## Gateway (run alone)',
    '',
    describeConfig(gatewayConfigSpec),
    '',
    '## Embedded setup (`pnpm start`)',
    '',
    describeConfig(embeddedConfigSpec),
    '',
    'In the embedded setup `DATABASE_URL` unset means "start the embedded PostgreSQL", and `EVENT_TRANSPORT`',
    'defaults to `sql` unless `KAFKA_BROKERS` is set.',
    '',
  ];
  return parts.join('\n');
}

/** Where the platform's merged document says the gateway is: its default address (GATEWAY_PORT). */
const GATEWAY_DEFAULT_URL = 'http://127.0.0.1:8080';

/**
 * The OpenAPI document of each service, from its route schemas, the gateway's own, and `platform`: the
 * merged document of everything clients reach through the gateway (what it serves at /docs/openapi.json,
 * with the request's address as the server). A route the gateway would not send to the service that
 * declares it, or one declared by two services, fails here. Each service is set up (migrations and its
 * setup step, in a schema of its own) in the given database, since some routes are built from state the
 * setup makes; nothing listens and no event is sent.
 */
export async function openApiDocuments(databaseUrl: string, schemaSuffix: string): Promise<Record<string, unknown>> {
  const docs: Record<string, unknown> = {};
  const logger = createLogger({ service: 'docs', level: 'silent' });
  for (const def of SERVICES) {
    const config = loadServiceConfig(def, { DATABASE_URL: databaseUrl, [`${def.envPrefix}_DB_SCHEMA`]: `${def.defaultSchema}_${schemaSuffix}` });
    const database = createDatabase<EventsTables>({ url: config.databaseUrl, schema: config.schema });
    const transport = new SqlTransport({ url: config.databaseUrl, logger });
    try {
      await migrateToLatest(database.db as Kysely<unknown>, config.schema, def.migrations);
      const app = await buildServiceApp(def, { config, database, transport, logger }, { logger: false, jwks: { keys: [] } });
      await app.ready();
      docs[def.name] = app.swagger();
      await app.close();
    } finally {
      await transport.close();
      await database.close();
    }
  }
  const gateway = await buildGateway({ upstreams: {}, logger: false });
  await gateway.ready();
  docs.gateway = gateway.swagger();
  await gateway.close();
  const services = SERVICES.map((def) => ({ name: def.name as Upstream, document: docs[def.name] as OpenApiSource }));
  const { document, unrouted } = platformOpenApi(docs.gateway as OpenApiSource, services, { serverUrl: GATEWAY_DEFAULT_URL, version: GATEWAY_VERSION });
  if (unrouted.length > 0) throw new Error(`routes the gateway does not send to the service that serves them (services/gateway/src/routing.ts): ${unrouted.join(', ')}`);
  docs.platform = document;
  return docs;
}
