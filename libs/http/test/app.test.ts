import { OperationOutcomeError, type IssueInput } from '@cmc/fhir';
import { REDACT_PATHS, createApp, redactUrl } from '@cmc/http';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { OperationOutcome } from 'fhir/r4';
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import pino, { type LoggerOptions } from 'pino';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const FHIR_JSON_UTF8 = 'application/fhir+json; charset=utf-8';

const thingSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['resourceType', 'name', 'count'],
  properties: {
    resourceType: { const: 'Thing' },
    name: { type: 'string', minLength: 1, maxLength: 1000 },
    count: { type: 'integer', minimum: 0 },
    tags: { type: 'array', items: { type: 'object', additionalProperties: false, properties: { code: { type: 'string' } } } },
  },
} as const;

const RULE_BROKEN: IssueInput = { code: 'business-rule', diagnostics: 'things may not be counted twice', expression: 'Thing.count' };

/** Readiness state the checks read, changed by the tests. */
const health = { database: true as boolean, transport: 'up' as 'up' | 'down' | 'throws' };

/** The app under test plus the routes these tests need; routes are added here, as services add theirs. */
async function buildApp(logger: LoggerOptions | false = false): Promise<FastifyInstance> {
  const app = await createApp({
    service: 'test',
    logger,
    bodyLimit: 2048,
    readiness: [
      { name: 'database', check: async () => health.database },
      {
        name: 'transport',
        check: async () => {
          if (health.transport === 'throws') throw new Error('broker unreachable');
          return health.transport === 'up';
        },
      },
    ],
  });
  app.post('/things', { schema: { body: thingSchema } }, async (request) => ({ received: request.body }));
  app.get('/things/:id', async (request) => ({ id: (request.params as { id: string }).id }));
  app.post('/rule', async () => {
    throw new OperationOutcomeError(422, RULE_BROKEN, { 'X-Rule': 'count-once' });
  });
  app.get('/boom', async () => {
    throw new Error('secret internal detail');
  });
  // A database that is not there: a real refused connection (nothing listens on port 1), as pg reports it.
  app.get('/db-down', async () => {
    await new Promise((_resolve, reject) => connect(1, '127.0.0.1').on('error', reject));
  });
  await app.ready();
  return app;
}

const outcomeOf = (res: LightMyRequestResponse): OperationOutcome => res.json<OperationOutcome>();

function expectOutcome(res: LightMyRequestResponse, status: number): OperationOutcome {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toBe(FHIR_JSON_UTF8);
  const body = outcomeOf(res);
  expect(body.resourceType).toBe('OperationOutcome');
  expect(body.issue.length).toBeGreaterThan(0);
  return body;
}

const validThing = { resourceType: 'Thing', name: 'kettle', count: 2 };

