import type { Principal } from '@cmc/auth';
import type { PlanEventData } from '@cmc/contracts';
import type { Database } from '@cmc/db';
import { publish } from '@cmc/events';
import { OperationOutcomeError, conflict, forbidden, notFound, preconditionFailed, type IssueInput } from '@cmc/fhir';
import type { CarePlan } from 'fhir/r4';
import type { Transaction } from 'kysely';
import { randomUUID } from 'node:crypto';
import { activeConsentOf } from '../db/consent-projection-repository';
import { syncFlag } from '../db/flag-repository';
import { findOpenPlan, findPlanForUpdate, insertPlan, openPlansForUpdate, replaceAllergies, updatePlan, type PlanRow } from '../db/plan-repository';
import type { CarePlanDB } from '../db/schema';
import { allergyIntolerances, expressionFor, fromCarePlan, toCarePlan } from './fhir-mapping';
import { PATIENT_SECTIONS, type PlanContent, type PlanMeta, type PlanState, type StoredPlan } from './plan';
import { changedSections, clinicalChanges, mayCreate, mayPublish, maySubmit, mayUpdate, mayWithdraw, writesClinical, type PlanFacts } from './rights';
import { DEFAULT_REVIEW_MONTHS, addMonths, consistencyProblems, publishProblems, toIssues, today } from './rules';

type Trx = Transaction<CarePlanDB>;
export type Outcome = 'allowed' | 'refused';

/** What a use case needs from the route: the request id, and how to write the access entry in its transaction. */
export interface UseCaseExtras {
  requestId: string;
  recordAccess: (trx: Trx, plan: Pick<PlanRow, 'id' | 'version_id' | 'nhs_number'>, outcome: Outcome, reason?: string) => Promise<void>;
}

export const factsOf = (row: Pick<PlanRow, 'state' | 'organisation' | 'nhs_number' | 'gp_practice' | 'meta'>): PlanFacts => ({
  state: row.state,
  organisation: row.organisation,
  nhsNumber: row.nhs_number.trim(),
  gpPractice: row.gp_practice,
  ...(row.meta.startedByPatient ? { startedByPatient: true } : {}),
});

const storedOf = (row: Pick<PlanRow, 'meta' | 'content'>): StoredPlan => ({ meta: row.meta, content: row.content });

/** The row for a plan's meta and content, with the FHIR resource rendered once, at write. */
export function rowOf(meta: PlanMeta, content: PlanContent): PlanRow {
  return {
    id: meta.id,
    nhs_number: content.patient.nhsNumber,
    state: meta.state,
    version_id: meta.versionId,
    organisation: meta.organisation,
    created_by: meta.createdBy,
    created_at: new Date(meta.createdAt),
    updated_at: new Date(meta.lastUpdated),
    published_at: meta.publishedAt ? new Date(meta.publishedAt) : null,
    review_date: content.approval?.reviewDate ?? null,
    gp_practice: content.patient.gpPractice?.odsCode ?? null,
    meta,
    content,
    resource: toCarePlan({ meta, content }),
  };
}

export function eventData(row: PlanRow, who: Principal | 'system', extra: Partial<PlanEventData> = {}): PlanEventData {
  const data: PlanEventData = {
    planId: row.id,
    versionId: String(row.version_id),
    nhsNumber: row.nhs_number.trim(),
    state: row.state,
    organisation: row.organisation,
    changedBy: who === 'system' ? 'system' : who.subject,
    changedAt: row.updated_at.toISOString(),
    ...extra,
  };
  if (who !== 'system' && who.organisation) data.changedByOrganisation = who.organisation;
  if (row.gp_practice) data.gpPractice = row.gp_practice;
  if (row.review_date) data.reviewDate = row.review_date;
  return data;
}

type PlanEventType =
  | 'cmc.careplan.created.v1'
  | 'cmc.careplan.updated.v1'
  | 'cmc.careplan.submitted.v1'
  | 'cmc.careplan.published.v1'
  | 'cmc.careplan.withdrawn.v1'
  | 'cmc.careplan.death-recorded.v1'
  | 'cmc.careplan.note-added.v1'
  | 'cmc.careplan.change-requested.v1';

