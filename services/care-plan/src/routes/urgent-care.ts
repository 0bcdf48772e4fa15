import { principal } from '@cmc/auth';
import { OperationOutcomeError, forbidden, idSchema, isUuid, weakEtag } from '@cmc/fhir';
import { errorResponses, fhirResource } from '@cmc/http';
import type { ServiceContext } from '@cmc/service';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Bundle, CarePlan, FhirResource } from 'fhir/r4';
import { findFlag } from '../db/flag-repository';
import { allergiesOfPlans, findPlan } from '../db/plan-repository';
import type { CarePlanDB } from '../db/schema';
import { toFlag } from '../domain/flag';
import { DEATH_PLACES } from '../domain/plan';
import { factsOf } from '../domain/plans';
import { renderPlanPdf } from '../domain/print';
import { mayRead, readRefusal } from '../domain/rights';
import { CHANGE_REQUEST_MAX, NOTE_MAX, addNote, notesOf, recordDeath, requestChange, summaryOf, type DeathInput } from '../domain/urgent-care';
import { accessLogOf, planHttp } from './shared';

const idParams = { type: 'object', required: ['id'], properties: { id: idSchema } } as const;
const text = (max: number, description: string) => ({ type: 'string', minLength: 1, maxLength: max, pattern: '\\S', description }) as const;
const READERS = { roles: ['clinician', 'administrator', 'urgent-care', 'service-team', 'patient', 'proxy'], scopes: ['system/CarePlan.r', 'system/CarePlan.rs', 'system/CarePlan.cruds'] } as const;

const summarySchema = {
  type: 'object',
  description:
    'The urgent care summary of a published plan: patient, resuscitation, allergies, alerts, home access, diagnoses, ceiling of treatment, preferences, emergency treatment plan, contacts, last change and by whom, review, notes. Sections hold the plan\'s own values (codes as codes).',
  additionalProperties: true,
  required: ['planId', 'versionId', 'patient', 'resuscitation', 'lastModified', 'notes'],
  properties: {
    planId: { type: 'string', format: 'uuid' },
    versionId: { type: 'string' },
    resuscitation: { type: 'object', additionalProperties: true, properties: { decision: { enum: ['for-cpr', 'not-for-cpr', 'not-recorded'] } } },
  },
} as const;

