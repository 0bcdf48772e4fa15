import { createDatabase } from '@cmc/db';
import { loadServiceConfig } from '@cmc/service';
import { auditService } from './app';
import type { AuditDB } from './db/schema';
import { verifyChain } from './domain/verify';

/**
 * The verification command: reads DATABASE_URL (or AUDIT_DATABASE_URL) and AUDIT_DB_SCHEMA, checks the chain in
 * a read-only snapshot, writes the result as JSON, and returns the exit code: 0 whole, 1 broken, 2 could not
 * run. Needs SELECT on audit_log only.
 */
export async function runVerifyCommand(env: Record<string, string | undefined>, out: (line: string) => void): Promise<number> {
  try {
    const config = loadServiceConfig(auditService, env);
    const database = createDatabase<AuditDB>({ url: config.databaseUrl, schema: config.schema, poolMax: 1, applicationName: 'cmc-audit-verify' });
    try {
      const result = await verifyChain(database.db);
      out(JSON.stringify(result, null, 2));
      return result.ok ? 0 : 1;
    } finally {
      await database.close();
    }
  } catch (err) {
    out(JSON.stringify({ ok: false, error: `verification could not run: ${err instanceof Error ? err.message : String(err)}` }));
    return 2;
  }
}
