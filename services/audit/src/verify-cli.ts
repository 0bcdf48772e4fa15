#!/usr/bin/env node
/**
 * Re-checks the audit log's hash chain and signed checkpoints from the command line:
 *   DATABASE_URL=postgres://... AUDIT_DB_SCHEMA=audit AUDIT_TRUSTED_KEYS=<verifier key> node services/audit/dist/verify-cli.js
 * Prints the result as JSON; exits 0 when the chain is whole, 1 when it is broken, 2 when it could not be read.
 */
import { runVerifyCommand } from './verify-command';

void runVerifyCommand(process.env, (line) => process.stdout.write(`${line}\n`)).then((code) => {
  process.exitCode = code;
});
