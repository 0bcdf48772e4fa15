import type { FastifyInstance } from 'fastify';

export interface Closeable {
  name: string;
  close: () => Promise<void>;
}

/**
 * Closes resources in the order given once Fastify has stopped taking requests and finished the ones in
 * flight (onClose runs after the HTTP server closed): consumers, then the relay, then the transport, then
 * the database. A failure in one does not stop the others from closing.
 */
export function closeInOrder(app: FastifyInstance, resources: Closeable[]): void {
  app.addHook('onClose', async () => {
    for (const r of resources) {
      try {
        await r.close();
      } catch (err) {
        app.log.error({ err, resource: r.name }, 'error while closing');
      }
    }
  });
}

/** Wires SIGTERM and SIGINT to a graceful close; a second signal exits at once. */
export function closeOnSignals(close: () => Promise<void>, log: { info: (msg: string) => void; error: (o: object, msg: string) => void }): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) process.exit(1);
    closing = true;
    log.info(`received ${signal}; shutting down`);
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
}
