/** Shared by the notification tests: events as the other services send them, a real SMTP server, a real hook receiver. */
import { makeEvent, topicOf, type CloudEvent, type EventType, type NewEvent, type PlanEventData } from '@cmc/contracts';
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { sql } from 'kysely';
import { randomNhsNumber } from '@cmc/test-support';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import type { NotificationDB } from '../src';

/** Sends events as their producers' relays would (the key is the patient's NHS number, else the aggregate). */
export async function send(transport: Transport, ...events: CloudEvent[]): Promise<void> {
  await transport.publish(events.map((e) => ({ topic: topicOf(e.type), key: e.partitionkey, value: JSON.stringify(e), headers: {} })));
}

export const event = <T extends EventType>(e: NewEvent<T>): CloudEvent<T> => makeEvent(e);

let odsCounter = 0;
/** An ODS code no other test uses. */
export function uniqueOds(): string {
  odsCounter++;
  return `T${randomUUID().replace(/-/g, '').slice(0, 5).toUpperCase()}${odsCounter % 10}`;
}

export interface TestUser {
  userId: string;
  role: 'clinician' | 'administrator' | 'urgent-care' | 'service-team' | 'patient';
  organisation: string;
  email: string;
}

export function aUser(role: TestUser['role'], organisation: string): TestUser {
  const userId = randomUUID();
  return { userId, role, organisation, email: `${role}-${userId.slice(0, 8)}@${organisation.toLowerCase()}.test` };
}

export const userCreated = (u: TestUser) =>
  event({ type: 'cmc.identity.user-created.v1', source: '/cmc/identity', key: u.userId, data: { userId: u.userId, role: u.role, organisation: u.organisation, email: u.email, createdBy: 'test' } });

export const userDeactivated = (u: TestUser) => event({ type: 'cmc.identity.user-deactivated.v1', source: '/cmc/identity', key: u.userId, data: { userId: u.userId, by: 'test' } });

export type PlanEventType = Extract<EventType, `cmc.careplan.${string}`>;

/** A plan's story: each call makes its next event (the version goes up where the care-plan service's would). */
export class APlan {
  readonly planId = randomUUID();
  readonly nhsNumber = randomNhsNumber();
  version = 1;
  constructor(
    readonly organisation: string,
    readonly author: string,
    readonly gpPractice?: string,
    public reviewDate?: string,
  ) {}

  event(type: PlanEventType, data: Partial<PlanEventData> = {}): CloudEvent {
    const state: PlanEventData['state'] =
      data.state ??
      ({ 'cmc.careplan.created.v1': 'draft', 'cmc.careplan.submitted.v1': 'awaiting-approval', 'cmc.careplan.withdrawn.v1': 'withdrawn', 'cmc.careplan.death-recorded.v1': 'deceased' } as Record<string, PlanEventData['state']>)[type] ??
      'published';
    if (type === 'cmc.careplan.published.v1' || type === 'cmc.careplan.updated.v1') this.version++;
    return event({
      type,
      source: '/cmc/care-plan',
      key: this.nhsNumber,
      data: {
        planId: this.planId,
        versionId: String(this.version),
        nhsNumber: this.nhsNumber,
        state,
        organisation: this.organisation,
        changedBy: this.author,
        changedAt: new Date().toISOString(),
        ...(this.gpPractice ? { gpPractice: this.gpPractice } : {}),
        ...(this.reviewDate ? { reviewDate: this.reviewDate } : {}),
        ...data,
      },
    });
  }
}

export interface ReceivedMail {
  to: string[];
  raw: string;
}

