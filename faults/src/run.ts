/**
 * The fault suite (issue #10, "Faults"): against the real services on this machine, each in a process of its
 * own, over the suite's own PostgreSQL and Kafka broker, while a steady stream of plan edits, flag lookups and
 * FHIR reads runs:
 *   kafka-stop      the broker is stopped for 30 s (FAULT_KAFKA_DOWN_S) and started again;
 *   audit-kill      the audit service is killed with SIGKILL and started again;
 *   careplan-kill   the care-plan service is killed with SIGKILL and started again;
 *   pg-restart      PostgreSQL is stopped and started again;
 *   poison          the notification consumer fails on one plan event for a while (a test-only trigger in
 *                   the suite's own database), and malformed messages are put on two topics.
 * After each: every answered access has exactly one audit entry, every domain event had its effect once, no
 * notification went out twice, and the services say they are ready again on their own. Prints a table and
 * exits 1 when an invariant fails (2 when the suite itself could not run). Every fault is bounded in time, the
 * whole run too (FAULT_SUITE_TIMEOUT_S, default 600), and everything started is stopped at the end, also on
 * failure or Ctrl-C.
 */
import { makeEvent } from '@cmc/contracts';
import { freePort } from '@cmc/embedded-pg';
import { TestIssuer, aCarePlan, aConsent, randomNhsNumber } from '@cmc/test-support';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inspect } from 'node:util';
import { AuditReader, carePlanEvents, deadLetters, emailRows, hookRows, notificationProcessed, pendingDeliveries, pendingEventsOf, phaseOf, query, type DeadLetter } from './checks';
import { ROOT, ServiceProcess, SuiteKafka, SuitePostgres, isLive, log, sleep, waitAllReady } from './infra';
import { Load, type SeedPlan } from './load';
import { startHookReceiver, startJwksServer, startSmtpSink, type Receipts } from './sinks';

const num = (name: string, fallback: number): number => {
  const v = Number(process.env[name] ?? fallback);
  if (!Number.isFinite(v) || v < 0) throw new Error(`${name} must be a number >= 0`);
  return v;
};

const SETTINGS = {
  pgPort: num('FAULT_PG_PORT', 55432),
  kafkaPort: num('FAULT_KAFKA_PORT', 19092),
  kafkaControllerPort: num('FAULT_KAFKA_CONTROLLER_PORT', 19093),
  dataDir: path.resolve(ROOT, process.env.FAULT_DATA_DIR ?? '.data/faults'),
  patients: num('FAULT_PATIENTS', 12),
  kafkaDownS: num('FAULT_KAFKA_DOWN_S', 30),
  poisonS: num('FAULT_POISON_S', 12),
  baselineS: num('FAULT_BASELINE_S', 8),
  afterS: num('FAULT_AFTER_S', 3),
  readyTimeoutS: num('FAULT_READY_TIMEOUT_S', 120),
  catchUpTimeoutS: num('FAULT_CATCH_UP_TIMEOUT_S', 90),
  suiteTimeoutS: num('FAULT_SUITE_TIMEOUT_S', 600),
  intervals: { editMs: num('FAULT_EDIT_MS', 500), flagMs: num('FAULT_FLAG_MS', 150), readMs: num('FAULT_READ_MS', 200) },
};

const CLINICIAN_ORG = 'A11111';
const GP_PRACTICE = 'Y12345';

interface Phase {
  name: string;
  label: string;
  /** ms from the fault's end (or the kill) until every service answered /health/ready 200; undefined: never within the timeout. */
  readyAfterMs?: number;
  /** ms from the same moment until the audit log held every answered access of the phase so far and every event was handled. */
  caughtUpAfterMs?: number;
  /** How long the fault itself lasted (outage), ms. */
  faultMs?: number;
  /** For a restarted service: ms from the kill until its HTTP server answered /health/live again. */
  liveAfterMs?: number;
  notes: string[];
}

interface Row {
  fault: string;
  sent: number;
  answered: number;
  refused: number;
  auditExpected: number;
  auditFound: number;
  /** Answered accesses with no entry. */
  auditMissing: number;
  /** Unanswered requests whose access was nevertheless recorded (allowed: the answer was lost, not the record). */
  recordedNotAnswered: number;
  duplicates: number;
  events: number;
  eventsOnce: number;
  deadLetters: number;
  unexpectedDeadLetters: number;
  faultS: string;
  readyS: string;
  caughtUpS: string;
  ok: boolean;
  problems: string[];
}

// ---------------------------------------------------------------------------------------------------------
// Everything started is registered here and stopped at the end, whatever happens.

