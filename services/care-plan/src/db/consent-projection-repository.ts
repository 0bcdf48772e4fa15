import { sql, type Kysely, type Selectable, type Transaction } from '@cmc/db';
import type { CarePlanDB, ConsentProjectionTable } from './schema';

type Db = Kysely<CarePlanDB> | Transaction<CarePlanDB>;
export type ConsentProjectionRow = Selectable<ConsentProjectionTable>;

export interface ConsentChange {
  nhsNumber: string;
  consentId: string;
  versionId: number;
  status: 'active' | 'inactive';
  /** How consent was obtained; only granted events carry it (a withdrawal keeps the one known). */
  basisCode?: string;
  changedAt: Date;
}

/**
 * Applies a change to one consent unless the projection already holds a later version of it (a replay from
 * before a reset). Each consent has its own row, so withdrawing one never hides another.
 */
export async function applyConsentChange(db: Db, c: ConsentChange): Promise<void> {
  await db
    .insertInto('consent_projection')
    .values({
      consent_id: c.consentId,
      nhs_number: c.nhsNumber,
      version_id: c.versionId,
      status: c.status,
      basis_code: c.basisCode ?? null,
      changed_at: c.changedAt,
      updated_at: new Date(),
    })
    .onConflict((oc) =>
      oc
        .column('consent_id')
        .doUpdateSet({
          version_id: (eb) => eb.ref('excluded.version_id'),
          status: (eb) => eb.ref('excluded.status'),
          basis_code: sql`coalesce(excluded.basis_code, consent_projection.basis_code)`,
          changed_at: (eb) => eb.ref('excluded.changed_at'),
          updated_at: (eb) => eb.ref('excluded.updated_at'),
        })
        .where(sql<boolean>`consent_projection.version_id < excluded.version_id`),
    )
    .execute();
}

/** Every consent of the patient this service has heard of, newest change first. */
export async function consentsOf(db: Db, nhsNumber: string): Promise<ConsentProjectionRow[]> {
  return db.selectFrom('consent_projection').selectAll().where('nhs_number', '=', nhsNumber).orderBy('changed_at', 'desc').execute();
}

/** The patient's active consent (the most recent, if several), as far as this service has heard. */
export async function activeConsentOf(db: Db, nhsNumber: string): Promise<ConsentProjectionRow | undefined> {
  return db
    .selectFrom('consent_projection')
    .selectAll()
    .where('nhs_number', '=', nhsNumber)
    .where('status', '=', 'active')
    .orderBy('changed_at', 'desc')
    .limit(1)
    .executeTakeFirst();
}

/** Whether the patient has active consent, as far as this service has heard. */
export async function hasActiveConsent(db: Db, nhsNumber: string): Promise<boolean> {
  return (await activeConsentOf(db, nhsNumber)) !== undefined;
}
