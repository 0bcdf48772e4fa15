import { principal } from '@cmc/auth';
import { FHIR_JSON, MAX_PAGE_SIZE, NHS_NUMBER_SYSTEM, OperationOutcomeError, encodeCursor, forbidden, searchsetBundle, codeableConceptSchema, codingSchema, dateTimeSchema, idSchema, isUuid, metaSchema, notFound, versionFromIfMatch, weakEtag } from '@cmc/fhir';
import { errorResponses, fhirResource } from '@cmc/http';
import { recordAccess, type ServiceContext } from '@cmc/service';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Bundle, Consent } from 'fhir/r4';
import type { Transaction } from 'kysely';
import { findConsent, findConsentVersion, listConsentVersions, searchConsents, type ConsentRow } from '../db/consent-repository';
import type { ConsentDB } from '../db/schema';
import { JUSTIFICATION_URL, PURPOSE_SYSTEM, SNOMED, WITHDRAWAL_REASON_URL, READ_REFUSAL, mayRead, type ConsentInput } from '../domain/consent';
import { parseConsentSearch } from '../domain/search-consents';
import { withdrawConsent, type ConsentUpdateInput } from '../domain/withdraw-consent';
import { recordConsent } from '../domain/record-consent';

const stringExtensionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['url', 'valueString'],
  properties: {
    url: { enum: [JUSTIFICATION_URL, WITHDRAWAL_REASON_URL], description: 'The justification (LPA holder, or who took part in a best-interests decision); the withdrawal reason' },
    valueString: { type: 'string', minLength: 1, maxLength: 2000 },
  },
} as const;

const provisionSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['type', 'provision'],
  description: `Deny at the top; one nested permit or deny for each purpose of ${PURPOSE_SYSTEM}: plan-creation, sharing, secondary-use`,
  properties: {
    type: { const: 'deny' },
    provision: {
      type: 'array',
      minItems: 1,
      maxItems: 3,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['type', 'purpose'],
        properties: { type: { enum: ['permit', 'deny'] }, purpose: { type: 'array', minItems: 1, maxItems: 1, items: codingSchema } },
      },
    },
  },
} as const;

const patientSchema = {
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
} as const;

const consentBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['resourceType', 'status', 'scope', 'category', 'patient', 'dateTime', 'provision'],
  properties: {
    resourceType: { const: 'Consent' },
    meta: metaSchema,
    status: { enum: ['active'], description: 'A new consent is active; withdrawal is a PUT with status inactive.' },
    scope: codeableConceptSchema,
    category: {
      type: 'array',
      minItems: 1,
      maxItems: 10,
      items: codeableConceptSchema,
      description: `Exactly one of ${SNOMED}: 882921000000109 (given by the patient), 883001000000106 (Lasting Power of Attorney for health and welfare), 882961000000101 (best-interests decision under the Mental Capacity Act)`,
    },
    extension: { type: 'array', maxItems: 5, items: stringExtensionSchema },
    patient: patientSchema,
    dateTime: dateTimeSchema,
    provision: provisionSchema,
  },
} as const;

/** The consent as sent back to change it: what the server asserts (id, meta, organization) may come along. */
const consentUpdateSchema = {
  ...consentBodySchema,
  properties: {
    ...consentBodySchema.properties,
    id: idSchema,
    status: { enum: ['draft', 'proposed', 'active', 'rejected', 'inactive', 'entered-in-error'], description: 'Only inactive (a withdrawal) is supported.' },
    organization: { type: 'array', maxItems: 5, items: { type: 'object' } },
  },
} as const;

