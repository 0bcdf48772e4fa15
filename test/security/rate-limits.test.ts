/**
 * Issue #10, security: rate limits on login and on lookups per client, through the gateway in front of the
 * real identity and care-plan services (services/gateway/test/rate-limit.test.ts checks the limiter itself
 * against a stub). What is added here: the /auth/ limit cannot be dodged with X-Forwarded-For or by changing
 * accounts, and what is over it never reaches identity; one client's lookups share one bucket whichever lookup
 * route it uses, and what is over the limit is neither served nor looked up.
 */
import type { Jwk } from '@cmc/auth';
import { carePlanService, type CarePlanDB } from '@cmc/care-plan-service';
import type { Transport } from '@cmc/events';
import { buildGateway } from '@cmc/gateway';
import { identityService, type IdentityDB } from '@cmc/identity-service';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, randomNhsNumber, startTestService } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';
import { NHS_SYSTEM, accessEventsByRequest } from './support';

const LIMITS = { perClientPerMinute: 6, authPerAddressPerMinute: 4 };

describe('rate limits at the gateway, in front of the real services', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let identity: RunningService<IdentityDB>;
  let carePlan: RunningService<CarePlanDB>;
  let gateway: Awaited<ReturnType<typeof buildGateway>>;
  let mint: (claims: Record<string, unknown>) => Promise<string>;

  beforeAll(async () => {
    transport = await newTransport('sql');
    identity = await startTestService(identityService, { transport, issuer, env: { IDENTITY_ARGON2_MEMORY_KIB: '8192', IDENTITY_ARGON2_PASSES: '1' } });
    const keys = (identity.state as { keys: { sign(p: Record<string, unknown>): Promise<string>; publicKeys(maxAgeMs?: number): Promise<Jwk[]> } }).keys;
    carePlan = await startTestService(carePlanService, { transport, issuer, start: { jwks: { provider: () => keys.publicKeys(250) } } });
    const [identityUrl, carePlanUrl] = await Promise.all([identity.listen(), carePlan.listen()]);
    gateway = await buildGateway({ upstreams: { identity: identityUrl, 'care-plan': carePlanUrl }, logger: false, rateLimits: LIMITS });
    mint = (claims) => {
      const now = Math.floor(Date.now() / 1000);
      return keys.sign({ iss: issuer.issuer, aud: issuer.audience, iat: now, nbf: now, exp: now + 600, jti: randomUUID(), ...claims });
    };
  });
  afterAll(async () => {
    await gateway?.close();
    await carePlan?.close();
    await identity?.close();
    await transport?.close();
  });

  const loginFailures = async () => (await identity.database.db.selectFrom('outbox').select('id').where('type', '=', 'cmc.identity.login-failed.v1').execute()).length;

  it('when logins from one address go over the limit, then 429 whatever X-Forwarded-For and account they claim, and identity never sees those', async () => {
    const before = await loginFailures();
    const login = (n: number, address: string) =>
      gateway.inject({
        method: 'POST',
        url: '/auth/login',
        remoteAddress: address,
        headers: { 'content-type': 'application/json', 'x-forwarded-for': `203.0.113.${n}` },
        payload: { email: `guess${n}@example.org`, password: `Wrong-Passw0rd-${n}` },
      });
    const answers: number[] = [];
    for (let n = 1; n <= LIMITS.authPerAddressPerMinute + 3; n++) answers.push((await login(n, '198.51.100.7')).statusCode);
    expect(answers).toEqual([...Array<number>(LIMITS.authPerAddressPerMinute).fill(401), 429, 429, 429]);
    // Only the attempts under the limit reached identity (each wrong login is an event there).
    expect((await loginFailures()) - before).toBe(LIMITS.authPerAddressPerMinute);
    // Another address is not held back by the first one's attempts.
    expect((await login(99, '198.51.100.8')).statusCode).toBe(401);
  });

  it('when one client looks patients up over its limit across every lookup route, then 429 with Retry-After and an OperationOutcome; nothing over it is looked up; another client is still served', async () => {
    const dispatch = await mint({ sub: `dispatch-${randomUUID().slice(0, 8)}`, cmc_kind: 'client', cmc_org: 'RRU', scope: 'system/Flag.rs' });
    const nhs = randomNhsNumber();
    const lookups = [
      { method: 'GET' as const, url: `/api/flags/${nhs}` },
      { method: 'POST' as const, url: '/api/flags/$lookup', payload: { nhsNumbers: [nhs] } },
      { method: 'GET' as const, url: `/fhir/R4/Flag?patient:identifier=${encodeURIComponent(`${NHS_SYSTEM}|${nhs}`)}` },
    ];
    const ids: string[] = [];
    const answers = [];
    for (let i = 0; i < LIMITS.perClientPerMinute + 3; i++) {
      const l = lookups[i % lookups.length]!;
      const requestId = `rl-${randomUUID()}`;
      ids.push(requestId);
      answers.push(await gateway.inject({
        method: l.method,
        url: l.url,
        remoteAddress: '198.51.100.20',
        headers: { authorization: `Bearer ${dispatch}`, 'x-request-id': requestId, ...(l.payload ? { 'content-type': 'application/json' } : {}) },
        ...(l.payload ? { payload: l.payload } : {}),
      }));
    }
    const statuses = answers.map((a) => a.statusCode);
    const last = answers[answers.length - 1]!;
    expect(statuses).toEqual([...Array<number>(LIMITS.perClientPerMinute).fill(200), 429, 429, 429]);
    expect(Number(last.headers['retry-after'])).toBeGreaterThan(0);
    expect(last.json<{ resourceType: string; issue: { code: string }[] }>()).toMatchObject({ resourceType: 'OperationOutcome', issue: [{ code: 'throttled' }] });
    // Each lookup under the limit was answered with its access entry; none over it reached the service.
    const recorded = await accessEventsByRequest(carePlan);
    expect(ids.map((id) => (recorded.get(id) ?? []).length)).toEqual([...Array<number>(LIMITS.perClientPerMinute).fill(1), 0, 0, 0]);

    const other = await mint({ sub: `dispatch-${randomUUID().slice(0, 8)}`, cmc_kind: 'client', cmc_org: 'RRU', scope: 'system/Flag.rs' });
    const served = await gateway.inject({ method: 'GET', url: `/api/flags/${nhs}`, remoteAddress: '198.51.100.20', headers: { authorization: `Bearer ${other}` } });
    expect(served.statusCode).toBe(200);
  });
});
