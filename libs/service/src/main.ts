import { closeOnSignals } from '@cmc/http';
import { loadServiceConfig } from './config';
import { startService, type ServiceDefinition } from './service';
import type { EventsTables } from '@cmc/events';

/** Runs one service as its own process: configuration from the environment, listen, close on SIGTERM. */
export function runServiceMain<DB extends EventsTables>(def: ServiceDefinition<DB>): void {
  (async () => {
    const config = loadServiceConfig(def);
    const svc = await startService(def, config);
    const url = await svc.listen();
    svc.logger.info(`${def.name} service listening at ${url}`);
    closeOnSignals(() => svc.close(), svc.logger);
  })().catch((err: unknown) => {
    process.stderr.write(`${def.name} service failed to start: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