export async function urgentCareRoutes(app: FastifyInstance, ctx: ServiceContext<CarePlanDB>): Promise<void> {
  const { database } = ctx;
  const { base, fhirType, extrasFor, sendPlan, requireIfMatch, notKnown } = planHttp(database);
  const access = accessLogOf(database);

  /** A published plan the caller may read, or the refusal recorded and thrown (the summary and the printout). */
  const publishedFor = async (request: FastifyRequest<{ Params: { id: string } }>, interaction: 'summary' | 'print') => {
    const who = principal(request);
    const { id } = request.params;
    const row = isUuid(id) ? await findPlan(database.db, id) : undefined;
    if (!row) throw notKnown(id);
    const entity = { resourceType: 'CarePlan', id: row.id, versionId: String(row.version_id), nhsNumber: row.nhs_number.trim() };
    const facts = factsOf(row);
    const readable = mayRead(who, facts);
    if (row.state !== 'published' || !readable) {
      const what = interaction === 'summary' ? 'the urgent care summary is' : 'printouts are';
      const reason = readable ? `${what} of published plans only` : readRefusal(who, facts);
      await access.record(request, { interaction, outcome: 'refused', outcomeReason: reason, entities: [entity] });
      throw readable ? new OperationOutcomeError(409, { code: 'business-rule', diagnostics: reason }) : forbidden(reason);
    }
    return { who, row, entity };
  };

  app.get<{ Params: { id: string } }>(
    '/api/care-plans/:id/print',
    {
      config: { allow: READERS },
      schema: {
        tags: ['Urgent care'],
        summary: 'The whole published plan as a PDF to read on paper; the version and the time printed are on every page. An audited access',
        params: idParams,
        produces: ['application/pdf'],
        response: {
          200: { description: 'The plan as an A4 PDF', content: { 'application/pdf': { schema: { type: 'string', format: 'binary' } } } },
          409: { ...errorResponses[400], description: 'The plan is not published' },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { who, row, entity } = await publishedFor(request, 'print');
      const pdf = await renderPlanPdf(row, { at: new Date(), by: who.subject, ...(who.organisation ? { byOrganisation: who.organisation } : {}) });
      // Durable before the answer: a printout is an access like any other.
      await access.record(request, { interaction: 'print', outcome: 'allowed', entities: [entity] });
      return reply
        .type('application/pdf')
        .header('content-disposition', `inline; filename="care-plan-${row.id}-v${row.version_id}.pdf"`)
        .header('cache-control', 'no-store')
        .header('etag', weakEtag(row.version_id))
        .send(pdf);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/api/care-plans/:id/summary',
    {
      config: { allow: READERS },
      schema: { tags: ['Urgent care'], summary: 'The urgent care summary of a published plan (one screen)', params: idParams, response: { 200: summarySchema, ...errorResponses } },
    },
    async (request) => {
      const { row, entity } = await publishedFor(request, 'summary');
      const notes = await notesOf(database, row.id);
      await access.record(request, { interaction: 'summary', outcome: 'allowed', entities: [entity] });
      return summaryOf(row, notes);
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/CarePlan/:id/$summary',
    {
      config: { allow: READERS },
      schema: {
        tags: ['Urgent care'],
        summary: 'The urgent care summary as FHIR: a collection Bundle of the published CarePlan (urgent care notes as CarePlan.note), its AllergyIntolerances and its Flag',
        params: idParams,
        response: { 200: fhirResource('Bundle', 'A collection Bundle'), 409: { ...errorResponses[400], description: 'The plan is not published' }, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { row, entity } = await publishedFor(request, 'summary');
      const [allergies, flag, notes] = await Promise.all([allergiesOfPlans(database.db, [row.id]), findFlag(database.db, row.id), notesOf(database, row.id)]);
      await access.record(request, { interaction: 'summary', outcome: 'allowed', entities: [entity] });
      const fhirBase = base(request);
      const plan: CarePlan = {
        ...row.resource,
        ...(notes.length > 0
          ? { note: [...(row.resource.note ?? []), ...notes.map((n) => ({ authorString: `${n.author} (${n.author_role}, ${n.organisation})`, time: n.created_at.toISOString(), text: n.admission ? `[Admitted to hospital] ${n.text}` : n.text }))] }
          : {}),
      };
      const resources: FhirResource[] = [plan, ...allergies.map((a) => a.resource), ...(flag ? [toFlag(flag)] : [])];
      const bundle: Bundle = {
        resourceType: 'Bundle',
        type: 'collection',
        timestamp: new Date().toISOString(),
        entry: resources.map((r) => ({ fullUrl: `${fhirBase}/${r.resourceType}/${r.id ?? ''}`, resource: r })),
      };
      return reply.header('etag', weakEtag(row.version_id)).type(fhirType).send(bundle);
    },
  );

  app.post<{ Params: { id: string }; Body: { text: string; admission?: boolean } }>(
    '/api/care-plans/:id/notes',
    {
      config: { allow: { roles: ['urgent-care', 'clinician'] } },
      schema: {
        tags: ['Urgent care'],
        summary: 'Add a short note to a published plan (e.g. "111 referred to 24h nursing"); admission: true makes the review due today',
        params: idParams,
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['text'],
          properties: { text: text(NOTE_MAX, `The note, at most ${NOTE_MAX} characters`), admission: { type: 'boolean', description: 'The patient was admitted to hospital' } },
        },
        response: {
          201: {
            type: 'object',
            additionalProperties: false,
            required: ['id', 'createdAt', 'planVersionId'],
            properties: { id: { type: 'string', format: 'uuid' }, createdAt: { type: 'string', format: 'date-time' }, planVersionId: { type: 'string' }, reviewDate: { type: 'string', format: 'date' } },
          },
          409: { ...errorResponses[400], description: 'The plan is not published' },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!isUuid(id)) throw notKnown(id);
      const { note, plan } = await addNote(database, principal(request), id, { text: request.body.text.trim(), admission: request.body.admission ?? false }, extrasFor(request, 'update'));
      return reply.code(201).send({
        id: note.id,
        createdAt: note.created_at.toISOString(),
        planVersionId: String(plan.version_id),
        ...(plan.content.approval?.reviewDate ? { reviewDate: plan.content.approval.reviewDate } : {}),
      });
    },
  );

  app.post<{ Params: { id: string }; Body: DeathInput; Headers: { 'if-match'?: string; prefer?: string } }>(
    '/api/care-plans/:id/death',
    {
      config: { allow: { roles: ['clinician', 'service-team'] } },
      schema: {
        tags: ['Urgent care'],
        summary: 'Record the patient\'s death: the plan closes (deceased), the flag goes down, and whether the preferred place of death was met is kept. If-Match is required',
        params: idParams,
        headers: { type: 'object', properties: { 'if-match': { type: 'string' } } },
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['date', 'place'],
          properties: {
            date: { type: 'string', maxLength: 10, description: 'YYYY-MM-DD, not in the future' },
            place: { enum: [...DEATH_PLACES] },
            placeDetail: { type: 'string', maxLength: 200, description: 'Which hospital, hospice...; required for other' },
          },
        },
        response: { 200: fhirResource('CarePlan', 'The closed plan (status completed, with the death extension)'), ...errorResponses, 409: { ...errorResponses[400], description: 'The plan is already closed' }, 412: { ...errorResponses[400], description: 'If-Match does not name the current version' }, 428: { ...errorResponses[400], description: 'If-Match is required' } },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!isUuid(id)) throw notKnown(id);
      const expected = requireIfMatch(request.headers['if-match']);
      const row = await recordDeath(database, principal(request), id, expected, request.body, extrasFor(request, 'update'));
      return sendPlan(request, reply, row);
    },
  );

  app.post<{ Params: { id: string }; Body: { text: string } }>(
    '/api/care-plans/:id/change-requests',
    {
      config: { allow: { roles: ['patient', 'proxy'] } },
      schema: {
        tags: ['Patient'],
        summary: 'The patient (or their proxy) asks the care team to change their published plan',
        params: idParams,
        body: { type: 'object', additionalProperties: false, required: ['text'], properties: { text: text(CHANGE_REQUEST_MAX, 'What should change, in the patient\'s words') } },
        response: {
          201: { type: 'object', additionalProperties: false, required: ['id', 'createdAt'], properties: { id: { type: 'string', format: 'uuid' }, createdAt: { type: 'string', format: 'date-time' } } },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!isUuid(id)) throw notKnown(id);
      const made = await requestChange(database, principal(request), id, request.body.text.trim(), extrasFor(request, 'create'));
      return reply.code(201).send({ id: made.id, createdAt: made.createdAt.toISOString() });
    },
  );
}
