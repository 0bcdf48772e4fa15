import { TOPICS } from '@cmc/contracts';
import type { ConsumerDefinition } from '@cmc/service';
import { applyConsentChange } from '../db/consent-projection-repository';
import type { CarePlanDB } from '../db/schema';

/** Keeps the consent projection from cmc.consent.v1. */
export const consentConsumer: ConsumerDefinition<CarePlanDB> = {
  name: 'care-plan.consent-projection',
  topics: [TOPICS.consent],
  handlers: {
    'cmc.consent.granted.v1': async (trx, event) => {
      await applyConsentChange(trx, {
        nhsNumber: event.data.nhsNumber,
        consentId: event.data.consentId,
        versionId: Number(event.data.versionId),
        status: 'active',
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
    },
  },
};