const cleanups: { name: string; run: () => Promise<void> }[] = [];
const lastResort: (() => void)[] = [];
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const c of [...cleanups].reverse()) {
      await Promise.race([c.run().catch((e: unknown) => log(`cleanup of ${c.name}: ${e instanceof Error ? e.message : String(e)}`)), sleep(70_000)]);
    }
  })();
  return cleaning;
}
process.on('exit', () => {
  for (const f of lastResort) {
    try {
      f();
    } catch {
      // best effort
    }
  }
});
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: stopping everything the suite started`);
    void cleanup().finally(() => process.exit(130));
  });
}
const killPid = (pid: number | undefined, signal: NodeJS.Signals) => {
  if (pid === undefined) return;
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
};

/** Runs the audit service's verifier against the suite's database: exit 0 means the chain and checkpoints are whole. */
function verifyAuditLog(databaseUrl: string, keyFile: string): Promise<{ ok: boolean; summary: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'services/audit/dist/verify-cli.js')],
      { env: { ...process.env, DATABASE_URL: databaseUrl, AUDIT_DB_SCHEMA: 'audit', AUDIT_SIGNING_KEY_FILE: keyFile, LOG_LEVEL: 'silent' }, timeout: 120_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout) => {
        let summary = err ? `exit ${String(err.code ?? err.signal ?? '?')}` : 'exit 0';
        try {
          const out = JSON.parse(stdout) as Record<string, unknown>;
          const facts = Object.entries(out).filter(([, v]) => typeof v !== 'object' || v === null);
          summary += `: ${facts.map(([k, v]) => `${k} ${String(v)}`).join(', ').slice(0, 300)}`;
        } catch {
          summary += `: ${stdout.slice(0, 200)}`;
        }
        resolve({ ok: !err, summary });
      },
    );
  });
}

const describe = (e: unknown): string => (e instanceof Error ? e.message : inspect(e, { depth: 2, breakLength: Infinity }).slice(0, 500));

/** Starts the suite's PostgreSQL, trying again (three times in all) if its port is briefly taken. */
async function startPostgres(pg: SuitePostgres): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await pg.start();
      return;
    } catch (e) {
      if (attempt >= 3) throw e;
      log(`PostgreSQL did not start (${describe(e)}); trying again`);
      await sleep(2000);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------

async function main(): Promise<number> {
  const suiteStart = Date.now();
  const deadline = setTimeout(() => {
    log(`the suite ran past FAULT_SUITE_TIMEOUT_S (${SETTINGS.suiteTimeoutS} s): stopping`);
    void cleanup().finally(() => process.exit(2));
  }, SETTINGS.suiteTimeoutS * 1000);
  deadline.unref();

  const { dataDir } = SETTINGS;
  const logs = path.join(dataDir, 'logs');
  const pgDir = path.join(dataDir, 'pg');
  const kafkaDir = path.join(dataDir, 'kafka');

  for (const dir of ['consent', 'care-plan', 'audit', 'notification']) {
    if (!existsSync(path.join(ROOT, 'services', dir, 'dist', 'server.js'))) throw new Error(`services/${dir}/dist/server.js is missing: run pnpm build first`);
  }

  // The suite's own PostgreSQL and Kafka, fresh each run (a broker or postmaster left by a killed run is stopped first).
  const pg = new SuitePostgres(pgDir, SETTINGS.pgPort, path.join(dataDir, 'postgres.log'));
  const kafka = new SuiteKafka(SETTINGS.kafkaPort, SETTINGS.kafkaControllerPort, kafkaDir, path.join(dataDir, 'kafka.log'));
  mkdirSync(dataDir, { recursive: true });
  if (existsSync(kafkaDir)) await kafka.stop().catch(() => undefined);
  const stalePg = pg.postmasterPid();
  if (stalePg !== undefined) {
    killPid(stalePg, 'SIGINT');
    await sleep(3000);
  }
  rmSync(pgDir, { recursive: true, force: true });
  rmSync(`${pgDir}.password`, { force: true });
  rmSync(logs, { recursive: true, force: true });
  mkdirSync(logs, { recursive: true });

  log(`starting the suite's PostgreSQL on 127.0.0.1:${SETTINGS.pgPort} and Kafka on 127.0.0.1:${SETTINGS.kafkaPort} (data in ${path.relative(ROOT, dataDir)}/)`);
  cleanups.push({ name: 'PostgreSQL', run: () => pg.stop() });
  lastResort.push(() => killPid(pg.postmasterPid(), 'SIGINT'));
  cleanups.push({ name: 'Kafka', run: () => kafka.stop() });
  lastResort.push(() => killPid(kafka.pid(), 'SIGKILL'));
  // Both finish (or fail) before going on, so that nothing is left starting behind a failure.
  const [pgUp, kafkaUp] = await Promise.allSettled([startPostgres(pg), kafka.start(true)]);
  if (pgUp.status === 'rejected') throw new Error(`PostgreSQL did not start: ${describe(pgUp.reason)}`);
  if (kafkaUp.status === 'rejected') throw new Error(`Kafka did not start: ${describe(kafkaUp.reason)}`);
  const dbUrl = () => pg.url;
  log(`PostgreSQL and Kafka up`);

  // Tokens: the services trust TestIssuer's key, served here as their JWKS.
  const issuer = new TestIssuer();
  const jwks = await startJwksServer(issuer.jwks);
  cleanups.push({ name: 'JWKS', run: () => jwks.close() });
  const receipts: Receipts = { emails: new Map(), hooks: new Map() };
  const smtp = await startSmtpSink(receipts);
  cleanups.push({ name: 'SMTP sink', run: () => smtp.close() });
  const hooks = await startHookReceiver(receipts);
  cleanups.push({ name: 'hook receiver', run: () => hooks.close() });

  const users = { author: randomUUID(), editor: randomUUID(), gp: randomUUID() };
  const exp = { exp: Math.floor(Date.now() / 1000) + 3 * 3600 };
  const tokens = {
    author: issuer.token({ sub: users.author, role: 'clinician', org: CLINICIAN_ORG }, exp),
    editor: issuer.token({ sub: users.editor, role: 'clinician', org: CLINICIAN_ORG }, exp),
    urgentCare: issuer.token({ role: 'urgent-care', org: 'RRU' }, exp),
    clinician: issuer.token({ sub: users.author, role: 'clinician', org: CLINICIAN_ORG }, exp),
    gpSystem: issuer.token({ kind: 'client', sub: 'fault-suite-gp-system', org: GP_PRACTICE, scope: 'system/Subscription.crud' }, exp),
  };

  const common: Record<string, string> = {
    DATABASE_URL: pg.url,
    EVENT_TRANSPORT: 'kafka',
    KAFKA_BROKERS: kafka.brokers,
    AUTH_JWKS_URL: jwks.url,
    AUTH_ISSUER: issuer.issuer,
    AUTH_AUDIENCE: issuer.audience,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
  };
  const [consentPort, carePlanPort, auditPort, notifyPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const svcLog = (name: string) => path.join(logs, `${name}.log`);
  const consent = new ServiceProcess('consent', 'consent', consentPort, { ...common, CONSENT_PORT: String(consentPort), CONSENT_DB_SCHEMA: 'consent' }, svcLog('consent'));
  const carePlan = new ServiceProcess('care-plan', 'care-plan', carePlanPort, { ...common, CAREPLAN_PORT: String(carePlanPort), CAREPLAN_DB_SCHEMA: 'careplan' }, svcLog('care-plan'));
  const audit = new ServiceProcess(
    'audit',
    'audit',
    auditPort,
    { ...common, AUDIT_PORT: String(auditPort), AUDIT_DB_SCHEMA: 'audit', AUDIT_SIGNING_KEY_FILE: path.join(dataDir, 'audit-signing-key.pem') },
    svcLog('audit'),
  );
  const notification = new ServiceProcess(
    'notification',
    'notification',
    notifyPort,
    {
      ...common,
      NOTIFY_PORT: String(notifyPort),
      NOTIFY_DB_SCHEMA: 'notification',
      NOTIFY_SMTP_URL: `smtp://127.0.0.1:${smtp.port}`,
      NOTIFY_SMTP_TIMEOUT_MS: '5000',
      NOTIFY_POLL_MS: '100',
      NOTIFY_RETRY_BASE_MS: '500',
      NOTIFY_HOOK_RETRY_BASE_MS: '500',
      NOTIFY_RETRY_CAP_MS: '5000',
      NOTIFY_HOOK_TIMEOUT_MS: '5000',
      NOTIFY_HOOK_ALLOW_PRIVATE: 'true',
    },
    svcLog('notification'),
  );
  const services = [consent, carePlan, audit, notification];
  cleanups.push({ name: 'services', run: async () => void (await Promise.all(services.map((s) => s.stop()))) });
  lastResort.push(() => services.forEach((s) => s.alive && s.child?.kill('SIGKILL')));
  for (const s of services) s.start();
  const startedIn = await waitAllReady(services, 120_000);
  if (startedIn === undefined) throw new Error(`the services did not all become ready within 120 s (logs in ${path.relative(ROOT, logs)}/)`);
  log(`services ready in ${(startedIn / 1000).toFixed(1)} s: consent :${consentPort}, care-plan :${carePlanPort}, audit :${auditPort}, notification :${notifyPort}`);

  // Who the notification service tells: three clinicians, as identity would announce them.
  const kafkaClient = new Kafka({ brokers: [kafka.brokers], clientId: 'fault-suite', logLevel: logLevel.NOTHING });
  const produce = async (messages: { topic: string; key: string; value: string; headers?: Record<string, string> }[]) => {
    const producer = kafkaClient.producer({ createPartitioner: Partitioners.DefaultPartitioner, allowAutoTopicCreation: false });
    await producer.connect();
    try {
      for (const m of messages) await producer.send({ topic: m.topic, acks: -1, messages: [{ key: m.key, value: m.value, headers: m.headers ?? {} }] });
    } finally {
      await producer.disconnect();
    }
  };
  const people = [
    { userId: users.author, organisation: CLINICIAN_ORG, email: 'author@fault-suite.invalid' },
    { userId: users.editor, organisation: CLINICIAN_ORG, email: 'editor@fault-suite.invalid' },
    { userId: users.gp, organisation: GP_PRACTICE, email: 'gp@fault-suite.invalid' },
  ];
  await produce(
    people.map((p) => {
      const ev = makeEvent({ type: 'cmc.identity.user-created.v1', source: '/cmc/identity', key: p.userId, data: { role: 'clinician', ...p } });
      return { topic: 'cmc.identity.v1', key: p.userId, value: JSON.stringify(ev), headers: { 'ce_id': ev.id, 'ce_type': ev.type, 'content-type': 'application/cloudevents+json' } };
    }),
  );

  // Seed: consent, then a published plan, for each patient (the last one is the poison phase's own).
  const plans: SeedPlan[] = [];
  const load = new Load({ carePlanUrl: carePlan.url, consentUrl: consent.url, plans, tokens: { editor: tokens.editor, urgentCare: tokens.urgentCare, clinician: tokens.clinician }, intervals: SETTINGS.intervals });
  cleanups.push({ name: 'load', run: () => load.stop() });
  const seedStart = Date.now();
  await Promise.all(
    Array.from({ length: SETTINGS.patients + 1 }, async () => {
      const nhs = randomNhsNumber();
      const c = await load.request('seed', `${consent.url}/fhir/R4/Consent`, { method: 'POST', token: tokens.author, body: aConsent(nhs) }, (b) => typeof b.id === 'string');
      if (c.status !== 201 || typeof c.body?.id !== 'string') throw new Error(`seeding: recording consent answered ${c.status}`);
      const consentId = c.body.id;
      let planId: string | undefined;
      for (const until = Date.now() + 60_000; !planId; ) {
        const p = await load.request('seed', `${carePlan.url}/fhir/R4/CarePlan`, { method: 'POST', token: tokens.author, body: aCarePlan(nhs) }, (b) => typeof b.id === 'string');
        if (p.status === 201 && typeof p.body?.id === 'string') planId = p.body.id;
        else if (p.status !== 422 || Date.now() > until) throw new Error(`seeding: creating a plan answered ${p.status}`);
        else await sleep(200);
      }
      const pub = await load.request('seed', `${carePlan.url}/fhir/R4/CarePlan/${planId}/$publish`, { method: 'POST', token: tokens.author, headers: { 'if-match': 'W/"1"' } }, (b) => b.resourceType === 'CarePlan');
      if (pub.status !== 200) throw new Error(`seeding: publishing a plan answered ${pub.status}`);
      plans.push({ id: planId, nhs, consentId });
    }),
  );
  const sub = await load.request(
    'seed',
    `${notification.url}/fhir/R4/Subscription`,
    {
      method: 'POST',
      token: tokens.gpSystem,
      body: {
        resourceType: 'Subscription',
        status: 'requested',
        reason: 'fault suite',
        criteria: `CarePlan?gp-practice=${GP_PRACTICE}`,
        channel: { type: 'rest-hook', endpoint: hooks.url, payload: 'application/fhir+json', header: ['Authorization: Bearer fault-suite-hook-secret'] },
      },
    },
    (b) => typeof b.id === 'string',
  );
  if (sub.status !== 201) throw new Error(`seeding: the subscription answered ${sub.status} ${JSON.stringify(sub.body ?? {}).slice(0, 300)}`);
  const poisonPlan = plans.pop()!;
  log(`seeded ${plans.length + 1} patients (consent, published plan) and a GP system's subscription in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

  // Wait until the notification service knows the three clinicians (else the first edits notify fewer people).
  for (const until = Date.now() + 60_000; ; ) {
    const [r] = await query<{ n: number }>(dbUrl(), `select count(*)::int as n from notification.recipients where user_id = any($1)`, [Object.values(users)]);
    if ((r?.n ?? 0) >= 3) break;
    if (Date.now() > until) throw new Error('the notification service did not learn of the clinicians within 60 s');
    await sleep(250);
  }

  const reader = new AuditReader(dbUrl);
  const phases: Phase[] = [];

  /** Waits until the services are ready and then until the phase's answered accesses and events are all through. */
  const recover = async (phase: Phase, since: number) => {
    const readyMs = await waitAllReady(services, SETTINGS.readyTimeoutS * 1000, since);
    if (readyMs !== undefined) phase.readyAfterMs = readyMs;
    else {
      const gone = services.filter((s) => !s.alive);
      if (gone.length === 0) phase.notes.push(`not every service was ready ${SETTINGS.readyTimeoutS} s after the fault`);
      for (const s of gone) {
        // It cannot recover on its own: say so (the phase fails), then restart it, as a supervisor would, so
        // that the faults after this one still run against every service.
        phase.notes.push(`the ${s.name} service's process ended (${s.ending ?? '?'}) and did not recover on its own; the suite restarted it (see .data/faults/logs/${s.name}.log)`);
        log(`  the ${s.name} service's process ended (${s.ending ?? '?'}): restarting it for the faults that follow`);
        s.start();
      }
      if (gone.length > 0 && (await waitAllReady(services, SETTINGS.readyTimeoutS * 1000)) === undefined) phase.notes.push('not every service was ready after the suite restarted the ones that ended');
    }
    const caughtUpBy = since + Math.max(readyMs ?? 0, 0) + SETTINGS.catchUpTimeoutS * 1000;
    for (;;) {
      const cutoff = Date.now();
      try {
        await reader.poll();
        const answered = load.sent.filter((s) => s.phase === phase.name && s.answered && s.at < cutoff);
        const missing = answered.filter((s) => !reader.accessByRequest.has(s.id)).length;
        const pendingEvents = await pendingEventsOf(dbUrl(), phase.name);
        if (missing === 0 && pendingEvents === 0) {
          phase.caughtUpAfterMs = Date.now() - since;
          break;
        }
      } catch {
        // the database may still be coming back
      }
      if (Date.now() > caughtUpBy) {
        phase.notes.push(`the audit log or the notification service had not caught up ${SETTINGS.catchUpTimeoutS} s after ready`);
        break;
      }
      await sleep(500);
    }
    await sleep(SETTINGS.afterS * 1000);
  };

  const runPhase = async (name: string, label: string, fault: (phase: Phase) => Promise<number>) => {
    const phase: Phase = { name, label, notes: [] };
    phases.push(phase);
    load.phase = name;
    log(`fault ${name}: ${label}`);
    const faultStart = Date.now();
    const since = await fault(phase);
    phase.faultMs = since - faultStart;
    await recover(phase, since);
    log(
      `  ${name}: ready after ${phase.readyAfterMs !== undefined ? (phase.readyAfterMs / 1000).toFixed(1) : 'never'} s, caught up after ${phase.caughtUpAfterMs !== undefined ? (phase.caughtUpAfterMs / 1000).toFixed(1) : 'never'} s`,
    );
  };

  // The steady stream, then each fault in turn.
  load.start(plans);
  const baseline: Phase = { name: 'baseline', label: 'no fault', notes: [] };
  phases.push(baseline);
  load.phase = 'baseline';
  log(`baseline: ${SETTINGS.baselineS} s of load without a fault`);
  await sleep(SETTINGS.baselineS * 1000);
  await recover(baseline, Date.now());

  await runPhase('kafka-stop', `Kafka stopped for ${SETTINGS.kafkaDownS} s and started again`, async () => {
    await kafka.stop();
    await sleep(SETTINGS.kafkaDownS * 1000);
    await kafka.start();
    return Date.now();
  });

  const killAndRestart = async (svc: ServiceProcess, phase: Phase) => {
    await svc.kill9();
    const killedAt = Date.now();
    await sleep(1000);
    svc.start();
    // When its HTTP server is back (before it is ready, or at the same moment), watched in the background.
    void (async () => {
      while (Date.now() - killedAt < SETTINGS.readyTimeoutS * 1000) {
        if (await isLive(svc.url)) {
          phase.liveAfterMs = Date.now() - killedAt;
          return;
        }
        await sleep(250);
      }
    })();
    return killedAt;
  };
  await runPhase('audit-kill', 'the audit service killed (SIGKILL) and started again', (phase) => killAndRestart(audit, phase));
  await runPhase('careplan-kill', 'the care-plan service killed (SIGKILL) and started again', (phase) => killAndRestart(carePlan, phase));

  await runPhase('pg-restart', 'PostgreSQL stopped and started again', async () => {
    await pg.stop();
    await sleep(2000);
    await startPostgres(pg);
    return Date.now();
  });

  // Poison: the notification service's handler fails for one plan's events while the poison lasts (a
  // trigger that exists only in the suite's own database); one edit of that plan falls in the window, and
  // malformed messages go onto the care-plan and access topics. Afterwards the plan is edited again.
  const expectedDeadLetters: { schema: string; topic: string; eventId?: string }[] = [];
  await runPhase('poison', `the notification consumer fails on one event for ${SETTINGS.poisonS} s; malformed messages on two topics`, async (phase) => {
    await query(
      dbUrl(),
      `create table if not exists notification.fault_suite_poison (plan_id uuid primary key, until timestamptz not null);
       create or replace function notification.fault_suite_poison() returns trigger language plpgsql as $f$
       begin
         if exists (select 1 from notification.fault_suite_poison p where p.plan_id = new.plan_id and p.until > now()) then
           raise exception 'fault suite: poisoned event (test-only trigger)';
         end if;
         return new;
       end $f$;
       drop trigger if exists fault_suite_poison on notification.plans;
       create trigger fault_suite_poison before insert or update on notification.plans for each row execute function notification.fault_suite_poison();`,
    );
    await query(dbUrl(), `insert into notification.fault_suite_poison (plan_id, until) values ($1, now() + make_interval(secs => $2))`, [poisonPlan.id, SETTINGS.poisonS]);
    const poisonedAt = Date.now();
    const first = await load.edit(poisonPlan);
    if (first.outcome !== 'answered') phase.notes.push('the poisoned edit itself was not answered');
    const poisonedRid = first.requestId;
    await produce([
      { topic: 'cmc.careplan.v1', key: poisonPlan.nhs, value: '{"specversion":"1.0","fault-suite":"truncated' },
      { topic: 'cmc.access.v1', key: poisonPlan.nhs, value: JSON.stringify({ 'specversion': '1.0', 'type': 'cmc.access.recorded.v1', 'fault-suite': 'fails its contract' }) },
    ]);
    expectedDeadLetters.push({ schema: 'notification', topic: 'cmc.careplan.v1' }, { schema: 'audit', topic: 'cmc.careplan.v1' }, { schema: 'audit', topic: 'cmc.access.v1' });
    await sleep(poisonedAt + SETTINGS.poisonS * 1000 - Date.now() + 200);
    const [ev] = await query<{ event_id: string }>(dbUrl(), `select event_id::text from careplan.outbox where type = 'cmc.careplan.updated.v1' and payload::jsonb ->> 'requestid' = $1`, [poisonedRid ?? '']);
    if (ev) expectedDeadLetters.push({ schema: 'notification', topic: 'cmc.careplan.v1', eventId: ev.event_id });
    else phase.notes.push('the poisoned edit made no event');
    await query(dbUrl(), `drop trigger if exists fault_suite_poison on notification.plans`);
    const endedAt = Date.now();
    // The same plan again, after the poison: it must go through.
    const again = await load.edit(poisonPlan);
    if (again.outcome !== 'answered') phase.notes.push('the edit after the poison was not answered');
    return endedAt;
  });

  await load.stop();
  log(`load stopped: ${load.sent.length} requests; waiting for everything to drain`);

  // Drain: every answered access in the log, every event handled, every delivery sent (bounded).
  const drainStart = Date.now();
  let drained = false;
  for (const until = Date.now() + 90_000; Date.now() < until; ) {
    await reader.poll();
    const missing = load.sent.filter((s) => s.answered && !reader.accessByRequest.has(s.id)).length;
    let pending = 0;
    for (const p of phases) pending += await pendingEventsOf(dbUrl(), p.name);
    const deliveries = await pendingDeliveries(dbUrl());
    if (missing === 0 && pending === 0 && deliveries === 0) {
      drained = true;
      break;
    }
    await sleep(1000);
  }
  log(`drained: ${drained ? 'yes' : 'NO (within 90 s)'} after ${((Date.now() - drainStart) / 1000).toFixed(1)} s`);
  await sleep(1000);

  // The audit log's hash chain and signed checkpoints, checked by the audit service's own verifier.
  const verify = await verifyAuditLog(pg.url, path.join(dataDir, 'audit-signing-key.pem'));
  log(`audit log verification: ${verify.ok ? 'whole' : 'BROKEN or not run'} (${verify.summary})`);

  // -------------------------------------------------------------------------------------------------------
  // The invariants.
  await reader.poll();
  const events = await carePlanEvents(dbUrl());
  const processed = await notificationProcessed(dbUrl());
  const dead = await deadLetters(dbUrl());
  const hookList = await hookRows(dbUrl());
  const emailList = await emailRows(dbUrl());
  const hooksByEvent = new Map<string, typeof hookList>();
  for (const h of hookList) hooksByEvent.set(h.event_id, [...(hooksByEvent.get(h.event_id) ?? []), h]);
  const emailsBySource = new Map<string, typeof emailList>();
  for (const e of emailList) emailsBySource.set(e.source, [...(emailsBySource.get(e.source) ?? []), e]);
  const emailReceipts = new Map<string, number>();
  for (const [messageId, n] of receipts.emails) {
    const id = /email-([^@>]+)@/.exec(messageId)?.[1];
    if (id) emailReceipts.set(id, (emailReceipts.get(id) ?? 0) + n);
  }

  const isExpectedDead = (d: DeadLetter, used: Set<number>): boolean => {
    const i = expectedDeadLetters.findIndex((x, k) => !used.has(k) && x.schema === d.schema && x.topic === d.topic && (x.eventId ? x.eventId === d.event_id : d.event_id === null));
    if (i < 0) return false;
    used.add(i);
    return true;
  };
  const usedExpected = new Set<number>();
  const unexpectedDead = dead.filter((d) => !isExpectedDead(d, usedExpected));
  const missingExpectedDead = expectedDeadLetters.filter((_, k) => !usedExpected.has(k));
  const deadEventIds = new Set(dead.filter((d) => d.event_id).map((d) => d.event_id as string));
  const eventPhase = new Map(events.map((e) => [e.event_id, phaseOf(e.rid)]));

  const rows: Row[] = [];
  for (const phase of phases) {
    const problems: string[] = [...phase.notes];
    const sent = load.sent.filter((s) => s.phase === phase.name);
    const answered = sent.filter((s) => s.answered);
    const refused = sent.filter((s) => !s.answered);
    const auditFound = answered.filter((s) => reader.accessByRequest.has(s.id)).length;
    const auditMissing = answered.length - auditFound;
    if (auditMissing > 0) problems.push(`${auditMissing} answered access(es) with no audit entry`);
    const accessDuplicates = sent.reduce((n, s) => n + Math.max(0, (reader.accessByRequest.get(s.id) ?? 0) - 1), 0);
    if (accessDuplicates > 0) problems.push(`${accessDuplicates} access(es) recorded more than once`);
    const recordedNotAnswered = refused.filter((s) => reader.accessByRequest.has(s.id)).length;

    // Domain events of the phase and their effects.
    const phaseEvents = events.filter((e) => phaseOf(e.rid) === phase.name);
    let eventsOnce = 0;
    let effectDuplicates = 0;
    let sendDuplicates = 0;
    const lost: string[] = [];
    for (const e of phaseEvents) {
      const inAudit = reader.entriesByEvent.get(e.event_id) ?? 0;
      const handled = processed.get(e.event_id) ?? 0;
      const deadLettered = deadEventIds.has(e.event_id);
      const hooksOf = hooksByEvent.get(e.event_id) ?? [];
      const emailsOf = emailsBySource.get(e.event_id) ?? [];
      const hookExpected = e.type !== 'cmc.careplan.created.v1' && e.type !== 'cmc.careplan.submitted.v1' && e.state !== 'draft' && e.state !== 'awaiting-approval' && !deadLettered ? 1 : 0;
      // An edit by the editor tells the author and the GP practice's clinician (never the editor).
      const emailsExpected = e.type === 'cmc.careplan.updated.v1' && !deadLettered ? 2 : undefined;
      effectDuplicates += Math.max(0, inAudit - 1) + Math.max(0, handled - 1) + Math.max(0, hooksOf.length - hookExpected) + (emailsExpected !== undefined ? Math.max(0, emailsOf.length - emailsExpected) : 0);
      for (const h of hooksOf) {
        const got = receipts.hooks.get(`${h.subscription_id}#${h.event_number}`) ?? 0;
        if (got > 1) sendDuplicates += got - 1;
        if (h.status !== 'sent' || got === 0) lost.push(`hook for event ${e.event_id} ${h.status}, received ${got}`);
      }
      for (const m of emailsOf) {
        const got = emailReceipts.get(m.id) ?? 0;
        if (got > 1) sendDuplicates += got - 1;
        if (m.status !== 'sent' || got === 0) lost.push(`email ${m.id} of event ${e.event_id} ${m.status}, received ${got}`);
      }
      const once =
        e.sent &&
        inAudit === 1 &&
        (deadLettered ? handled === 0 : handled === 1) &&
        hooksOf.length === hookExpected &&
        (emailsExpected === undefined || emailsOf.length === emailsExpected);
      if (once) eventsOnce++;
      else lost.push(`event ${e.event_id} (${e.type}): sent ${e.sent}, in audit ${inAudit}, handled by notification ${handled}${deadLettered ? ' (dead-lettered)' : ''}, hooks ${hooksOf.length}/${hookExpected}, emails ${emailsOf.length}/${emailsExpected ?? '-'}`);
    }
    if (lost.length > 0) problems.push(...lost.slice(0, 5), ...(lost.length > 5 ? [`... and ${lost.length - 5} more`] : []));
    if (effectDuplicates > 0) problems.push(`${effectDuplicates} effect(s) applied more than once`);
    if (sendDuplicates > 0) problems.push(`${sendDuplicates} notification(s) sent more than once`);

    // Dead letters of the phase's events, and those with no event (malformed) in the poison phase.
    const phaseDead = dead.filter((d) => (d.event_id ? eventPhase.get(d.event_id) === phase.name : phase.name === 'poison'));
    const phaseUnexpected = unexpectedDead.filter((d) => phaseDead.includes(d));
    if (phaseUnexpected.length > 0) problems.push(...phaseUnexpected.map((d) => `unexpected dead letter in ${d.schema} (${d.topic}, ${d.event_type ?? 'no event'}): ${d.reason.slice(0, 120)}`));
    if (phase.name === 'poison' && missingExpectedDead.length > 0) problems.push(...missingExpectedDead.map((d) => `expected a dead letter in ${d.schema} (${d.topic}${d.eventId ? `, event ${d.eventId}` : ', malformed'}) and found none`));
    if (phase.readyAfterMs === undefined) problems.push('services not ready again');

    const secs = (ms: number | undefined) => (ms === undefined ? 'never' : (ms / 1000).toFixed(1));
    rows.push({
      fault: phase.name,
      sent: sent.length,
      answered: answered.length,
      refused: refused.length,
      auditExpected: answered.length,
      auditFound,
      auditMissing,
      recordedNotAnswered,
      duplicates: accessDuplicates + effectDuplicates + sendDuplicates,
      events: phaseEvents.length,
      eventsOnce,
      deadLetters: phaseDead.length,
      unexpectedDeadLetters: phaseUnexpected.length,
      faultS: phase.faultMs === undefined ? '-' : secs(phase.faultMs),
      readyS: secs(phase.readyAfterMs),
      caughtUpS: secs(phase.caughtUpAfterMs),
      ok: problems.length === 0,
      problems,
    });
  }
  const otherDead = unexpectedDead.filter((d) => !rows.some((r) => r.fault === (d.event_id ? eventPhase.get(d.event_id) : 'poison')));

  const table = [
    '| fault | requests sent | answered | refused | audit entries expected | audit entries found | duplicates | events (applied once / all) | dead letters | fault lasted (s) | ready after (s) | caught up after (s) | result |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
    ...rows.map(
      (r) =>
        `| ${r.fault} | ${r.sent} | ${r.answered} | ${r.refused} | ${r.auditExpected} | ${r.auditFound} | ${r.duplicates} | ${r.eventsOnce} / ${r.events} | ${r.deadLetters} | ${r.faultS} | ${r.readyS} | ${r.caughtUpS} | ${r.ok ? 'pass' : 'FAIL'} |`,
    ),
  ].join('\n');
  const totalS = ((Date.now() - suiteStart) / 1000).toFixed(0);
  const failures = rows.filter((r) => !r.ok);
  const details = [
    ...rows.flatMap((r) => r.problems.map((p) => `- ${r.fault}: ${p}`)),
    ...otherDead.map((d) => `- dead letter outside any phase in ${d.schema} (${d.topic}, ${d.event_type ?? 'no event'}): ${d.reason.slice(0, 120)}`),
  ];
  const notes = [
    `Audit log verification (services/audit/dist/verify-cli.js: hash chain and signed checkpoints): ${verify.ok ? 'whole' : 'FAILED'}, ${verify.summary}.`,
    ...phases.filter((p) => p.liveAfterMs !== undefined).map((p) => `${p.name}: the restarted service's HTTP server answered again ${((p.liveAfterMs ?? 0) / 1000).toFixed(1)} s after the kill (ready ${p.readyAfterMs !== undefined ? (p.readyAfterMs / 1000).toFixed(1) : 'never'} s).`),
    `Refused, by request and status (0: no answer: connection refused or reset, or none within 10 s): ${rows
      .map((r) => {
        const counts = new Map<string, number>();
        for (const x of load.sent.filter((q) => q.phase === r.fault && !q.answered)) counts.set(`${x.kind} ${x.status}`, (counts.get(`${x.kind} ${x.status}`) ?? 0) + 1);
        return `${r.fault}: ${counts.size === 0 ? 'none' : [...counts].map(([k, n]) => `${k} x${n}`).join(', ')}`;
      })
      .join('; ')}.`,
    `Recorded but not answered (the answer was lost, the record kept; allowed): ${rows.map((r) => `${r.fault} ${r.recordedNotAnswered}`).join(', ')}.`,
    `Email receipts ${[...receipts.emails.values()].reduce((a, b) => a + b, 0)} (${receipts.emails.size} distinct), hook receipts ${[...receipts.hooks.values()].reduce((a, b) => a + b, 0)} (${receipts.hooks.size} distinct).`,
    `Machine: ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; total ${totalS} s.`,
  ];
  process.stdout.write(`\n${table}\n\n`);
  if (details.length > 0) process.stdout.write(`Problems:\n${details.join('\n')}\n\n`);
  process.stdout.write(`${notes.join('\n')}\n`);
  writeFileSync(
    path.join(dataDir, 'results.md'),
    `Fault suite run of ${new Date().toISOString()}\n\n${table}\n\n${details.length > 0 ? `Problems:\n${details.join('\n')}\n\n` : ''}${notes.join('\n')}\n`,
  );
  writeFileSync(path.join(dataDir, 'results.json'), JSON.stringify({ at: new Date().toISOString(), totalS: Number(totalS), rows, otherDead, notes }, null, 2));
  const ok = failures.length === 0 && otherDead.length === 0 && drained && verify.ok;
  log(ok ? 'every invariant held' : `invariants failed: ${failures.map((f) => f.fault).join(', ') || 'see above'}${drained ? '' : ' (did not drain)'}`);
  clearTimeout(deadline);
  return ok ? 0 : 1;
}

main()
  .then(async (code) => {
    await cleanup();
    process.exit(code);
  })
  .catch(async (e: unknown) => {
    log(`the suite could not run: ${e instanceof Error ? (e.stack ?? e.message) : describe(e)}`);
    await cleanup();
    process.exit(2);
  });
