import type { AccessInteraction, AccessRecordedData } from '@cmc/contracts';
import { NHS_NUMBER_SYSTEM, OperationOutcomeError, decodeCursor, nhsNumberProblem, parseDateParam, unknownSearchParameters, type IssueInput } from '@cmc/fhir';
import type { Coding } from 'fhir/r4';
import type { AuditEventSearch, EntityRef, RowClass } from '../db/audit-event-queries';
import { ACCESS_OUTCOMES, DOMAIN_EVENTS, INTERACTIONS, accessCodings, domainShape, type Action, type Outcome } from './audit-event';

export const AUDIT_EVENT_SEARCH_PARAMETERS = ['patient', 'agent', 'entity', 'date', 'action', 'outcome', 'type', 'subtype', '_count', '_cursor'] as const;
export const DEFAULT_AUDIT_PAGE = 50;
export const MAX_AUDIT_PAGE = 500;

const ACTIONS: readonly Action[] = ['C', 'R', 'U', 'D', 'E'];
const OUTCOMES: readonly Outcome[] = ['0', '4', '8', '12'];
const ENTITY_REFERENCE = /^([A-Z][A-Za-z]{0,63})\/([A-Za-z0-9\-.]{1,64})(?:\/_history\/([A-Za-z0-9\-.]{1,20}))?$/;

type Query = Record<string, string | string[] | undefined>;

