import { sql, type Kysely, type Selectable, type Transaction } from '@cmc/db';
import type { CarePlanDB, ConsentProjectionTable } from './schema';

type Db = Kysely<CarePlanDB> | Transaction<CarePlanDB>;
export type ConsentProjectionRow = Selectable<ConsentProjectionTable>;

export interface ConsentChange {
  nhsNumber: string;
  consentId: string;
  versionId: number;
  status: 'active' | 'inactive';
  changedAt: Date;
}

/**
 * Applies a consent change unless the projection already holds something newer: a later version of the same
 * consent, or another consent changed later. Events of one patient arrive in order (keyed by NHS number), so
 * this guards only against replays from before a reset.
 */
export async function applyConsentChange(db: Db, c: ConsentChange): Promise<void> {
  await db
    .insertInto('consent_projection')
    .values({
      nhs_number: c.nhsNumber,
      consent_id: c.consentId,
      version_id: c.versionId,
      status: c.status,
      changed_at: c.changedAt,
      updated_at: new Date(),
    })
    .onConflict((oc) =>
      oc.column('nhs_number').doUpdateSet({
        consent_id: (eb) => eb.ref('excluded.consent_id'),
        version_id: (eb) => eb.ref('excluded.version_id'),
        status: (eb) => eb.ref('excluded.status'),
        changed_at: (eb) => eb.ref('excluded.changed_at'),
        updated_at: (eb) => eb.ref('excluded.updated_at'),
      }).where(
        sql<boolean>`(consent_projection.consent_id = excluded.consent_id and consent_projection.version_id < excluded.version_id)
          or (consent_projection.consent_id <> excluded.consent_id and consent_projection.changed_at <= excluded.changed_at)`,
      ),
    )
    .execute();
}

export async function findConsentProjection(db: Db, nhsNumber: string): Promise<ConsentProjectionRow | undefined> {
  return db.selectFrom('consent_projection').selectAll().where('nhs_number', '=', nhsNumber).executeTakeFirst();
}

/** Whether the patient has active consent, as far as this service has heard. */
export async function hasActiveConsent(db: Db, nhsNumber: string): Promise<boolean> {
  return (await findConsentProjection(db, nhsNumber))?.status === 'active';
}
