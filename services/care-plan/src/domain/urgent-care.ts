/**
 * What urgent care does with a published plan besides reading it: the one-screen summary, short notes (an
 * admission makes the review due at once), the record of death that closes the plan, and the patient's
 * change requests.
 */
import type { Principal } from '@cmc/auth';
import type { Database } from '@cmc/db';
import { OperationOutcomeError, forbidden, notFound, parseFhirDateTime } from '@cmc/fhir';
import { randomUUID } from 'node:crypto';
import { findPlanForUpdate, type PlanRow } from '../db/plan-repository';
import type { CarePlanDB, PlanNotesTable } from '../db/schema';
import { deathOutcome, DEATH_PLACES, type DeathPlace, type DeathRecord, type PlanContent, type PlanMeta } from './plan';
import { changeLocked, emit, eventData, factsOf, nextMeta, rowOf, writeVersion, type UseCaseExtras } from './plans';
import { mayRead, type PlanFacts } from './rights';
import { today } from './rules';

export const NOTE_MAX = 1000;
export const CHANGE_REQUEST_MAX = 4000;

/** Who may add a note: urgent-care users and clinicians who may read the published plan. */
export const mayAddNote = (p: Principal, plan: PlanFacts): boolean =>
  plan.state === 'published' && p.kind === 'user' && (p.role === 'urgent-care' || p.role === 'clinician') && mayRead(p, plan);

/**
 * Who may record a death (it closes the plan and takes the flag down, so not anyone): clinicians of the
 * organisation holding the plan or of the patient's GP practice, and the service team when told.
 */
export const mayRecordDeath = (p: Principal, plan: PlanFacts): boolean =>
  p.kind === 'user' &&
  (p.role === 'service-team' || (p.role === 'clinician' && !!p.organisation && (p.organisation === plan.organisation || p.organisation === plan.gpPractice)));

/** Change requests: the patient, or their proxy, about their own published plan. */
export const mayRequestChange = (p: Principal, plan: PlanFacts): boolean =>
  plan.state === 'published' && p.kind === 'user' && (p.role === 'patient' || p.role === 'proxy') && p.patient === plan.nhsNumber;

type Note = Pick<PlanNotesTable, 'id' | 'text' | 'admission' | 'author' | 'author_role' | 'organisation' | 'created_at'>;

/** Adds a note to a published plan, with its event; an admission makes the plan's review due today (a new version). */
export async function addNote(
  database: Database<CarePlanDB>,
  who: Principal,
  planId: string,
  note: { text: string; admission: boolean },
  extras: UseCaseExtras,
): Promise<{ note: Note; plan: PlanRow }> {
  const outcome = await database.db.transaction().execute(async (trx): Promise<{ note: Note; plan: PlanRow } | Error> => {
    const row = await findPlanForUpdate(trx, planId);
    if (!row) throw notFound(`CarePlan/${planId} is not known`);
    if (!mayAddNote(who, factsOf(row))) {
      const reason = row.state !== 'published' ? 'notes are added to published plans only' : 'only urgent-care users and clinicians add notes';
      await extras.recordAccess(trx, row, 'refused', reason);
      return row.state !== 'published' && mayRead(who, factsOf(row)) ? new OperationOutcomeError(409, { code: 'business-rule', diagnostics: reason }) : forbidden(reason);
    }
    const now = new Date();
    const saved: Note = { id: randomUUID(), text: note.text, admission: note.admission, author: who.subject, author_role: who.role ?? 'user', organisation: who.organisation ?? '', created_at: now };
    await trx.insertInto('plan_notes').values({ ...saved, plan_id: row.id, nhs_number: row.nhs_number }).execute();
    let plan = row;
    if (note.admission) {
      // The guide asks for a review after an admission: the review is due today, in a new version of the plan.
      const meta: PlanMeta = { ...nextMeta(row, who, now), reviewDue: { at: now.toISOString(), reason: 'admitted to hospital (urgent care note)' } };
      const content: PlanContent = { ...row.content, approval: { ...row.content.approval, reviewDate: today(now) } };
      plan = rowOf(meta, content);
      await writeVersion(trx, plan, row.version_id, who.subject);
    }
    await emit(trx, database.schema, 'cmc.careplan.note-added.v1', plan, eventData(plan, who, { noteId: saved.id, admission: note.admission }), extras.requestId);
    await extras.recordAccess(trx, plan, 'allowed');
    return { note: saved, plan };
  });
  if (outcome instanceof Error) throw outcome;
  return outcome;
}

export interface DeathInput {
  date: string;
  place: DeathPlace;
  placeDetail?: string;
}

/** Checks a death record's input: 400 naming each problem. */
function checkDeath(input: DeathInput, birthDate: string, now: Date): void {
  const issues: { code: 'value'; diagnostics: string; expression: string }[] = [];
  const date = /^\d{4}-\d{2}-\d{2}$/.test(input.date) ? parseFhirDateTime(input.date) : undefined;
  if (!date) issues.push({ code: 'value', diagnostics: 'date must be a date (YYYY-MM-DD)', expression: 'date' });
  else if (input.date > today(now)) issues.push({ code: 'value', diagnostics: 'the date of death cannot be in the future', expression: 'date' });
  else if (input.date < birthDate) issues.push({ code: 'value', diagnostics: 'the date of death is before the date of birth', expression: 'date' });
  if (!(DEATH_PLACES as readonly string[]).includes(input.place)) issues.push({ code: 'value', diagnostics: `place must be one of ${DEATH_PLACES.join(', ')}`, expression: 'place' });
  if (input.place === 'other' && !input.placeDetail?.trim()) issues.push({ code: 'value', diagnostics: 'a place of "other" needs placeDetail (where)', expression: 'placeDetail' });
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
}

