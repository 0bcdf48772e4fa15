import type { Logger } from '@cmc/logging';
import { sql, type Kysely } from 'kysely';
import type { NotificationDB } from '../db/schema';
import { notify, recipientsFor } from './notify';

const BATCH = 500;

export interface ApprovalSettings {
  /** NOTIFY_APPROVAL_REMINDER_DAYS: the reminder, this long after submission. */
  reminderDays: number;
  /** NOTIFY_APPROVAL_ESCALATION_DAYS: the escalation to the lead, this long after the reminder is due. */
  escalationDays: number;
  /** The time to judge by (tests); now by default. */
  now?: Date;
}

/**
 * The approval reminder job, one run (decision 0016). A plan still awaiting approval `reminderDays` after it
 * was submitted gets an `approval-reminder` to its organisation's clinicians (and its GP practice's, where
 * the organisation has agreed that they approve); `escalationDays` later, an `approval-escalation` to the
 * organisation's CMC lead. Each is made once per plan, kind and submission (primary key of
 * approval_reminders), written with its notifications and emails in one transaction under an advisory lock:
 * two instances never both make it, and a run missed (an instance down) is caught up at the next, since the
 * job looks at what is due, not at what changed. After a long gap both may go at once. A new submission
 * starts again. An organisation without a lead gets no escalation: it is recorded with no recipient and a
 * warning names the organisation (never the patient). Returns how many it made.
 */
export async function runApprovalReminders(db: Kysely<NotificationDB>, s: ApprovalSettings, logger?: Pick<Logger, 'warn'>): Promise<number> {
  let made = 0;
  for (;;) {
    const n = await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(current_schema() || '.approval_reminders'))`.execute(trx);
      const now = s.now ? sql`${s.now.toISOString()}::timestamptz` : sql`now()`;
      // Selected and recorded in one statement: the submission time goes from plans to approval_reminders
      // without passing through JavaScript (whose dates would lose its microseconds, and the key with them).
      const { rows } = await sql<{ plan_id: string; kind: 'approval-reminder' | 'approval-escalation'; submitted: string; organisation: string; gp_practice: string | null; author: string; reviewer: string | null }>`
        with due as (
          select p.plan_id, k.kind, p.submitted_at
          from plans p
          cross join (values ('approval-reminder', ${s.reminderDays}::int), ('approval-escalation', ${s.reminderDays + s.escalationDays}::int)) as k (kind, days)
          where p.state = 'awaiting-approval' and p.submitted_at is not null
            and p.submitted_at <= ${now} - make_interval(days => k.days)
            and not exists (
              select 1 from approval_reminders r where r.plan_id = p.plan_id and r.kind = k.kind and r.submitted_at = p.submitted_at)
          order by p.submitted_at, p.plan_id, k.kind
          limit ${BATCH}
        ), made as (
          insert into approval_reminders (plan_id, kind, submitted_at, recipients)
          select plan_id, kind, submitted_at, 0 from due
          on conflict do nothing
          returning plan_id, kind, submitted_at
        )
        select m.plan_id, m.kind, to_char(m.submitted_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as submitted,
               p.organisation, p.gp_practice, p.author, p.reviewer
        from made m join plans p on p.plan_id = m.plan_id
        order by m.submitted_at, m.plan_id, m.kind`.execute(trx);
      for (const r of rows) {
        const recipients = await recipientsFor(trx, r.kind, r);
        await notify(trx, { source: `${r.kind}:${r.plan_id}:${r.submitted}`, kind: r.kind, planId: r.plan_id, recipients });
        await trx
          .updateTable('approval_reminders')
          .set({ recipients: recipients.length })
          .where('plan_id', '=', r.plan_id)
          .where('kind', '=', r.kind)
          .where(sql<boolean>`to_char(submitted_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') = ${r.submitted}`)
          .execute();
        if (recipients.length === 0) {
          logger?.warn({ organisation: r.organisation, kind: r.kind }, r.kind === 'approval-escalation' ? 'a plan awaiting approval could not be escalated: the organisation has no CMC lead recorded' : 'an approval reminder found nobody to tell');
        }
      }
      return rows.length;
    });
    made += n;
    if (n < BATCH) return made;
  }
}
