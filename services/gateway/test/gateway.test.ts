import { buildGateway, ownerOf } from '@cmc/gateway';
import { createApp } from '@cmc/http';
import type { FastifyInstance } from 'fastify';
import type { OperationOutcome } from 'fhir/r4';
import http from 'node:http';
import net from 'node:net';

/** A real upstream service on a real port, that echoes what reached it. */
async function echoService(name: string): Promise<{ app: FastifyInstance; url: string }> {
  const app = await createApp({ service: name, logger: false });
  app.route({
    method: ['GET', 'POST', 'PUT'],
    url: '/*',
    config: { public: true },
    handler: async (request) => ({
      service: name,
      method: request.method,
      url: request.url,
      requestId: request.id,
      forwardedFor: request.headers['x-forwarded-for'],
      authorization: request.headers.authorization,
      contentType: request.headers['content-type'],
      body: request.body,
    }),
  });
  app.get('/api/care-plans/slow', { config: { public: true } }, async () => {
    await new Promise((r) => setTimeout(r, 1500));
    return { late: true };
  });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return { app, url };
}

/** GET with the path sent exactly as written (fetch and URL would normalise it). */
function rawGet(base: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const { hostname, port } = new URL(base);
    const req = http.request({ host: hostname, port, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A port nothing listens on. */
async function deadPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('gateway routing', () => {
  it('when a path is a FHIR resource, auth, well-known or api path, then it goes to the service that owns it', () => {
    expect(ownerOf('/fhir/R4/Consent')).toBe('consent');
    expect(ownerOf('/fhir/R4/Consent/abc/_history/2?x=1')).toBe('consent');
    expect(ownerOf('/fhir/R4/CarePlan?patient:identifier=x')).toBe('care-plan');
    expect(ownerOf('/fhir/R4/Flag')).toBe('care-plan');
    expect(ownerOf('/fhir/R4/AllergyIntolerance/1')).toBe('care-plan');
    expect(ownerOf('/fhir/R4/AuditEvent')).toBe('audit');
    expect(ownerOf('/fhir/R4/Subscription')).toBe('notification');
    expect(ownerOf('/fhir/R4/.well-known/smart-configuration')).toBe('identity');
    expect(ownerOf('/auth/login')).toBe('identity');
    expect(ownerOf('/.well-known/jwks.json')).toBe('identity');
    expect(ownerOf('/api/flags/9434765919')).toBe('care-plan');
    expect(ownerOf('/api/notifications')).toBe('notification');
  });

  it('when a path belongs to no service, then no owner', () => {
    expect(ownerOf('/fhir/R4/Patient')).toBeUndefined();
    expect(ownerOf('/api/unknown')).toBeUndefined();
    expect(ownerOf('/')).toBeUndefined();
  });
});

describe('the gateway', () => {
  let consent: { app: FastifyInstance; url: string };
  let carePlan: { app: FastifyInstance; url: string };
  let gateway: FastifyInstance;
  let deadUrl: string;

  beforeAll(async () => {
    [consent, carePlan] = await Promise.all([echoService('consent'), echoService('care-plan')]);
    deadUrl = `http://127.0.0.1:${await deadPort()}`;
    gateway = await buildGateway({
      upstreams: { consent: consent.url, 'care-plan': carePlan.url, audit: deadUrl },
      timeoutMs: 500,
      logger: false,
    });
    await gateway.ready();
  });

  afterAll(async () => {
    await gateway?.close();
    await consent?.app.close();
    await carePlan?.app.close();
  });

  const outcome = (body: string) => JSON.parse(body) as OperationOutcome;

  it('when a client calls a FHIR type, then the owning service answers, with body, token and request id passed on', async () => {
    const res = await gateway.inject({
      method: 'POST',
      url: '/fhir/R4/Consent?x=1',
      // A client's own X-Forwarded-For is not passed on: the audit log must get the address the gateway saw.
      headers: { 'content-type': 'application/fhir+json', authorization: 'Bearer abc', 'x-request-id': 'trace-123', 'x-forwarded-for': '1.2.3.4' },
      payload: '{"resourceType":"Consent"}',
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-request-id']).toBe('trace-123');
    expect(res.json()).toMatchObject({
      service: 'consent',
      method: 'POST',
      url: '/fhir/R4/Consent?x=1',
      requestId: 'trace-123',
      authorization: 'Bearer abc',
      contentType: 'application/fhir+json',
      body: { resourceType: 'Consent' },
      forwardedFor: '127.0.0.1',
    });
    const json = await gateway.inject({ method: 'POST', url: '/api/flags/$lookup', headers: { 'content-type': 'application/json' }, payload: '{"nhsNumbers":["9434765919"]}' });
    expect(json.json()).toMatchObject({ service: 'care-plan', contentType: 'application/json', body: { nhsNumbers: ['9434765919'] } });
    const cp = await gateway.inject({ method: 'GET', url: '/api/flags/9434765919' });
    expect(cp.json()).toMatchObject({ service: 'care-plan', url: '/api/flags/9434765919' });
  });

  it('when the body is not JSON, then the gateway passes it through untouched for the service to judge', async () => {
    const res = await gateway.inject({ method: 'POST', url: '/fhir/R4/Consent', headers: { 'content-type': 'text/plain' }, payload: 'hello' });
    expect(res.statusCode).toBe(415);
    expect(outcome(res.body).issue[0]?.code).toBe('not-supported');
  });

  it('when the owning service is not deployed, then 503 OperationOutcome naming it', async () => {
    const res = await gateway.inject({ method: 'GET', url: '/fhir/R4/Subscription' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/fhir\+json/);
    expect(outcome(res.body).issue[0]?.diagnostics).toBe('the notification service is not available');
  });

  it('when the owning service is down, then 503 OperationOutcome, not a hang', async () => {
    const res = await gateway.inject({ method: 'GET', url: '/fhir/R4/AuditEvent' });
    expect(res.statusCode).toBe(503);
    expect(outcome(res.body).issue[0]?.diagnostics).toBe('the audit service is not available');
  });

  it('when the service is too slow, then 504 after the timeout', async () => {
    const res = await gateway.inject({ method: 'GET', url: '/api/care-plans/slow' });
    expect(res.statusCode).toBe(504);
    expect(outcome(res.body).issue[0]).toMatchObject({ code: 'timeout', diagnostics: 'the care-plan service did not answer in time' });
  });

  it('when the path has dot segments or encoded separators, then 400 and nothing is forwarded', async () => {
    // Over a real socket: an in-process inject would resolve the dot segments before the gateway saw them.
    const base = await gateway.listen({ host: '127.0.0.1', port: 0 });
    for (const path of ['/fhir/R4/Consent/../../../health/ready', '/fhir/R4/Consent/%2e%2e/%2E%2E/health/ready', '/fhir/R4/Consent/a%2Fb', '/api/flags/./x', '/fhir/R4/Consent/a%5cb']) {
      const res = await rawGet(base, path);
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(outcome(res.body).issue[0]?.code).toBe('invalid');
    }
  });

  it('when no service owns the path, then 404 OperationOutcome', async () => {
    const res = await gateway.inject({ method: 'GET', url: '/nowhere' });
    expect(res.statusCode).toBe(404);
    expect(outcome(res.body).issue[0]?.code).toBe('not-found');
  });

  it('when every deployed service is ready, then ready; when one is down, then 503 naming it', async () => {
    const res = await gateway.inject({ method: 'GET', url: '/health/ready' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({ checks: { consent: 'up', 'care-plan': 'up', audit: 'down' } });
  });
});