const all = (v: string | string[] | undefined): string[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
/** Each occurrence of a parameter (all must hold), each as its comma-separated alternatives (any may hold). */
const occurrences = (query: Query, name: string): string[][] => all(query[name]).map((v) => v.split(','));

/** Whether a FHIR token (`code`, `system|code`, `system|`, `|code`) names a coding. */
export function tokenMatches(token: string, c: Coding): boolean {
  const bar = token.indexOf('|');
  if (bar < 0) return c.code === token;
  const system = token.slice(0, bar);
  const code = token.slice(bar + 1);
  if (system === '') return c.system === undefined && c.code === code;
  return c.system === system && (code === '' || c.code === code);
}

const DOMAIN_TYPES = Object.keys(DOMAIN_EVENTS);
const ALL_INTERACTIONS = Object.keys(INTERACTIONS) as AccessInteraction[];

/**
 * One occurrence of a coded parameter as the rows it selects: domain events by their type, accesses by a
 * column; both worked out from the same tables the mapping uses, so a search finds what the resources show.
 */
function classOf(
  column: RowClass['column'],
  domain: (shape: ReturnType<typeof domainShape>) => boolean,
  access: readonly string[],
): RowClass {
  return { domainTypes: DOMAIN_TYPES.filter((t) => domain(domainShape(t))), column, values: [...access] };
}

function codedClasses(query: Query, issues: IssueInput[]): RowClass[] {
  const classes: RowClass[] = [];
  for (const alts of occurrences(query, 'type')) {
    const matches = (c: Coding) => alts.some((t) => tokenMatches(t, c));
    classes.push(classOf('interaction', (s) => matches(s.type), ALL_INTERACTIONS.filter((i) => matches(accessCodings(i).type))));
  }
  for (const alts of occurrences(query, 'subtype')) {
    const matches = (cs: Coding[]) => cs.some((c) => alts.some((t) => tokenMatches(t, c)));
    classes.push(classOf('interaction', (s) => matches(s.subtype), ALL_INTERACTIONS.filter((i) => matches(accessCodings(i).subtype))));
  }
  for (const alts of occurrences(query, 'action')) {
    const bad = alts.filter((a) => !ACTIONS.includes(a));
    if (bad.length > 0) issues.push({ code: 'value', diagnostics: `action must be one of ${ACTIONS.join(', ')}` });
    classes.push(classOf('interaction', (s) => alts.includes(s.action), ALL_INTERACTIONS.filter((i) => alts.includes(INTERACTIONS[i].action))));
  }
  for (const alts of occurrences(query, 'outcome')) {
    const bad = alts.filter((a) => !OUTCOMES.includes(a));
    if (bad.length > 0) issues.push({ code: 'value', diagnostics: `outcome must be one of ${OUTCOMES.join(', ')} (success, minor failure, serious failure, major failure)` });
    const outcomes = (Object.keys(ACCESS_OUTCOMES) as AccessRecordedData['outcome'][]).filter((o) => alts.includes(ACCESS_OUTCOMES[o]));
    classes.push(classOf('outcome', (s) => alts.includes(s.outcome), outcomes));
  }
  return classes;
}

/** Most NHS numbers one search may name (each is an index lookup, and each is named in the search's own access record). */
export const MAX_SEARCH_PATIENTS = 100;

function patients(query: Query, issues: IssueInput[]): string[][] {
  const asked = occurrences(query, 'patient');
  const total = asked.reduce((n, alts) => n + alts.length, 0);
  if (total > MAX_SEARCH_PATIENTS) issues.push({ code: 'too-costly', diagnostics: `patient names ${total} NHS numbers; at most ${MAX_SEARCH_PATIENTS} per search` });
  return asked.map((alts) =>
    alts.map((value) => {
      const bar = value.indexOf('|');
      const nhsNumber = bar >= 0 ? value.slice(bar + 1) : value;
      if (bar >= 0 && value.slice(0, bar) !== NHS_NUMBER_SYSTEM) issues.push({ code: 'value', diagnostics: `patient must be an NHS number, bare or as ${NHS_NUMBER_SYSTEM}|<NHS number>` });
      const problem = nhsNumberProblem(nhsNumber);
      if (problem) issues.push({ code: 'value', diagnostics: `patient: ${problem}` });
      return nhsNumber;
    }),
  );
}

function entities(query: Query, issues: IssueInput[]): EntityRef[][] {
  return occurrences(query, 'entity').map((alts) =>
    alts.flatMap((value) => {
      const m = ENTITY_REFERENCE.exec(value);
      if (!m) {
        issues.push({ code: 'value', diagnostics: 'entity must be a reference: <type>/<id> or <type>/<id>/_history/<version>' });
        return [];
      }
      return [{ resourceType: m[1]!, id: m[2]!, ...(m[3] ? { versionId: m[3] } : {}) }];
    }),
  );
}

function agents(query: Query, issues: IssueInput[]): string[][] {
  return occurrences(query, 'agent').map((alts) =>
    alts.map((value) => {
      // A bare id, or an identifier token (system|id): user and client ids are the subjects of their tokens.
      const id = value.slice(value.indexOf('|') + 1);
      if (id === '' || id.length > 200) issues.push({ code: 'value', diagnostics: 'agent must be a user or client id (optionally system|id), at most 200 characters' });
      return id;
    }),
  );
}

function dates(query: Query, issues: IssueInput[]): AuditEventSearch['dates'] {
  return all(query.date).flatMap((raw): AuditEventSearch['dates'] => {
    const p = parseDateParam(raw);
    if (!p) {
      issues.push({ code: 'value', diagnostics: 'date must be a FHIR date or date-time, optionally prefixed by eq, ge, gt, le or lt' });
      return [];
    }
    switch (p.op) {
      case 'ge': return [{ op: '>=', at: p.start }];
      case 'gt': return [{ op: '>=', at: p.end }];
      case 'le': return [{ op: '<', at: p.end }];
      case 'lt': return [{ op: '<', at: p.start }];
      default: return [{ op: '>=', at: p.start }, { op: '<', at: p.end }];
    }
  });
}

const isCursor = (v: unknown): v is { s: string } => typeof v === 'object' && v !== null && typeof (v as { s?: unknown }).s === 'string' && /^[1-9][0-9]{0,17}$/.test((v as { s: string }).s);

/**
 * An AuditEvent search as a query on the log; 400 naming each problem (unknown parameters, a bad NHS number,
 * date, code, reference, count or cursor). Repeating a parameter means all must hold; commas, any.
 */
export function parseAuditEventSearch(query: Query): AuditEventSearch {
  const issues: IssueInput[] = unknownSearchParameters(query, AUDIT_EVENT_SEARCH_PARAMETERS);
  for (const name of ['_count', '_cursor']) {
    if (Array.isArray(query[name])) issues.push({ code: 'value', diagnostics: `${name} may be given once` });
  }
  const search: AuditEventSearch = {
    patients: patients(query, issues),
    agents: agents(query, issues),
    entities: entities(query, issues),
    dates: dates(query, issues),
    classes: codedClasses(query, issues),
    limit: DEFAULT_AUDIT_PAGE,
  };
  const count = all(query._count)[0];
  if (count !== undefined && !/^[1-9][0-9]*$/.test(count)) issues.push({ code: 'value', diagnostics: '_count must be a whole number from 1' });
  else if (count !== undefined) search.limit = Math.min(Number(count), MAX_AUDIT_PAGE);
  const rawCursor = all(query._cursor)[0];
  const cursor = rawCursor === undefined ? undefined : decodeCursor(rawCursor, isCursor);
  if (rawCursor !== undefined && !cursor) issues.push({ code: 'value', diagnostics: '_cursor is not one this server gave' });
  if (cursor) search.beforeSeq = cursor.s;
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
  return search;
}