export async function emit(trx: Trx, schema: string, type: PlanEventType, row: PlanRow, data: PlanEventData, requestId?: string): Promise<void> {
  await publish(trx, schema, {
    type,
    source: '/cmc/care-plan',
    subject: `CarePlan/${row.id}`,
    key: row.nhs_number.trim(),
    ...(requestId ? { requestId } : {}),
    data,
  });
}

/** Writes a new version of a plan (row, version, allergies) from the one locked at `from`. */
export async function writeVersion(trx: Trx, row: PlanRow, from: number, recordedBy: string): Promise<void> {
  if (!(await updatePlan(trx, row, from, recordedBy))) throw preconditionFailed(`CarePlan/${row.id} changed meanwhile`);
  await replaceAllergies(trx, row.id, row.nhs_number, allergyIntolerances(storedOf(row)));
  await syncFlag(trx, row);
}

export const invalid = (issues: IssueInput[], status = 422): OperationOutcomeError => new OperationOutcomeError(status, issues);

/**
 * Refuses (403) a content change the caller's role does not allow: administrators write only the non-clinical
 * sections. Names every clinical section they touched.
 */
function checkSectionRights(who: Principal, before: Partial<PlanContent> | undefined, after: PlanContent): void {
  if (writesClinical(who)) return;
  const changed = changedSections(before, after);
  const patient = who.kind === 'user' && who.role === 'patient';
  const refused = patient ? changed.filter((s) => !PATIENT_SECTIONS.includes(s)) : clinicalChanges(changed);
  if (refused.length === 0) return;
  const writer = patient ? 'a clinician (a patient writes their details and wishes: preferences, home access, contacts, social support)' : 'a registered clinician';
  throw new OperationOutcomeError(
    403,
    refused.map((s) => ({ code: 'forbidden', diagnostics: `only ${writer} may write the ${s} section`, expression: expressionFor(s) })),
  );
}

/** Refuses a change that leaves the plan inconsistent (422, every problem named). */
function checkConsistency(content: PlanContent, now: Date): void {
  const problems = consistencyProblems(content, now);
  if (problems.length > 0) throw invalid(toIssues(problems, expressionFor));
}

/**
 * Creates a draft for a patient with active consent; the event and the access entry in the same transaction.
 * 422 without active consent; 409 naming the open plan when the patient already has one.
 */
export async function createPlan(database: Database<CarePlanDB>, who: Principal, body: unknown, extras: UseCaseExtras): Promise<PlanRow> {
  if (!mayCreate(who)) throw forbidden('only clinicians and administrators of an organisation, or a system client with the CarePlan write scope, may create a plan');
  const parsed = fromCarePlan(body);
  const now = new Date();
  const nhsNumber = parsed.content.patient.nhsNumber;
  if (parsed.asserted.status !== undefined && parsed.asserted.status !== 'draft') {
    throw invalid([{ code: 'business-rule', diagnostics: 'a new plan is a draft: create it with status draft, then submit or publish it', expression: 'CarePlan.status' }]);
  }
  checkSectionRights(who, undefined, parsed.content);
  checkConsistency(parsed.content, now);
  const byPatient = who.kind === 'user' && who.role === 'patient';
  if (byPatient && nhsNumber !== who.patient) throw forbidden('a patient may start a plan for themselves only');
  const holder = byPatient ? parsed.content.patient.gpPractice?.odsCode : who.organisation;
  if (byPatient && !holder) {
    throw invalid([{ code: 'required', diagnostics: 'name your GP practice (its ODS code): it holds the draft until a clinician takes it on', expression: expressionFor('patient.gpPractice') }]);
  }
  return database.db.transaction().execute(async (trx) => {
    const consent = await activeConsentOf(trx, nhsNumber);
    if (!consent) {
      throw invalid([
        {
          code: 'business-rule',
          diagnostics: 'this patient has no active consent to an urgent care plan: record it first (POST /fhir/R4/Consent); a consent recorded in the last few seconds may not have reached this service yet',
          expression: 'CarePlan.subject',
        },
      ]);
    }
    const open = await findOpenPlan(trx, nhsNumber);
    if (open) throw conflict(`this patient already has a plan (CarePlan/${open.id}, ${open.state}, held by organisation ${open.organisation}); change that one`);
    const content: PlanContent = { ...parsed.content, consent: { consentId: consent.consent_id, ...(consent.basis_code ? { basisCode: consent.basis_code } : {}) } };
    const meta: PlanMeta = {
      id: randomUUID(),
      versionId: 1,
      state: 'draft',
      organisation: holder ?? '',
      ...(byPatient ? { startedByPatient: true } : {}),
      createdBy: who.subject,
      createdAt: now.toISOString(),
      lastUpdated: now.toISOString(),
      lastUpdatedBy: who.subject,
      ...(who.organisation ? { lastUpdatedByOrg: who.organisation } : {}),
    };
    const row = rowOf(meta, content);
    await insertPlan(trx, row, who.subject);
    await replaceAllergies(trx, row.id, nhsNumber, allergyIntolerances(storedOf(row)));
    await emit(trx, database.schema, 'cmc.careplan.created.v1', row, eventData(row, who), extras.requestId);
    await extras.recordAccess(trx, row, 'allowed');
    return row;
  });
}

