import type { Principal } from '@cmc/auth';
import { isDeepStrictEqual } from 'node:util';
import type { PlanContent, PlanState, SectionName } from './plan';
import { CLINICAL_SECTIONS } from './plan';

/** What the rights need to know of a plan. */
export interface PlanFacts {
  state: PlanState;
  organisation: string;
  nhsNumber: string;
  gpPractice?: string | null;
  /** A draft the patient started (myCMC): they may read and change it while it is a draft. */
  startedByPatient?: boolean;
}

const READ_SCOPES = ['system/CarePlan.r', 'system/CarePlan.rs', 'system/CarePlan.cruds'];
const WRITE_SCOPES = ['system/CarePlan.c', 'system/CarePlan.u', 'system/CarePlan.cu', 'system/CarePlan.cruds'];

export const hasScope = (p: Principal, scopes: readonly string[]): boolean => scopes.some((s) => p.scopes.has(s));
const isServiceTeam = (p: Principal): boolean => p.kind === 'user' && p.role === 'service-team';
const isStaff = (p: Principal): boolean => p.kind === 'user' && (p.role === 'clinician' || p.role === 'administrator');
const sameOrg = (p: Principal, plan: PlanFacts): boolean => !!p.organisation && p.organisation === plan.organisation;
/** The patient themselves, on a draft they started. */
const ownStartedDraft = (p: Principal, plan: PlanFacts): boolean =>
  p.kind === 'user' && p.role === 'patient' && !!plan.startedByPatient && plan.state === 'draft' && p.patient === plan.nhsNumber;

/**
 * Who may read a plan (the guide's rights, deny by default):
 * - the service team: every plan in every state;
 * - a draft or a plan awaiting approval: staff and system clients of the organisation that wrote it;
 * - a published plan: clinicians, administrators and urgent-care users of any organisation, system clients with
 *   the read scope, the patient themselves and the proxy viewer given that patient;
 * - a plan closed by death: staff of the organisation that held it (outcomes, bereavement);
 * - a withdrawn plan: nobody but the service team (withdrawn consent takes it out of every view).
 */
export function mayRead(p: Principal, plan: PlanFacts): boolean {
  if (isServiceTeam(p)) return true;
  if (p.kind === 'client') {
    if (!hasScope(p, READ_SCOPES)) return false;
    if (plan.state === 'published') return true;
    return (plan.state === 'draft' || plan.state === 'awaiting-approval') && sameOrg(p, plan);
  }
  switch (plan.state) {
    case 'draft':
    case 'awaiting-approval':
      return (isStaff(p) && sameOrg(p, plan)) || ownStartedDraft(p, plan);
    case 'published':
      if (p.role === 'clinician' || p.role === 'administrator' || p.role === 'urgent-care') return true;
      return (p.role === 'patient' || p.role === 'proxy') && p.patient === plan.nhsNumber;
    case 'deceased':
      return isStaff(p) && sameOrg(p, plan);
    case 'withdrawn':
      return false;
  }
}

export function readRefusal(p: Principal, plan: PlanFacts): string {
  if (plan.state === 'withdrawn') return 'this plan was withdrawn; only the service team may see it';
  if (p.role === 'patient' || p.role === 'proxy') return 'a patient or proxy may see only their own published plan';
  if (plan.state === 'draft' || plan.state === 'awaiting-approval') return 'a plan that is not published is visible only inside the organisation writing it';
  if (p.kind === 'client') return 'the client lacks the scope system/CarePlan.r';
  return 'this role may not read this plan';
}

/**
 * Who may create a plan: clinicians and administrators with an organisation, system clients with the write
 * scope, and a patient for themselves (a draft of their wishes, held by their GP practice).
 */
export function mayCreate(p: Principal): boolean {
  if (p.kind === 'user' && p.role === 'patient') return !!p.patient;
  if (!p.organisation) return false;
  if (p.kind === 'client') return hasScope(p, WRITE_SCOPES);
  return isStaff(p);
}

/** Whether the caller writes clinical sections: registered clinicians, and GP systems (which act for their clinicians). */
export const writesClinical = (p: Principal): boolean => (p.kind === 'user' && p.role === 'clinician') || (p.kind === 'client' && hasScope(p, WRITE_SCOPES));

/**
 * Who may change a plan's content: drafts and plans awaiting approval, the writing organisation's staff and
 * clients; a published plan, any clinician (the patient's GP may be elsewhere) and the holding organisation's
 * administrators (non-clinical sections only, checked apart). Closed plans cannot change.
 */
export function mayUpdate(p: Principal, plan: PlanFacts): boolean {
  if (plan.state === 'withdrawn' || plan.state === 'deceased') return false;
  if (ownStartedDraft(p, plan)) return true;
  if (p.kind === 'client') return hasScope(p, WRITE_SCOPES) && (plan.state === 'published' || sameOrg(p, plan));
  if (!isStaff(p)) return false;
  if (plan.state === 'published') return p.role === 'clinician' || sameOrg(p, plan);
  return sameOrg(p, plan);
}

/** Submitting for approval: staff of the writing organisation. */
export const maySubmit = (p: Principal, plan: PlanFacts): boolean => isStaff(p) && sameOrg(p, plan);

/** Publishing: a registered clinician (a person) of the writing organisation or of the patient's GP practice. */
export const mayPublish = (p: Principal, plan: PlanFacts): boolean =>
  p.kind === 'user' && p.role === 'clinician' && !!p.organisation && (p.organisation === plan.organisation || p.organisation === plan.gpPractice);

/** Withdrawing a plan: clinicians of the holding organisation, and the service team on request. */
export const mayWithdraw = (p: Principal, plan: PlanFacts): boolean => isServiceTeam(p) || (p.kind === 'user' && p.role === 'clinician' && sameOrg(p, plan));

/** The sections that differ between two versions of the content (added, removed or changed). */
export function changedSections(before: Partial<PlanContent> | undefined, after: Partial<PlanContent>): SectionName[] {
  const names = new Set<string>([...Object.keys(before ?? {}), ...Object.keys(after)]);
  names.delete('consent');
  return [...names].filter((n) => !isDeepStrictEqual((before as Record<string, unknown> | undefined)?.[n], (after as Record<string, unknown>)[n])) as SectionName[];
}

/** The clinical sections among those changed. */
export const clinicalChanges = (changed: SectionName[]): SectionName[] => changed.filter((s) => CLINICAL_SECTIONS.includes(s));
