import { FHIR_JSON, OperationOutcomeError, notFound, versionFromIfMatch, weakEtag } from '@cmc/fhir';
import type { Database } from '@cmc/db';
import { AccessLog, recordAccess } from '@cmc/service';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { PlanRow } from '../db/plan-repository';
import type { CarePlanDB } from '../db/schema';
import type { UseCaseExtras } from '../domain/plans';

const accessLogs = new WeakMap<Database<CarePlanDB>, AccessLog<CarePlanDB>>();

/**
 * The service's one access log for reads (plans, allergies, flags, summaries, prints): the entries of concurrent
 * reads share one INSERT and one commit (group commit), and each answer still waits for its own entry to be
 * durable. One per database, so that every read route's entries batch together.
 */
export function accessLogOf(database: Database<CarePlanDB>): AccessLog<CarePlanDB> {
  let log = accessLogs.get(database);
  if (!log) {
    log = new AccessLog(database.db, database.schema, 'care-plan');
    accessLogs.set(database, log);
  }
  return log;
}

/** What the plan routes share: the base URL, the access entry of a change, sending a plan, If-Match. */
export function planHttp(database: Database<CarePlanDB>) {
  const base = (request: FastifyRequest): string => `${request.protocol}://${request.host}/fhir/R4`;
  const fhirType = `${FHIR_JSON}; charset=utf-8`;

  const extrasFor = (request: FastifyRequest, interaction: 'create' | 'update'): UseCaseExtras => ({
    requestId: String(request.id),
    recordAccess: (trx, plan, outcome, reason) =>
      recordAccess(trx, database.schema, 'care-plan', request, {
        interaction,
        outcome,
        ...(reason ? { outcomeReason: reason } : {}),
        entities: [{ resourceType: 'CarePlan', id: plan.id, versionId: String(plan.version_id), nhsNumber: plan.nhs_number.trim() }],
      }),
  });

  /** Sends a plan: `resource` is the resource, or its stored JSON text (sent as it is). */
  const sendPlan = (request: FastifyRequest, reply: FastifyReply, row: Pick<PlanRow, 'id' | 'version_id' | 'updated_at'> & { resource: PlanRow['resource'] | string }, status = 200) => {
    reply.code(status).header('etag', weakEtag(row.version_id)).header('last-modified', row.updated_at.toUTCString()).type(fhirType);
    if (status === 201) reply.header('location', `${base(request)}/CarePlan/${row.id}/_history/${row.version_id}`);
    const prefer = request.headers.prefer;
    if (typeof prefer === 'string' && prefer.includes('return=minimal')) return reply.send();
    return reply.send(row.resource);
  };

  const requireIfMatch = (header: string | undefined): string => {
    if (!header) throw new OperationOutcomeError(428, { code: 'required', diagnostics: 'If-Match is required: send the weak ETag of the version you saw, e.g. W/"1"' });
    const version = versionFromIfMatch(header);
    if (!version) throw new OperationOutcomeError(400, { code: 'value', diagnostics: 'If-Match must be a weak ETag such as W/"1"' });
    return version;
  };

  const notKnown = (id: string) => notFound(`CarePlan/${id} is not known`);

  return { base, fhirType, extrasFor, sendPlan, requireIfMatch, notKnown };
}
