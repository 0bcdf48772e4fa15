/**
 * The notification service from events to deliveries (issue #8): "Events to deliveries per second; from a plan's
 * publication to its hook delivery and to its email, p50/p95 (target p95 under 2 seconds with the receiver up)."
 *
 * Starts the notification service in this process as it runs in production (startService with a configuration
 * loaded from the environment as server.ts does: its own transport built from it, its background senders, its
 * default settings unless named below), in a fresh schema of DATABASE_URL, on the SQL transport in a fresh bus
 * schema, or on Kafka under a fresh topic prefix when KAFKA_BROKERS is set. Beside it, in this process: a real
 * SMTP server (smtp-server on port 0, NOTIFY_SMTP_URL points at it) that notes when each message arrives, by
 * its Message-ID (`<email-<row id>@notification.cmc>`), and a real HTTP receiver (node:http on port 0) that
 * answers 200 to every notification and notes when it arrived, with its subscription, event number and focus.
 * smtp-server greets each new connection after a fixed 100 ms (its check for clients that talk too early; not
 * configurable; reverse DNS is turned off), as many real MTAs delay their greeting; the service opens a new
 * SMTP connection for each email, so that delay is in every email's figure (see "Where the time went").
 *
 * Set up first, through the service's own inputs: BENCH_NOTIFY_ORGS organisations (default 10) with 3
 * clinicians each and BENCH_NOTIFY_PRACTICES GP practices (default 10) with 2 clinicians each, all with an
 * email, as identity's user-created events; one rest-hook Subscription per practice
 * (`CarePlan?gp-practice=<ODS>`, POST /fhir/R4/Subscription over real HTTP by a system client of that
 * practice, with a bearer header), all to the receiver. Each measured plan is created first (its `created`
 * event, by its author, tells nobody) and waited for; its `published` event is then sent by a colleague of the
 * author, so that it goes to the practice's 2 clinicians and the organisation's 2 others (the author among
 * them; the publisher is left out): 4 inbox notifications, 4 emails and 1 hook call per event.
 * Events are handed to the transport as care-plan's relay would (topic cmc.careplan.v1, key the NHS number);
 * "published at" below is the moment transport.publish is called (the event's `time` is set just before).
 *
 *  1. Throughput: BENCH_NOTIFY_EVENTS published events (default 2000), sent in batches of 500 as fast as the
 *     transport takes them; from the first send until the last email and the last hook call have arrived:
 *     emails/s and hook calls/s (arrived at the servers), inbox notifications/s (to the last one written) and
 *     events/s (to the last one consumed).
 *  2. Latency: a paced stream of BENCH_NOTIFY_RATE events/s (default 20) for BENCH_NOTIFY_SECONDS (default
 *     30), each event sent on its own; for each event, from its publication to its hook call arriving at the
 *     receiver, and to each of its emails arriving at the SMTP server: p50/p95/p99/max, with where the time
 *     went from the service's own timestamps (processed_events.processed_at: the consumer's transaction
 *     began; hook_deliveries/email_deliveries.sent_at: the sender's transaction that took the row began).
 *     Run with the default configuration (NOTIFY_POLL_MS 250), then, as a second row, with the service
 *     restarted (same schema and subscriptions) with NOTIFY_POLL_MS=BENCH_NOTIFY_LOW_POLL_MS (default 50),
 *     the documented setting of how often the senders look for due deliveries.
 *  3. Duplicates: at the end, emails per Message-ID and hook calls per (subscription, event number) over all
 *     runs (each should be exactly one), and deliveries that never arrived.
 * Each run waits until all its deliveries arrived (at most BENCH_NOTIFY_TIMEOUT_S each, default 600), so its
 * length follows the slowest channel: at ~9 emails/s (one sender, a connection per email) the defaults, 8,000
 * + 2 x 2,400 emails, take over 20 minutes; BENCH_NOTIFY_EVENTS=500 BENCH_NOTIFY_SECONDS=10 takes about 7.
 * Drops its schemas (and Kafka topics and group) at the end, also on error or Ctrl-C. Needs DATABASE_URL.
 * Prints tables; asserts nothing; with BENCH_JSON_OUT set, also appends its figures there as JSON lines (report.ts).
 */
