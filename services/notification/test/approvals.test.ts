/**
 * Plans left awaiting approval: a reminder to the organisation's clinicians after 3 days, then the
 * organisation's CMC lead 2 days later (decision 0016); once each, with two instances, after a gap. And the
 * GP practice told of submissions where the organisation has agreed that it approves.
 */
import { createDatabase, migrateToLatest, type Database, type Kysely } from '@cmc/db';
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, randomNhsNumber, startTestService, testDatabaseUrl, uniqueName, waitFor } from '@cmc/test-support';
import type { OperationOutcome } from 'fhir/r4';
import { randomUUID } from 'node:crypto';
import { notificationService, runApprovalReminders, type NotificationDB } from '../src';
import { migrations } from '../src/db/migrations';
import { APlan, aUser, fastEnv, send, startSmtp, uniqueOds, userCreated, type TestUser } from './support';

const DAY = 86_400_000;
const settings = { reminderDays: 3, escalationDays: 2 };

describe('runApprovalReminders', () => {
  let database: Database<NotificationDB>;
  const org = uniqueOds();
  const gp = uniqueOds();
  const nurse = aUser('clinician', org);
  const doctor = aUser('clinician', org);
  const admin = aUser('administrator', org);
  const gpDoctor = aUser('clinician', gp);
  const leadAddress = `cmc-lead-${randomUUID().slice(0, 8)}@${org.toLowerCase()}.test`;
  const submittedAt = new Date('2027-04-05T09:30:00.123Z');
  const at = (days: number) => new Date(submittedAt.getTime() + days * DAY);

  beforeAll(async () => {
    database = createDatabase<NotificationDB>({ url: testDatabaseUrl(), schema: uniqueName('notification'), poolMax: 6 });
    await migrateToLatest(database.db as Kysely<unknown>, database.schema, migrations);
    await database.db.insertInto('recipients').values([nurse, doctor, admin, gpDoctor].map((u) => ({ user_id: u.userId, role: u.role, organisation: u.organisation, email: u.email }))).execute();
    await database.db.insertInto('organisation_settings').values({ organisation: org, lead_email: leadAddress, gp_practice_approves: false, updated_by: 'test' }).execute();
  });
  afterAll(async () => {
    await database?.close();
  });

  const aPlanAwaitingApproval = async (o = org, state = 'awaiting-approval', submitted: Date = submittedAt): Promise<string> => {
    const planId = randomUUID();
    await database.db.insertInto('plans').values({ plan_id: planId, nhs_number: randomNhsNumber(), organisation: o, author: admin.userId, reviewer: null, gp_practice: gp, review_date: null, state, version_id: 2, submitted_at: submitted }).execute();
    return planId;
  };
  const who = (id: string) => ({ [nurse.userId]: 'nurse', [doctor.userId]: 'doctor', [admin.userId]: 'admin', [gpDoctor.userId]: 'gp' })[id] ?? id;
  const told = async (planId: string) => ({
    inbox: (await database.db.selectFrom('notifications').select(['user_id', 'kind']).where('plan_id', '=', planId).execute()).map((n) => `${n.kind}:${who(n.user_id)}`).sort(),
    email: (await database.db.selectFrom('email_deliveries').select(['address', 'kind', 'source']).where('source', 'like', `%:${planId}:%`).execute()).map((e) => `${e.kind}:${e.address === leadAddress ? 'lead' : e.address.split('-')[0]}`).sort(),
  });

  it('when a plan has waited 3 days, then its organisation\'s clinicians are reminded; 2 days later its CMC lead is told; before that, and for published plans, nobody', async () => {
    const plan = await aPlanAwaitingApproval();
    const published = await aPlanAwaitingApproval(org, 'published');
    await runApprovalReminders(database.db, { ...settings, now: at(2.9) });
    expect(await told(plan)).toEqual({ inbox: [], email: [] });
    await runApprovalReminders(database.db, { ...settings, now: at(3) });
    expect(await told(plan)).toEqual({ inbox: ['approval-reminder:doctor', 'approval-reminder:nurse'], email: ['approval-reminder:clinician', 'approval-reminder:clinician'] });
    await runApprovalReminders(database.db, { ...settings, now: at(4.9) });
    expect((await told(plan)).email).not.toContain('approval-escalation:lead');
    await runApprovalReminders(database.db, { ...settings, now: at(5) });
    // The lead has no account here: an email to the address the service team recorded, no inbox.
    expect(await told(plan)).toEqual({ inbox: ['approval-reminder:doctor', 'approval-reminder:nurse'], email: ['approval-escalation:lead', 'approval-reminder:clinician', 'approval-reminder:clinician'] });
    await runApprovalReminders(database.db, { ...settings, now: at(9) });
    expect((await told(plan)).email).toHaveLength(3);
    expect(await told(published)).toEqual({ inbox: [], email: [] });
  });

  it('when two instances run at once, or again, then each reminder and escalation is made once', async () => {
    const plans = await Promise.all([1, 2, 3].map(() => aPlanAwaitingApproval()));
    const made = await Promise.all([runApprovalReminders(database.db, { ...settings, now: at(6) }), runApprovalReminders(database.db, { ...settings, now: at(6) })]);
    expect(made.reduce((a, b) => a + b, 0)).toBe(6);
    await runApprovalReminders(database.db, { ...settings, now: at(7) });
    for (const p of plans) {
      expect(await told(p)).toEqual({ inbox: ['approval-reminder:doctor', 'approval-reminder:nurse'], email: ['approval-escalation:lead', 'approval-reminder:clinician', 'approval-reminder:clinician'] });
    }
  });

  it('when the job did not run for a week, then the next run makes what was missed; a new submission starts again', async () => {
    const plan = await aPlanAwaitingApproval();
    await runApprovalReminders(database.db, { ...settings, now: at(10) });
    expect((await told(plan)).email).toEqual(['approval-escalation:lead', 'approval-reminder:clinician', 'approval-reminder:clinician']);
    // Sent back to draft and submitted again 11 days after the first time: the clock starts again.
    await database.db.updateTable('plans').set({ submitted_at: at(11) }).where('plan_id', '=', plan).execute();
    await runApprovalReminders(database.db, { ...settings, now: at(13) });
    expect((await told(plan)).email).toHaveLength(3);
    await runApprovalReminders(database.db, { ...settings, now: at(14) });
    expect((await told(plan)).email).toHaveLength(5);
  });

  it('when the organisation has no lead, then the escalation is recorded with nobody told; where its GP practice approves, the GP\'s clinicians are reminded too', async () => {
    const noLead = uniqueOds();
    const orphan = await aPlanAwaitingApproval(noLead);
    await runApprovalReminders(database.db, { ...settings, now: at(5) });
    expect(await told(orphan)).toEqual({ inbox: [], email: [] });
    const made = await database.db.selectFrom('approval_reminders').select(['kind', 'recipients']).where('plan_id', '=', orphan).orderBy('kind').execute();
    expect(made).toEqual([{ kind: 'approval-escalation', recipients: 0 }, { kind: 'approval-reminder', recipients: 0 }]);

    const approving = uniqueOds();
    const colleague = aUser('clinician', approving);
    await database.db.insertInto('recipients').values({ user_id: colleague.userId, role: 'clinician', organisation: approving, email: colleague.email }).execute();
    // The lead is a member of staff with an account: the inbox too.
    await database.db.insertInto('organisation_settings').values({ organisation: approving, lead_email: doctor.email, gp_practice_approves: true, updated_by: 'test' }).execute();
    const plan = await aPlanAwaitingApproval(approving);
    await runApprovalReminders(database.db, { ...settings, now: at(5) });
    const inbox = (await told(plan)).inbox;
    expect(inbox).toEqual(['approval-escalation:doctor', 'approval-reminder:gp', `approval-reminder:${colleague.userId}`].sort());
  });
});

