import { describeConfig } from '@cmc/config';
import { eventsConfigSpec, SqlTransport, type EventsTables } from '@cmc/events';
import { buildGateway, gatewayConfigSpec } from '@cmc/gateway';
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

/**
 * The OpenAPI document of each service, from its route schemas. Each service is set up (migrations and its
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
  return docs;
}