const recordedRefusals = new WeakSet<Error>();
const markRecorded = (e: OperationOutcomeError): OperationOutcomeError => {
  recordedRefusals.add(e);
  return e;
};
/** Whether a refusal's access entry was already written (by changeLocked, in the refusing transaction). */
export const refusalRecorded = (e: Error): boolean => recordedRefusals.has(e);

/**
 * Runs `change` on the locked current row under `allowed`, checking the version the caller saw; a refusal is
 * recorded (and committed) before the 403 goes back.
 */
export async function changeLocked(
  database: Database<CarePlanDB>,
  who: Principal,
  id: string,
  expectedVersion: string,
  extras: UseCaseExtras,
  allowed: (facts: PlanFacts) => string | undefined,
  change: (trx: Trx, row: PlanRow, now: Date) => Promise<PlanRow>,
): Promise<PlanRow> {
  const outcome = await database.db.transaction().execute(async (trx): Promise<PlanRow | Error> => {
    const row = await findPlanForUpdate(trx, id);
    if (!row) throw notFound(`CarePlan/${id} is not known`);
    const refusal = allowed(factsOf(row));
    if (refusal) {
      await extras.recordAccess(trx, row, 'refused', refusal);
      return markRecorded(forbidden(refusal));
    }
    if (expectedVersion !== String(row.version_id)) throw preconditionFailed(`If-Match names version ${expectedVersion}; the current version is ${row.version_id}`);
    const updated = await change(trx, row, new Date());
    await extras.recordAccess(trx, updated, 'allowed');
    return updated;
  });
  if (outcome instanceof Error) throw outcome;
  return outcome;
}

export function nextMeta(row: PlanRow, who: Principal, now: Date, state: PlanState = row.state): PlanMeta {
  const meta: PlanMeta = { ...row.meta, versionId: row.version_id + 1, state, lastUpdated: now.toISOString(), lastUpdatedBy: who.subject };
  if (who.organisation) meta.lastUpdatedByOrg = who.organisation;
  else delete meta.lastUpdatedByOrg;
  return meta;
}

/**
 * Replaces the plan's content (PUT with If-Match): a new version in the same state. The status cannot change
 * here (that is $submit, $publish, $withdraw); a published plan must stay complete.
 */
