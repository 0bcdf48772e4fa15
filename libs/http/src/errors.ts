import { OperationOutcomeError, operationOutcome, FHIR_JSON, type IssueInput } from '@cmc/fhir';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

interface AjvLikeError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: Record<string, unknown>;
}

/** `/patient/identifier/value` under body -> `patient.identifier.value` (a FHIRPath-like expression). */
function expressionOf(context: string | undefined, e: AjvLikeError, resourceType: string | undefined): string {
  const parts = (e.instancePath ?? '').split('/').filter((p) => p.length > 0);
  if (e.keyword === 'additionalProperties' && typeof e.params?.additionalProperty === 'string') parts.push(e.params.additionalProperty);
  if (e.keyword === 'required' && typeof e.params?.missingProperty === 'string') parts.push(e.params.missingProperty);
  const path = parts.map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`)).join('').replace(/^\./, '');
  const root = context === 'body' ? (resourceType ?? 'body') : (context ?? 'request');
  return path ? `${root}${path.startsWith('[') ? '' : '.'}${path}` : root;
}

function describe(e: AjvLikeError, expression: string): string {
  switch (e.keyword) {
    case 'additionalProperties':
      return `unknown element '${expression}'`;
    case 'required':
      return `missing required element '${expression}'`;
    case 'enum':
      return `'${expression}' must be one of ${JSON.stringify(e.params?.allowedValues)}`;
    case 'const':
      return `'${expression}' must be ${JSON.stringify(e.params?.allowedValue)}`;
    default:
      return `'${expression}' ${e.message ?? 'is invalid'}`;
  }
}

/** The issues of a Fastify schema-validation error, one per problem, each with its `expression`. */
export function validationIssues(error: FastifyError, body: unknown): IssueInput[] {
  // The root of each expression: the body's resourceType only when it could be one (a client's junk, up to the
  // body limit, must not become the FHIRPath nor be echoed back).
  const given = typeof body === 'object' && body !== null ? (body as { resourceType?: unknown }).resourceType : undefined;
  const resourceType = typeof given === 'string' && /^[A-Z][A-Za-z]{0,63}$/.test(given) ? given : undefined;
  const errors = (error.validation ?? []) as AjvLikeError[];
  const issues = errors.map((e) => {
    const expression = expressionOf(error.validationContext, e, resourceType);
    const code: IssueInput['code'] = e.keyword === 'required' ? 'required' : e.keyword === 'additionalProperties' ? 'structure' : 'value';
    return { code, diagnostics: describe(e, expression), expression };
  });
  return issues.length > 0 ? issues : [{ code: 'invalid', diagnostics: error.message }];
}

/** Fastify error codes that are the client's fault, with the status and the words we answer with. */
const CLIENT_ERRORS: Record<string, [number, IssueInput['code'], string]> = {
  FST_ERR_CTP_BODY_TOO_LARGE: [413, 'too-costly', 'request body is larger than this server accepts'],
  FST_ERR_CTP_INVALID_MEDIA_TYPE: [415, 'not-supported', 'unsupported Content-Type: send application/fhir+json or application/json'],
  FST_ERR_CTP_EMPTY_JSON_BODY: [400, 'invalid', 'request body is empty but Content-Type says JSON'],
  FST_ERR_CTP_INVALID_JSON_BODY: [400, 'invalid', 'request body is not valid JSON'],
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: [400, 'invalid', 'Content-Length does not match the body'],
  FST_ERR_CTP_INVALID_TYPE: [400, 'invalid', 'Content-Type header is malformed'],
  FST_ERR_BAD_URL: [400, 'invalid', 'the URL is malformed'],
};

export function sendOutcome(reply: FastifyReply, status: number, issues: IssueInput[], headers: Record<string, string> = {}): FastifyReply {
  return reply.code(status).headers(headers).type(`${FHIR_JSON}; charset=utf-8`).send(operationOutcome(issues));
}

/** The one error handler: every error becomes an OperationOutcome with the right status; 5xx say nothing inside. */
export function errorHandler(error: FastifyError | OperationOutcomeError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof OperationOutcomeError) {
    if (error.status >= 500) request.log.error({ err: error }, 'request failed');
    return reply.code(error.status).headers(error.headers).type(`${FHIR_JSON}; charset=utf-8`).send(error.outcome);
  }
  const fe = error as FastifyError;
  if (fe.validation) return sendOutcome(reply, 400, validationIssues(fe, request.body));
  // Safety nets for what the database refuses that a check before it should have caught: two requests
  // creating the same thing at once (unique violation), and text it cannot store.
  if (fe.code === '23505') return sendOutcome(reply, 409, [{ code: 'duplicate', diagnostics: 'this conflicts with a record that already exists' }]);
  if (fe.code === '22021' || fe.code === '22P05') return sendOutcome(reply, 400, [{ code: 'invalid', diagnostics: 'the request contains characters that cannot be stored' }]);
  const known = fe.code ? CLIENT_ERRORS[fe.code] : undefined;
  if (known) return sendOutcome(reply, known[0], [{ code: known[1], diagnostics: known[2] }]);
  if (error instanceof SyntaxError && fe.statusCode === 400) return sendOutcome(reply, 400, [{ code: 'invalid', diagnostics: 'request body is not valid JSON' }]);
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return sendOutcome(reply, fe.statusCode, [{ code: 'invalid', diagnostics: fe.message }]);
  }
  // The database unreachable or restarting (connection refused or reset, the server shutting down or starting,
  // the pool unable to connect in time): a 503 the client may retry, not an internal error (fault suite).
  if (isDatabaseUnavailable(fe)) {
    request.log.warn({ err: { message: fe.message, code: fe.code } }, 'database unavailable');
    return sendOutcome(reply, 503, [{ code: 'transient', diagnostics: 'the service\'s database is not available; try again shortly' }], { 'retry-after': '5' });
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendOutcome(reply, 500, [
    { code: 'exception', diagnostics: `internal error; quote request id ${String(request.id)} when reporting it` },
  ]);
}

/** SQLSTATE classes and socket codes that mean the database is not there for now, not that the request was wrong. */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006']);

export function isDatabaseUnavailable(error: { code?: unknown; message?: unknown }): boolean {
  if (typeof error.code === 'string' && UNAVAILABLE_CODES.has(error.code)) return true;
  const message = typeof error.message === 'string' ? error.message : '';
  // node-postgres's own words when the pool cannot connect in time or a connection ends mid-query.
  return /^(timeout exceeded when trying to connect|Connection terminated( unexpectedly| due to connection timeout)?)$/.test(message);
}
