import { auditService } from '@cmc/audit-service';
import { carePlanService } from '@cmc/care-plan-service';
import { int, loadConfig, port, str } from '@cmc/config';
import { consentService } from '@cmc/consent-service';
import { identityService } from '@cmc/identity-service';
import { notificationService } from '@cmc/notification-service';
import { startEmbeddedPostgres, type EmbeddedPg } from '@cmc/embedded-pg';
import { buildGateway, gatewayConfigSpec, rateLimitsOf } from '@cmc/gateway';
import { loadServiceConfig, startService, type RunningService, type ServiceDefinition, type StartOptions } from '@cmc/service';
import type { EventsTables } from '@cmc/events';
import type { FastifyInstance } from 'fastify';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

/** Every service that exists, in start order (producers before the consumers of their events is not needed:
 * consumers read from the beginning of the log). */
export const SERVICES = [identityService, consentService, carePlanService, auditService, notificationService] as unknown as ServiceDefinition<EventsTables>[];

export const embeddedConfigSpec = {
  CMC_DATA_DIR: str({ doc: 'Folder of the embedded PostgreSQL data (embedded setup).', default: '.data/embedded' }),
  EMBEDDED_PG_PORT: port({ doc: 'Port of the embedded PostgreSQL (0 picks a free one).', default: 54329 }),
  GATEWAY_PORT: port({ doc: 'Port of the gateway: the one base URL clients use.', default: 8080 }),
  GATEWAY_TRUST_PROXY: str({ doc: 'Proxies in front of the gateway whose X-Forwarded-For is believed (addresses or CIDRs); empty: none.', default: '' }),
  GATEWAY_TIMEOUT_MS: int({ doc: 'How long the gateway waits for a service before answering 504.', default: 30_000, min: 100, max: 300_000 }),
  GATEWAY_RATE_LIMIT_PER_CLIENT: gatewayConfigSpec.GATEWAY_RATE_LIMIT_PER_CLIENT,
  GATEWAY_RATE_LIMIT_AUTH: gatewayConfigSpec.GATEWAY_RATE_LIMIT_AUTH,
} as const;

export interface Platform {
  gatewayUrl: string;
  services: { name: string; url: string; running: RunningService<EventsTables> }[];
  gateway: FastifyInstance;
  databaseUrl: string;
  stop: () => Promise<void>;
}

export interface PlatformOptions {
  env?: Record<string, string | undefined>;
  /** Passed to every service (tests: logger false, trusted keys). */
  serviceOptions?: StartOptions;
  /** Service ports: 0 gives each a free port (tests). */
  ephemeralPorts?: boolean;
  onLog?: (line: string) => void;
}

/**
 * Starts the platform in this process: PostgreSQL (the embedded one unless DATABASE_URL is set), every
 * service, and the gateway in front. Events go over the SQL transport unless KAFKA_BROKERS is set.
 */
export async function startPlatform(opts: PlatformOptions = {}): Promise<Platform> {
  const env = { ...(opts.env ?? process.env) };
  const own = loadConfig(embeddedConfigSpec, env);
  const log = opts.onLog ?? (() => undefined);
  let pg: EmbeddedPg | undefined;
  if (!env.DATABASE_URL) {
    const dataDir = path.resolve(own.CMC_DATA_DIR, 'postgres');
    log(`starting embedded PostgreSQL (data in ${dataDir})`);
    pg = await startEmbeddedPostgres({ dataDir, port: own.EMBEDDED_PG_PORT, database: 'cmc' });
    env.DATABASE_URL = pg.url;
  }
  if (!env.EVENT_TRANSPORT) env.EVENT_TRANSPORT = env.KAFKA_BROKERS ? 'kafka' : 'sql';
  // The audit log's checkpoint key outlives a restart (earlier checkpoints keep verifying); the audit service
  // makes the file at first start. Beside the data, never in the database it signs for.
  if (!env.AUDIT_SIGNING_KEY && !env.AUDIT_SIGNING_KEY_FILE) {
    mkdirSync(path.resolve(own.CMC_DATA_DIR), { recursive: true });
    env.AUDIT_SIGNING_KEY_FILE = path.resolve(own.CMC_DATA_DIR, 'audit-signing-key.pem');
  }
  // Likewise the key that seals hook secrets in the notification schema (decision 0016): made at first start,
  // kept beside the data, so that subscriptions still work after a restart.
  if (!env.NOTIFY_SECRET_KEY && !env.NOTIFY_SECRET_KEY_FILE) {
    mkdirSync(path.resolve(own.CMC_DATA_DIR), { recursive: true });
    env.NOTIFY_SECRET_KEY_FILE = path.resolve(own.CMC_DATA_DIR, 'notify-secret-key');
  }

  const started: Platform['services'] = [];
  const stopAll = async (): Promise<void> => {
    for (const s of [...started].reverse()) await s.running.close().catch(() => undefined);
    await pg?.stop();
  };
  try {
    for (const def of SERVICES) {
      const config = loadServiceConfig(def, env);
      const running = await startService(def, opts.ephemeralPorts ? { ...config, port: 0 } : config, opts.serviceOptions);
      const url = await running.listen();
      started.push({ name: def.name, url, running });
      log(`${def.name} service listening at ${url}`);
      // The other services take identity's keys straight from it, unless told otherwise.
      if (def.name === 'identity' && !env.AUTH_JWKS_URL) env.AUTH_JWKS_URL = `${url}/.well-known/jwks.json`;
    }
    const byName = Object.fromEntries(started.map((s) => [s.name, s.url]));
    const gateway = await buildGateway({
      upstreams: { identity: byName.identity, consent: byName.consent, 'care-plan': byName['care-plan'], audit: byName.audit, notification: byName.notification },
      timeoutMs: own.GATEWAY_TIMEOUT_MS,
      rateLimits: rateLimitsOf(own),
      trustProxy: own.GATEWAY_TRUST_PROXY,
      logger: opts.serviceOptions?.logger === false ? false : { level: env.LOG_LEVEL ?? 'info' },
    });
    const gatewayUrl = await gateway.listen({ host: env.HOST ?? '127.0.0.1', port: opts.ephemeralPorts ? 0 : own.GATEWAY_PORT });
    log(`gateway listening at ${gatewayUrl}`);
    return {
      gatewayUrl,
      services: started,
      gateway,
      databaseUrl: env.DATABASE_URL,
      stop: async () => {
        await gateway.close();
        await stopAll();
      },
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
