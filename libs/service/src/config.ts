import { authConfigSpec } from '@cmc/auth';
import { int, loadConfig, oneOf, optionalUrl, port, str, url, describeConfig, type Spec } from '@cmc/config';
import { eventsConfigSpec, type EventsConfig } from '@cmc/events';

/** Settings every service reads, whatever it is. */
export const commonConfigSpec = {
  HOST: str({ doc: 'Address the HTTP servers listen on.', default: '127.0.0.1' }),
  DATABASE_URL: url({
    doc: 'PostgreSQL for every service (each keeps its own schema); a service may override it with <SERVICE>_DATABASE_URL.',
    default: 'postgres://postgres@127.0.0.1:5432/cmc',
    protocols: ['postgres', 'postgresql'],
    secret: true,
  }),
  LOG_LEVEL: oneOf(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, { doc: 'pino log level.', default: 'info' }),
  BODY_LIMIT_BYTES: int({ doc: 'Largest request body accepted, in bytes.', default: 1024 * 1024, min: 1024, max: 50 * 1024 * 1024 }),
  TRUST_PROXY: str({ doc: 'Proxies whose X-Forwarded-* headers are believed: `loopback`, or comma-separated addresses and CIDRs.', default: 'loopback' }),
  DB_POOL_MAX: int({ doc: 'Largest number of database connections per service.', default: 10, min: 1, max: 200 }),
  ...eventsConfigSpec,
  ...authConfigSpec,
} as const;

export interface ServiceIdentity {
  /** Lower-case service name: `consent`, `care-plan`... */
  name: string;
  /** Prefix of the service's own variables: `CONSENT` gives CONSENT_PORT, CONSENT_DB_SCHEMA, CONSENT_DATABASE_URL. */
  envPrefix: string;
  defaultPort: number;
  defaultSchema: string;
  /** Settings of this service alone, beyond the common ones (read, checked and documented the same way). */
  configSpec?: Spec;
}

export function serviceConfigSpec(id: ServiceIdentity): Spec {
  return {
    ...id.configSpec,
    [`${id.envPrefix}_PORT`]: port({ doc: `Port of the ${id.name} service (0 picks a free one).`, default: id.defaultPort }),
    [`${id.envPrefix}_DB_SCHEMA`]: str({ doc: `Database schema of the ${id.name} service.`, default: id.defaultSchema, pattern: /^[a-z_][a-z0-9_]{0,62}$/ }),
    [`${id.envPrefix}_DATABASE_URL`]: optionalUrl({ doc: `PostgreSQL of the ${id.name} service, when not DATABASE_URL.`, protocols: ['postgres', 'postgresql'], secret: true }),
  };
}

export interface ServiceConfig {
  host: string;
  port: number;
  databaseUrl: string;
  schema: string;
  logLevel: string;
  bodyLimit: number;
  poolMax: number;
  trustProxy: string;
  events: EventsConfig;
  auth: { jwksUrl: string; issuer: string; audience: string };
  /** The service's own settings (its configSpec), by variable name. */
  own: Record<string, unknown>;
}

/** Reads a service's configuration; throws ConfigError naming every bad key, so the service will not start. */
export function loadServiceConfig(id: ServiceIdentity, env: Record<string, string | undefined> = process.env): ServiceConfig {
  const common = loadConfig(commonConfigSpec, env);
  const own = loadConfig(serviceConfigSpec(id), env) as Record<string, unknown>;
  return {
    host: common.HOST,
    port: own[`${id.envPrefix}_PORT`] as number,
    databaseUrl: (own[`${id.envPrefix}_DATABASE_URL`] as string | undefined) ?? common.DATABASE_URL,
    schema: own[`${id.envPrefix}_DB_SCHEMA`] as string,
    logLevel: common.LOG_LEVEL,
    bodyLimit: common.BODY_LIMIT_BYTES,
    poolMax: common.DB_POOL_MAX,
    trustProxy: common.TRUST_PROXY,
    events: {
      EVENT_TRANSPORT: common.EVENT_TRANSPORT,
      KAFKA_BROKERS: common.KAFKA_BROKERS,
      KAFKA_TOPIC_PREFIX: common.KAFKA_TOPIC_PREFIX,
      KAFKA_REPLICATION_FACTOR: common.KAFKA_REPLICATION_FACTOR,
      BUS_DATABASE_URL: common.BUS_DATABASE_URL,
      BUS_SCHEMA: common.BUS_SCHEMA,
    },
    auth: { jwksUrl: common.AUTH_JWKS_URL, issuer: common.AUTH_ISSUER, audience: common.AUTH_AUDIENCE },
    own,
  };
}

/** The configuration reference of a service, as Markdown. */
export function describeServiceConfig(id: ServiceIdentity): string {
  return describeConfig(serviceConfigSpec(id));
}
