import { badRequest, notFound } from '@cmc/fhir';
import { errorResponses } from '@cmc/http';
import { recordAccess, type ServiceContext } from '@cmc/service';
import type { FastifyInstance } from 'fastify';
import type { AuditDB } from '../db/schema';
import { checkpointAt, consistencyProof, inclusionProof, latestCheckpoint } from '../db/tree-repository';
import { rawPublicKey, signedNote, verifierKey, type SignedCheckpoint } from '../domain/checkpoint';
import type { Keys } from '../signing';

const b64 = (b: Buffer): string => b.toString('base64');
const hash = { type: 'string', description: 'SHA-256, base64' } as const;
const treeSize = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;

export const checkpointSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['origin', 'treeSize', 'rootHash', 'time', 'keyId', 'signature', 'note'],
  properties: {
    origin: { type: 'string', description: 'The log\'s name: first line of the signed text' },
    treeSize: { type: 'integer', description: 'Entries covered: seq 1 to treeSize' },
    rootHash: { ...hash, description: 'RFC 6962 Merkle tree hash of the entries\' chain hashes, base64' },
    time: { type: 'string', format: 'date-time', description: 'When it was signed; part of the signed text' },
    keyId: { type: 'string', description: 'Signed-note key id (4 bytes, hex)' },
    signature: { type: 'string', description: 'Ed25519 signature of the checkpoint body, base64' },
    note: { type: 'string', description: 'The whole C2SP signed note: body, blank line, signature line' },
  },
} as const;

function checkpointView(c: SignedCheckpoint) {
  return { origin: c.origin, treeSize: c.treeSize, rootHash: b64(c.rootHash), time: c.time.toISOString(), keyId: c.keyId, signature: b64(c.signature), note: signedNote(c) };
}

/**
 * Signed checkpoints and proofs. The key, the checkpoints and consistency proofs hold no patient data (sizes,
 * hashes, signatures) and are public, so anyone can watch that the log only grows. An inclusion proof is asked
 * for by an entry's seq or event id, which says that entry exists: that is for the service team, and audited.
 */
