import type { Kysely, Selectable, Transaction } from '@cmc/db';
import type { PlanRow } from './plan-repository';
import type { CarePlanDB, FlagsTable, Resuscitation } from './schema';

type Db = Kysely<CarePlanDB> | Transaction<CarePlanDB>;
export type FlagRow = Selectable<FlagsTable>;

const resuscitationOf = (row: Pick<PlanRow, 'content'>): Resuscitation => row.content.resuscitation?.decision ?? 'not-recorded';

/** Why a flag went down, from the plan that closed. */
function downReason(row: Pick<PlanRow, 'state' | 'meta'>): string {
  if (row.state === 'deceased') return 'deceased';
  if (row.state === 'withdrawn') return row.meta.withdrawal?.byConsentWithdrawal ? 'consent-withdrawn' : 'withdrawn';
  return row.state;
}

/**
 * Keeps the plan's flag true to the plan, in the transaction of the plan's change: raised when the plan is
 * published, changed with each new version (resuscitation status, alerts, last change), down (inactive) when
 * the plan is withdrawn or closed by death. A plan that was never published has no flag.
 */
export async function syncFlag(db: Db, row: PlanRow): Promise<void> {
  const existing = await db.selectFrom('flags').select(['version_id', 'status']).where('plan_id', '=', row.id).forUpdate().executeTakeFirst();
  const up = row.state === 'published';
  if (!existing && !up) return;
  const says = {
    status: up ? ('active' as const) : ('inactive' as const),
    plan_version: row.version_id,
    resuscitation: resuscitationOf(row),
    alerts: (row.content.alerts?.length ?? 0) > 0,
    plan_modified_at: row.updated_at,
    updated_at: row.updated_at,
  };
  if (!existing) {
    await db
      .insertInto('flags')
      .values({ plan_id: row.id, nhs_number: row.nhs_number, version_id: 1, active_from: row.updated_at, active_until: null, down_reason: null, ...says })
      .execute();
    return;
  }
  const goingDown = existing.status === 'active' && !up;
  await db
    .updateTable('flags')
    .set({ ...says, version_id: existing.version_id + 1, ...(goingDown ? { active_until: row.updated_at, down_reason: downReason(row) } : {}) })
    .where('plan_id', '=', row.id)
    .execute();
}

/** The patient's active flag, if any: the dispatch lookup (one probe of a unique partial index). */
export async function activeFlag(db: Db, nhsNumber: string): Promise<FlagRow | undefined> {
  return db.selectFrom('flags').selectAll().where('nhs_number', '=', nhsNumber).where('status', '=', 'active').executeTakeFirst();
}

/** The active flags of many patients at once (the batch lookup). */
export async function activeFlags(db: Db, nhsNumbers: readonly string[]): Promise<FlagRow[]> {
  if (nhsNumbers.length === 0) return [];
  return db.selectFrom('flags').selectAll().where('nhs_number', 'in', [...new Set(nhsNumbers)]).where('status', '=', 'active').execute();
}

export async function findFlag(db: Db, planId: string): Promise<FlagRow | undefined> {
  return db.selectFrom('flags').selectAll().where('plan_id', '=', planId).executeTakeFirst();
}

/** A patient's flags, newest change first, optionally of some statuses. */
export async function flagsOfPatient(db: Db, nhsNumber: string, statuses?: readonly ('active' | 'inactive')[]): Promise<FlagRow[]> {
  let q = db.selectFrom('flags').selectAll().where('nhs_number', '=', nhsNumber);
  if (statuses && statuses.length > 0) q = q.where('status', 'in', [...statuses]);
  return q.orderBy('updated_at', 'desc').orderBy('plan_id', 'desc').limit(100).execute();
}

export type PointerRow = FlagRow & { organisation: string };

/** Active flags with the organisation holding each plan (the NRL-shaped pointers). */
const activePointerQuery = (db: Db) =>
  db.selectFrom('flags').innerJoin('care_plans', 'care_plans.id', 'flags.plan_id').selectAll('flags').select('care_plans.organisation').where('flags.status', '=', 'active');

/** The patient's pointers: the NRL-shaped search. */
export async function activePointers(db: Db, nhsNumber: string): Promise<PointerRow[]> {
  return activePointerQuery(db).where('flags.nhs_number', '=', nhsNumber).execute();
}

/** One active pointer by its id (the plan's). */
export async function activePointer(db: Db, planId: string): Promise<PointerRow | undefined> {
  return activePointerQuery(db).where('flags.plan_id', '=', planId).executeTakeFirst();
}
