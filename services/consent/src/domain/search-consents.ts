import type { Principal } from '@cmc/auth';
import { NHS_NUMBER_SYSTEM, OperationOutcomeError, decodeCursor, isUuid, nhsNumberProblem, pageSize, parseDateParam, unknownSearchParameters, type IssueInput } from '@cmc/fhir';
import type { ConsentSearch } from '../db/consent-repository';

export const SEARCH_PARAMETERS = ['patient:identifier', 'status', 'date', '_count', '_cursor'] as const;
const STATUSES = ['draft', 'proposed', 'active', 'rejected', 'inactive', 'entered-in-error'];

type Query = Record<string, string | string[] | undefined>;

/** One `date` value (with its eq/ge/gt/le/lt prefix) as bounds on the consent's dateTime. */
function dateBounds(raw: string): ConsentSearch['dateBounds'] | undefined {
  const p = parseDateParam(raw);
  if (!p) return undefined;
  const { start, end } = p;
  switch (p.op) {
    case 'ge': return [{ op: '>=', at: start }];
    case 'gt': return [{ op: '>=', at: end }];
    case 'le': return [{ op: '<', at: end }];
    case 'lt': return [{ op: '<', at: start }];
    default: return [{ op: '>=', at: start }, { op: '<', at: end }];
  }
}

const isCursor = (v: unknown): v is { d: string; id: string } =>
  typeof v === 'object' &&
  v !== null &&
  typeof (v as { d?: unknown }).d === 'string' &&
  typeof (v as { id?: unknown }).id === 'string' &&
  isUuid((v as { id: string }).id) &&
  !Number.isNaN(Date.parse((v as { d: string }).d));

const one = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v);

/**
 * A search's parameters as a repository query, limited to what the caller may read; 400 naming each
 * problem (unknown parameters, a bad NHS number, date or cursor).
 */
export function parseConsentSearch(query: Query, who: Principal): ConsentSearch {
  const issues: IssueInput[] = unknownSearchParameters(query, SEARCH_PARAMETERS);
  for (const name of ['patient:identifier', 'status', '_count', '_cursor']) {
    if (Array.isArray(query[name])) issues.push({ code: 'value', diagnostics: `${name} may be given once` });
  }
  const patient = one(query['patient:identifier']);
  let nhsNumber = '';
  if (!patient) issues.push({ code: 'required', diagnostics: `patient:identifier is required: ${NHS_NUMBER_SYSTEM}|<NHS number>` });
  else {
    const bar = patient.indexOf('|');
    const system = bar >= 0 ? patient.slice(0, bar) : '';
    nhsNumber = bar >= 0 ? patient.slice(bar + 1) : patient;
    if (system !== NHS_NUMBER_SYSTEM) issues.push({ code: 'value', diagnostics: `patient:identifier must be ${NHS_NUMBER_SYSTEM}|<NHS number>` });
    const problem = nhsNumberProblem(nhsNumber);
    if (problem) issues.push({ code: 'value', diagnostics: `patient:identifier: ${problem}` });
  }
  const status = one(query.status);
  if (status !== undefined && !STATUSES.includes(status)) issues.push({ code: 'value', diagnostics: `status must be one of ${STATUSES.join(', ')}` });
  const bounds: ConsentSearch['dateBounds'] = [];
  const dates = query.date === undefined ? [] : Array.isArray(query.date) ? query.date : [query.date];
  for (const d of dates) {
    const b = dateBounds(d);
    if (b) bounds.push(...b);
    else issues.push({ code: 'value', diagnostics: 'date must be a FHIR date or date-time, optionally prefixed by eq, ge, gt, le or lt' });
  }
  const count = one(query._count);
  if (count !== undefined && !/^[1-9][0-9]*$/.test(count)) issues.push({ code: 'value', diagnostics: '_count must be a whole number from 1' });
  const rawCursor = one(query._cursor);
  const cursor = rawCursor === undefined ? undefined : decodeCursor(rawCursor, isCursor);
  if (rawCursor !== undefined && !cursor) issues.push({ code: 'value', diagnostics: '_cursor is not one this server gave' });
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
  const search: ConsentSearch = { nhsNumber, dateBounds: bounds, limit: pageSize(count) };
  if (status) search.status = status;
  if (cursor) search.after = { dateTime: new Date(cursor.d), id: cursor.id };
  // The read rule, as a filter: the service team sees every consent; others only their organisation's.
  if (!(who.kind === 'user' && who.role === 'service-team')) search.recordedByOrg = who.organisation ?? '';
  return search;
}
