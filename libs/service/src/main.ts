import { closeOnSignals } from '@cmc/http';
import { loadServiceConfig } from './config';
import { startService, type ServiceDefinition } from './service';
import type { EventsTables } from '@cmc/events';

/** Runs one service as its own process: configuration from the environment, listen, close on SIGTERM. */
export function runServiceMain<DB extends EventsTables>(def: ServiceDefinition<DB>): void {
  (async () => {
    const config = loadServiceConfig(def);
    // Listening before the consumers join: after a crash Kafka holds the old member's partitions until its
    // session times out (30 s), and a dispatch lookup must not wait for that (the fault suite found it).
    const svc = await startService(def, config, { deferConsumers: true });
    const url = await svc.listen();
    svc.logger.info(`${def.name} service listening at ${url}`);
    closeOnSignals(() => svc.close(), svc.logger);
    await svc.startConsumers();
    if (svc.consumers.length > 0) svc.logger.info(`${def.name} service: consumers joined`);
  })().catch((err: unknown) => {
    process.stderr.write(`${def.name} service failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
