import { createDatabase } from '@cmc/db';
import { loadServiceConfig } from '@cmc/service';
import { existsSync, readFileSync } from 'node:fs';
import { auditService } from './app';
import type { AuditConfig } from './config';
import type { AuditDB } from './db/schema';
import { parseVerifierKey, signingKeyFromPem } from './domain/checkpoint';
import { verifyChain, type VerifierKey } from './domain/verify';

/**
 * The keys the command trusts: AUDIT_TRUSTED_KEYS (verifier keys, which is all an outside auditor needs), plus
 * the public half of AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE when this machine has it. None: signatures
 * are not checked, and the output says so.
 */
function trustedKeys(own: AuditConfig): VerifierKey[] | undefined {
  const keys: VerifierKey[] = own.AUDIT_TRUSTED_KEYS.map((text) => parseVerifierKey(text));
  const pem = own.AUDIT_SIGNING_KEY ?? (own.AUDIT_SIGNING_KEY_FILE && existsSync(own.AUDIT_SIGNING_KEY_FILE) ? readFileSync(own.AUDIT_SIGNING_KEY_FILE, 'utf8') : undefined);
  if (pem) {
    const { origin, keyId, publicKey } = signingKeyFromPem(own.AUDIT_LOG_ORIGIN, pem);
    keys.push({ origin, keyId, publicKey });
  }
  return keys.length > 0 ? keys : undefined;
}

/**
 * The verification command: reads DATABASE_URL (or AUDIT_DATABASE_URL) and AUDIT_DB_SCHEMA, checks the chain and
 * the checkpoints in a read-only snapshot, writes the result as JSON, and returns the exit code: 0 whole, 1
 * broken, 2 could not run. Needs SELECT on the audit tables only.
 */
export async function runVerifyCommand(env: Record<string, string | undefined>, out: (line: string) => void): Promise<number> {
  try {
    const config = loadServiceConfig(auditService, env);
    const keys = trustedKeys(config.own as AuditConfig);
    const database = createDatabase<AuditDB>({ url: config.databaseUrl, schema: config.schema, poolMax: 3, applicationName: 'cmc-audit-verify' });
    try {
      const result = await verifyChain(database, keys ? { keys } : {});
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
