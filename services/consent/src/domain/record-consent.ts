import type { Principal } from '@cmc/auth';
import type { Database } from '@cmc/db';
import { publish } from '@cmc/events';
import type { Transaction } from 'kysely';
import { randomUUID } from 'node:crypto';
import type { Consent } from 'fhir/r4';
import { insertConsent } from '../db/consent-repository';
import type { ConsentDB } from '../db/schema';
import { checkConsentInput, toStoredConsent, type ConsentInput } from './consent';

export interface RecordConsentResult {
  resource: Consent;
}

/**
 * Records a new consent and, in the same transaction, the ConsentGranted event and the access entry: all
 * three commit together or not at all.
 */
export async function recordConsent(
  database: Database<ConsentDB>,
  recorder: Principal,
  input: ConsentInput,
  extras: {
    requestId: string;
    /** Writes the access entry in the same transaction (the route knows the request). */
    recordAccess: (trx: Transaction<ConsentDB>, resource: Consent) => Promise<void>;
  },
): Promise<RecordConsentResult> {
  const now = new Date();
  const { dateTime, secondaryUse, basisCode } = checkConsentInput(input, now);
  const id = randomUUID();
  const resource = toStoredConsent(input, id, 1, now, recorder);
  const nhsNumber = input.patient.identifier.value;
  await database.db.transaction().execute(async (trx) => {
    await insertConsent(trx, {
      id,
      version_id: 1,
      nhs_number: nhsNumber,
      status: input.status,
      date_time: dateTime,
      resource,
      recorded_by: recorder.subject,
      recorded_by_org: recorder.organisation ?? null,
      updated_at: now,
    });
    await publish(trx, database.schema, {
      type: 'cmc.consent.granted.v1',
      source: '/cmc/consent',
      subject: `Consent/${id}`,
      key: nhsNumber,
      requestId: extras.requestId,
      data: { consentId: id, versionId: '1', nhsNumber, status: 'active', dateTime: dateTime.toISOString(), secondaryUse, basisCode },
    });
    await extras.recordAccess(trx, resource);
  });
  return { resource };
}
