export { carePlanService } from './app';
export type { CarePlanDB } from './db/schema';
export { hasActiveConsent, activeConsentOf, consentsOf } from './db/consent-projection-repository';
// For the flag-lookup benchmark (bench/src/flags-server.ts): the repository lookup, its answer, and the access log.
export { activeFlag } from './db/flag-repository';
export { toLookup, flagLookupSchema } from './domain/flag';
export { accessLogOf } from './routes/shared';
