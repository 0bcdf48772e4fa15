import { principal } from '@cmc/auth';
import { FHIR_JSON, OperationOutcomeError, idSchema, isUuid, nhsNumberProblem, notFound, searchsetBundle, unknownSearchParameters, weakEtag, type IssueInput } from '@cmc/fhir';
import { errorResponses, fhirResource } from '@cmc/http';
import type { ServiceContext } from '@cmc/service';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { DocumentReference, Flag } from 'fhir/r4';
import { activeFlag, activeFlags, activePointer, activePointers, findFlag, flagsOfPatient } from '../db/flag-repository';
import type { CarePlanDB } from '../db/schema';
import { EOL_RECORD_TYPE, flagLookupSchema, toFlag, toLookup } from '../domain/flag';
import { toPointer } from '../domain/nrl';
import { all, nhsNumberOfIdentifier } from '../domain/search-plans';
import { accessLogOf } from './shared';

type Query = Record<string, string | string[] | undefined>;

/**
 * Who may ask whether a patient has a plan: the staff who may read published plans, the service team, and
 * systems (dispatch, GP) with the Flag read scope. Patients and proxies read their own plan instead.
 */
const FLAG_READERS = { roles: ['clinician', 'administrator', 'urgent-care', 'service-team'], scopes: ['system/Flag.r', 'system/Flag.rs', 'system/Flag.cruds'] } as const;
export const MAX_LOOKUP = 100;
const FLAG_SEARCH_PARAMETERS = ['patient:identifier', 'status'];
/** Systems built for the National Record Locator ask with the DocumentReference scopes. */
const POINTER_READERS = { roles: FLAG_READERS.roles, scopes: [...FLAG_READERS.scopes, 'system/DocumentReference.r', 'system/DocumentReference.rs', 'system/DocumentReference.cruds'] } as const;
const POINTER_SEARCH_PARAMETERS = ['subject:identifier', 'patient:identifier', 'type'];

const nhsParams = { type: 'object', required: ['nhsNumber'], properties: { nhsNumber: { type: 'string', maxLength: 20 } } } as const;
const lookupBody = {
  type: 'object',
  additionalProperties: false,
  required: ['nhsNumbers'],
  properties: { nhsNumbers: { type: 'array', minItems: 1, maxItems: MAX_LOOKUP, items: { type: 'string', maxLength: 20 }, description: `1 to ${MAX_LOOKUP} NHS numbers` } },
} as const;

