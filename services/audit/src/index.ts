export { auditService } from './app';
export type { AuditDB, AuditLogTable } from './db/schema';
export { appendEvents, entriesAfter } from './db/audit-log-repository';
export { AUDIT_CONSUMER, auditConsumer } from './events/audit-consumer';
export { canonicalJson, entryBytes, entryHash, GENESIS_HASH } from './domain/chain';
export { verifyChain, type ChainProblem, type VerificationResult } from './domain/verify';
