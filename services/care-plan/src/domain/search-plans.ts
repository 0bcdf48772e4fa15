import type { Principal } from '@cmc/auth';
import { NHS_NUMBER_SYSTEM, OperationOutcomeError, decodeCursor, isUuid, nhsNumberProblem, pageSize, parseDateParam, unknownSearchParameters, type DateParam, type IssueInput } from '@cmc/fhir';

export const PLAN_SEARCH_PARAMETERS = ['patient:identifier', 'status', '_lastUpdated', 'date', '_count', '_cursor'] as const;
export const FHIR_PLAN_STATUSES = ['draft', 'active', 'revoked', 'completed'] as const;

type Query = Record<string, string | string[] | undefined>;

export interface PlanSearch {
  nhsNumber: string;
  statuses?: string[];
  /** Bounds on the plan's last change. */
  lastUpdated: DateParam[];
  /** Bounds on the plan's period (published .. review date). */
  period: DateParam[];
  after?: { updated: Date; id: string };
  limit: number;
}

export function instantMatches(at: Date, p: DateParam): boolean {
  const t = at.getTime();
  switch (p.op) {
    case 'ge': return t >= p.start.getTime();
    case 'gt': return t >= p.end.getTime();
    case 'le': return t < p.end.getTime();
    case 'lt': return t < p.start.getTime();
    default: return t >= p.start.getTime() && t < p.end.getTime();
  }
}

/**
 * A period [start, end] against a FHIR date search value, as FHIR defines it for periods: ge/gt ask that the
 * period reaches past the value, le/lt that it starts before it, eq that it overlaps it. An open end is unbounded.
 */
export function periodMatches(start: Date | null, end: Date | null, p: DateParam): boolean {
  const s = start?.getTime() ?? -Infinity;
  const e = end?.getTime() ?? Infinity;
  switch (p.op) {
    case 'ge': return e >= p.start.getTime();
    case 'gt': return e >= p.end.getTime();
    case 'le': return s < p.end.getTime();
    case 'lt': return s < p.start.getTime();
    default: return s < p.end.getTime() && e >= p.start.getTime();
  }
}

const isCursor = (v: unknown): v is { u: string; id: string } =>
  typeof v === 'object' && v !== null && typeof (v as { u?: unknown }).u === 'string' && typeof (v as { id?: unknown }).id === 'string' && isUuid((v as { id: string }).id) && !Number.isNaN(Date.parse((v as { u: string }).u));

/** The NHS number of a `patient:identifier` value (system|value), adding an issue when it is not one. */
export function nhsNumberOfIdentifier(patient: string, issues: IssueInput[]): string {
  const bar = patient.indexOf('|');
  const system = bar >= 0 ? patient.slice(0, bar) : '';
  const nhsNumber = bar >= 0 ? patient.slice(bar + 1) : patient;
  if (system !== NHS_NUMBER_SYSTEM) issues.push({ code: 'value', diagnostics: `patient:identifier must be ${NHS_NUMBER_SYSTEM}|<NHS number>` });
  const problem = nhsNumberProblem(nhsNumber);
  if (problem) issues.push({ code: 'value', diagnostics: `patient:identifier: ${problem}` });
  return nhsNumber;
}

export const all = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/**
 * A search's parameters; 400 naming each problem. A patient or proxy searches their own plans only (the
 * patient parameter may be left out, and may not name someone else).
 */
export function parsePlanSearch(query: Query, who: Principal): PlanSearch {
  const issues: IssueInput[] = unknownSearchParameters(query, PLAN_SEARCH_PARAMETERS);
  for (const name of ['patient:identifier', '_count', '_cursor']) {
    if (Array.isArray(query[name])) issues.push({ code: 'value', diagnostics: `${name} may be given once` });
  }
  const ownPatient = who.kind === 'user' && (who.role === 'patient' || who.role === 'proxy') ? who.patient : undefined;
  const patient = all(query['patient:identifier'])[0];
  let nhsNumber = ownPatient ?? '';
  if (!patient) {
    if (!ownPatient) issues.push({ code: 'required', diagnostics: `patient:identifier is required: ${NHS_NUMBER_SYSTEM}|<NHS number>` });
  } else {
    nhsNumber = nhsNumberOfIdentifier(patient, issues);
  }
  const statuses = all(query.status).flatMap((s) => s.split(','));
  for (const s of statuses) {
    if (!(FHIR_PLAN_STATUSES as readonly string[]).includes(s)) issues.push({ code: 'value', diagnostics: `status must be one of ${FHIR_PLAN_STATUSES.join(', ')}` });
  }
  const dateParams = (name: string) =>
    all(query[name]).map((d) => {
      const p = parseDateParam(d);
      if (!p) issues.push({ code: 'value', diagnostics: `${name} must be a FHIR date or date-time, optionally prefixed by eq, ge, gt, le or lt` });
      return p;
    });
  const lastUpdated = dateParams('_lastUpdated');
  const period = dateParams('date');
  const count = all(query._count)[0];
  if (count !== undefined && !/^[1-9][0-9]*$/.test(count)) issues.push({ code: 'value', diagnostics: '_count must be a whole number from 1' });
  const rawCursor = all(query._cursor)[0];
  const cursor = rawCursor === undefined ? undefined : decodeCursor(rawCursor, isCursor);
  if (rawCursor !== undefined && !cursor) issues.push({ code: 'value', diagnostics: '_cursor is not one this server gave' });
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
  if (ownPatient && nhsNumber !== ownPatient) throw new OperationOutcomeError(403, { code: 'forbidden', diagnostics: 'a patient or proxy may search only their own plans' });
  return {
    nhsNumber,
    ...(statuses.length > 0 ? { statuses } : {}),
    lastUpdated: lastUpdated.filter((p): p is DateParam => p !== undefined),
    period: period.filter((p): p is DateParam => p !== undefined),
    ...(cursor ? { after: { updated: new Date(cursor.u), id: cursor.id } } : {}),
    limit: pageSize(count),
  };
}
