import { TOPICS } from '@cmc/contracts';
import type { ConsumerDefinition } from '@cmc/service';
import { applyConsentChange } from '../db/consent-projection-repository';
import type { CarePlanDB } from '../db/schema';
import { withdrawPlansForConsent } from '../domain/plans';

/**
 * Keeps the consent projection from cmc.consent.v1 and, when a withdrawal leaves the patient without active
 * consent, withdraws their open plan in the same transaction (so the plan leaves every view but the service
 * team's). Redelivery is a no-op: the consumer records each event id with its effect.
 */
export function consentConsumer(schema: string): ConsumerDefinition<CarePlanDB> {
  return {
    name: 'care-plan.consent-projection',
    topics: [TOPICS.consent],
    handlers: {
      'cmc.consent.granted.v1': async (trx, event) => {
        await applyConsentChange(trx, {
          nhsNumber: event.data.nhsNumber,
          consentId: event.data.consentId,
          versionId: Number(event.data.versionId),
          status: 'active',
          ...(event.data.basisCode ? { basisCode: event.data.basisCode } : {}),
          changedAt: new Date(event.data.dateTime),
        });
      },
      'cmc.consent.withdrawn.v1': async (trx, event) => {
        await applyConsentChange(trx, {
          nhsNumber: event.data.nhsNumber,
          consentId: event.data.consentId,
          versionId: Number(event.data.versionId),
          status: 'inactive',
          changedAt: new Date(event.data.withdrawnAt),
        });
        await withdrawPlansForConsent(trx, schema, event.data.nhsNumber, event.data.consentId, new Date(event.data.withdrawnAt));
      },
    },
  };
}
