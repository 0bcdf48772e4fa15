import {
  OperationOutcomeError,
  badRequest,
  conflict,
  forbidden,
  unknownSearchParameters,
  invalidResource,
  notFound,
  operationOutcome,
  preconditionFailed,
  serviceUnavailable,
  unauthorized,
} from '@cmc/fhir';

describe('operationOutcome', () => {
  it('when issues are given, then each becomes an issue with severity error unless stated', () => {
    expect(
      operationOutcome([
        { code: 'invalid', diagnostics: 'first' },
        { code: 'informational', diagnostics: 'second', severity: 'warning' },
      ]),
    ).toEqual({
      resourceType: 'OperationOutcome',
      issue: [
        { severity: 'error', code: 'invalid', diagnostics: 'first' },
        { severity: 'warning', code: 'informational', diagnostics: 'second' },
      ],
    });
  });

  it('when an expression is a string, then it is given as a one-item list; when absent, then there is no expression element', () => {
    const [withOne, withMany, without] = operationOutcome([
      { code: 'value', diagnostics: 'a', expression: 'Consent.status' },
      { code: 'value', diagnostics: 'b', expression: ['Consent.patient', 'Consent.scope'] },
      { code: 'value', diagnostics: 'c' },
    ]).issue;
    expect(withOne!.expression).toEqual(['Consent.status']);
    expect(withMany!.expression).toEqual(['Consent.patient', 'Consent.scope']);
    expect(without).not.toHaveProperty('expression');
  });
});

describe('OperationOutcomeError', () => {
  it('when made with one issue, then it carries the status, an OperationOutcome of that issue and no headers', () => {
    const e = new OperationOutcomeError(422, { code: 'business-rule', diagnostics: 'plan has no author', expression: 'CarePlan.author' });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('OperationOutcomeError');
    expect(e.status).toBe(422);
    expect(e.message).toBe('plan has no author');
    expect(e.headers).toEqual({});
    expect(e.outcome).toEqual({
      resourceType: 'OperationOutcome',
      issue: [{ severity: 'error', code: 'business-rule', diagnostics: 'plan has no author', expression: ['CarePlan.author'] }],
    });
  });

  it('when made with several issues and headers, then its message joins the diagnostics and it keeps every issue and header', () => {
    const e = new OperationOutcomeError(
      400,
      [
        { code: 'required', diagnostics: 'status is missing' },
        { code: 'value', diagnostics: 'date is malformed' },
      ],
      { 'Retry-After': '5' },
    );
    expect(e.message).toBe('status is missing; date is malformed');
    expect(e.outcome.issue).toHaveLength(2);
    expect(e.headers).toEqual({ 'Retry-After': '5' });
  });

  it('when thrown, then it can be caught as an OperationOutcomeError', () => {
    const thrower = (): never => {
      throw notFound('no such plan');
    };
    expect(thrower).toThrow(OperationOutcomeError);
    expect(thrower).toThrow('no such plan');
  });
});

describe('error helpers', () => {
  it('when badRequest names an expression, then the issue is invalid and carries it', () => {
    const e = badRequest('unknown search parameter', 'Flag.foo');
    expect(e.status).toBe(400);
    expect(e.outcome.issue).toEqual([{ severity: 'error', code: 'invalid', diagnostics: 'unknown search parameter', expression: ['Flag.foo'] }]);
  });

  it('when badRequest names no expression, then the issue has no expression element', () => {
    const e = badRequest('bad');
    expect(e.status).toBe(400);
    expect(e.outcome.issue[0]).not.toHaveProperty('expression');
  });

  it('when badRequest names several expressions, then the issue lists them all', () => {
    expect(badRequest('clash', ['a', 'b']).outcome.issue[0]!.expression).toEqual(['a', 'b']);
  });

  it('when unauthorized, then the status is 401, the code login and WWW-Authenticate asks for a bearer token', () => {
    const e = unauthorized('no token');
    expect(e.status).toBe(401);
    expect(e.outcome.issue[0]).toMatchObject({ code: 'login', diagnostics: 'no token' });
    expect(e.headers).toEqual({ 'WWW-Authenticate': 'Bearer' });
  });

  it('when invalidResource, then the status is 422 and every issue is an invariant with its expression', () => {
    const e = invalidResource([
      { diagnostics: 'period ends before it starts', expression: 'CarePlan.period' },
      { diagnostics: 'no activity', severity: 'warning' },
    ]);
    expect(e.status).toBe(422);
    expect(e.outcome.issue).toEqual([
      { severity: 'error', code: 'invariant', diagnostics: 'period ends before it starts', expression: ['CarePlan.period'] },
      { severity: 'warning', code: 'invariant', diagnostics: 'no activity' },
    ]);
  });

  it.each([
    ['forbidden', forbidden, 403, 'forbidden'],
    ['notFound', notFound, 404, 'not-found'],
    ['conflict', conflict, 409, 'conflict'],
    ['preconditionFailed', preconditionFailed, 412, 'conflict'],
    ['serviceUnavailable', serviceUnavailable, 503, 'transient'],
  ] as const)('when %s, then the status is %i with issue code %s and no headers', (_name, make, status, code) => {
    const e = make('words');
    expect(e).toBeInstanceOf(OperationOutcomeError);
    expect(e.status).toBe(status);
    expect(e.headers).toEqual({});
    expect(e.outcome).toEqual({ resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: 'words' }] });
  });
});

describe('unknownSearchParameters', () => {
  it('when a query holds parameters beside the supported ones, then each unknown one is an issue that names it and the supported ones', () => {
    expect(unknownSearchParameters({ status: 'active', colour: 'red', 'patient:identifier': 'x', _sort: 'date' }, ['patient:identifier', 'status'])).toEqual([
      { code: 'not-supported', diagnostics: 'unknown search parameter colour; supported: patient:identifier, status' },
      { code: 'not-supported', diagnostics: 'unknown search parameter _sort; supported: patient:identifier, status' },
    ]);
    expect(unknownSearchParameters({ status: 'active' }, ['status'])).toEqual([]);
  });
});