describe('createApp', () => {
  let app: FastifyInstance;

  beforeAll(async () => {
    app = await buildApp();
  });

  afterAll(async () => {
    await app.close();
  });

  beforeEach(() => {
    health.database = true;
    health.transport = 'up';
  });

  describe('request ids', () => {
    it('when X-Request-ID is valid, then the response echoes it', async () => {
      const res = await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': 'abc-123_DEF.4:5' } });
      expect(res.headers['x-request-id']).toBe('abc-123_DEF.4:5');
    });

    it('when X-Request-ID is absent, then a uuid is generated and returned', async () => {
      const a = await app.inject({ method: 'GET', url: '/health/live' });
      const b = await app.inject({ method: 'GET', url: '/health/live' });
      expect(a.headers['x-request-id']).toMatch(UUID);
      expect(b.headers['x-request-id']).toMatch(UUID);
      expect(a.headers['x-request-id']).not.toBe(b.headers['x-request-id']);
    });

    it.each([
      ['contains spaces', 'abc def'],
      ['is 300 characters', 'a'.repeat(300)],
      ['contains a newline-like escape', 'abc%0Ainjected'],
      ['contains quotes', '"quoted"'],
    ])('when X-Request-ID %s, then it is replaced by a generated uuid', async (_what, given) => {
      const res = await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': given } });
      expect(res.headers['x-request-id']).toMatch(UUID);
    });

    it('when X-Request-ID is 128 characters, then it is still accepted', async () => {
      const given = 'r'.repeat(128);
      const res = await app.inject({ method: 'GET', url: '/health/live', headers: { 'x-request-id': given } });
      expect(res.headers['x-request-id']).toBe(given);
    });

    it('when a request fails, then the error response carries the request id too', async () => {
      const res = await app.inject({ method: 'GET', url: '/nowhere', headers: { 'x-request-id': 'req-404' } });
      expect(res.headers['x-request-id']).toBe('req-404');
    });
  });

  describe('body validation', () => {
    it('when the body is valid JSON matching the schema, then the handler gets it', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', payload: validThing });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ received: validThing });
    });

    it('when the Content-Type is application/fhir+json, then the body is parsed as JSON', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/things',
        headers: { 'content-type': 'application/fhir+json; charset=utf-8' },
        payload: JSON.stringify(validThing),
      });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ received: validThing });
    });

    it('when the body has an unknown field, then 400 names that field in the issue expression', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', payload: { ...validThing, colour: 'red' } });
      const body = expectOutcome(res, 400);
      expect(body.issue).toEqual([
        { severity: 'error', code: 'structure', diagnostics: "unknown element 'Thing.colour'", expression: ['Thing.colour'] },
      ]);
    });

    it('when an unknown field is nested in an array, then the expression gives its index', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', payload: { ...validThing, tags: [{ code: 'a' }, { code: 'b', extra: 1 }] } });
      const body = expectOutcome(res, 400);
      expect(body.issue.map((i) => i.expression)).toEqual([['Thing.tags[1].extra']]);
    });

    it('when a required field is missing, then 400 with code required names it', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', payload: { resourceType: 'Thing', name: 'kettle' } });
      const body = expectOutcome(res, 400);
      expect(body.issue).toEqual([
        { severity: 'error', code: 'required', diagnostics: "missing required element 'Thing.count'", expression: ['Thing.count'] },
      ]);
    });

    it('when the body has no resourceType, then expressions are rooted at body', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', payload: { name: 'kettle', count: 1 } });
      const body = expectOutcome(res, 400);
      expect(body.issue.map((i) => i.expression)).toEqual([['body.resourceType']]);
    });

    it('when a field has the wrong type, then 400 and it is not coerced', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', payload: { ...validThing, count: '2' } });
      const body = expectOutcome(res, 400);
      expect(body.issue).toEqual([{ severity: 'error', code: 'value', diagnostics: "'Thing.count' must be integer", expression: ['Thing.count'] }]);
    });

    it('when several fields are wrong, then every problem is reported', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', payload: { resourceType: 'Thing', name: '', count: -1, colour: 'red' } });
      const body = expectOutcome(res, 400);
      expect(body.issue.map((i) => i.expression?.[0]).sort()).toEqual(['Thing.colour', 'Thing.count', 'Thing.name']);
    });

    it('when the body is malformed JSON, then 400 says it is not valid JSON', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/json' }, payload: '{"name": "kettle",' });
      const body = expectOutcome(res, 400);
      expect(body.issue[0]!.diagnostics).toBe('request body is not valid JSON');
    });

    it('when a FHIR JSON body is malformed, then 400 says it is not valid JSON', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/fhir+json' }, payload: '{nope' });
      const body = expectOutcome(res, 400);
      expect(body.issue[0]!.diagnostics).toBe('request body is not valid JSON');
    });

    it('when a body tries prototype poisoning, then it is refused', async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/things',
        headers: { 'content-type': 'application/fhir+json' },
        payload: '{"resourceType":"Thing","name":"x","count":1,"__proto__":{"polluted":true}}',
      });
      expectOutcome(res, 400);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('when the Content-Type is text/plain, then 415', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'text/plain' }, payload: JSON.stringify(validThing) });
      const body = expectOutcome(res, 415);
      expect(body.issue[0]).toMatchObject({ code: 'not-supported' });
    });

    it('when the Content-Type is form-encoded, then 415', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'name=kettle' });
      expectOutcome(res, 415);
    });

    it('when the body is over the limit, then 413', async () => {
      const res = await app.inject({ method: 'POST', url: '/things', payload: { ...validThing, name: 'x'.repeat(3000) } });
      const body = expectOutcome(res, 413);
      expect(body.issue[0]).toMatchObject({ code: 'too-costly' });
    });
  });

  describe('errors', () => {
    it('when a handler throws an OperationOutcomeError, then its status, headers and outcome are sent', async () => {
      const res = await app.inject({ method: 'POST', url: '/rule' });
      const body = expectOutcome(res, 422);
      expect(res.headers['x-rule']).toBe('count-once');
      expect(body).toEqual(new OperationOutcomeError(422, RULE_BROKEN).outcome);
    });

    it('when a handler throws a plain Error, then 500 hides the detail but gives the request id', async () => {
      const res = await app.inject({ method: 'GET', url: '/boom', headers: { 'x-request-id': 'req-boom-1' } });
      const body = expectOutcome(res, 500);
      expect(res.body).not.toContain('secret internal detail');
      expect(body.issue).toEqual([{ severity: 'error', code: 'exception', diagnostics: 'internal error; quote request id req-boom-1 when reporting it' }]);
    });

    it('when the database cannot be reached, then 503 with Retry-After that the client may retry, not a 500', async () => {
      const res = await app.inject({ method: 'GET', url: '/db-down' });
      const body = expectOutcome(res, 503);
      expect(res.headers['retry-after']).toBe('5');
      expect(body.issue).toEqual([{ severity: 'error', code: 'transient', diagnostics: 'the service\'s database is not available; try again shortly' }]);
    });

    it('when no route matches, then 404 OperationOutcome names the method and path', async () => {
      const res = await app.inject({ method: 'DELETE', url: '/nowhere?x=1' });
      const body = expectOutcome(res, 404);
      expect(body.issue).toEqual([{ severity: 'error', code: 'not-found', diagnostics: 'no route for DELETE /nowhere' }]);
    });

    it('when no route matches a path with an NHS number, then the 404 does not repeat the number', async () => {
      const res = await app.inject({ method: 'GET', url: '/Patient/9434765919/nowhere' });
      expectOutcome(res, 404);
      expect(res.body).not.toContain('9434765919');
    });
  });

  describe('health', () => {
    it('when asked if alive, then 200 with the service name', async () => {
      const res = await app.inject({ method: 'GET', url: '/health/live' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ok', service: 'test' });
    });

    it('when every readiness check is up, then ready is 200', async () => {
      const res = await app.inject({ method: 'GET', url: '/health/ready' });
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ status: 'ok', service: 'test', checks: { database: 'up', transport: 'up' } });
    });

    it('when a check returns false, then ready is 503 naming that check down', async () => {
      health.database = false;
      const res = await app.inject({ method: 'GET', url: '/health/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'unavailable', service: 'test', checks: { database: 'down', transport: 'up' } });
    });

    it('when a check throws, then ready is 503 naming that check down', async () => {
      health.transport = 'throws';
      const res = await app.inject({ method: 'GET', url: '/health/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ status: 'unavailable', service: 'test', checks: { database: 'up', transport: 'down' } });
    });

    it('when a check recovers, then ready is 200 again', async () => {
      health.database = false;
      expect((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(503);
      health.database = true;
      expect((await app.inject({ method: 'GET', url: '/health/ready' })).statusCode).toBe(200);
    });
  });
});

describe('log redaction', () => {
  const PATIENT_URL = '/things/9434765919?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919&name=Smith';

  /** A writable that keeps every line written to it. */
  function capture(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk: Buffer | string, _enc, cb) {
        chunks.push(chunk.toString());
        cb();
      },
    });
    const text = (): string => chunks.join('');
    const lines = (): Record<string, unknown>[] =>
      text()
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    return { stream, lines, text };
  }

  it('when a request URL carries an NHS number and a name, then the app logs neither', async () => {
    const out = capture();
    // Fastify takes a `stream` among its logger options (beside pino's), which createApp passes through.
    const app = await buildApp({ level: 'info', stream: out.stream } as LoggerOptions);
    try {
      const res = await app.inject({ method: 'GET', url: PATIENT_URL, headers: { authorization: 'Bearer secret-token-value' } });
      expect(res.statusCode).toBe(200);
      const boom = await app.inject({ method: 'GET', url: '/boom' });
      expect(boom.statusCode).toBe(500);
    } finally {
      await app.close();
    }
    const lines = out.lines();
    const incoming = lines.find((l) => l.msg === 'incoming request' && (l.req as { url?: string } | undefined)?.url?.startsWith('/things/'));
    expect(incoming).toBeDefined();
    expect((incoming!.req as { url: string }).url).toBe('/things/**********?patient:identifier=*&name=*');
    expect(incoming!.service).toBe('test');
    expect(lines.some((l) => l.msg === 'unhandled error')).toBe(true);
    expect(out.text()).not.toContain('9434765919');
    expect(out.text()).not.toContain('Smith');
    expect(out.text()).not.toContain('secret-token-value');
  });

  it('when pino logs objects with patient fields under the shared redaction paths, then their values are censored', () => {
    const out = capture();
    const log = pino({ redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, out.stream);
    log.info(
      {
        req: { headers: { authorization: 'Bearer abc.def.ghi', cookie: 'sid=1', 'x-api-key': 'k-123' } },
        patient: { nhsNumber: '9434765919', name: 'Smith', birthDate: '1970-01-01', address: '1 High St', telecom: '07700900000' },
        row: { nhs_number: '9434765919', birth_date: '1970-01-01' },
        consent: { note: 'lives alone', text: 'narrative' },
        user: { password: 'hunter2', token: 'tok-1' },
        err: { detail: 'Key (nhs_number)=(9434765919) already exists.', where: 'SQL function' },
      },
      'something happened',
    );
    const [line] = out.lines();
    expect(line).toMatchObject({
      msg: 'something happened',
      req: { headers: { authorization: '[redacted]', cookie: '[redacted]', 'x-api-key': '[redacted]' } },
      patient: { nhsNumber: '[redacted]', name: '[redacted]', birthDate: '[redacted]', address: '[redacted]', telecom: '[redacted]' },
      row: { nhs_number: '[redacted]', birth_date: '[redacted]' },
      consent: { note: '[redacted]', text: '[redacted]' },
      user: { password: '[redacted]', token: '[redacted]' },
      err: { detail: '[redacted]', where: '[redacted]' },
    });
    for (const secret of ['9434765919', 'Smith', '1970-01-01', 'hunter2', 'abc.def.ghi', 'High St', 'lives alone']) {
      expect(out.text()).not.toContain(secret);
    }
  });
});

describe('redactUrl', () => {
  it.each([
    ['/fhir/R4/Flag', '/fhir/R4/Flag'],
    ['/fhir/R4/Patient/9434765919', '/fhir/R4/Patient/**********'],
    ['/fhir/R4/CarePlan/12345', '/fhir/R4/CarePlan/12345'],
    ['/fhir/R4/CarePlan/123456', '/fhir/R4/CarePlan/******'],
    ['/fhir/R4/Flag?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|9434765919', '/fhir/R4/Flag?patient:identifier=*'],
    ['/Patient?name=Smith&birthdate=1970-01-01&_count=10', '/Patient?name=*&birthdate=*&_count=*'],
    ['/x?flag&&y=', '/x?flag=*&y=*'],
    ['/x?na%6De=Smith', '/x?name=*'],
    ['/x?<script>=1', '/x?script=*'],
    ['/x?%E0%A4%A=1', '/x??=*'],
    ['/x?', '/x?'],
  ])('when the URL is %j, then it is logged as %j', (input, expected) => {
    expect(redactUrl(input)).toBe(expected);
  });

  it('when a query parameter has no value but an NHS number as its name, then the number is masked', () => {
    expect(redactUrl('/Patient?9434765919')).toBe('/Patient?**********=*');
    expect(redactUrl('/Patient?_count=5&943%20476%205919')).toBe('/Patient?_count=*&**********=*');
  });
});
