export { identityService } from './app';
export type { IdentityDB } from './db/schema';
export { identityConfigSpec } from './config';
export { hashPassword, verifyPassword, passwordProblems } from './domain/passwords';
