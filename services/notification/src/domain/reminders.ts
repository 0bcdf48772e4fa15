import { sql, type Kysely } from 'kysely';
import type { NotificationDB } from '../db/schema';
import { notify, recipientsFor } from './notify';

const BATCH = 500;

/**
 * The review reminders job, one run: every published plan whose review date is `soonDays` away or fewer
 * (`review-due`) or past (`review-overdue`, London date) gets its reminder, once per plan, kind and review
 * date. The reminder, its notifications and its emails are written in one transaction with the row of
 * review_reminders whose primary key makes it once: two instances running at the same moment cannot both
 * send it (the second waits for the first's transaction-level advisory lock, then finds nothing to do), and
 * a day missed is caught up at the next run, since the job looks at what is due, not at what changed today.
 * Returns how many reminders it made.
 */
export async function runReviewReminders(db: Kysely<NotificationDB>, opts: { soonDays: number; today?: string }): Promise<number> {
  let made = 0;
  for (;;) {
    const n = await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(current_schema() || '.review_reminders'))`.execute(trx);
      const today = opts.today ? sql`${opts.today}::date` : sql`(now() at time zone 'Europe/London')::date`;
      const { rows } = await sql<{ plan_id: string; review_date: string; kind: 'review-due' | 'review-overdue'; organisation: string; gp_practice: string | null; author: string; reviewer: string | null }>`
        select p.plan_id, p.review_date, p.organisation, p.gp_practice, p.author, p.reviewer,
               case when p.review_date < ${today} then 'review-overdue' else 'review-due' end as kind
        from plans p
        where p.state = 'published' and p.review_date is not null and p.review_date <= ${today} + ${opts.soonDays}::int
          and not exists (
            select 1 from review_reminders r
            where r.plan_id = p.plan_id and r.review_date = p.review_date
              and r.kind = case when p.review_date < ${today} then 'review-overdue' else 'review-due' end)
        order by p.review_date, p.plan_id
        limit ${BATCH}`.execute(trx);
      for (const plan of rows) {
        const inserted = await trx
          .insertInto('review_reminders')
          .values({ plan_id: plan.plan_id, kind: plan.kind, review_date: plan.review_date })
          .onConflict((oc) => oc.doNothing())
          .returning('plan_id')
          .executeTakeFirst();
        if (!inserted) continue;
        const recipients = await recipientsFor(trx, plan.kind, plan);
        await notify(trx, { source: `${plan.kind}:${plan.plan_id}:${plan.review_date}`, kind: plan.kind, planId: plan.plan_id, recipients });
      }
      return rows.length;
    });
    made += n;
    if (n < BATCH) return made;
  }
}