const changeResponses = {
  409: { ...errorResponses[400], description: 'The consent was withdrawn and cannot be changed again' },
  412: { ...errorResponses[400], description: 'If-Match does not name the current version' },
  428: { ...errorResponses[400], description: 'If-Match is required' },
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: idSchema } } as const;

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

  const sendResource = (reply: FastifyReply, resource: Consent, status = 200) =>
    reply
      .code(status)
      .header('etag', weakEtag(resource.meta?.versionId ?? '1'))
      .header('last-modified', new Date(resource.meta?.lastUpdated ?? Date.now()).toUTCString())
      .type(`${FHIR_JSON}; charset=utf-8`)
      .send(resource);

  const notKnown = (id: string) => notFound(`Consent/${id} is not known`);

  /**
   * Loads a consent under the read rule and records the access (allowed or refused) in the same transaction;
   * `serve` picks what is served from the current row and names the versions served.
   */
  const readGuarded = async <T>(
    request: FastifyRequest<{ Params: { id: string } }>,
    interaction: 'read' | 'vread' | 'history',
    serve: (trx: Transaction<ConsentDB>, row: ConsentRow) => Promise<{ value: T; versionIds: string[] }>,
  ): Promise<T> => {
    const who = principal(request);
    const { id } = request.params;
    // Our ids are UUIDs: any other id cannot exist (and must not reach a uuid column).
    if (!isUuid(id)) throw notKnown(id);
    const result = await database.db.transaction().execute(async (trx) => {
      const row = await findConsent(trx, id);
      if (!row) throw notKnown(id);
      const entity = (versionId: string) => ({ resourceType: 'Consent', id: row.id, versionId, nhsNumber: row.nhs_number.trim() });
      if (!mayRead(who, row)) {
        // A refused attempt is recorded too; it commits even though the caller gets a 403.
        await recordAccess(trx, database.schema, 'consent', request, {
          interaction,
          outcome: 'refused',
          outcomeReason: READ_REFUSAL,
          entities: [entity(String(row.version_id))],
        });
        return { allowed: false as const };
      }
      const served = await serve(trx, row);
      await recordAccess(trx, database.schema, 'consent', request, { interaction, outcome: 'allowed', entities: served.versionIds.map(entity) });
      return { allowed: true as const, value: served.value };
    });
    if (!result.allowed) throw forbidden(READ_REFUSAL);
    return result.value;
  };

  const readRoles = { roles: ['clinician', 'administrator', 'service-team'], scopes: ['system/Consent.r', 'system/Consent.rs', 'system/Consent.cruds'] } as const;

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>(
    '/fhir/R4/Consent',
    {
      config: { allow: readRoles },
      schema: {
        tags: ['Consent'],
        summary: 'Search a patient\'s consents (those the caller may read), newest first',
        querystring: {
          type: 'object',
          properties: {
            'patient:identifier': { type: 'string', description: `Required: ${NHS_NUMBER_SYSTEM}|<NHS number>` },
            status: { type: 'string', description: 'active, inactive...' },
            date: { anyOf: [{ type: 'string' }, { type: 'array', maxItems: 2, items: { type: 'string' } }], description: 'FHIR date search on Consent.dateTime: eq, ge, gt, le, lt' },
            _count: { type: 'string', description: `Page size, at most ${MAX_PAGE_SIZE}` },
            _cursor: { type: 'string', description: 'Opaque: from the next link' },
          },
        },
        response: { 200: fhirResource('Bundle', 'A searchset Bundle'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const who = principal(request);
      const search = parseConsentSearch(request.query, who);
      const rows = await database.db.transaction().execute(async (trx) => {
        const found = await searchConsents(trx, { ...search, limit: search.limit + 1 });
        const page = found.slice(0, search.limit);
        await recordAccess(trx, database.schema, 'consent', request, {
          interaction: 'search',
          outcome: 'allowed',
          query: request.url,
          entities: page.map((r) => ({ resourceType: 'Consent', id: r.id, versionId: String(r.version_id), nhsNumber: r.nhs_number.trim() })),
        });
        return found;
      });
      const page = rows.slice(0, search.limit);
      const last = page[page.length - 1];
      const selfUrl = `${request.protocol}://${request.host}${request.url}`;
      const bundle = searchsetBundle<Consent>({
        selfUrl,
        baseUrl: base(request),
        resources: page.map((r) => r.resource),
        ...(rows.length > search.limit && last ? { nextCursor: encodeCursor({ d: last.date_time.toISOString(), id: last.id }) } : {}),
        ...(typeof request.query._cursor === 'string' ? { cursor: request.query._cursor } : {}),
      });
      return reply.type(`${FHIR_JSON}; charset=utf-8`).send(bundle);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/Consent/:id',
    {
      config: { allow: readRoles },
      schema: {
        tags: ['Consent'],
        summary: 'Read a consent',
        params: idParams,
        response: { 200: fhirResource('Consent', 'The current version of the consent'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const resource = await readGuarded(request, 'read', async (_trx, row) => ({ value: row.resource, versionIds: [String(row.version_id)] }));
      return sendResource(reply, resource);
    },
  );

  app.get<{ Params: { id: string; vid: string } }>(
    '/fhir/R4/Consent/:id/_history/:vid',
    {
      config: { allow: readRoles },
      schema: {
        tags: ['Consent'],
        summary: 'Read one version of a consent',
        params: { type: 'object', required: ['id', 'vid'], properties: { id: idSchema, vid: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' } } },
        response: { 200: fhirResource('Consent', 'That version of the consent'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const vid = Number(request.params.vid);
      const resource = await readGuarded(request, 'vread', async (trx, row) => {
        const version = vid <= row.version_id ? await findConsentVersion(trx, row.id, vid) : undefined;
        if (!version) throw notFound(`Consent/${row.id}/_history/${request.params.vid} is not known`);
        return { value: version.resource, versionIds: [String(vid)] };
      });
      return sendResource(reply, resource);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/Consent/:id/_history',
    {
      config: { allow: readRoles },
      schema: {
        tags: ['Consent'],
        summary: 'Every version of a consent, newest first',
        params: idParams,
        response: { 200: fhirResource('Bundle', 'A history Bundle'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const bundle = await readGuarded(request, 'history', async (trx, row) => {
        const versions = await listConsentVersions(trx, row.id);
        const history: Bundle<Consent> = {
          resourceType: 'Bundle',
          type: 'history',
          total: versions.length,
          link: [{ relation: 'self', url: `${base(request)}/Consent/${row.id}/_history` }],
          entry: versions.map((v) => ({
            fullUrl: `${base(request)}/Consent/${row.id}`,
            resource: v.resource,
            request: { method: v.version_id === 1 ? 'POST' : 'PUT', url: v.version_id === 1 ? 'Consent' : `Consent/${row.id}` },
            response: { status: v.version_id === 1 ? '201' : '200', etag: weakEtag(v.version_id), lastModified: v.recorded_at.toISOString() },
          })),
        };
        return { value: history, versionIds: versions.map((v) => String(v.version_id)) };
      });
      return reply.type(`${FHIR_JSON}; charset=utf-8`).send(bundle);
    },
  );

  app.put<{ Params: { id: string }; Body: ConsentUpdateInput; Headers: { 'if-match'?: string } }>(
    '/fhir/R4/Consent/:id',
    {
      config: { allow: { roles: ['clinician', 'service-team'] } },
      schema: {
        tags: ['Consent'],
        summary: 'Withdraw a consent (status inactive, with the reason); If-Match is required',
        params: idParams,
        headers: { type: 'object', properties: { 'if-match': { type: 'string' } } },
        body: consentUpdateSchema,
        response: { 200: fhirResource('Consent', 'The withdrawn consent, a new version'), ...errorResponses, ...changeResponses },
      },
    },
    async (request, reply) => {
      const who = principal(request);
      const { id } = request.params;
      if (!isUuid(id)) throw notKnown(id);
      const ifMatch = request.headers['if-match'];
      if (!ifMatch) throw new OperationOutcomeError(428, { code: 'required', diagnostics: 'If-Match is required: send the weak ETag of the version you saw, e.g. W/"1"' });
      const expected = versionFromIfMatch(ifMatch);
      if (!expected) throw new OperationOutcomeError(400, { code: 'value', diagnostics: 'If-Match must be a weak ETag such as W/"1"' });
      const { resource } = await withdrawConsent(database, who, id, expected, request.body, {
        requestId: String(request.id),
        recordAccess: (trx, row, outcome, reason) =>
          recordAccess(trx, database.schema, 'consent', request, {
            interaction: 'update',
            outcome,
            ...(reason ? { outcomeReason: reason } : {}),
            entities: [{ resourceType: 'Consent', id: row.id, versionId: String(row.version_id), nhsNumber: row.nhs_number.trim() }],
          }),
      });
      return sendResource(reply, resource);
    },
  );
}