export async function updatePlanContent(
  database: Database<CarePlanDB>,
  who: Principal,
  id: string,
  expectedVersion: string,
  body: unknown,
  extras: UseCaseExtras,
): Promise<PlanRow> {
  const parsed = fromCarePlan(body);
  if (parsed.asserted.id !== undefined && parsed.asserted.id !== id) {
    throw new OperationOutcomeError(400, { code: 'value', diagnostics: 'the id in the body is not the id in the URL', expression: 'CarePlan.id' });
  }
  return changeLocked(
    database,
    who,
    id,
    expectedVersion,
    extras,
    (facts) => (mayUpdate(who, facts) ? undefined : updateRefusal(who, facts)),
    async (trx, row, now) => {
      const stateProblems = assertedStateProblems(parsed.asserted, row);
      if (stateProblems.length > 0) throw invalid(stateProblems);
      if (parsed.content.patient.nhsNumber !== row.nhs_number.trim()) {
        throw invalid([{ code: 'business-rule', diagnostics: 'a plan cannot move to another patient (the NHS number differs)', expression: expressionFor('patient.nhsNumber') }]);
      }
      const content: PlanContent = { ...parsed.content, ...(row.content.consent ? { consent: row.content.consent } : {}) };
      checkSectionRights(who, row.content, content);
      if (row.state === 'published') {
        const consent = await activeConsentOf(trx, row.nhs_number.trim());
        const problems = publishProblems(content, now, !!consent);
        if (problems.length > 0) throw invalid(toIssues(problems, expressionFor));
      } else {
        checkConsistency(content, now);
      }
      const next = rowOf(nextMeta(row, who, now), content);
      await writeVersion(trx, next, row.version_id, who.subject);
      await emit(trx, database.schema, 'cmc.careplan.updated.v1', next, eventData(next, who), extras.requestId);
      return next;
    },
  );
}

function updateRefusal(who: Principal, facts: PlanFacts): string {
  if (facts.state === 'withdrawn' || facts.state === 'deceased') return `a ${facts.state} plan cannot be changed`;
  if (who.kind === 'user' && (who.role === 'urgent-care' || who.role === 'patient' || who.role === 'proxy')) return `${who.role} users read plans (and add notes); they do not write them`;
  if (facts.state === 'published') return 'only clinicians, and administrators of the organisation holding the plan, may change a published plan';
  return 'a plan that is not published is written only inside the organisation that created it';
}

/** A PUT may repeat the current status; a different one asks for a transition this route does not make. */
function assertedStateProblems(asserted: { status?: string; state?: string }, row: PlanRow): IssueInput[] {
  const current = row.resource.status;
  const issues: IssueInput[] = [];
  if (asserted.status !== undefined && asserted.status !== current) {
    issues.push({ code: 'business-rule', diagnostics: `status ${asserted.status} differs from the plan's (${current}): change the state with $submit, $publish or $withdraw`, expression: 'CarePlan.status' });
  }
  if (asserted.state !== undefined && asserted.state !== row.state) {
    issues.push({ code: 'business-rule', diagnostics: `the plan state ${asserted.state} differs from the plan's (${row.state}): change the state with $submit, $publish or $withdraw`, expression: expressionFor('state') });
  }
  return issues;
}

const wrongState = (row: PlanRow, action: string, from: readonly PlanState[]): OperationOutcomeError =>
  conflict(`a plan that is ${row.state} cannot be ${action}; only a plan that is ${from.join(' or ')} can`);

/** draft -> awaiting-approval, by staff of the writing organisation. */
export async function submitPlan(database: Database<CarePlanDB>, who: Principal, id: string, expectedVersion: string, extras: UseCaseExtras): Promise<PlanRow> {
  return changeLocked(
    database,
    who,
    id,
    expectedVersion,
    extras,
    (f) => (maySubmit(who, f) ? undefined : 'only clinicians and administrators of the organisation writing the plan may submit it for approval'),
    async (trx, row, now) => {
      if (row.state !== 'draft') throw wrongState(row, 'submitted for approval', ['draft']);
      const next = rowOf(nextMeta(row, who, now, 'awaiting-approval'), row.content);
      await writeVersion(trx, next, row.version_id, who.subject);
      await emit(trx, database.schema, 'cmc.careplan.submitted.v1', next, eventData(next, who), extras.requestId);
      return next;
    },
  );
}

/**
 * draft or awaiting-approval -> published, by a clinician: every mandatory field and rule is checked and every
 * problem named in one OperationOutcome; the review date defaults to 3 months from today.
 */
