/** Per-client rate limits at the gateway: 429 with Retry-After and an OperationOutcome, a bucket per client. */
import { buildGateway, clientKey } from '@cmc/gateway';
import { createApp } from '@cmc/http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { OperationOutcome } from 'fhir/r4';

const jwt = (claims: object) => `Bearer e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

describe('gateway rate limits', () => {
  let upstream: FastifyInstance;
  let gateway: FastifyInstance;

  beforeAll(async () => {
    upstream = await createApp({ service: 'care-plan', logger: false });
    upstream.route({ method: ['GET', 'POST'], url: '/*', config: { public: true }, handler: async () => ({ ok: true }) });
    const url = await upstream.listen({ host: '127.0.0.1', port: 0 });
    gateway = await buildGateway({ upstreams: { 'care-plan': url, identity: url }, logger: false, rateLimits: { perClientPerMinute: 5, authPerAddressPerMinute: 3 } });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  const get = (url: string, authorization?: string) => gateway.inject({ method: 'GET', url, headers: authorization ? { authorization } : {}, remoteAddress: '10.1.1.1' });

  it('when a client goes over its limit, then 429 with Retry-After and an OperationOutcome, while another client is still served', async () => {
    const a = jwt({ sub: 'dispatch-a' });
    for (let i = 0; i < 5; i++) expect((await get('/api/flags/9434765919', a)).statusCode).toBe(200);
    const over = await get('/api/flags/9434765919', a);
    expect(over.statusCode).toBe(429);
    expect(Number(over.headers['retry-after'])).toBeGreaterThan(0);
    const outcome = over.json<OperationOutcome>();
    expect(outcome.resourceType).toBe('OperationOutcome');
    expect(outcome.issue[0]).toMatchObject({ code: 'throttled' });
    expect((await get('/api/flags/9434765919', jwt({ sub: 'dispatch-b' }))).statusCode).toBe(200);
  });

  it('when /auth/ is called too often from one address, then 429, however the calls are spread over accounts; health is never limited', async () => {
    const login = (n: number) => gateway.inject({ method: 'POST', url: '/auth/login', payload: { email: `u${n}@x.test`, password: 'x' }, remoteAddress: '10.2.2.2' });
    for (let i = 0; i < 3; i++) expect((await login(i)).statusCode).toBe(200);
    expect((await login(4)).statusCode).toBe(429);
    for (let i = 0; i < 10; i++) expect((await gateway.inject({ method: 'GET', url: '/health/live', remoteAddress: '10.2.2.2' })).statusCode).toBe(200);
  });

  it('when there is no token or it is not a JWT, then the caller counts by address; with one, by its subject', () => {
    const req = (authorization?: string) => ({ headers: authorization ? { authorization } : {}, ip: '10.3.3.3' }) as unknown as FastifyRequest;
    expect(clientKey(req())).toBe('ip:10.3.3.3');
    expect(clientKey(req('Bearer not-a-jwt'))).toBe('ip:10.3.3.3');
    expect(clientKey(req(jwt({ sub: 'gp-system-1' })))).toBe('sub:gp-system-1');
    expect(clientKey(req(jwt({ sub: 'x'.repeat(500) })))).toBe('ip:10.3.3.3');
  });
});