export async function checkpointRoutes(app: FastifyInstance, ctx: ServiceContext<AuditDB>): Promise<void> {
  const { database } = ctx;
  const keys = ctx.state as Keys;
  const db = database.db;

  /** The checkpoint of this size, or the newest; 404 when there is none. */
  const checkpoint = async (size: number | undefined): Promise<SignedCheckpoint> => {
    const c = size === undefined ? await latestCheckpoint(db) : await checkpointAt(db, size);
    if (!c) throw notFound(size === undefined ? 'no checkpoint has been signed yet' : `there is no checkpoint of tree size ${size}`);
    return c;
  };

  app.get(
    '/api/audit/checkpoints/key',
    {
      config: { public: true },
      schema: {
        tags: ['Audit'],
        summary: 'The public key checkpoints are signed with',
        description: 'Ed25519. `verifierKey` is the signed-note form (`<name>+<key id>+<base64(0x01 || key)>`); `trusted` lists earlier keys still accepted.',
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            required: ['origin', 'algorithm', 'keyId', 'publicKey', 'publicKeyPem', 'verifierKey', 'trusted'],
            properties: {
              origin: { type: 'string' },
              algorithm: { const: 'Ed25519' },
              keyId: { type: 'string' },
              publicKey: { type: 'string', description: 'The raw 32-byte key, base64' },
              publicKeyPem: { type: 'string', description: 'SubjectPublicKeyInfo, PEM' },
              verifierKey: { type: 'string' },
              trusted: { type: 'array', items: { type: 'string' }, description: 'Verifier keys of every key accepted, this one first' },
            },
          },
          ...errorResponses,
        },
      },
    },
    async () => {
      const { signer, verifiers } = keys;
      return {
        origin: signer.origin,
        algorithm: 'Ed25519',
        keyId: signer.keyId,
        publicKey: b64(rawPublicKey(signer.publicKey)),
        publicKeyPem: signer.publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        verifierKey: verifierKey(signer.origin, signer.publicKey),
        trusted: verifiers.map((k) => verifierKey(k.origin, k.publicKey)),
      };
    },
  );

  app.get(
    '/api/audit/checkpoints/latest',
    {
      config: { public: true },
      schema: { tags: ['Audit'], summary: 'The newest signed checkpoint', response: { 200: checkpointSchema, ...errorResponses } },
    },
    async () => checkpointView(await checkpoint(undefined)),
  );

  app.get<{ Params: { treeSize: number } }>(
    '/api/audit/checkpoints/:treeSize',
    {
      config: { public: true },
      schema: {
        tags: ['Audit'],
        summary: 'The signed checkpoint of a tree size',
        params: { type: 'object', required: ['treeSize'], properties: { treeSize } },
        response: { 200: checkpointSchema, ...errorResponses },
      },
    },
    async (request) => checkpointView(await checkpoint(request.params.treeSize)),
  );

  app.get<{ Querystring: { first: number; second?: number } }>(
    '/api/audit/proofs/consistency',
    {
      config: { public: true },
      schema: {
        tags: ['Audit'],
        summary: 'RFC 9162 consistency proof between two checkpoints',
        description: 'Proves the log of `first` entries is a prefix of the log of `second` (default: the newest checkpoint): nothing signed earlier was changed or removed. Both must be checkpoint sizes.',
        querystring: { type: 'object', additionalProperties: false, required: ['first'], properties: { first: treeSize, second: treeSize } },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            required: ['first', 'second', 'proof'],
            properties: { first: checkpointSchema, second: checkpointSchema, proof: { type: 'array', items: hash } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const second = await checkpoint(request.query.second);
      if (request.query.first > second.treeSize) throw badRequest(`first (${request.query.first}) is after second (${second.treeSize})`, 'first');
      const first = await checkpoint(request.query.first);
      const proof = await consistencyProof(db, first.treeSize, second.treeSize);
      return { first: checkpointView(first), second: checkpointView(second), proof: proof.map(b64) };
    },
  );

  app.get<{ Querystring: { seq?: number; eventId?: string; treeSize?: number } }>(
    '/api/audit/proofs/inclusion',
    {
      config: { allow: { roles: ['service-team'] } },
      schema: {
        tags: ['Audit'],
        summary: 'RFC 9162 inclusion proof of an entry in a checkpoint',
        description:
          'By `seq` or `eventId`, in the checkpoint of `treeSize` (default: the newest). The leaf is SHA-256(0x00 || entryHash), leaf index seq - 1; check `path` against the checkpoint\'s root with any RFC 9162 verifier. Audited.',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { seq: treeSize, eventId: { type: 'string', format: 'uuid' }, treeSize },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            required: ['seq', 'eventId', 'leafIndex', 'entryHash', 'leafHash', 'path', 'checkpoint'],
            properties: {
              seq: { type: 'integer' },
              eventId: { type: 'string' },
              leafIndex: { type: 'integer' },
              entryHash: { ...hash, description: 'The entry\'s chain hash (the leaf\'s data), base64' },
              leafHash: hash,
              path: { type: 'array', items: hash, description: 'Audit path, leaf to root' },
              checkpoint: checkpointSchema,
            },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { seq, eventId } = request.query;
      if ((seq === undefined) === (eventId === undefined)) throw badRequest('give exactly one of seq and eventId', ['seq', 'eventId']);
      const entry = await db
        .selectFrom('audit_log')
        .select(['seq', 'event_id'])
        .$if(seq !== undefined, (q) => q.where('seq', '=', String(seq)))
        .$if(eventId !== undefined, (q) => q.where('event_id', '=', eventId!))
        .executeTakeFirst();
      const c = await checkpoint(request.query.treeSize);
      await recordAccess(db, database.schema, 'audit', request, {
        interaction: 'read',
        outcome: 'allowed',
        entities: [{ resourceType: 'AuditEvent', ...(entry ? { id: entry.event_id } : {}) }],
        query: `GET /api/audit/proofs/inclusion`,
      });
      if (!entry) throw notFound(seq !== undefined ? `there is no entry ${seq}` : `there is no entry for event ${eventId}`);
      if (Number(entry.seq) > c.treeSize) throw notFound(`entry ${entry.seq} is not in the checkpoint of ${c.treeSize} entries yet; ask again after the next checkpoint`);
      const proof = await inclusionProof(db, Number(entry.seq), c.treeSize);
      return { seq: proof.seq, eventId: entry.event_id, leafIndex: proof.leafIndex, entryHash: b64(proof.entryHash), leafHash: b64(proof.leafHash), path: proof.path.map(b64), checkpoint: checkpointView(c) };
    },
  );
}