export async function flagRoutes(app: FastifyInstance, ctx: ServiceContext<CarePlanDB>): Promise<void> {
  const { database } = ctx;
  // Lookups change nothing but the access log: their entries share commits (group commit), each answer still
  // waiting for its own entry to be durable.
  const access = accessLogOf(database);
  const fhirType = `${FHIR_JSON}; charset=utf-8`;
  /** Only the service team sees a flag that is down (it tells that a plan existed). */
  const seesDown = (request: FastifyRequest): boolean => principal(request).role === 'service-team';

  app.get<{ Params: { nhsNumber: string } }>(
    '/api/flags/:nhsNumber',
    {
      config: { allow: FLAG_READERS },
      schema: {
        tags: ['Flag'],
        summary: 'Does this patient have a published plan? Resuscitation status, alerts, last change (dispatch lookup)',
        description: 'A patient without a plan is a normal answer (hasPlan false). Every lookup, found or not, is an audited access written before the answer.',
        params: nhsParams,
        response: { 200: flagLookupSchema, ...errorResponses },
      },
    },
    async (request) => {
      const { nhsNumber } = request.params;
      const problem = nhsNumberProblem(nhsNumber);
      if (problem) throw new OperationOutcomeError(400, { code: 'value', diagnostics: problem, expression: 'nhsNumber' });
      const row = await activeFlag(database.db, nhsNumber);
      await access.record(request, {
        interaction: 'flag',
        outcome: 'allowed',
        entities: [row ? { resourceType: 'Flag', id: row.plan_id, versionId: String(row.version_id), nhsNumber } : { resourceType: 'Flag', nhsNumber }],
      });
      return toLookup(nhsNumber, row);
    },
  );

  app.post<{ Body: { nhsNumbers: string[] } }>(
    '/api/flags/$lookup',
    {
      config: { allow: FLAG_READERS },
      schema: {
        tags: ['Flag'],
        summary: `The dispatch lookup for up to ${MAX_LOOKUP} patients at once, answered in the order asked`,
        description: 'An invalid NHS number anywhere is a 400 naming each; nothing is looked up. One access entry names every patient asked about.',
        body: lookupBody,
        response: { 200: { type: 'object', additionalProperties: false, required: ['results'], properties: { results: { type: 'array', items: flagLookupSchema } } }, ...errorResponses },
      },
    },
    async (request) => {
      const { nhsNumbers } = request.body;
      const issues: IssueInput[] = [];
      nhsNumbers.forEach((n, i) => {
        const problem = nhsNumberProblem(n);
        if (problem) issues.push({ code: 'value', diagnostics: `nhsNumbers[${i}]: ${problem}`, expression: `nhsNumbers[${i}]` });
      });
      if (issues.length > 0) throw new OperationOutcomeError(400, issues);
      const rows = new Map((await activeFlags(database.db, nhsNumbers)).map((r) => [r.nhs_number.trim(), r]));
      const asked = [...new Set(nhsNumbers)];
      await access.record(request, {
        interaction: 'flag',
        outcome: 'allowed',
        entities: asked.map((nhsNumber) => {
          const row = rows.get(nhsNumber);
          return row ? { resourceType: 'Flag', id: row.plan_id, versionId: String(row.version_id), nhsNumber } : { resourceType: 'Flag', nhsNumber };
        }),
      });
      return { results: nhsNumbers.map((n) => toLookup(n, rows.get(n))) };
    },
  );

  // The National Record Locator's shape (decision 0008): a pointer per published plan, by NHS number and record type.
  app.get<{ Querystring: Query }>(
    '/fhir/R4/DocumentReference',
    {
      config: { allow: POINTER_READERS },
      schema: {
        tags: ['Flag'],
        summary: 'NRL-style pointer search: the published plan of a patient as a DocumentReference (record type 861421000000109)',
        description: 'As the National Record Locator answers: subject:identifier (or patient:identifier) is required; type, if given, is http://snomed.info/sct|861421000000109 (another record type finds nothing). Audited like a flag lookup.',
        querystring: {
          type: 'object',
          properties: {
            'subject:identifier': { type: 'string', description: 'https://fhir.nhs.uk/Id/nhs-number|<NHS number>' },
            'patient:identifier': { type: 'string', description: 'The same, by its other name' },
            type: { type: 'string', description: 'http://snomed.info/sct|861421000000109' },
          },
        },
        response: { 200: fhirResource('Bundle', 'A searchset Bundle of DocumentReference pointers'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const issues = unknownSearchParameters(q, POINTER_SEARCH_PARAMETERS);
      const subject = [...all(q['subject:identifier']), ...all(q['patient:identifier'])];
      if (subject.length !== 1) issues.push({ code: 'required', diagnostics: 'subject:identifier is required, once: https://fhir.nhs.uk/Id/nhs-number|<NHS number>' });
      const nhsNumber = subject[0] !== undefined ? nhsNumberOfIdentifier(subject[0], issues) : '';
      const types = all(q.type);
      let wantsEol = true;
      for (const t of types) {
        const [system, code, more] = t.split('|');
        if (more !== undefined || !system || !code) issues.push({ code: 'value', diagnostics: 'type must be <system>|<code>, e.g. http://snomed.info/sct|861421000000109', expression: 'type' });
        else wantsEol = wantsEol && system === EOL_RECORD_TYPE.system && code === EOL_RECORD_TYPE.code;
      }
      if (issues.length > 0) throw new OperationOutcomeError(400, issues);
      const rows = wantsEol ? await activePointers(database.db, nhsNumber) : [];
      await access.record(request, {
        interaction: 'search',
        outcome: 'allowed',
        query: request.url,
        entities: rows.length > 0 ? rows.map((r) => ({ resourceType: 'DocumentReference', id: r.plan_id, versionId: String(r.version_id), nhsNumber })) : [{ resourceType: 'DocumentReference', nhsNumber }],
      });
      const origin = `${request.protocol}://${request.host}`;
      const bundle = searchsetBundle<DocumentReference>({ selfUrl: `${origin}${request.url}`, baseUrl: `${origin}/fhir/R4`, resources: rows.map((r) => toPointer(r, origin, `${origin}/fhir/R4`)) });
      return reply.type(fhirType).send(bundle);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/DocumentReference/:id',
    {
      config: { allow: POINTER_READERS },
      schema: { tags: ['Flag'], summary: 'Read a pointer (its id is its plan\'s); only while the plan is published', params: { type: 'object', required: ['id'], properties: { id: idSchema } }, response: { 200: fhirResource('DocumentReference', 'The pointer'), ...errorResponses } },
    },
    async (request, reply) => {
      const { id } = request.params;
      const row = isUuid(id) ? await activePointer(database.db, id) : undefined;
      if (!row) throw notFound(`DocumentReference/${id} is not known`);
      await access.record(request, { interaction: 'read', outcome: 'allowed', entities: [{ resourceType: 'DocumentReference', id, versionId: String(row.version_id), nhsNumber: row.nhs_number.trim() }] });
      const origin = `${request.protocol}://${request.host}`;
      return reply.header('etag', weakEtag(row.version_id)).type(fhirType).send(toPointer(row, origin, `${origin}/fhir/R4`));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/Flag/:id',
    {
      config: { allow: FLAG_READERS },
      schema: { tags: ['Flag'], summary: 'Read a flag (its id is its plan\'s)', params: { type: 'object', required: ['id'], properties: { id: idSchema } }, response: { 200: fhirResource('Flag', 'The flag'), ...errorResponses } },
    },
    async (request, reply) => {
      const { id } = request.params;
      const row = isUuid(id) ? await findFlag(database.db, id) : undefined;
      if (!row || (row.status === 'inactive' && !seesDown(request))) throw notFound(`Flag/${id} is not known`);
      await access.record(request, { interaction: 'read', outcome: 'allowed', entities: [{ resourceType: 'Flag', id, versionId: String(row.version_id), nhsNumber: row.nhs_number.trim() }] });
      return reply.header('etag', weakEtag(row.version_id)).type(fhirType).send(toFlag(row));
    },
  );

  app.get<{ Querystring: Query }>(
    '/fhir/R4/Flag',
    {
      config: { allow: FLAG_READERS },
      schema: {
        tags: ['Flag'],
        summary: 'A patient\'s flags: the active one while a plan is published (down ones for the service team only)',
        querystring: {
          type: 'object',
          properties: {
            'patient:identifier': { type: 'string', description: 'https://fhir.nhs.uk/Id/nhs-number|<NHS number>; required' },
            status: { type: 'string', description: 'active or inactive (comma-separated for both)' },
          },
        },
        response: { 200: fhirResource('Bundle', 'A searchset Bundle'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const q = request.query;
      const issues = unknownSearchParameters(q, FLAG_SEARCH_PARAMETERS);
      const patient = all(q['patient:identifier']);
      if (patient.length !== 1) issues.push({ code: 'required', diagnostics: 'patient:identifier is required, once: https://fhir.nhs.uk/Id/nhs-number|<NHS number>' });
      const nhsNumber = patient[0] !== undefined ? nhsNumberOfIdentifier(patient[0], issues) : '';
      const statuses = all(q.status).flatMap((s) => s.split(','));
      for (const s of statuses) if (s !== 'active' && s !== 'inactive') issues.push({ code: 'value', diagnostics: 'status must be active or inactive' });
      if (issues.length > 0) throw new OperationOutcomeError(400, issues);
      const wanted = (seesDown(request) ? statuses : statuses.filter((s) => s === 'active').concat(statuses.length === 0 ? ['active'] : [])) as ('active' | 'inactive')[];
      const rows = wanted.length === 0 ? [] : await flagsOfPatient(database.db, nhsNumber, wanted);
      await access.record(request, {
        interaction: 'search',
        outcome: 'allowed',
        query: request.url,
        entities: rows.length > 0 ? rows.map((r) => ({ resourceType: 'Flag', id: r.plan_id, versionId: String(r.version_id), nhsNumber })) : [{ resourceType: 'Flag', nhsNumber }],
      });
      const bundle = searchsetBundle<Flag>({ selfUrl: `${request.protocol}://${request.host}${request.url}`, baseUrl: `${request.protocol}://${request.host}/fhir/R4`, resources: rows.map(toFlag) });
      return reply.type(fhirType).send(bundle);
    },
  );
}
