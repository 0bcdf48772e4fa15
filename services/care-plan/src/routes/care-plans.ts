import { principal } from '@cmc/auth';
import { MAX_PAGE_SIZE, NHS_NUMBER_SYSTEM, OperationOutcomeError, encodeCursor, forbidden, idSchema, isUuid, isValidNhsNumber, notFound, searchsetBundle, searchsetBundleJson, unknownSearchParameters, weakEtag } from '@cmc/fhir';
import { errorResponses, fhirResource } from '@cmc/http';
import type { AccessedEntity, ServiceContext } from '@cmc/service';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AllergyIntolerance, Bundle, CarePlan } from 'fhir/r4';
import { allergiesOfPlans, findAllergy, findPlanToServe, findPlanVersion, listPlanVersions, plansOfPatient, plansToServe, type ServedPlanRow } from '../db/plan-repository';
import type { CarePlanDB } from '../db/schema';
import { createPlan, factsOf, publishPlan, refusalRecorded, submitPlan, updatePlanContent, withdrawPlan } from '../domain/plans';
import { mayRead, readRefusal } from '../domain/rights';
import { accessLogOf, planHttp } from './shared';
import { FHIR_PLAN_STATUSES, all, instantMatches, parsePlanSearch, periodMatches } from '../domain/search-plans';

type Query = Record<string, string | string[] | undefined>;

/** The NHS number a request names (a search's patient, a body's subject), when it is one: for the access entry of a refusal. */
const namedPatient = (identifier: unknown): { nhsNumber?: string } => {
  const value = typeof identifier === 'string' ? (identifier.split('|')[1] ?? identifier) : undefined;
  return value && isValidNhsNumber(value) ? { nhsNumber: value } : {};
};
const subjectOf = (body: unknown): unknown => (body as { subject?: { identifier?: { value?: unknown } } } | null)?.subject?.identifier?.value;

const carePlanBody = {
  type: 'object',
  required: ['resourceType'],
  description:
    'A FHIR R4 CarePlan in the shape of decision 0006: the patient as a contained Patient, diagnoses as contained Conditions, allergies as contained AllergyIntolerances, the other sections as extensions. Parsed strictly: an unknown element, extension or code is a 400 naming it.',
  properties: { resourceType: { const: 'CarePlan' } },
} as const;

const idParams = { type: 'object', required: ['id'], properties: { id: idSchema } } as const;
const ifMatchHeaders = { type: 'object', properties: { 'if-match': { type: 'string' }, prefer: { type: 'string' } } } as const;

const changeResponses = {
  409: { ...errorResponses[400], description: 'The plan is in a state that does not allow this, or the patient already has a plan' },
  412: { ...errorResponses[400], description: 'If-Match does not name the current version' },
  422: { ...errorResponses[400], description: 'The plan breaks a rule: no active consent, a mandatory field missing, an inconsistency' },
  428: { ...errorResponses[400], description: 'If-Match is required' },
} as const;

const readScopes = ['system/CarePlan.r', 'system/CarePlan.rs', 'system/CarePlan.cruds'];
const writeScopes = ['system/CarePlan.c', 'system/CarePlan.u', 'system/CarePlan.cu', 'system/CarePlan.cruds'];
const READERS = { roles: ['clinician', 'administrator', 'urgent-care', 'service-team', 'patient', 'proxy'], scopes: readScopes } as const;

const withdrawBody = {
  type: 'object',
  additionalProperties: false,
  required: ['resourceType', 'parameter'],
  description: 'Parameters with one `reason` (valueString): why the plan is withdrawn',
  properties: {
    resourceType: { const: 'Parameters' },
    parameter: {
      type: 'array',
      minItems: 1,
      maxItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'valueString'],
        properties: { name: { const: 'reason' }, valueString: { type: 'string', minLength: 1, maxLength: 1000, pattern: '\\S' } },
      },
    },
  },
} as const;

