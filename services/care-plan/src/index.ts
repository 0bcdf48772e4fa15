export { carePlanService } from './app';
export type { CarePlanDB } from './db/schema';
export { hasActiveConsent, findConsentProjection } from './db/consent-projection-repository';
