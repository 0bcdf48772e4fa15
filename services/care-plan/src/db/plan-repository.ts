import { sql, type Kysely, type Selectable, type Transaction } from '@cmc/db';
import type { AllergyIntolerance } from 'fhir/r4';
import type { CarePlanDB, CarePlanVersionsTable, CarePlansTable } from './schema';

type Db = Kysely<CarePlanDB> | Transaction<CarePlanDB>;
export type PlanRow = Selectable<CarePlansTable>;
export type PlanVersionRow = Selectable<CarePlanVersionsTable>;

/** Inserts a new plan and its first version. Throws 23505 when the patient already has an open plan. */
export async function insertPlan(db: Db, row: PlanRow, recordedBy: string): Promise<void> {
  await db.insertInto('care_plans').values(row).execute();
  await insertVersion(db, row, recordedBy);
}

async function insertVersion(db: Db, row: PlanRow, recordedBy: string): Promise<void> {
  await db
    .insertInto('care_plan_versions')
    .values({ id: row.id, version_id: row.version_id, state: row.state, meta: row.meta, content: row.content, resource: row.resource, recorded_by: recordedBy, recorded_at: row.updated_at })
    .execute();
}

export async function findPlan(db: Db, id: string): Promise<PlanRow | undefined> {
  return db.selectFrom('care_plans').selectAll().where('id', '=', id).executeTakeFirst();
}

/** The current row, locked until the transaction ends, so that two changes cannot both pass the version check. */
export async function findPlanForUpdate(db: Db, id: string): Promise<PlanRow | undefined> {
  return db.selectFrom('care_plans').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
}

/** The patient's open plan (draft, awaiting approval or published), if any. */
export async function findOpenPlan(db: Db, nhsNumber: string): Promise<Pick<PlanRow, 'id' | 'state' | 'organisation'> | undefined> {
  return db
    .selectFrom('care_plans')
    .select(['id', 'state', 'organisation'])
    .where('nhs_number', '=', nhsNumber)
    .where('state', 'in', ['draft', 'awaiting-approval', 'published'])
    .executeTakeFirst();
}

/** The patient's open plans, locked (the consent consumer withdraws them). */
export async function openPlansForUpdate(db: Db, nhsNumber: string): Promise<PlanRow[]> {
  return db
    .selectFrom('care_plans')
    .selectAll()
    .where('nhs_number', '=', nhsNumber)
    .where('state', 'in', ['draft', 'awaiting-approval', 'published'])
    .forUpdate()
    .execute();
}

/** Writes a new version: the current row moves on only from `fromVersion`; every version is kept. */
export async function updatePlan(db: Db, row: PlanRow, fromVersion: number, recordedBy: string): Promise<boolean> {
  const { id, ...rest } = row;
  const result = await db.updateTable('care_plans').set(rest).where('id', '=', id).where('version_id', '=', fromVersion).executeTakeFirst();
  if (Number(result.numUpdatedRows) !== 1) return false;
  await insertVersion(db, row, recordedBy);
  return true;
}

export async function findPlanVersion(db: Db, id: string, versionId: number): Promise<PlanVersionRow | undefined> {
  return db.selectFrom('care_plan_versions').selectAll().where('id', '=', id).where('version_id', '=', versionId).executeTakeFirst();
}

export async function listPlanVersions(db: Db, id: string): Promise<PlanVersionRow[]> {
  return db.selectFrom('care_plan_versions').selectAll().where('id', '=', id).orderBy('version_id', 'desc').execute();
}

/** Every plan of the patient, newest change first (a patient has one open plan and a few closed ones). */
/**
 * What serving a plan needs: the facts of the read rule and of the search, and the FHIR resource as the
 * database's JSON text, sent as it is (parsing and re-serialising it was most of a read's CPU).
 */
export type ServedPlanRow = Pick<PlanRow, 'id' | 'version_id' | 'state' | 'organisation' | 'nhs_number' | 'gp_practice' | 'meta' | 'updated_at' | 'published_at' | 'review_date'> & {
  resource_json: string;
  fhir_status: string;
};

const servedPlans = (db: Db) =>
  db
    .selectFrom('care_plans')
    .select(['id', 'version_id', 'state', 'organisation', 'nhs_number', 'gp_practice', 'meta', 'updated_at', 'published_at', 'review_date'])
    .select([sql<string>`resource::text`.as('resource_json'), sql<string>`resource->>'status'`.as('fhir_status')]);

export async function findPlanToServe(db: Db, id: string): Promise<ServedPlanRow | undefined> {
  return servedPlans(db).where('id', '=', id).executeTakeFirst();
}

/** The patient's plans to serve, most recently changed first (as plansOfPatient). */
export async function plansToServe(db: Db, nhsNumber: string): Promise<ServedPlanRow[]> {
  return servedPlans(db).where('nhs_number', '=', nhsNumber).orderBy('updated_at', 'desc').orderBy('id', 'desc').limit(1000).execute();
}

export async function plansOfPatient(db: Db, nhsNumber: string): Promise<PlanRow[]> {
  return db.selectFrom('care_plans').selectAll().where('nhs_number', '=', nhsNumber).orderBy('updated_at', 'desc').orderBy('id', 'desc').limit(1000).execute();
}

/** Replaces the plan's allergies with those of its current version. */
export async function replaceAllergies(db: Db, planId: string, nhsNumber: string, resources: AllergyIntolerance[]): Promise<void> {
  await db.deleteFrom('plan_allergies').where('plan_id', '=', planId).execute();
  if (resources.length === 0) return;
  await db
    .insertInto('plan_allergies')
    .values(resources.map((r) => ({ id: r.id ?? '', plan_id: planId, nhs_number: nhsNumber, resource: r })))
    .execute();
}

export async function findAllergy(db: Db, id: string): Promise<{ resource: AllergyIntolerance; plan: PlanRow } | undefined> {
  const a = await db.selectFrom('plan_allergies').selectAll().where('id', '=', id).executeTakeFirst();
  if (!a) return undefined;
  const plan = await findPlan(db, a.plan_id);
  return plan ? { resource: a.resource, plan } : undefined;
}

export async function allergiesOfPlans(db: Db, planIds: string[]): Promise<{ plan_id: string; resource: AllergyIntolerance }[]> {
  if (planIds.length === 0) return [];
  return db.selectFrom('plan_allergies').select(['plan_id', 'resource']).where('plan_id', 'in', planIds).orderBy('id').execute();
}