export async function publishPlan(database: Database<CarePlanDB>, who: Principal, id: string, expectedVersion: string, extras: UseCaseExtras): Promise<PlanRow> {
  return changeLocked(
    database,
    who,
    id,
    expectedVersion,
    extras,
    (f) => (mayPublish(who, f) ? undefined : 'only a registered clinician of the organisation writing the plan, or of the patient\'s GP practice, may publish it'),
    async (trx, row, now) => {
      if (row.state !== 'draft' && row.state !== 'awaiting-approval') throw wrongState(row, 'published', ['draft', 'awaiting-approval']);
      const consent = await activeConsentOf(trx, row.nhs_number.trim());
      const reviewDate = row.content.approval?.reviewDate ?? addMonths(today(now), DEFAULT_REVIEW_MONTHS);
      const content: PlanContent = { ...row.content, approval: { ...row.content.approval, reviewDate } };
      const problems = publishProblems(content, now, !!consent);
      if (problems.length > 0) throw invalid(toIssues(problems, expressionFor));
      const meta: PlanMeta = { ...nextMeta(row, who, now, 'published'), publishedAt: now.toISOString(), publishedBy: who.subject };
      const next = rowOf(meta, content);
      await writeVersion(trx, next, row.version_id, who.subject);
      await emit(trx, database.schema, 'cmc.careplan.published.v1', next, eventData(next, who), extras.requestId);
      return next;
    },
  );
}

/** Any open state -> withdrawn, with its reason: clinicians of the holding organisation, or the service team. */
export async function withdrawPlan(
  database: Database<CarePlanDB>,
  who: Principal,
  id: string,
  expectedVersion: string,
  reason: string,
  extras: UseCaseExtras,
): Promise<PlanRow> {
  return changeLocked(
    database,
    who,
    id,
    expectedVersion,
    extras,
    (f) => (mayWithdraw(who, f) ? undefined : 'only clinicians of the organisation holding the plan, or the service team, may withdraw it'),
    async (trx, row, now) => {
      if (row.state === 'withdrawn' || row.state === 'deceased') throw wrongState(row, 'withdrawn', ['draft', 'awaiting-approval', 'published']);
      const meta: PlanMeta = { ...nextMeta(row, who, now, 'withdrawn'), withdrawal: { at: now.toISOString(), reason, byConsentWithdrawal: false } };
      const next = rowOf(meta, row.content);
      await writeVersion(trx, next, row.version_id, who.subject);
      await emit(trx, database.schema, 'cmc.careplan.withdrawn.v1', next, eventData(next, who, { reason, byConsentWithdrawal: false }), extras.requestId);
      return next;
    },
  );
}

/**
 * After a consent withdrawal: unless the patient still has another active consent, every open plan of theirs is
 * withdrawn (a new version, by the system) in the consumer's transaction, with its event.
 */
export async function withdrawPlansForConsent(trx: Trx, schema: string, nhsNumber: string, consentId: string, at: Date): Promise<number> {
  if (await activeConsentOf(trx, nhsNumber)) return 0;
  const plans = await openPlansForUpdate(trx, nhsNumber);
  const reason = `consent ${consentId} was withdrawn`;
  const now = new Date();
  for (const row of plans) {
    const meta: PlanMeta = {
      ...row.meta,
      versionId: row.version_id + 1,
      state: 'withdrawn',
      lastUpdated: now.toISOString(),
      lastUpdatedBy: 'system',
      withdrawal: { at: at.toISOString(), reason, byConsentWithdrawal: true },
    };
    delete meta.lastUpdatedByOrg;
    const next = rowOf(meta, row.content);
    await writeVersion(trx, next, row.version_id, 'system');
    await emit(trx, schema, 'cmc.careplan.withdrawn.v1', next, eventData(next, 'system', { reason, byConsentWithdrawal: true }));
  }
  return plans.length;
}

export const planResource = (row: Pick<PlanRow, 'resource'>): CarePlan => row.resource;
