import type { ServiceDefinition } from '@cmc/service';
import { migrations } from './db/migrations';
import type { ConsentDB } from './db/schema';
import { consentRoutes } from './routes/consent';

/** The consent service: FHIR Consent, publishing cmc.consent.v1. Built here; `server.ts` runs it. */
export const consentService: ServiceDefinition<ConsentDB> = {
  name: 'consent',
  envPrefix: 'CONSENT',
  defaultPort: 3002,
  defaultSchema: 'consent',
  description: 'FHIR Consent: patients\' consent to an urgent care plan.',
  migrations,
  routes: consentRoutes,
};
