import type { ServiceDefinition } from '@cmc/service';
import { migrations } from './db/migrations';
import type { AuditDB } from './db/schema';
import { auditConsumer } from './events/audit-consumer';
import { startCheckpointer } from './checkpointer';
import { auditConfigSpec, type AuditConfig } from './config';
import { auditEventRoutes } from './routes/audit-event';
import { checkpointRoutes } from './routes/checkpoints';
import { reportRoutes } from './routes/reports';
import { verifyRoutes } from './routes/verify';
import { loadKeys, type Keys } from './signing';

/** The audit service: the append-only, hash-chained log of every access and domain event. Built here; `server.ts` runs it. */
export const auditService: ServiceDefinition<AuditDB> = {
  name: 'audit',
  envPrefix: 'AUDIT',
  defaultPort: 3004,
  defaultSchema: 'audit',
  description: 'The append-only, hash-chained audit log of every access and event, its signed checkpoints and proofs, and its verification.',
  configSpec: auditConfigSpec,
  migrations,
  consumers: [auditConsumer()],
  setup: async (ctx) => ({ state: loadKeys(ctx.config.own as AuditConfig, ctx.logger) }),
  background: (ctx) => {
    const own = ctx.config.own as AuditConfig;
    const { signer } = ctx.state as Keys;
    return [startCheckpointer(ctx.database.db, signer, { entries: own.AUDIT_CHECKPOINT_ENTRIES, seconds: own.AUDIT_CHECKPOINT_SECONDS }, ctx.logger.child({ component: 'checkpointer' }))];
  },
  routes: async (app, ctx) => {
    await verifyRoutes(app, ctx);
    await reportRoutes(app, ctx);
    await checkpointRoutes(app, ctx);
    await auditEventRoutes(app, ctx);
  },
};