export async function carePlanRoutes(app: FastifyInstance, ctx: ServiceContext<CarePlanDB>): Promise<void> {
  const { database } = ctx;
  const { base, fhirType, extrasFor, sendPlan, requireIfMatch, notKnown } = planHttp(database);

  const access = accessLogOf(database);

  /**
   * Runs a use case; a refusal (403) it makes before any plan is at hand (a patient searching for someone else,
   * a plan the caller may not create, a section they may not write) is recorded before it goes back, as refused
   * attempts are accesses too. Refusals recorded where they were made (changeLocked's) are not recorded twice.
   */
  const recordingRefusals = async <T>(request: FastifyRequest, interaction: 'search' | 'create' | 'update', entity: AccessedEntity, run: () => Promise<T> | T): Promise<T> => {
    try {
      return await run();
    } catch (e) {
      if (e instanceof OperationOutcomeError && e.status === 403 && !refusalRecorded(e)) {
        await access.record(request, { interaction, outcome: 'refused', outcomeReason: e.message, entities: [entity], ...(interaction === 'search' ? { query: request.url } : {}) });
      }
      throw e;
    }
  };

  /**
   * Loads a plan under the read rule and records the access (allowed or refused) durably before anything is
   * answered; the entries of concurrent reads share a commit (the access log's group commit).
   */
  const readGuarded = async <T>(
    request: FastifyRequest<{ Params: { id: string } }>,
    interaction: 'read' | 'vread' | 'history',
    serve: (row: ServedPlanRow) => Promise<{ value: T; versionIds: string[] }>,
  ): Promise<T> => {
    const who = principal(request);
    const { id } = request.params;
    if (!isUuid(id)) throw notKnown(id);
    const row = await findPlanToServe(database.db, id);
    if (!row) throw notKnown(id);
    const entity = (versionId: string) => ({ resourceType: 'CarePlan', id: row.id, versionId, nhsNumber: row.nhs_number.trim() });
    const facts = factsOf(row);
    if (!mayRead(who, facts)) {
      const reason = readRefusal(who, facts);
      await access.record(request, { interaction, outcome: 'refused', outcomeReason: reason, entities: [entity(String(row.version_id))] });
      throw forbidden(reason);
    }
    const served = await serve(row);
    await access.record(request, { interaction, outcome: 'allowed', entities: served.versionIds.map(entity) });
    return served.value;
  };

  app.post<{ Body: unknown; Headers: { prefer?: string } }>(
    '/fhir/R4/CarePlan',
    {
      config: { allow: { roles: ['clinician', 'administrator', 'patient'], scopes: writeScopes } },
      schema: {
        tags: ['CarePlan'],
        summary: 'Create a plan (a draft) for a patient with active consent',
        body: carePlanBody,
        headers: { type: 'object', properties: { prefer: { type: 'string' } } },
        response: { 201: fhirResource('CarePlan', 'The plan as stored'), ...errorResponses, ...changeResponses },
      },
    },
    async (request, reply) => {
      const row = await recordingRefusals(request, 'create', { resourceType: 'CarePlan', ...namedPatient(subjectOf(request.body)) }, () =>
        createPlan(database, principal(request), request.body, extrasFor(request, 'create')),
      );
      return sendPlan(request, reply, row, 201);
    },
  );

  app.put<{ Params: { id: string }; Body: unknown; Headers: { 'if-match'?: string; prefer?: string } }>(
    '/fhir/R4/CarePlan/:id',
    {
      config: { allow: { roles: ['clinician', 'administrator', 'patient'], scopes: writeScopes } },
      schema: {
        tags: ['CarePlan'],
        summary: 'Change a plan: a new version in the same state; If-Match is required',
        params: idParams,
        headers: ifMatchHeaders,
        body: carePlanBody,
        response: { 200: fhirResource('CarePlan', 'The new version'), ...errorResponses, ...changeResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!isUuid(id)) throw notKnown(id);
      const expected = requireIfMatch(request.headers['if-match']);
      const row = await recordingRefusals(request, 'update', { resourceType: 'CarePlan', id, ...namedPatient(subjectOf(request.body)) }, () =>
        updatePlanContent(database, principal(request), id, expected, request.body, extrasFor(request, 'update')),
      );
      return sendPlan(request, reply, row);
    },
  );

  const operation = (name: '$submit' | '$publish', summary: string, run: typeof submitPlan) =>
    app.post<{ Params: { id: string }; Headers: { 'if-match'?: string; prefer?: string } }>(
      `/fhir/R4/CarePlan/:id/${name}`,
      {
        config: { allow: { roles: name === '$publish' ? ['clinician'] : ['clinician', 'administrator'] } },
        schema: {
          tags: ['CarePlan'],
          summary,
          params: idParams,
          headers: ifMatchHeaders,
          response: { 200: fhirResource('CarePlan', 'The new version'), ...errorResponses, ...changeResponses },
        },
      },
      async (request, reply) => {
        const { id } = request.params;
        if (!isUuid(id)) throw notKnown(id);
        const expected = requireIfMatch(request.headers['if-match']);
        const row = await run(database, principal(request), id, expected, extrasFor(request, 'update'));
        return sendPlan(request, reply, row);
      },
    );
  operation('$submit', 'Submit a draft for approval by a clinician; If-Match is required', submitPlan);
  operation('$publish', 'Publish a plan: checks every mandatory field and rule, naming each problem; If-Match is required', publishPlan);

  app.post<{ Params: { id: string }; Body: { parameter: { valueString: string }[] }; Headers: { 'if-match'?: string; prefer?: string } }>(
    '/fhir/R4/CarePlan/:id/$withdraw',
    {
      config: { allow: { roles: ['clinician', 'service-team'] } },
      schema: {
        tags: ['CarePlan'],
        summary: 'Withdraw a plan, with the reason; it leaves every view but the service team\'s. If-Match is required',
        params: idParams,
        headers: ifMatchHeaders,
        body: withdrawBody,
        response: { 200: fhirResource('CarePlan', 'The withdrawn plan'), ...errorResponses, ...changeResponses },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!isUuid(id)) throw notKnown(id);
      const expected = requireIfMatch(request.headers['if-match']);
      const reason = request.body.parameter[0]!.valueString.trim();
      const row = await withdrawPlan(database, principal(request), id, expected, reason, extrasFor(request, 'update'));
      return sendPlan(request, reply, row);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/CarePlan/:id',
    {
      config: { allow: READERS },
      schema: { tags: ['CarePlan'], summary: 'Read a plan', params: idParams, response: { 200: fhirResource('CarePlan', 'The current version'), ...errorResponses } },
    },
    async (request, reply) => {
      const row = await readGuarded(request, 'read', async (r) => ({ value: r, versionIds: [String(r.version_id)] }));
      return sendPlan(request, reply, { id: row.id, version_id: row.version_id, updated_at: row.updated_at, resource: row.resource_json });
    },
  );

  app.get<{ Params: { id: string; vid: string } }>(
    '/fhir/R4/CarePlan/:id/_history/:vid',
    {
      config: { allow: READERS },
      schema: {
        tags: ['CarePlan'],
        summary: 'Read one version of a plan',
        params: { type: 'object', required: ['id', 'vid'], properties: { id: idSchema, vid: { type: 'string', pattern: '^[1-9][0-9]{0,8}$' } } },
        response: { 200: fhirResource('CarePlan', 'That version'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const vid = Number(request.params.vid);
      const version = await readGuarded(request, 'vread', async (row) => {
        const v = vid <= row.version_id ? await findPlanVersion(database.db, row.id, vid) : undefined;
        if (!v) throw notFound(`CarePlan/${row.id}/_history/${request.params.vid} is not known`);
        return { value: v, versionIds: [String(vid)] };
      });
      return sendPlan(request, reply, { id: version.id, version_id: version.version_id, updated_at: version.recorded_at, resource: version.resource });
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/CarePlan/:id/_history',
    {
      config: { allow: READERS },
      schema: { tags: ['CarePlan'], summary: 'Every version of a plan, newest first', params: idParams, response: { 200: fhirResource('Bundle', 'A history Bundle'), ...errorResponses } },
    },
    async (request, reply) => {
      const bundle = await readGuarded(request, 'history', async (row) => {
        const versions = await listPlanVersions(database.db, row.id);
        const history: Bundle<CarePlan> = {
          resourceType: 'Bundle',
          type: 'history',
          total: versions.length,
          link: [{ relation: 'self', url: `${base(request)}/CarePlan/${row.id}/_history` }],
          entry: versions.map((v) => ({
            fullUrl: `${base(request)}/CarePlan/${row.id}`,
            resource: v.resource,
            request: { method: v.version_id === 1 ? 'POST' : 'PUT', url: v.version_id === 1 ? 'CarePlan' : `CarePlan/${row.id}` },
            response: { status: v.version_id === 1 ? '201' : '200', etag: weakEtag(v.version_id), lastModified: v.recorded_at.toISOString() },
          })),
        };
        return { value: history, versionIds: versions.map((v) => String(v.version_id)) };
      });
      return reply.type(fhirType).send(bundle);
    },
  );

  app.get<{ Querystring: Query }>(
    '/fhir/R4/CarePlan',
    {
      config: { allow: READERS },
      schema: {
        tags: ['CarePlan'],
        summary: 'Search a patient\'s plans (those the caller may read), most recently changed first',
        querystring: {
          type: 'object',
          properties: {
            'patient:identifier': { type: 'string', description: `${NHS_NUMBER_SYSTEM}|<NHS number>; required except for a patient or proxy (their own)` },
            status: { anyOf: [{ type: 'string' }, { type: 'array', maxItems: 4, items: { type: 'string' } }], description: `FHIR status: ${FHIR_PLAN_STATUSES.join(', ')} (comma-separated for several)` },
            _lastUpdated: { anyOf: [{ type: 'string' }, { type: 'array', maxItems: 2, items: { type: 'string' } }], description: 'FHIR date search on meta.lastUpdated' },
            date: { anyOf: [{ type: 'string' }, { type: 'array', maxItems: 2, items: { type: 'string' } }], description: 'FHIR date search on CarePlan.period (published .. review date)' },
            _count: { type: 'string', description: `Page size, at most ${MAX_PAGE_SIZE}` },
            _cursor: { type: 'string', description: 'Opaque: from the next link' },
          },
        },
        response: { 200: fhirResource('Bundle', 'A searchset Bundle'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const who = principal(request);
      const search = await recordingRefusals(request, 'search', { resourceType: 'CarePlan', ...namedPatient(all(request.query['patient:identifier'])[0]) }, () => parsePlanSearch(request.query, who));
      const rows = (await plansToServe(database.db, search.nhsNumber)).filter(
        (r) =>
          mayRead(who, factsOf(r)) &&
          (!search.statuses || search.statuses.includes(r.fhir_status as CarePlan['status'])) &&
          search.lastUpdated.every((p) => instantMatches(r.updated_at, p)) &&
          search.period.every((p) => periodMatches(r.published_at, r.review_date ? new Date(`${r.review_date}T23:59:59.999Z`) : null, p)) &&
          (!search.after || r.updated_at < search.after.updated || (r.updated_at.getTime() === search.after.updated.getTime() && r.id < search.after.id)),
      );
      const page = rows.slice(0, search.limit);
      const more = rows.length > search.limit;
      await access.record(request, {
        interaction: 'search',
        outcome: 'allowed',
        query: request.url,
        entities: page.length > 0 ? page.map((r) => ({ resourceType: 'CarePlan', id: r.id, versionId: String(r.version_id), nhsNumber: r.nhs_number.trim() })) : [{ resourceType: 'CarePlan', nhsNumber: search.nhsNumber }],
      });
      const last = page[page.length - 1];
      const bundle = searchsetBundleJson({
        selfUrl: `${request.protocol}://${request.host}${request.url}`,
        baseUrl: base(request),
        resources: page.map((r) => ({ resourceType: 'CarePlan', id: r.id, json: r.resource_json })),
        ...(more && last ? { nextCursor: encodeCursor({ u: last.updated_at.toISOString(), id: last.id }) } : {}),
        ...(typeof request.query._cursor === 'string' ? { cursor: request.query._cursor } : {}),
      });
      return reply.type(fhirType).send(bundle);
    },
  );

  // AllergyIntolerance: each plan's allergies, read under the plan's read rule; written only as part of the plan.
  app.get<{ Params: { id: string } }>(
    '/fhir/R4/AllergyIntolerance/:id',
    {
      config: { allow: READERS },
      schema: { tags: ['AllergyIntolerance'], summary: 'Read an allergy (or "no known allergies") of a plan', params: idParams, response: { 200: fhirResource('AllergyIntolerance', 'The allergy'), ...errorResponses } },
    },
    async (request, reply) => {
      const who = principal(request);
      const { id } = request.params;
      const found = await findAllergy(database.db, id);
      if (!found) throw notFound(`AllergyIntolerance/${id} is not known`);
      const facts = factsOf(found.plan);
      const entities = [
        { resourceType: 'AllergyIntolerance', id, versionId: String(found.plan.version_id), nhsNumber: facts.nhsNumber },
        { resourceType: 'CarePlan', id: found.plan.id, versionId: String(found.plan.version_id), nhsNumber: facts.nhsNumber },
      ];
      if (!mayRead(who, facts)) {
        const reason = readRefusal(who, facts);
        await access.record(request, { interaction: 'read', outcome: 'refused', outcomeReason: reason, entities });
        throw forbidden(reason);
      }
      await access.record(request, { interaction: 'read', outcome: 'allowed', entities });
      const result = { resource: found.resource, plan: found.plan };
      return reply.header('etag', weakEtag(result.plan.version_id)).header('last-modified', result.plan.updated_at.toUTCString()).type(fhirType).send(result.resource);
    },
  );

  app.get<{ Querystring: Query }>(
    '/fhir/R4/AllergyIntolerance',
    {
      config: { allow: READERS },
      schema: {
        tags: ['AllergyIntolerance'],
        summary: 'Search a patient\'s allergies (from the plans the caller may read)',
        querystring: {
          type: 'object',
          properties: {
            'patient:identifier': { type: 'string', description: `${NHS_NUMBER_SYSTEM}|<NHS number>; required except for a patient or proxy (their own)` },
            _count: { type: 'string', description: `Page size, at most ${MAX_PAGE_SIZE}` },
          },
        },
        response: { 200: fhirResource('Bundle', 'A searchset Bundle'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const who = principal(request);
      const unknown = unknownSearchParameters(request.query, ['patient:identifier', '_count']);
      if (unknown.length > 0) throw new OperationOutcomeError(400, unknown);
      const search = await recordingRefusals(request, 'search', { resourceType: 'AllergyIntolerance', ...namedPatient(all(request.query['patient:identifier'])[0]) }, () => parsePlanSearch(request.query, who));
      const plans = (await plansOfPatient(database.db, search.nhsNumber)).filter((r) => mayRead(who, factsOf(r)));
      const found = (await allergiesOfPlans(database.db, plans.map((p) => p.id))).slice(0, search.limit);
      await access.record(request, {
        interaction: 'search',
        outcome: 'allowed',
        query: request.url,
        entities: found.length > 0 ? found.map((a) => ({ resourceType: 'AllergyIntolerance', id: a.resource.id ?? '', nhsNumber: search.nhsNumber })) : [{ resourceType: 'AllergyIntolerance', nhsNumber: search.nhsNumber }],
      });
      const allergies = found.map((a) => a.resource);
      const bundle = searchsetBundle<AllergyIntolerance>({ selfUrl: `${request.protocol}://${request.host}${request.url}`, baseUrl: base(request), resources: allergies });
      return reply.type(fhirType).send(bundle);
    },
  );

}