/**
 * Records the patient's death: the plan closes (deceased) in a new version that says whether the preferred
 * place of death was met, the flag goes down, and the event feeds the outcome reports.
 */
export async function recordDeath(
  database: Database<CarePlanDB>,
  who: Principal,
  planId: string,
  expectedVersion: string,
  input: DeathInput,
  extras: UseCaseExtras,
): Promise<PlanRow> {
  return changeLocked(
    database,
    who,
    planId,
    expectedVersion,
    extras,
    (f) => (mayRecordDeath(who, f) ? undefined : 'only clinicians of the organisation holding the plan or of the patient\'s GP practice, or the service team, may record a death'),
    async (trx, row, now) => {
      if (row.state === 'withdrawn' || row.state === 'deceased') throw new OperationOutcomeError(409, { code: 'business-rule', diagnostics: `a ${row.state} plan cannot be closed again` });
      checkDeath(input, row.content.patient.birthDate, now);
      const death: DeathRecord = {
        date: input.date,
        place: input.place,
        ...(input.placeDetail?.trim() ? { placeDetail: input.placeDetail.trim() } : {}),
        outcome: deathOutcome(row.content.preferences?.placeOfDeath, input.place, input.placeDetail),
        recordedAt: now.toISOString(),
        recordedBy: who.subject,
        ...(who.organisation ? { recordedByOrg: who.organisation } : {}),
      };
      const next = rowOf({ ...nextMeta(row, who, now, 'deceased'), death }, row.content);
      await writeVersion(trx, next, row.version_id, who.subject);
      await emit(trx, database.schema, 'cmc.careplan.death-recorded.v1', next, eventData(next, who, { deathDate: death.date, deathPlace: death.place, deathOutcome: death.outcome }), extras.requestId);
      return next;
    },
  );
}

/** A change request from the patient or proxy: kept, and an event so the care team hears of it. */
export async function requestChange(database: Database<CarePlanDB>, who: Principal, planId: string, text: string, extras: UseCaseExtras): Promise<{ id: string; createdAt: Date }> {
  const outcome = await database.db.transaction().execute(async (trx): Promise<{ id: string; createdAt: Date } | Error> => {
    const row = await findPlanForUpdate(trx, planId);
    if (!row) throw notFound(`CarePlan/${planId} is not known`);
    if (!mayRequestChange(who, factsOf(row))) {
      const reason = 'only the patient, or their proxy, may ask for a change to their own published plan';
      await extras.recordAccess(trx, row, 'refused', reason);
      return forbidden(reason);
    }
    const id = randomUUID();
    const createdAt = new Date();
    await trx.insertInto('change_requests').values({ id, plan_id: row.id, nhs_number: row.nhs_number, text, requested_by: who.subject, requested_by_role: who.role ?? 'patient', created_at: createdAt }).execute();
    await emit(trx, database.schema, 'cmc.careplan.change-requested.v1', row, { ...eventData(row, who, { changeRequestId: id }), changedAt: createdAt.toISOString() }, extras.requestId);
    await extras.recordAccess(trx, row, 'allowed');
    return { id, createdAt };
  });
  if (outcome instanceof Error) throw outcome;
  return outcome;
}

/** The notes of a plan, newest first. */
export async function notesOf(database: Database<CarePlanDB>, planId: string, limit = 50): Promise<Note[]> {
  return database.db
    .selectFrom('plan_notes')
    .select(['id', 'text', 'admission', 'author', 'author_role', 'organisation', 'created_at'])
    .where('plan_id', '=', planId)
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
}

/**
 * The urgent care summary: the guide's one screen, in the order a crew reads it. Plain JSON from the plan's
 * content, so nothing is lost or re-worded; codes stay codes (a client shows its own labels).
 */
export function summaryOf(row: PlanRow, notes: Note[]) {
  const c = row.content;
  const m = row.meta;
  return {
    planId: row.id,
    versionId: String(row.version_id),
    patient: {
      nhsNumber: c.patient.nhsNumber,
      name: c.patient.name,
      birthDate: c.patient.birthDate,
      gender: c.patient.gender,
      ...(c.patient.address ? { address: c.patient.address } : {}),
      ...(c.patient.gpPractice ? { gpPractice: c.patient.gpPractice } : {}),
      ...(c.patient.gp ? { gp: c.patient.gp } : {}),
    },
    resuscitation: {
      decision: c.resuscitation?.decision ?? 'not-recorded',
      ...(c.resuscitation?.decisionDate ? { decisionDate: c.resuscitation.decisionDate } : {}),
      ...(c.resuscitation?.dnacpr ? { dnacprReview: c.resuscitation.dnacpr.review } : {}),
    },
    allergies: c.allergies ?? null,
    alerts: c.alerts ?? [],
    homeAccess: c.homeAccess ?? null,
    diagnoses: { main: c.background?.mainDiagnosis ?? null, others: c.background?.otherDiagnoses ?? [] },
    ceilingOfTreatment: c.recommendations ?? null,
    preferences: c.preferences ?? null,
    emergencyPlan: c.emergencyPlan?.problems ?? [],
    contacts: c.contacts ?? [],
    lastModified: { at: m.lastUpdated, by: m.lastUpdatedBy, ...(m.lastUpdatedByOrg ? { organisation: m.lastUpdatedByOrg } : {}) },
    review: { ...(c.approval?.reviewDate ? { date: c.approval.reviewDate } : {}), ...(m.reviewDue ? { dueBecause: m.reviewDue.reason } : {}) },
    notes: notes.map((n) => ({ id: n.id, text: n.text, admission: n.admission, author: n.author, role: n.author_role, organisation: n.organisation, at: n.created_at.toISOString() })),
  };
}