import { ALL_TOPICS, makeEvent, topicOf, type CloudEvent, type PlanEventData } from '@cmc/contracts';
import { createDatabase, sql } from '@cmc/db';
import { KafkaTransport, SqlTransport, type Transport } from '@cmc/events';
import { createLogger } from '@cmc/logging';
import { NOTIFICATION_CONSUMER, notificationService, type NotificationDB } from '@cmc/notification-service';
import { loadServiceConfig, startService, type RunningService } from '@cmc/service';
import { TestIssuer, randomNhsNumber } from '@cmc/test-support';
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { SMTPServer } from 'smtp-server';
import { deleteRunTopics } from './kafka-cleanup';
import { latencyRow, percentile } from './load';
import { finite, ownPeakRssMb, record } from './report';

const TOKEN_LIFETIME_S = 4 * 3600;
/** Wall-clock time in ms with sub-ms resolution, comparable with the database's now() on this machine. */
const clock = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, ms)));
const fmt = (v: number): string => (Number.isFinite(v) ? v.toFixed(0) : '–');
const rate = (count: number, ms: number): string => (ms > 0 && count > 0 ? Math.round((count / ms) * 1000).toLocaleString('en-GB') : '–');
const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`${name} must be a positive number`);
  return v;
};

interface User {
  userId: string;
  organisation: string;
  email: string;
}

const aUser = (organisation: string): User => {
  const userId = randomUUID();
  return { userId, organisation, email: `clinician-${userId.slice(0, 8)}@${organisation.toLowerCase()}.bench.test` };
};

const ods = (prefix: string, i: number): string => `${prefix}${randomBytes(2).toString('hex').toUpperCase()}${String(i).padStart(3, '0')}`;

/** One measured plan: created in the setup, published in the measurement. */
interface Plan {
  planId: string;
  nhsNumber: string;
  organisation: string;
  gpPractice: string;
  author: string;
  publisher: string;
  /** The published event's id and when it was handed to the transport (clock()). */
  eventId?: string;
  publishedAt?: number;
}

const planEvent = (p: Plan, type: 'cmc.careplan.created.v1' | 'cmc.careplan.published.v1'): CloudEvent => {
  const data: PlanEventData = {
    planId: p.planId,
    versionId: type === 'cmc.careplan.created.v1' ? '1' : '2',
    nhsNumber: p.nhsNumber,
    state: type === 'cmc.careplan.created.v1' ? 'draft' : 'published',
    organisation: p.organisation,
    changedBy: type === 'cmc.careplan.created.v1' ? p.author : p.publisher,
    changedAt: new Date().toISOString(),
    gpPractice: p.gpPractice,
    reviewDate: new Date(Date.now() + 180 * 86_400_000).toISOString().slice(0, 10),
  };
  return makeEvent({ type, source: '/cmc/care-plan', key: p.nhsNumber, data });
};

interface Arrival {
  at: number;
}
interface HookArrival extends Arrival {
  subscription: string;
  eventNumber: string;
  focus: string;
}

/** The paced and burst runs' figures. */
interface RunResult {
  label: string;
  events: number;
  hooks: number;
  emails: number;
  expectedEmails: number;
  notifications: number;
  hookToLastMs: number;
  emailToLastMs: number;
  inboxToLastMs: number;
  consumedToLastMs: number;
  hookLatency: number[];
  emailLatency: number[];
  stages: Record<string, number[]>;
  timedOut: boolean;
}