/** A real SMTP server on a free port that keeps every message it accepts. `refuse` makes it answer 451 for a while. */
export async function startSmtp(): Promise<{ url: string; mails: ReceivedMail[]; refuse: { on: boolean }; close: () => Promise<void> }> {
  const mails: ReceivedMail[] = [];
  const refuse = { on: false };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onRcptTo(_address, _session, callback) {
      if (refuse.on) {
        const err = new Error('try again later') as Error & { responseCode: number };
        err.responseCode = 451;
        callback(err);
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks).toString('utf8') });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.server.address() as AddressInfo;
  return { url: `smtp://127.0.0.1:${port}`, mails, refuse, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

export interface ReceivedHook {
  path: string;
  headers: IncomingMessage['headers'];
  body: { resourceType: string; type: string; entry: { resource: { resourceType: string; parameter: { name: string; valueString?: string; valueReference?: { reference: string }; part?: { name: string; valueString?: string; valueReference?: { reference: string } }[] }[] } }[] };
}

/**
 * A real HTTP receiver on a free port. `mode` says how it answers: ok (200), down (503), slow (answers after
 * the service's timeout), garbage (not HTTP at all).
 */
export async function startReceiver(): Promise<{ url: string; received: ReceivedHook[]; mode: { value: 'ok' | 'down' | 'slow' | 'garbage' }; attempts: { count: number }; close: () => Promise<void> }> {
  const received: ReceivedHook[] = [];
  const mode = { value: 'ok' as 'ok' | 'down' | 'slow' | 'garbage' };
  const attempts = { count: 0 };
  const timers = new Set<NodeJS.Timeout>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      attempts.count++;
      if (mode.value === 'down') {
        res.writeHead(503).end();
        return;
      }
      if (mode.value === 'slow') {
        const t = setTimeout(() => res.writeHead(200).end(), 2_000);
        timers.add(t);
        return;
      }
      if (mode.value === 'garbage') {
        req.socket.end('this is not HTTP\r\n\r\n');
        return;
      }
      received.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as ReceivedHook['body'] });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    mode,
    attempts,
    close: async () => {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The plan a hook notification is about, and its event number. */
export function focusOf(hook: ReceivedHook): { focus: string | undefined; eventNumber: string | undefined } {
  const params = hook.body.entry[0]!.resource.parameter;
  const ev = params.find((p) => p.name === 'notification-event');
  return { focus: ev?.part?.find((p) => p.name === 'focus')?.valueReference?.reference, eventNumber: ev?.part?.find((p) => p.name === 'event-number')?.valueString };
}

/** A key for hook secrets, made for this test run (none is kept in the repository). */
export const aSecretKey = (): string => randomBytes(32).toString('base64');

/** For tests whose hook receiver runs on 127.0.0.1: the service refuses such endpoints otherwise. */
export const LOCAL_HOOKS: Record<string, string> = { NOTIFY_HOOK_ALLOW_PRIVATE: 'true' };

/** Fast retries and polling for tests; email and hooks against the given servers; a fresh key for hook secrets. */
export const fastEnv = (smtpUrl?: string): Record<string, string> => ({
  ...(smtpUrl ? { NOTIFY_SMTP_URL: smtpUrl } : {}),
  NOTIFY_SECRET_KEY: aSecretKey(),
  NOTIFY_APP_URL: 'https://cmc.example.test/',
  NOTIFY_POLL_MS: '20',
  NOTIFY_RETRY_BASE_MS: '10',
  NOTIFY_RETRY_CAP_MS: '100',
  NOTIFY_HOOK_RETRY_BASE_MS: '10',
  NOTIFY_HOOK_TIMEOUT_MS: '500',
  NOTIFY_REVIEW_CHECK_SECONDS: '86400',
});

/** Every text (and JSON, and array) value of every table of the service's schema that contains `needle`, as `table.column`. */
export async function whereStored(svc: Pick<RunningService<NotificationDB>, 'config' | 'database'>, needle: string): Promise<string[]> {
  const { rows: columns } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns
    where table_schema = ${svc.config.schema} and data_type in ('text', 'character varying', 'json', 'jsonb', 'ARRAY')`.execute(svc.database.db);
  if (columns.length < 10) throw new Error(`only ${columns.length} text columns found in ${svc.config.schema}`);
  const found: string[] = [];
  for (const c of columns) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(c.table_name)} where ${sql.ref(c.column_name)}::text like ${`%${needle}%`}`.execute(svc.database.db);
    if (rows[0]!.n > 0) found.push(`${c.table_name}.${c.column_name}`);
  }
  return found;
}
