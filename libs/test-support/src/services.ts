import type { EventsTables, Transport } from '@cmc/events';
import { loadServiceConfig, startService, type RunningService, type ServiceDefinition, type StartOptions } from '@cmc/service';
import { testDatabaseUrl, uniqueName, type TestIssuer } from './index';

/**
 * Starts a service for a test: the run's database, a schema of its own (so parallel files never share rows),
 * the given transport, the test issuer's keys, no logs.
 */
export async function startTestService<DB extends EventsTables>(
  def: ServiceDefinition<DB>,
  opts: { transport: Transport; issuer: TestIssuer; env?: Record<string, string>; start?: StartOptions },
): Promise<RunningService<DB>> {
  const config = loadServiceConfig(def, {
    DATABASE_URL: testDatabaseUrl(),
    [`${def.envPrefix}_DB_SCHEMA`]: uniqueName(def.defaultSchema),
    [`${def.envPrefix}_PORT`]: '0',
    AUTH_ISSUER: opts.issuer.issuer,
    AUTH_AUDIENCE: opts.issuer.audience,
    LOG_LEVEL: 'silent',
    ...opts.env,
  });
  return startService(def, config, {
    logger: false,
    transport: opts.transport,
    jwks: opts.issuer.jwks,
    relay: { pollIntervalMs: 100 },
    consumer: { maxAttempts: 3, backoffBaseMs: 20 },
    ...opts.start,
  });
}