describe('approval reminders and GP approval in the service', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let svc: RunningService<NotificationDB>;
  const serviceTeam = issuer.bearer({ role: 'service-team', org: 'X26' });

  beforeAll(async () => {
    smtp = await startSmtp();
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: { ...fastEnv(smtp.url), NOTIFY_REVIEW_CHECK_SECONDS: '1' } });
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
    await smtp?.close();
  });

  const put = (ods: string, body: unknown, authorization = serviceTeam) =>
    svc.app.inject({ method: 'PUT', url: `/api/notifications/organisations/${ods}`, headers: { authorization, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
  const kindsOf = async (u: TestUser, planId: string) => {
    const res = await svc.app.inject({ method: 'GET', url: '/api/notifications?_count=100', headers: { authorization: issuer.bearer({ sub: u.userId, role: u.role, org: u.organisation }) } });
    return res.json<{ notifications: { kind: string; planId: string }[] }>().notifications.filter((n) => n.planId === planId).map((n) => n.kind).sort();
  };

  it('when the service team sets an organisation\'s lead and GP approval, then it reads them back; bad input is a 400 and others a 403, and nothing is stored', async () => {
    const org = uniqueOds();
    const lead = `lead-${randomUUID().slice(0, 8)}@example.test`;
    expect((await svc.app.inject({ method: 'GET', url: `/api/notifications/organisations/${org}`, headers: { authorization: serviceTeam } })).json()).toEqual({ organisation: org, leadEmail: null, gpPracticeApproves: false, updatedAt: null });
    for (const bad of [{ leadEmail: 'not an address', gpPracticeApproves: false }, { leadEmail: lead }, { leadEmail: lead, gpPracticeApproves: 'yes' }, { leadEmail: lead, gpPracticeApproves: true, colour: 'red' }]) {
      const res = await put(org, bad);
      expect({ bad, status: res.statusCode }).toEqual({ bad, status: 400 });
      expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    }
    expect((await put('not-ods', { leadEmail: lead, gpPracticeApproves: true })).statusCode).toBe(400);
    expect((await put(org, { leadEmail: lead, gpPracticeApproves: true }, issuer.bearer({ role: 'clinician', org }))).statusCode).toBe(403);
    expect(await svc.database.db.selectFrom('organisation_settings').select('organisation').where('organisation', '=', org).execute()).toHaveLength(0);
    const res = await put(org, { leadEmail: lead.toUpperCase(), gpPracticeApproves: true });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ organisation: org, leadEmail: lead, gpPracticeApproves: true });
  });

  it('when a plan is submitted and its organisation agreed that the GP practice approves, then the GP\'s clinicians hear of it; when not agreed, they do not', async () => {
    const agreed = uniqueOds();
    const notAgreed = uniqueOds();
    const gp = uniqueOds();
    const nurseA = aUser('clinician', agreed);
    const nurseB = aUser('clinician', notAgreed);
    const gpDoctor = aUser('clinician', gp);
    await send(transport, ...[nurseA, nurseB, gpDoctor].map(userCreated));
    expect((await put(agreed, { leadEmail: null, gpPracticeApproves: true })).statusCode).toBe(200);
    await waitFor(async () => (await svc.database.db.selectFrom('recipients').select('user_id').where('user_id', 'in', [nurseA.userId, nurseB.userId, gpDoctor.userId]).execute()).length === 3, 20_000, 'the users');
    const planA = new APlan(agreed, randomUUID(), gp);
    const planB = new APlan(notAgreed, randomUUID(), gp);
    await send(transport, planA.event('cmc.careplan.submitted.v1'), planB.event('cmc.careplan.submitted.v1'));
    await waitFor(async () => (await kindsOf(nurseA, planA.planId)).length > 0 && (await kindsOf(nurseB, planB.planId)).length > 0, 20_000, 'the submissions');
    expect(await kindsOf(gpDoctor, planA.planId)).toEqual(['plan-submitted']);
    expect(await kindsOf(gpDoctor, planB.planId)).toEqual([]);
  });

  it('when a plan was submitted 4 days ago and is still awaiting approval, then the job reminds its organisation\'s clinicians by inbox and email, without anyone asking', async () => {
    const org = uniqueOds();
    const nurse = aUser('clinician', org);
    await send(transport, userCreated(nurse));
    await waitFor(async () => !!(await svc.database.db.selectFrom('recipients').select('user_id').where('user_id', '=', nurse.userId).executeTakeFirst()), 20_000, 'the nurse');
    const plan = new APlan(org, randomUUID());
    await send(transport, plan.event('cmc.careplan.created.v1'), plan.event('cmc.careplan.submitted.v1', { changedAt: new Date(Date.now() - 4 * DAY).toISOString() }));
    await waitFor(async () => (await kindsOf(nurse, plan.planId)).includes('approval-reminder'), 20_000, 'the reminder');
    expect(await kindsOf(nurse, plan.planId)).toEqual(['approval-reminder', 'plan-submitted']);
    const mail = await waitFor(async () => smtp.mails.find((m) => m.to.includes(nurse.email) && m.raw.includes('waiting for approval')), 20_000, 'the email');
    expect(mail.raw).toContain('Subject: A care plan is waiting for approval');
    expect(mail.raw).not.toContain(plan.nhsNumber);
    expect(mail.raw).not.toContain(plan.planId);
  });
});
