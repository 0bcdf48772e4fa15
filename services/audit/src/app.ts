import type { ServiceDefinition } from '@cmc/service';
import { migrations } from './db/migrations';
import type { AuditDB } from './db/schema';
import { auditConsumer } from './events/audit-consumer';
import { verifyRoutes } from './routes/verify';

/** The audit service: the append-only, hash-chained log of every access and domain event. Built here; `server.ts` runs it. */
export const auditService: ServiceDefinition<AuditDB> = {
  name: 'audit',
  envPrefix: 'AUDIT',
  defaultPort: 3004,
  defaultSchema: 'audit',
  description: 'The append-only, hash-chained audit log of every access and event, and its verification.',
  migrations,
  consumers: [auditConsumer()],
  routes: verifyRoutes,
};
