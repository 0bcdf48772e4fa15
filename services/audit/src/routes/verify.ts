import { errorResponses } from '@cmc/http';
import { recordAccess, type ServiceContext } from '@cmc/service';
import type { FastifyInstance } from 'fastify';
import type { AuditDB } from '../db/schema';
import { verifyChain } from '../domain/verify';
import type { Keys } from '../signing';

export const verificationSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ok', 'entriesChecked', 'lastGoodSeq', 'checkpointsChecked', 'signaturesChecked', 'latestCheckpoint', 'firstProblem', 'durationMs'],
  properties: {
    ok: { type: 'boolean', description: 'Whether every entry links to the one before and matches its hash' },
    entriesChecked: { type: 'integer', description: 'Entries found good before the first problem (all of them when ok)' },
    lastGoodSeq: { type: 'integer', description: 'seq of the last good entry (0 when none)' },
    checkpointsChecked: { type: 'integer', description: 'Signed checkpoints whose root was recomputed from the entries and whose signature verified' },
    signaturesChecked: { type: 'boolean', description: 'Whether checkpoint signatures were checked against trusted keys' },
    latestCheckpoint: { type: 'integer', description: 'Tree size of the newest checkpoint checked (0 when none)' },
    firstProblem: {
      description: 'The first break in the chain, or null',
      anyOf: [
        { type: 'null' },
        {
          type: 'object',
          additionalProperties: false,
          required: ['seq', 'kind', 'detail'],
          properties: {
            seq: { type: 'integer', description: 'The missing seq (gap) or the entry that fails its check' },
            kind: {
              enum: ['gap', 'prev-hash-mismatch', 'hash-mismatch', 'checkpoint-root-mismatch', 'checkpoint-signature-invalid', 'checkpoint-unknown-key', 'checkpoint-beyond-log'],
            },
            detail: { type: 'string' },
          },
        },
      ],
    },
    durationMs: { type: 'integer' },
  },
} as const;

/** Verification of the hash chain, for the service team. */
export async function verifyRoutes(app: FastifyInstance, ctx: ServiceContext<AuditDB>): Promise<void> {
  const { database } = ctx;
  app.get(
    '/api/audit/verify',
    {
      config: { allow: { roles: ['service-team'] } },
      schema: {
        tags: ['Audit'],
        summary: 'Re-check the hash chain and the signed checkpoints of the audit log and name the first break',
        description: 'Reads every entry in seq order, recomputes its hash and the Merkle tree, and checks each checkpoint\'s root and signature. Reading the log is an access, recorded before the answer.',
        response: { 200: verificationSchema, ...errorResponses },
      },
    },
    async (request) => {
      const result = await verifyChain(database, { keys: (ctx.state as Keys).verifiers });
      await recordAccess(database.db, database.schema, 'audit', request, {
        interaction: 'read',
        outcome: 'allowed',
        entities: [{ resourceType: 'AuditEvent' }],
        query: 'GET /api/audit/verify',
      });
      return result;
    },
  );
}