(async () => {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
  const brokers = process.env.KAFKA_BROKERS;
  const burstEvents = num('BENCH_NOTIFY_EVENTS', 2000);
  const pacedRate = num('BENCH_NOTIFY_RATE', 20);
  const pacedSeconds = num('BENCH_NOTIFY_SECONDS', 30);
  const orgCount = num('BENCH_NOTIFY_ORGS', 10);
  const practiceCount = num('BENCH_NOTIFY_PRACTICES', 10);
  const lowPollMs = num('BENCH_NOTIFY_LOW_POLL_MS', 50);
  const timeoutMs = num('BENCH_NOTIFY_TIMEOUT_S', 600) * 1000;

  const run = randomBytes(4).toString('hex');
  const hookSecretKey = randomBytes(32).toString('base64');
  const schema = `notification_bench_${run}`;
  const busSchema = `bus_bench_notify_${run}`;
  const topicPrefix = `bench_notify_${run}.`;
  const issuer = new TestIssuer();
  const logger = createLogger({ service: 'bench', level: 'silent' });

  // The SMTP server: every message's Message-ID and arrival time.
  const mails = new Map<string, Arrival[]>();
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    // No DNS in the figures. smtp-server still greets 100 ms after each connection (its early-talker check).
    disableReverseLookup: true,
    logger: false,
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const at = clock();
        const raw = Buffer.concat(chunks).toString('utf8');
        const id = /^Message-ID:\s*<([^>]+)>/im.exec(raw)?.[1] ?? `unknown-${randomUUID()}`;
        const seen = mails.get(id) ?? [];
        seen.push({ at });
        mails.set(id, seen);
        callback();
      });
    },
  });
  // The hook receiver: every notification's subscription, event number, focus and arrival time.
  const hooks: HookArrival[] = [];
  let badHooks = 0;
  const receiver = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = clock();
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { entry: { resource: { parameter: { name: string; valueReference?: { reference: string }; part?: { name: string; valueString?: string; valueReference?: { reference: string } }[] }[] } }[] };
        const params = body.entry[0]!.resource.parameter;
        const ev = params.find((p) => p.name === 'notification-event')?.part ?? [];
        hooks.push({
          at,
          subscription: params.find((p) => p.name === 'subscription')?.valueReference?.reference ?? '',
          eventNumber: ev.find((p) => p.name === 'event-number')?.valueString ?? '',
          focus: ev.find((p) => p.name === 'focus')?.valueReference?.reference ?? '',
        });
      } catch {
        badHooks++;
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
  });

  let svc: RunningService<NotificationDB> | undefined;
  let producer: Transport | undefined;
  let cleaned: Promise<void> | undefined;
  const cleanup = () =>
    (cleaned ??= (async () => {
      await svc?.close().catch((e: unknown) => process.stderr.write(`closing the service: ${String(e)}\n`));
      await producer?.close().catch(() => undefined);
      receiver.closeAllConnections();
      await new Promise<void>((resolve) => receiver.close(() => resolve()));
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
      const admin = createDatabase<unknown>({ url: databaseUrl, schema: 'public', poolMax: 1, applicationName: 'cmc-bench' });
      try {
        for (const s of [schema, busSchema]) await sql`drop schema if exists ${sql.id(s)} cascade`.execute(admin.db);
      } finally {
        await admin.close();
      }
      if (brokers) await deleteRunTopics(brokers, run, topicPrefix, [topicPrefix + NOTIFICATION_CONSUMER]);
    })());
  process.once('SIGINT', () => {
    process.stderr.write('interrupted: closing the service and dropping the run\'s schemas\n');
    void cleanup().finally(() => process.exit(130));
  });

  try {
    await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const smtpUrl = `smtp://127.0.0.1:${(smtp.server.address() as AddressInfo).port}`;
    const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;

    const start = async (pollMs?: number): Promise<string> => {
      const config = loadServiceConfig(notificationService, {
        DATABASE_URL: databaseUrl,
        NOTIFY_DB_SCHEMA: schema,
        NOTIFY_PORT: '0',
        ...(brokers ? { EVENT_TRANSPORT: 'kafka', KAFKA_BROKERS: brokers, KAFKA_TOPIC_PREFIX: topicPrefix } : { EVENT_TRANSPORT: 'sql', BUS_SCHEMA: busSchema }),
        AUTH_ISSUER: issuer.issuer,
        AUTH_AUDIENCE: issuer.audience,
        LOG_LEVEL: 'silent',
        NOTIFY_SMTP_URL: smtpUrl,
        // The receiver is on 127.0.0.1, which the service refuses otherwise; one key across the restart (decision 0016).
        NOTIFY_HOOK_ALLOW_PRIVATE: 'true',
        NOTIFY_SECRET_KEY: hookSecretKey,
        ...(pollMs ? { NOTIFY_POLL_MS: String(pollMs) } : {}),
      });
      svc = await startService(notificationService, config, { logger: false, jwks: issuer.jwks });
      return svc.listen();
    };
    const db = () => svc!.database.db;

    const setupStart = performance.now();
    const url = await start();
    if (brokers) {
      const k = new KafkaTransport({ brokers: brokers.split(','), clientId: `bench-notify-${run}`, topicPrefix, partitions: 3, logger });
      await k.start();
      await k.ensureTopics(ALL_TOPICS);
      producer = k;
    } else {
      const t = new SqlTransport({ url: databaseUrl, schema: busSchema, logger });
      await t.start();
      producer = t;
    }
    const send = async (events: CloudEvent[]): Promise<void> => {
      await producer!.publish(events.map((e) => ({ topic: topicOf(e.type), key: e.partitionkey, value: JSON.stringify(e), headers: {} })));
    };
    const waitUntil = async (what: string, check: () => Promise<boolean>, limitMs = timeoutMs): Promise<void> => {
      const deadline = Date.now() + limitMs;
      while (!(await check())) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
      }
    };

    // People, through identity's user-created events.
    const organisations = Array.from({ length: orgCount }, (_, i) => ({ ods: ods('R', i), clinicians: [] as User[] }));
    const practices = Array.from({ length: practiceCount }, (_, i) => ({ ods: ods('G', i), clinicians: [] as User[] }));
    for (const o of organisations) o.clinicians = [aUser(o.ods), aUser(o.ods), aUser(o.ods)];
    for (const p of practices) p.clinicians = [aUser(p.ods), aUser(p.ods)];
    const users = [...organisations, ...practices].flatMap((o) => o.clinicians);
    await send(
      users.map((u) =>
        makeEvent({ type: 'cmc.identity.user-created.v1', source: '/cmc/identity', key: u.userId, data: { userId: u.userId, role: 'clinician', organisation: u.organisation, email: u.email, createdBy: 'bench' } }),
      ),
    );
    await waitUntil('the users', async () => Number((await db().selectFrom('recipients').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n) >= users.length, 120_000);

    // One rest-hook subscription per GP practice, through the real route.
    for (const p of practices) {
      const token = issuer.token({ kind: 'client', sub: `gp-system-${p.ods}`, org: p.ods, scope: 'system/Subscription.c' }, { exp: Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_S });
      const res = await fetch(`${url}/fhir/R4/Subscription`, {
        method: 'POST',
        headers: { 'authorization': `Bearer ${token}`, 'content-type': 'application/fhir+json' },
        body: JSON.stringify({
          resourceType: 'Subscription',
          status: 'requested',
          reason: 'GP record kept current',
          criteria: `CarePlan?gp-practice=${p.ods}`,
          channel: { type: 'rest-hook', endpoint: `${receiverUrl}/${p.ods}`, payload: 'application/fhir+json', header: ['Authorization: Bearer bench-hook-secret'] },
        }),
      });
      if (res.status !== 201) throw new Error(`creating a subscription: ${res.status} ${(await res.text()).slice(0, 300)}`);
      await res.arrayBuffer().catch(() => undefined);
    }
    process.stdout.write(
      `notification service at ${url} (${brokers ? `Kafka ${brokers}, topics ${topicPrefix}*` : `SQL transport, bus schema ${busSchema}`}), schema ${schema}; ` +
        `${users.length} clinicians with email in ${orgCount} organisations and ${practiceCount} GP practices, ${practiceCount} subscriptions; set up in ${((performance.now() - setupStart) / 1000).toFixed(1)} s\n`,
    );

    let planCounter = 0;
    /** `count` plans, created (and projected) before the measurement. */
    const preparePlans = async (count: number): Promise<Plan[]> => {
      const plans: Plan[] = Array.from({ length: count }, () => {
        const i = planCounter++;
        const o = organisations[i % organisations.length]!;
        const author = o.clinicians[i % 3]!;
        const publisher = o.clinicians[(i + 1) % 3]!;
        return { planId: randomUUID(), nhsNumber: randomNhsNumber(), organisation: o.ods, gpPractice: practices[i % practices.length]!.ods, author: author.userId, publisher: publisher.userId };
      });
      for (let i = 0; i < plans.length; i += 500) await send(plans.slice(i, i + 500).map((p) => planEvent(p, 'cmc.careplan.created.v1')));
      await waitUntil('the plans created', async () => Number((await db().selectFrom('plans').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n) >= planCounter, 300_000);
      return plans;
    };

    /** Waits for every delivery of the plans' published events, then reads the figures of the run. */
    const measure = async (label: string, plans: Plan[], t0: number): Promise<RunResult> => {
      const ids = plans.map((p) => p.eventId!);
      const byFocus = new Map(plans.map((p) => [`CarePlan/${p.planId}`, p]));
      const byEvent = new Map(plans.map((p) => [p.eventId!, p]));
      let timedOut = false;
      const hooksOf = () => hooks.filter((h) => byFocus.has(h.focus));
      try {
        await waitUntil(`${label}: the events consumed`, async () => {
          const { n } = await db().selectFrom('processed_events').select((eb) => eb.fn.countAll<string>().as('n')).where('event_id', 'in', ids).executeTakeFirstOrThrow();
          return Number(n) >= ids.length;
        });
        const rows = await db().selectFrom('email_deliveries').select('id').where('source', 'in', ids).execute();
        await waitUntil(`${label}: the hook calls and emails`, async () => new Set(hooksOf().map((h) => h.focus)).size >= plans.length && rows.every((r) => mails.has(`email-${r.id}@notification.cmc`)));
      } catch (e) {
        timedOut = true;
        process.stderr.write(`${e instanceof Error ? e.message : String(e)}; figures below are of what arrived\n`);
      }
      const emailRows = await db()
        .selectFrom('email_deliveries')
        .select(['id', 'source', 'status', sql<number>`extract(epoch from sent_at)::float8 * 1000`.as('sent')])
        .where('source', 'in', ids)
        .execute();
      const hookRows = await db()
        .selectFrom('hook_deliveries')
        .select(['plan_id', sql<number>`extract(epoch from sent_at)::float8 * 1000`.as('sent')])
        .where('event_id', 'in', ids)
        .execute();
      const processed = await db()
        .selectFrom('processed_events')
        .select(['event_id', sql<number>`extract(epoch from processed_at)::float8 * 1000`.as('at')])
        .where('event_id', 'in', ids)
        .execute();
      const inbox = await db()
        .selectFrom('notifications')
        .select([(eb) => eb.fn.countAll<string>().as('n'), sql<number>`extract(epoch from max(created_at))::float8 * 1000`.as('last')])
        .where('source', 'in', ids)
        .executeTakeFirstOrThrow();
      const processedAt = new Map(processed.map((r) => [r.event_id, Number(r.at)]));
      const hookSent = new Map(hookRows.map((r) => [r.plan_id, r.sent == null ? undefined : Number(r.sent)]));
      const stages: Record<string, number[]> = {
        'published → consumer began the event (processed_events.processed_at)': [],
        'consumer began → hook sender took the row (hook_deliveries.sent_at)': [],
        'hook sender took the row → hook call arrived': [],
        'consumer began → email sender took the row (email_deliveries.sent_at)': [],
        'email sender took the row → email arrived': [],
      };
      const [toConsumer, toHookSender, hookSend, toEmailSender, emailSend] = Object.values(stages) as [number[], number[], number[], number[], number[]];
      for (const p of plans) {
        const began = processedAt.get(p.eventId!);
        if (began !== undefined) toConsumer.push(began - p.publishedAt!);
      }
      const hookLatency: number[] = [];
      const ours = hooksOf();
      for (const h of ours) {
        const p = byFocus.get(h.focus)!;
        hookLatency.push(h.at - p.publishedAt!);
        const began = processedAt.get(p.eventId!);
        const sent = hookSent.get(p.planId);
        if (began !== undefined && sent !== undefined) toHookSender.push(sent - began);
        if (sent !== undefined) hookSend.push(h.at - sent);
      }
      const emailLatency: number[] = [];
      let lastEmail = t0;
      let emailsArrived = 0;
      for (const r of emailRows) {
        const arrivals = mails.get(`email-${r.id}@notification.cmc`);
        const p = byEvent.get(r.source)!;
        if (!arrivals?.length) continue;
        const at = arrivals[0]!.at;
        emailsArrived++;
        lastEmail = Math.max(lastEmail, at);
        emailLatency.push(at - p.publishedAt!);
        const began = processedAt.get(r.source);
        if (began !== undefined && r.sent != null) toEmailSender.push(Number(r.sent) - began);
        if (r.sent != null) emailSend.push(at - Number(r.sent));
      }
      return {
        label,
        events: plans.length,
        hooks: new Set(ours.map((h) => h.focus)).size,
        emails: emailsArrived,
        expectedEmails: emailRows.length,
        notifications: Number(inbox.n),
        hookToLastMs: Math.max(0, ...ours.map((h) => h.at)) - t0,
        emailToLastMs: lastEmail - t0,
        inboxToLastMs: Number(inbox.last) - t0,
        consumedToLastMs: Math.max(0, ...processed.map((r) => Number(r.at))) - t0,
        hookLatency,
        emailLatency,
        stages,
        timedOut,
      };
    };

    /** As fast as the transport takes them, in batches of 500. */
    const burst = async (label: string, count: number): Promise<RunResult> => {
      const plans = await preparePlans(count);
      const t0 = clock();
      for (let i = 0; i < plans.length; i += 500) {
        const chunk = plans.slice(i, i + 500);
        const events = chunk.map((p) => planEvent(p, 'cmc.careplan.published.v1'));
        const at = clock();
        chunk.forEach((p, j) => Object.assign(p, { eventId: events[j]!.id, publishedAt: at }));
        await send(events);
      }
      return measure(label, plans, t0);
    };

    /** One event every 1000 / rate ms, each sent on its own. */
    const paced = async (label: string): Promise<RunResult> => {
      const plans = await preparePlans(Math.round(pacedRate * pacedSeconds));
      // Let the setup's deliveries (none are due: created tells nobody) and wake-ups settle.
      await sleep(1000);
      const t0 = clock();
      for (const [i, p] of plans.entries()) {
        await sleep(t0 + (i * 1000) / pacedRate - clock());
        const e = planEvent(p, 'cmc.careplan.published.v1');
        p.eventId = e.id;
        p.publishedAt = clock();
        await send([e]);
      }
      return measure(label, plans, t0);
    };

    const results: RunResult[] = [];
    results.push(await burst(`burst of ${burstEvents.toLocaleString('en-GB')}, default configuration (NOTIFY_POLL_MS 250)`, burstEvents));
    results.push(await paced(`paced ${pacedRate}/s for ${pacedSeconds} s, default configuration (NOTIFY_POLL_MS 250)`));
    // The same service restarted with a lower poll interval (same schema, subscriptions and consumer group).
    await svc!.close();
    svc = undefined;
    await start(lowPollMs);
    results.push(await paced(`paced ${pacedRate}/s for ${pacedSeconds} s, NOTIFY_POLL_MS ${lowPollMs}`));
    // Give any late (duplicate) deliveries a moment before counting.
    await sleep(2000);

    // Duplicates, over every run: each email row and each hook notification should have arrived exactly once.
    const allRows = await db().selectFrom('email_deliveries').select(['id', 'status']).execute();
    const allHookRows = await db().selectFrom('hook_deliveries').select(['subscription_id', 'event_number', 'status']).execute();
    const emailDuplicates = [...mails.values()].reduce((n, a) => n + a.length - 1, 0);
    const emailsMissing = allRows.filter((r) => !mails.has(`email-${r.id}@notification.cmc`)).length;
    const hookCount = new Map<string, number>();
    for (const h of hooks) hookCount.set(`${h.subscription}#${h.eventNumber}`, (hookCount.get(`${h.subscription}#${h.eventNumber}`) ?? 0) + 1);
    const hookDuplicates = [...hookCount.values()].reduce((n, c) => n + c - 1, 0);
    const hooksMissing = allHookRows.filter((r) => !hookCount.has(`Subscription/${r.subscription_id}#${r.event_number}`)).length;
    const notSent = allRows.filter((r) => r.status !== 'sent').length + allHookRows.filter((r) => r.status !== 'sent').length;

    const secs = (v: number) => (Number.isFinite(v) && v > 0 ? (v / 1000).toFixed(1) : '–');
    const [b] = results as [RunResult];
    const out = [
      `\nNotification service, events to deliveries; ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}); transport ${brokers ? 'Kafka' : 'SQL'}; SMTP and hook receiver in this process`,
      `per published event: ${(b.expectedEmails / Math.max(1, b.events)).toFixed(1)} emails, ${(b.notifications / Math.max(1, b.events)).toFixed(1)} inbox notifications, 1 hook call`,
      '\n1. Throughput, from the first event sent until the last delivery of its kind arrived (or was written)',
      '| run | events | consumed s | events/s | inbox notifications | to last s | notifications/s | emails arrived | to last s | emails/s | hook calls arrived | to last s | hook calls/s |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...results.map(
        (r) =>
          `| ${r.label}${r.timedOut ? ' (TIMED OUT)' : ''} | ${r.events} | ${secs(r.consumedToLastMs)} | ${rate(r.events, r.consumedToLastMs)} | ${r.notifications} | ${secs(r.inboxToLastMs)} | ${rate(r.notifications, r.inboxToLastMs)} | ` +
          `${r.emails}/${r.expectedEmails} | ${secs(r.emailToLastMs)} | ${rate(r.emails, r.emailToLastMs)} | ${r.hooks}/${r.events} | ${secs(r.hookToLastMs)} | ${rate(r.hooks, r.hookToLastMs)} |`,
      ),
      '\n2. Latency, from the event\'s publication (handed to the transport) to its arrival, ms',
      '| run | delivery | n | p50 | p95 | p99 | max | target p95 < 2 s |',
      '|---|---|---:|---:|---:|---:|---:|---|',
      ...results.flatMap((r) =>
        (
          [
            ['hook call', r.hookLatency],
            ['email', r.emailLatency],
          ] as const
        ).map(([what, values]) => {
          const p95 = percentile([...values].sort((x, y) => x - y), 95);
          return `${latencyRow(`${r.label} | ${what}`, values, fmt)} ${Number.isFinite(p95) && p95 < 2000 ? 'met' : 'NOT met'} |`;
        }),
      ),
      '\nWhere the time went, per delivery (the service\'s timestamps: transaction starts, same machine clock), ms',
      ...results.flatMap((r) => [`\n${r.label}`, '| stage | n | p50 | p95 | p99 | max |', '|---|---:|---:|---:|---:|---:|', ...Object.entries(r.stages).map(([label, values]) => latencyRow(label, values, fmt))]),
      '\n3. Duplicates, over every run',
      '| channel | deliveries recorded | arrived more than once (extra copies) | never arrived | not recorded as sent |',
      '|---|---:|---:|---:|---:|',
      `| email (per Message-ID) | ${allRows.length} | ${emailDuplicates} | ${emailsMissing} | ${allRows.filter((r) => r.status !== 'sent').length} |`,
      `| hook (per subscription and event number) | ${allHookRows.length} | ${hookDuplicates} | ${hooksMissing} | ${allHookRows.filter((r) => r.status !== 'sent').length} |`,
      ...(badHooks > 0 ? [`(${badHooks} hook bodies could not be read)`] : []),
      ...(notSent > 0 ? [`${notSent} deliveries not recorded as sent at the end`] : []),
      '\nSettings that bound the figures (services/notification; defaults unless named above):',
      '- email sender: NOTIFY_EMAIL_CONCURRENCY loops (default 2), one email per transaction (FOR UPDATE SKIP LOCKED row, nodemailer sendMail over a pool of as many SMTP connections, kept open; outcome written, commit); ' +
        'back to back while it finds rows, otherwise sleeps NOTIFY_POLL_MS (default 250): nothing wakes it when the consumer writes a row',
      '- the SMTP server here greets 100 ms after each new connection (smtp-server\'s early-talker delay); pooled connections pay it once',
      '- hook sender: NOTIFY_HOOK_CONCURRENCY loops (default 4), one notification per transaction, each a fetch with NOTIFY_HOOK_TIMEOUT_MS; same polling as email',
      `- consumer: one transaction per event (processed_events, plan projection, inbox rows, email rows, hook rows); ${brokers ? 'kafkajs consumer' : 'SQL transport reader woken by NOTIFY (poll 500 ms otherwise)'}`,
    ];
    process.stdout.write(`${out.join('\n')}\n`);

    // The same figures as JSON lines, when BENCH_JSON_OUT is set (report.ts): per run, each channel's rate (to
    // the last delivery) and its delivery lag from publication.
    const peakRssMb = ownPeakRssMb();
    for (const r of results) {
      for (const [what, count, toLastMs, values] of [
        ['hook call', r.hooks, r.hookToLastMs, r.hookLatency],
        ['email', r.emails, r.emailToLastMs, r.emailLatency],
      ] as const) {
        const sorted = [...values].sort((x, y) => x - y);
        record({
          bench: 'notification',
          name: `${r.label}: ${what} delivery lag`,
          patients: null,
          throughput: toLastMs > 0 && count > 0 ? Math.round((count / toLastMs) * 10_000) / 10 : null,
          unit: `${what === 'email' ? 'emails' : 'hook calls'}/s`,
          p50Ms: finite(percentile(sorted, 50)),
          p99Ms: finite(percentile(sorted, 99)),
          peakRssMb,
          rssOf: 'benchmark process (notification service, SMTP server and hook receiver in-process)',
          baseline: null,
          baselineThroughput: null,
          ratio: null,
          extra: {
            events: r.events,
            delivered: count,
            expected: what === 'email' ? r.expectedEmails : r.events,
            p95Ms: finite(percentile(sorted, 95)),
            maxMs: finite(sorted[sorted.length - 1]),
            eventsPerSecondConsumed: r.consumedToLastMs > 0 ? Math.round((r.events / r.consumedToLastMs) * 10_000) / 10 : null,
            timedOut: r.timedOut,
            transport: brokers ? 'kafka' : 'sql',
            duplicates: what === 'email' ? emailDuplicates : hookDuplicates,
          },
        });
      }
    }
  } finally {
    await cleanup();
  }
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
