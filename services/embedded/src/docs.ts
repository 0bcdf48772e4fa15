import { describeConfig } from '@cmc/config';
import { eventsConfigSpec, SqlTransport, type EventsTables } from '@cmc/events';
import { buildGateway, gatewayConfigSpec } from '@cmc/gateway';
import { buildServiceApp, commonConfigSpec, describeServiceConfig, loadServiceConfig } from '@cmc/service';
import { createDatabase } from '@cmc/db';
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
 * The OpenAPI document of each service, from its route schemas. Builds each app without connecting to
 * anything (the database pool and transport are created but never used).
 */
export async function openApiDocuments(): Promise<Record<string, unknown>> {
  const docs: Record<string, unknown> = {};
  for (const def of SERVICES) {
    const config = loadServiceConfig(def, {});
    const database = createDatabase<EventsTables>({ url: config.databaseUrl, schema: config.schema });
    const transport = new SqlTransport({ url: config.databaseUrl, logger: createLogger({ service: 'docs', level: 'silent' }) });
    const app = await buildServiceApp(def, { config, database, transport, logger: createLogger({ service: 'docs', level: 'silent' }) }, { logger: false, jwks: { keys: [] } });
    await app.ready();
    docs[def.name] = app.swagger();
    await app.close();
    await transport.close();
    await database.close();
  }
  const gateway = await buildGateway({ upstreams: {}, logger: false });
  await gateway.ready();
  docs.gateway = gateway.swagger();
  await gateway.close();
  return docs;
}
