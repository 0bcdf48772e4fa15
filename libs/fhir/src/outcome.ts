import type { OperationOutcome, OperationOutcomeIssue } from 'fhir/r4';

/** FHIR issue codes we use (http://hl7.org/fhir/issue-type). */
export type IssueCode = OperationOutcomeIssue['code'];

export interface IssueInput {
  code: IssueCode;
  diagnostics: string;
  /** FHIRPath of the offending element, e.g. `Consent.patient.identifier.value`. */
  expression?: string | string[];
  severity?: OperationOutcomeIssue['severity'];
}

export function operationOutcome(issues: IssueInput[]): OperationOutcome {
  return {
    resourceType: 'OperationOutcome',
    issue: issues.map((i) => {
      const issue: OperationOutcomeIssue = {
        severity: i.severity ?? 'error',
        code: i.code,
        diagnostics: i.diagnostics,
      };
      if (i.expression !== undefined) issue.expression = Array.isArray(i.expression) ? i.expression : [i.expression];
      return issue;
    }),
  };
}

/**
 * The one error type of the platform: domain code throws it, the HTTP error handler turns it into a response
 * with `status` and the OperationOutcome as body.
 */
export class OperationOutcomeError extends Error {
  readonly status: number;
  readonly outcome: OperationOutcome;
  readonly headers: Record<string, string>;

  constructor(status: number, issues: IssueInput[] | IssueInput, headers: Record<string, string> = {}) {
    const list = Array.isArray(issues) ? issues : [issues];
    super(list.map((i) => i.diagnostics).join('; '));
    this.name = 'OperationOutcomeError';
    this.status = status;
    this.outcome = operationOutcome(list);
    this.headers = headers;
  }
}

export const badRequest = (diagnostics: string, expression?: string | string[]): OperationOutcomeError =>
  new OperationOutcomeError(400, { code: 'invalid', diagnostics, ...(expression ? { expression } : {}) });

export const invalidResource = (issues: Omit<IssueInput, 'code'>[]): OperationOutcomeError =>
  new OperationOutcomeError(
    422,
    issues.map((i) => ({ code: 'invariant' as const, ...i })),
  );

export const unauthorized = (diagnostics: string): OperationOutcomeError =>
  new OperationOutcomeError(401, { code: 'login', diagnostics }, { 'WWW-Authenticate': 'Bearer' });

export const forbidden = (diagnostics: string): OperationOutcomeError =>
  new OperationOutcomeError(403, { code: 'forbidden', diagnostics });

export const notFound = (diagnostics: string): OperationOutcomeError =>
  new OperationOutcomeError(404, { code: 'not-found', diagnostics });

export const conflict = (diagnostics: string): OperationOutcomeError =>
  new OperationOutcomeError(409, { code: 'conflict', diagnostics });

export const preconditionFailed = (diagnostics: string): OperationOutcomeError =>
  new OperationOutcomeError(412, { code: 'conflict', diagnostics });

export const serviceUnavailable = (diagnostics: string): OperationOutcomeError =>
  new OperationOutcomeError(503, { code: 'transient', diagnostics });

/** An issue for each query parameter that is not one of `supported` (FHIR: an unknown search parameter is a 400). */
export function unknownSearchParameters(query: object, supported: readonly string[]): IssueInput[] {
  return Object.keys(query)
    .filter((name) => !supported.includes(name))
    .map((name) => ({ code: 'not-supported' as const, diagnostics: `unknown search parameter ${name}; supported: ${supported.join(', ')}` }));
}
