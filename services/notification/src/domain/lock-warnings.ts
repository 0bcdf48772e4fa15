import { sql, type Kysely } from 'kysely';
import type { NotificationDB } from '../db/schema';

const BATCH = 500;
export const LOCK_WARNING_KIND = 'account-lock-warning';

export interface LockWarningSettings {
  /** Identity locks an account after this many days without a login (IDENTITY_INACTIVITY_DAYS). */
  inactivityDays: number;
  /** Warn this many days before. */
  warningDays: number;
  /** The time to judge by (tests); now by default. */
  now?: Date;
}

/**
 * The account lock warning job, one run: every active recipient with an address whose last login (from
 * login-succeeded) is between `inactivityDays - warningDays` and `inactivityDays` days ago gets an email,
 * once per user and last-login date (London date; the primary key of lock_warnings). As the review reminders:
 * the warning and its email are written in one transaction under an advisory lock, and a missed day is caught
 * up at the next run. A new login makes a new date, hence a new warning when that one ages in turn. Users
 * never seen logging in (last_login_at null) are not warned. Returns how many warnings it made.
 */
export async function runLockWarnings(db: Kysely<NotificationDB>, s: LockWarningSettings): Promise<number> {
  let made = 0;
  for (;;) {
    const n = await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext(current_schema() || '.lock_warnings'))`.execute(trx);
      const now = s.now ? sql`${s.now.toISOString()}::timestamptz` : sql`now()`;
      const { rows } = await sql<{ user_id: string; email: string; last_login_date: string }>`
        select r.user_id, r.email, to_char((r.last_login_at at time zone 'Europe/London')::date, 'YYYY-MM-DD') as last_login_date
        from recipients r
        where r.active and r.email is not null and r.last_login_at is not null
          and r.last_login_at <= ${now} - make_interval(days => ${s.inactivityDays - s.warningDays})
          and r.last_login_at > ${now} - make_interval(days => ${s.inactivityDays})
          and not exists (
            select 1 from lock_warnings w
            where w.user_id = r.user_id and w.last_login_date = (r.last_login_at at time zone 'Europe/London')::date)
        order by r.last_login_at, r.user_id
        limit ${BATCH}`.execute(trx);
      for (const r of rows) {
        const inserted = await trx
          .insertInto('lock_warnings')
          .values({ user_id: r.user_id, last_login_date: r.last_login_date })
          .onConflict((oc) => oc.doNothing())
          .returning('user_id')
          .executeTakeFirst();
        if (!inserted) continue;
        await trx
          .insertInto('email_deliveries')
          .values({ source: `${LOCK_WARNING_KIND}:${r.user_id}:${r.last_login_date}`, recipient: r.user_id, address: r.email, kind: LOCK_WARNING_KIND, last_error: null, sent_at: null })
          .onConflict((oc) => oc.columns(['source', 'recipient']).doNothing())
          .execute();
      }
      return rows.length;
    });
    made += n;
    if (n < BATCH) return made;
  }
}
