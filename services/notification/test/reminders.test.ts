/** The review reminder job: once per plan, kind and review date, safe with two instances, catching up after a gap. */
import { createDatabase, migrateToLatest, type Database, type Kysely } from '@cmc/db';
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, randomNhsNumber, startTestService, testDatabaseUrl, uniqueName, waitFor } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';
import { notificationService, runReviewReminders, type NotificationDB } from '../src';
import { migrations } from '../src/db/migrations';
import { APlan, aUser, fastEnv, send, uniqueOds, userCreated } from './support';

const addDays = (date: string, days: number): string => new Date(Date.parse(`${date}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);

describe('runReviewReminders', () => {
  let database: Database<NotificationDB>;
  const org = uniqueOds();
  const reviewer = aUser('clinician', org);
  const colleague = aUser('clinician', org);
  const today = '2027-03-10';

  beforeAll(async () => {
    database = createDatabase<NotificationDB>({ url: testDatabaseUrl(), schema: uniqueName('notification'), poolMax: 6 });
    await migrateToLatest(database.db as Kysely<unknown>, database.schema, migrations);
    await database.db.insertInto('recipients').values([reviewer, colleague].map((u) => ({ user_id: u.userId, role: u.role, organisation: u.organisation, email: u.email }))).execute();
  });
  afterAll(async () => {
    await database?.close();
  });

  const aPlan = async (reviewDate: string, state = 'published'): Promise<string> => {
    const planId = randomUUID();
    await database.db.insertInto('plans').values({ plan_id: planId, nhs_number: randomNhsNumber(), organisation: org, author: randomUUID(), reviewer: reviewer.userId, gp_practice: null, review_date: reviewDate, state, version_id: 2 }).execute();
    return planId;
  };
  const remindersOf = async (planId: string) =>
    (await database.db.selectFrom('notifications').select(['user_id', 'kind', 'source']).where('plan_id', '=', planId).execute())
      .map((n) => `${n.kind}:${n.user_id === reviewer.userId ? 'reviewer' : 'colleague'}`)
      .sort();

  it('when a plan is due within 14 days, then its reviewing clinician is reminded; when overdue, the reviewer and the organisation\'s clinicians; further out, or withdrawn, nobody', async () => {
    const soon = await aPlan(addDays(today, 14));
    const overdue = await aPlan(addDays(today, -1));
    const later = await aPlan(addDays(today, 15));
    const withdrawn = await aPlan(addDays(today, -3), 'withdrawn');
    await runReviewReminders(database.db, { soonDays: 14, today });
    expect(await remindersOf(soon)).toEqual(['review-due:reviewer']);
    expect(await remindersOf(overdue)).toEqual(['review-overdue:colleague', 'review-overdue:reviewer']);
    expect(await remindersOf(later)).toEqual([]);
    expect(await remindersOf(withdrawn)).toEqual([]);
    const emails = await database.db.selectFrom('email_deliveries').select(['address', 'kind']).where('source', 'like', `%:${soon}:%`).execute();
    expect(emails).toEqual([{ address: reviewer.email, kind: 'review-due' }]);
  });

  it('when the job runs again, or in two instances at once, then no reminder is sent twice', async () => {
    const plans = await Promise.all([1, 2, 3].map((d) => aPlan(addDays(today, d))));
    const results = await Promise.all([runReviewReminders(database.db, { soonDays: 14, today }), runReviewReminders(database.db, { soonDays: 14, today })]);
    expect(results.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(3);
    await runReviewReminders(database.db, { soonDays: 14, today });
    for (const p of plans) expect(await remindersOf(p)).toEqual(['review-due:reviewer']);
  });

  it('when days were missed, then the next run catches up; and a new review date brings new reminders', async () => {
    const plan = await aPlan(addDays(today, 20));
    await runReviewReminders(database.db, { soonDays: 14, today });
    expect(await remindersOf(plan)).toEqual([]);
    // The job did not run for three weeks.
    await runReviewReminders(database.db, { soonDays: 14, today: addDays(today, 21) });
    expect(await remindersOf(plan)).toEqual(['review-overdue:colleague', 'review-overdue:reviewer']);
    // Reviewed and published again with a date three months on; two weeks before it, reminded again.
    await database.db.updateTable('plans').set({ review_date: addDays(today, 111) }).where('plan_id', '=', plan).execute();
    await runReviewReminders(database.db, { soonDays: 14, today: addDays(today, 100) });
    expect(await remindersOf(plan)).toEqual(['review-due:reviewer', 'review-overdue:colleague', 'review-overdue:reviewer']);
  });
});

describe('the review reminder job in the service', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let svc: RunningService<NotificationDB>;

  beforeAll(async () => {
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: { ...fastEnv(), NOTIFY_REVIEW_CHECK_SECONDS: '1' } });
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
  });

  it('when a published plan\'s review date is near, then its publisher finds a reminder in the inbox without anyone asking', async () => {
    const org = uniqueOds();
    const publisher = aUser('clinician', org);
    await send(transport, userCreated(publisher));
    const plan = new APlan(org, randomUUID(), undefined, new Date(Date.now() + 3 * 86_400_000).toISOString().slice(0, 10));
    await send(transport, plan.event('cmc.careplan.published.v1', { changedBy: publisher.userId }));
    const inbox = await waitFor(async () => {
      const res = await svc.app.inject({ method: 'GET', url: '/api/notifications', headers: { authorization: issuer.bearer({ sub: publisher.userId, role: 'clinician', org }) } });
      const items = res.json<{ notifications: { kind: string; planId: string }[] }>().notifications;
      return items.some((n) => n.kind === 'review-due') ? items : undefined;
    }, 20_000, 'the reminder');
    expect(inbox.find((n) => n.kind === 'review-due')!.planId).toBe(plan.planId);
  });
});
