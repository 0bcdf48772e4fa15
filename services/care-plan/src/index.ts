export { carePlanService } from './app';
export type { CarePlanDB } from './db/schema';
export { hasActiveConsent, activeConsentOf, consentsOf } from './db/consent-projection-repository';
