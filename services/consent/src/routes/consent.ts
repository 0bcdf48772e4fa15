import { principal } from '@cmc/auth';
import { FHIR_JSON, codeableConceptSchema, dateTimeSchema, idSchema, isUuid, metaSchema, notFound, weakEtag } from '@cmc/fhir';
import { errorResponses, fhirResource } from '@cmc/http';
import { recordAccess, type ServiceContext } from '@cmc/service';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { findConsent } from '../db/consent-repository';
import type { ConsentDB } from '../db/schema';
import { assertMayRead, type ConsentInput } from '../domain/consent';
import { recordConsent } from '../domain/record-consent';

const consentBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['resourceType', 'status', 'scope', 'category', 'patient', 'dateTime'],
  properties: {
    resourceType: { const: 'Consent' },
    meta: metaSchema,
    status: { enum: ['active'], description: 'Only active consents are recorded for now; withdrawal comes with issue #4.' },
    scope: codeableConceptSchema,
    category: { type: 'array', minItems: 1, maxItems: 10, items: codeableConceptSchema },
    patient: {
      type: 'object',
      additionalProperties: false,
      required: ['identifier'],
      properties: {
        identifier: {
          type: 'object',
          additionalProperties: false,
          required: ['system', 'value'],
          properties: { system: { type: 'string', maxLength: 200 }, value: { type: 'string', maxLength: 20 } },
        },
      },
    },
    dateTime: dateTimeSchema,
  },
} as const;

export async function consentRoutes(app: FastifyInstance, ctx: ServiceContext<ConsentDB>): Promise<void> {
  const { database } = ctx;
  const base = (request: FastifyRequest): string => `${request.protocol}://${request.host}/fhir/R4`;

  app.post<{ Body: ConsentInput; Headers: { prefer?: string } }>(
    '/fhir/R4/Consent',
    {
      config: { allow: { roles: ['clinician', 'administrator'], scopes: ['system/Consent.c', 'system/Consent.cruds'] } },
      schema: {
        tags: ['Consent'],
        summary: 'Record a patient\'s consent to an urgent care plan',
        body: consentBodySchema,
        headers: { type: 'object', properties: { prefer: { type: 'string' } } },
        response: { 201: fhirResource('Consent', 'The consent as stored'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const who = principal(request);
      const { resource } = await recordConsent(database, who, request.body, {
        requestId: String(request.id),
        recordAccess: (trx, r) =>
          recordAccess(trx, database.schema, 'consent', request, {
            interaction: 'create',
            outcome: 'allowed',
            entities: [{ resourceType: 'Consent', id: r.id ?? '', versionId: '1', nhsNumber: request.body.patient.identifier.value }],
          }),
      });
      const version = resource.meta?.versionId ?? '1';
      reply
        .code(201)
        .header('location', `${base(request)}/Consent/${resource.id ?? ''}/_history/${version}`)
        .header('etag', weakEtag(version))
        .header('last-modified', new Date(resource.meta?.lastUpdated ?? Date.now()).toUTCString())
        .type(`${FHIR_JSON}; charset=utf-8`);
      if (request.headers.prefer?.includes('return=minimal')) return reply.send();
      return reply.send(resource);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/Consent/:id',
    {
      config: { allow: { roles: ['clinician', 'administrator', 'service-team'], scopes: ['system/Consent.r', 'system/Consent.rs', 'system/Consent.cruds'] } },
      schema: {
        tags: ['Consent'],
        summary: 'Read a consent',
        params: { type: 'object', required: ['id'], properties: { id: idSchema } },
        response: { 200: fhirResource('Consent', 'The current version of the consent'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const who = principal(request);
      // Our ids are UUIDs: any other id cannot exist (and must not reach a uuid column).
      if (!isUuid(request.params.id)) throw notFound(`Consent/${request.params.id} is not known`);
      const resource = await database.db.transaction().execute(async (trx) => {
        const row = await findConsent(trx, request.params.id);
        if (!row) throw notFound(`Consent/${request.params.id} is not known`);
        const entity = { resourceType: 'Consent', id: row.id, versionId: String(row.version_id), nhsNumber: row.nhs_number.trim() };
        try {
          assertMayRead(who, row);
        } catch (refusal) {
          // A refused attempt is recorded too; it commits even though the caller gets a 403.
          await recordAccess(trx, database.schema, 'consent', request, {
            interaction: 'read',
            outcome: 'refused',
            outcomeReason: (refusal as Error).message,
            entities: [entity],
          });
          return refusal as Error;
        }
        await recordAccess(trx, database.schema, 'consent', request, { interaction: 'read', outcome: 'allowed', entities: [entity] });
        return row.resource;
      });
      if (resource instanceof Error) throw resource;
      return reply
        .header('etag', weakEtag(resource.meta?.versionId ?? '1'))
        .header('last-modified', new Date(resource.meta?.lastUpdated ?? Date.now()).toUTCString())
        .type(`${FHIR_JSON}; charset=utf-8`)
        .send(resource);
    },
  );
}
