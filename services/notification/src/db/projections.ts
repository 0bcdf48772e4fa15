import type { PlanEventData } from '@cmc/contracts';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { NotificationDB, Plan } from './schema';

type Db = Kysely<NotificationDB> | Transaction<NotificationDB>;

/** A user as identity announced them; a later event with less (no email) keeps what was known. */
export async function upsertRecipient(
  db: Db,
  r: { userId: string; role: string; organisation?: string | undefined; email?: string | undefined; lastLoginAt?: string | undefined },
): Promise<void> {
  await db
    .insertInto('recipients')
    .values({ user_id: r.userId, role: r.role, organisation: r.organisation ?? null, email: r.email?.toLowerCase() ?? null, last_login_at: r.lastLoginAt ? new Date(r.lastLoginAt) : null })
    .onConflict((oc) =>
      oc.column('user_id').doUpdateSet({
        role: r.role,
        organisation: sql<string | null>`coalesce(excluded.organisation, recipients.organisation)`,
        email: sql<string | null>`coalesce(excluded.email, recipients.email)`,
        // The latest login wins, whatever order the events come in.
        last_login_at: sql<Date | null>`greatest(excluded.last_login_at, recipients.last_login_at)`,
        updated_at: sql<Date>`now()`,
      }),
    )
    .execute();
}

/** A deactivated user is told nothing more (a user first heard of here is kept as inactive). */
export async function deactivateRecipient(db: Db, userId: string): Promise<void> {
  await db
    .insertInto('recipients')
    .values({ user_id: userId, role: 'unknown', organisation: null, email: null, active: false })
    .onConflict((oc) => oc.column('user_id').doUpdateSet({ active: false, updated_at: sql<Date>`now()` }))
    .execute();
}

/**
 * Folds a plan event into the plan's projection and returns the plan as it now stands. Events of one plan
 * arrive in order (keyed by NHS number), but an older version never overwrites a newer one.
 */
export async function applyPlanEvent(db: Db, type: string, d: PlanEventData): Promise<Plan> {
  const version = Number(d.versionId);
  const published = type === 'cmc.careplan.published.v1';
  const submitted = type === 'cmc.careplan.submitted.v1';
  const row = await db
    .insertInto('plans')
    .values({
      plan_id: d.planId,
      nhs_number: d.nhsNumber,
      organisation: d.organisation,
      author: d.changedBy,
      reviewer: published ? d.changedBy : null,
      gp_practice: d.gpPractice ?? null,
      review_date: d.reviewDate ?? null,
      state: d.state,
      version_id: version,
      submitted_at: submitted ? new Date(d.changedAt) : null,
    })
    .onConflict((oc) =>
      oc.column('plan_id').doUpdateSet({
        organisation: sql<string>`case when excluded.version_id >= plans.version_id then excluded.organisation else plans.organisation end`,
        reviewer: sql<string | null>`case when ${published} then excluded.reviewer else plans.reviewer end`,
        // Each submission starts the approval clock again (and makes new reminders: they are keyed by it).
        submitted_at: sql<Date | null>`case when ${submitted} and excluded.version_id >= plans.version_id then excluded.submitted_at else plans.submitted_at end`,
        gp_practice: sql<string | null>`case when excluded.version_id >= plans.version_id then coalesce(excluded.gp_practice, plans.gp_practice) else plans.gp_practice end`,
        review_date: sql<string | null>`case when excluded.version_id >= plans.version_id then coalesce(excluded.review_date, plans.review_date) else plans.review_date end`,
        state: sql<string>`case when excluded.version_id >= plans.version_id then excluded.state else plans.state end`,
        version_id: sql<number>`greatest(excluded.version_id, plans.version_id)`,
        updated_at: sql<Date>`now()`,
      }),
    )
    .returningAll()
    .executeTakeFirstOrThrow();
  return row;
}

export async function plansOfPatient(db: Db, nhsNumber: string): Promise<Plan[]> {
  return db.selectFrom('plans').selectAll().where('nhs_number', '=', nhsNumber).execute();
}
