import { OperationOutcomeError, decodeCursor, encodeCursor, nhsNumberProblem, type IssueInput } from '@cmc/fhir';

/** Reports that list entries (who accessed a patient, what a user did) cover at most a year. */
export const MAX_ROWS_DAYS = 366;
/** Monthly statistics cover at most five years. */
export const MAX_STATISTICS_DAYS = 1827;
export const DEFAULT_PAGE_ROWS = 100;
export const MAX_PAGE_ROWS = 1000;

export type ReportFormat = 'json' | 'csv' | 'svg';

/** A period of whole days in London time, both ends included, as asked (YYYY-MM-DD). */
export interface Period {
  from: string;
  to: string;
}

const DAY_MS = 86_400_000;

/** The period's days, from and to included; 400 when to is before from or the period is longer than maxDays. */
export function checkPeriod(from: string, to: string, maxDays: number, issues: IssueInput[] = []): Period {
  const days = (Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY_MS + 1;
  if (Number.isNaN(days)) issues.push({ code: 'value', diagnostics: 'from and to must be calendar dates (YYYY-MM-DD)' });
  else if (days < 1) issues.push({ code: 'value', diagnostics: `to (${to}) is before from (${from})`, expression: 'to' });
  else if (days > maxDays) issues.push({ code: 'too-costly', diagnostics: `the period is ${days} days; this report covers at most ${maxDays}: ask for a shorter one`, expression: 'to' });
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
  return { from, to };
}

/** from and to of a report's query (calendar dates, checked by the route's schema): in order, no longer than maxDays. */
export const periodOf = (query: { from: string; to: string }, maxDays: number, issues: IssueInput[] = []): Period => checkPeriod(query.from, query.to, maxDays, issues);

/** An NHS number parameter, checked with its modulus-11 digit. */
export function checkNhsNumber(value: string, issues: IssueInput[]): void {
  const problem = nhsNumberProblem(value);
  if (problem) issues.push({ code: 'value', diagnostics: `nhsNumber: ${problem}`, expression: 'nhsNumber' });
}

/** The keyset cursor of the per-row reports: the seq of the last entry given. Opaque to clients. */
export const encodeSeqCursor = (seq: string): string => encodeCursor({ s: seq });

const isSeqCursor = (v: unknown): v is { s: string } => typeof v === 'object' && v !== null && typeof (v as { s?: unknown }).s === 'string' && /^[1-9][0-9]{0,17}$/.test((v as { s: string }).s);

export function decodeSeqCursor(raw: string | undefined, issues: IssueInput[]): string {
  if (raw === undefined) return '0';
  const cursor = decodeCursor(raw, isSeqCursor);
  if (!cursor) issues.push({ code: 'value', diagnostics: '_cursor is not one this server gave', expression: '_cursor' });
  return cursor?.s ?? '0';
}

const MEDIA: Record<ReportFormat, string> = { json: 'application/json', csv: 'text/csv', svg: 'image/svg+xml' };

/**
 * The answer's format: `_format` when given (the schema has checked it against what the report offers), else
 * the first of `allowed` that the Accept header names, else JSON.
 */
export function formatOf(requested: string | undefined, accept: string | undefined, allowed: readonly ReportFormat[]): ReportFormat {
  if (requested) return requested as ReportFormat;
  const wanted = (accept ?? '').toLowerCase();
  return allowed.find((f) => f !== 'json' && wanted.includes(MEDIA[f])) ?? 'json';
}

export const contentTypeOf = (format: ReportFormat): string => (format === 'json' ? 'application/json; charset=utf-8' : format === 'csv' ? 'text/csv; charset=utf-8' : 'image/svg+xml; charset=utf-8');
