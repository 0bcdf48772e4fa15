export { consentService } from './app';
export type { ConsentDB } from './db/schema';
