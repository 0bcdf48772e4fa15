import { carePlanService, type CarePlanDB } from '@cmc/care-plan-service';
import { SqlTransport } from '@cmc/events';
import { createLogger } from '@cmc/logging';
import { loadServiceConfig, startService, type RunningService } from '@cmc/service';
import type { TestIssuer } from '@cmc/test-support';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** The node flags the services are started with (services/*\/package.json "start"), unless BENCH_SERVER_NODE_ARGS says otherwise. */
export const SERVICE_NODE_ARGS = ['--disable-warning=TimeoutNegativeWarning', '--max-semi-space-size=16'];

export interface ServerProcess {
  server: ChildProcessByStdio<Writable, Readable, null>;
  /** Resolves when the process has exited. */
  exited: Promise<void>;
  /** The next line the server prints; rejects if it exits first. */
  nextLine: () => Promise<string>;
  /** Sends a command line and parses the JSON line it answers. */
  ask: <T>(command: string) => Promise<T>;
  /** Asks the server to close (it drops its schemas), and kills it if it has not exited in 15 s. */
  stop: () => Promise<void>;
}

/**
 * Runs a benchmark's server side (`script` in this folder) in a process of its own, so that the load generator
 * does not share its event loop; it talks in lines of JSON over stdout and takes commands on stdin.
 */
export function spawnServer(script: string, label: string): ServerProcess {
  const nodeArgs = process.env.BENCH_SERVER_NODE_ARGS !== undefined ? process.env.BENCH_SERVER_NODE_ARGS.split(' ').filter((a) => a.length > 0) : SERVICE_NODE_ARGS;
  const server = spawn(process.execPath, [...nodeArgs, path.join(__dirname, script)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  const lines = createInterface({ input: server.stdout });
  const nextLine = () =>
    new Promise<string>((resolve, reject) => {
      const onExit = () => reject(new Error(`the ${label} exited`));
      server.once('exit', onExit);
      lines.once('line', (l) => {
        server.off('exit', onExit);
        resolve(l);
      });
    });
  const ask = async <T>(command: string): Promise<T> => {
    const answer = nextLine();
    server.stdin.write(`${command}\n`);
    return JSON.parse(await answer) as T;
  };
  const stop = async () => {
    if (server.exitCode !== null) return;
    server.stdin.write('close\n');
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 15_000).unref());
    await Promise.race([exited, timeout]);
    if (server.exitCode === null) server.kill();
  };
  return { server, exited, nextLine, ask, stop };
}

/** The care-plan service as the benchmarks' servers run it: the run's own schema, the SQL transport, silent, trusting `issuer`. */
export async function startBenchCarePlan(databaseUrl: string, schema: string, busSchema: string, issuer: TestIssuer): Promise<{ svc: RunningService<CarePlanDB>; transport: SqlTransport; poolMax: number }> {
  const logger = createLogger({ service: 'bench', level: 'silent' });
  const transport = new SqlTransport({ url: databaseUrl, schema: busSchema, logger, pollIntervalMs: 100 });
  await transport.start();
  const config = loadServiceConfig(carePlanService, {
    DATABASE_URL: databaseUrl,
    CAREPLAN_DB_SCHEMA: schema,
    CAREPLAN_PORT: '0',
    AUTH_ISSUER: issuer.issuer,
    AUTH_AUDIENCE: issuer.audience,
    LOG_LEVEL: 'silent',
    ...(process.env.DB_POOL_MAX ? { DB_POOL_MAX: process.env.DB_POOL_MAX } : {}),
  });
  try {
    return { svc: await startService(carePlanService, config, { logger: false, transport, jwks: issuer.jwks }), transport, poolMax: config.poolMax };
  } catch (e) {
    await transport.close();
    throw e;
  }
}
