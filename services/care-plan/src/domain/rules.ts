import type { IssueInput } from '@cmc/fhir';
import type { PlanContent } from './plan';

/** A problem with a plan, at an internal content path (fhir-mapping's expressionFor turns it into FHIRPath). */
export interface PlanProblem {
  code: 'required' | 'invariant' | 'value' | 'business-rule';
  path: string;
  diagnostics: string;
}

const DAY = 86_400_000;
export const today = (now: Date): string => now.toISOString().slice(0, 10);

/** A date some whole months after `from` (YYYY-MM-DD), clamped to the month's end (31 Jan + 1 month = 28/29 Feb). */
export function addMonths(from: string, months: number): string {
  const [y, m, d] = from.split('-').map(Number) as [number, number, number];
  const target = new Date(Date.UTC(y, m - 1 + months, 1));
  const lastDay = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  target.setUTCDate(Math.min(d, lastDay));
  return target.toISOString().slice(0, 10);
}

export const DEFAULT_REVIEW_MONTHS = 3;
export const MAX_REVIEW_MONTHS = 12;

const blank = (s: string | undefined): boolean => s === undefined || s.trim() === '';

/**
 * What must hold in every version, draft or not: a CPR decision consistent with the ceiling of treatment, the
 * eight questions only with a "not for CPR" decision, and a review date neither past nor over 12 months away.
 */
export function consistencyProblems(c: Partial<PlanContent>, now: Date): PlanProblem[] {
  const problems: PlanProblem[] = [];
  const decision = c.resuscitation?.decision;
  const ceiling = c.recommendations?.ceiling;
  if (decision === 'not-for-cpr' && ceiling === 'full-escalation') {
    problems.push({
      code: 'invariant',
      path: 'recommendations.ceiling',
      diagnostics: 'the ceiling of treatment is full escalation including CPR, but the resuscitation decision is not for CPR: the two must agree',
    });
  }
  if (decision === 'for-cpr' && ceiling === 'symptom-control') {
    problems.push({
      code: 'invariant',
      path: 'recommendations.ceiling',
      diagnostics: 'the ceiling of treatment is symptom control only, but the resuscitation decision is for CPR: the two must agree',
    });
  }
  if (decision === 'for-cpr' && c.resuscitation?.dnacpr) {
    problems.push({ code: 'invariant', path: 'resuscitation.dnacpr', diagnostics: 'the DNACPR questions belong to a "not for CPR" decision, but the decision is for CPR' });
  }
  const r = c.resuscitation;
  if (r?.discussed === false && !blank(r.discussionSummary)) {
    problems.push({ code: 'invariant', path: 'resuscitation.discussionSummary', diagnostics: 'a discussion summary is given but the discussion is recorded as not having taken place' });
  }
  const t = today(now);
  const review = c.approval?.reviewDate;
  if (review !== undefined) {
    if (review < t) problems.push({ code: 'value', path: 'approval.reviewDate', diagnostics: `the review date ${review} is in the past` });
    else if (review > addMonths(t, MAX_REVIEW_MONTHS)) {
      problems.push({ code: 'value', path: 'approval.reviewDate', diagnostics: `the review date ${review} is more than ${MAX_REVIEW_MONTHS} months away (at most ${addMonths(t, MAX_REVIEW_MONTHS)})` });
    }
  }
  for (const [i, when] of [r?.discussionDate, r?.decisionDate, c.background?.performanceStatus?.date].entries()) {
    if (when !== undefined && Date.parse(when) > now.getTime() + DAY) {
      const path = ['resuscitation.discussionDate', 'resuscitation.decisionDate', 'background.performanceStatus'][i]!;
      problems.push({ code: 'value', path, diagnostics: `${path} is in the future` });
    }
  }
  return problems;
}

/**
 * Every mandatory field of the guide's table that is missing, plus every inconsistency: publishing reports them
 * all at once. `hasConsent` says whether the patient's consent is active now.
 */
export function publishProblems(c: PlanContent, now: Date, hasConsent: boolean): PlanProblem[] {
  const p: PlanProblem[] = [];
  const need = (ok: boolean, path: string, what: string): void => {
    if (!ok) p.push({ code: 'required', path, diagnostics: `${what} is required to publish` });
  };
  need(hasConsent && !!c.consent, 'consent', 'active consent of the patient');
  need(!!c.patient.address && c.patient.address.line.some((l) => !blank(l)), 'patient.address', 'the patient\'s primary address');
  need(!!c.patient.gpPractice || !!c.patient.gp, 'patient.gpPractice', 'the GP practice or the name of the GP');
  const b = c.background;
  need(!!b?.mainDiagnosis, 'background.mainDiagnosis', 'the main diagnosis');
  need(!!b?.performanceStatus, 'background.performanceStatus', 'the WHO performance status and its date');
  need(!!b?.prognosis, 'background.prognosis', 'the prognosis');
  need(!!c.preferences?.placeOfCare, 'preferences.placeOfCare', 'the preferred place of care (or "not yet discussed" and the like)');
  need(!!c.preferences?.placeOfDeath, 'preferences.placeOfDeath', 'the preferred place of death (or "not yet discussed" and the like)');
  const r = c.resuscitation;
  need(r?.discussed !== undefined, 'resuscitation.discussed', 'whether a DNACPR discussion took place');
  if (r?.discussed === true) {
    need(!!r.discussionDate, 'resuscitation.discussionDate', 'the date of the DNACPR discussion');
    need(!blank(r.discussionSummary), 'resuscitation.discussionSummary', 'the summary of the DNACPR discussion');
  }
  if (r?.discussed === false) need(!blank(r.notDiscussedReason), 'resuscitation.notDiscussedReason', 'the reason the DNACPR discussion did not take place');
  need(!!r?.decision, 'resuscitation.decision', 'the CPR decision');
  if (r?.decision === 'not-for-cpr') need(!!r.dnacpr, 'resuscitation.dnacpr', 'the eight DNACPR questions (for a "not for CPR" decision)');
  need(!blank(c.recommendations?.summary) || (c.recommendations?.situations?.length ?? 0) > 0, 'recommendations.summary', 'the summary of expected treatment (clinical recommendations)');
  need(!!c.recommendations?.ceiling, 'recommendations.ceiling', 'the ceiling of treatment');
  need(!!c.allergies && (c.allergies.status === 'no-known-allergies' || c.allergies.items.length > 0), 'allergies', 'allergies, or "no known allergies" with its source');
  need(!!c.approval?.reviewingClinician, 'approval.reviewingClinician', 'the clinician who will review the plan');
  return [...p, ...consistencyProblems(c, now)];
}

/** Problems as OperationOutcome issues, each with the FHIRPath of its element. */
export function toIssues(problems: PlanProblem[], expressionFor: (path: string) => string): IssueInput[] {
  return problems.map((x) => ({ code: x.code, diagnostics: x.diagnostics, expression: expressionFor(x.path) }));
}
