import { JwksKeys, authPlugin, principal, type Jwk } from '@cmc/auth';
import { createApp } from '@cmc/http';
import { TestIssuer } from '@cmc/test-support';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { OperationOutcome } from 'fhir/r4';
import { createHmac, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
const now = (): number => Math.floor(Date.now() / 1000);

/** Claims of a valid clinician token of `issuer`, as TestIssuer would make them. */
function clinicianClaims(issuer: TestIssuer, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: issuer.issuer,
    aud: issuer.audience,
    sub: 'user-hand-built',
    iat: now(),
    exp: now() + 300,
    cmc_kind: 'user',
    cmc_role: 'clinician',
    cmc_org: 'A81001',
    ...extra,
  };
}

/** A JWS signed with an EC P-256 key by hand (ES256 signatures are r||s, not DER), whatever the header says. */
function es256Token(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const signature = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
}

/** The PEM a verifier derives from the issuer's published JWK: what an HMAC-confusion attacker would use. */
const publicPem = (issuer: TestIssuer): string =>
  createPublicKey({ key: issuer.publicJwk, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString();

const bearer = (token: string): { authorization: string } => ({ authorization: `Bearer ${token}` });

interface SeenPrincipal {
  kind: string;
  subject: string;
  role?: string;
  organisation?: string;
  scopes: string[];
  tokenId?: string;
}

async function buildApp(issuer: TestIssuer, jwks: Parameters<typeof authPlugin>[1]['jwks'] = issuer.jwks): Promise<FastifyInstance> {
  const app = await createApp({ service: 'auth-test', logger: false });
  await app.register(authPlugin, { issuer: issuer.issuer, audience: issuer.audience, jwks });
  const seen = (request: Parameters<typeof principal>[0]): SeenPrincipal => {
    const p = principal(request);
    return { kind: p.kind, subject: p.subject, role: p.role, organisation: p.organisation, scopes: [...p.scopes], tokenId: p.tokenId };
  };
  app.get('/clinical', { config: { allow: { roles: ['clinician'] } } }, async (request) => seen(request));
  app.get('/flags', { config: { allow: { scopes: ['system/Flag.rs'] } } }, async (request) => seen(request));
  app.get('/closed', async () => ({ reached: true }));
  app.get('/open', { config: { public: true } }, async (request) => ({ reached: true, principal: request.principal ?? null }));
  await app.ready();
  return app;
}

function expectRefusal(res: LightMyRequestResponse, status: 401 | 403, diagnostics?: string | RegExp): OperationOutcome {
  expect(res.statusCode).toBe(status);
  expect(res.headers['content-type']).toBe('application/fhir+json; charset=utf-8');
  const body = res.json<OperationOutcome>();
  expect(body.resourceType).toBe('OperationOutcome');
  expect(body.issue).toHaveLength(1);
  expect(body.issue[0]!.code).toBe(status === 401 ? 'login' : 'forbidden');
  if (status === 401) expect(res.headers['www-authenticate']).toBe('Bearer');
  if (diagnostics !== undefined) expect(body.issue[0]!.diagnostics).toMatch(diagnostics);
  return body;
}

describe('authPlugin', () => {
  const issuer = new TestIssuer();
  const other = new TestIssuer();
  let app: FastifyInstance;

  const get = (url: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> => app.inject({ method: 'GET', url, headers });

  beforeAll(async () => {
    app = await buildApp(issuer);
  });

  afterAll(async () => {
    await app.close();
  });

  describe('when the token is valid', () => {
    it('when a clinician calls a clinician route, then 200 and the handler sees the principal', async () => {
      const token = issuer.token({ sub: 'dr-who', role: 'clinician', org: 'A81001' }, { jti: 'jti-1' });
      const res = await get('/clinical', bearer(token));
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ kind: 'user', subject: 'dr-who', role: 'clinician', organisation: 'A81001', scopes: [], tokenId: 'jti-1' });
    });

    it('when the bearer scheme is written in lower case, then the token is still read', async () => {
      const res = await get('/clinical', { authorization: `bearer ${issuer.token({ role: 'clinician' })}` });
      expect(res.statusCode).toBe(200);
    });

    it('when a client has the scope the route needs among others, then 200', async () => {
      const token = issuer.token({ kind: 'client', sub: 'gp-system', scope: 'system/Consent.c system/Flag.rs' });
      const res = await get('/flags', bearer(token));
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({ kind: 'client', subject: 'gp-system', scopes: ['system/Consent.c', 'system/Flag.rs'] });
    });

    it('when a token expired less than the 30 s leeway ago, then it is still accepted', async () => {
      const res = await get('/clinical', bearer(issuer.token({ role: 'clinician' }, { iat: now() - 600, exp: now() - 10 })));
      expect(res.statusCode).toBe(200);
    });

    it('when a route is public, then it answers without a token and with a bad one', async () => {
      const none = await get('/open');
      expect(none.statusCode).toBe(200);
      expect(none.json()).toEqual({ reached: true, principal: null });
      expect((await get('/open', { authorization: 'Bearer not.a.token' })).statusCode).toBe(200);
      expect((await get('/health/live')).statusCode).toBe(200);
    });
  });

  describe('when the token is missing or malformed', () => {
    it('when there is no Authorization header, then 401', async () => {
      expectRefusal(await get('/clinical'), 401, /no bearer token/);
    });

    it("when the Authorization header is 'Basic xyz', then 401", async () => {
      expectRefusal(await get('/clinical', { authorization: 'Basic xyz' }), 401, 'no bearer token: send Authorization: Bearer <access token>');
    });

    it('when the Bearer header has more than one token, then 401 says what form it must take', async () => {
      expectRefusal(await get('/clinical', { authorization: 'Bearer abc def' }), 401, 'Authorization header must be of the form Bearer <token>');
    });

    it('when the bearer token is not a JWT, then 401', async () => {
      expectRefusal(await get('/clinical', { authorization: 'Bearer abc.def' }), 401);
    });
  });

  describe('when the token fails verification', () => {
    it('when it expired beyond the 30 s leeway, then 401', async () => {
      const token = issuer.token({ role: 'clinician' }, { iat: now() - 3600, exp: now() - 120 });
      expectRefusal(await get('/clinical', bearer(token)), 401, 'token has expired');
    });

    it('when it is not yet valid (nbf 10 minutes ahead), then 401', async () => {
      const token = issuer.token({ role: 'clinician' }, { nbf: now() + 600 });
      expectRefusal(await get('/clinical', bearer(token)), 401, 'token is not yet valid (nbf)');
    });

    it('when it has the wrong issuer, then 401', async () => {
      const token = issuer.token({ role: 'clinician' }, { iss: 'https://evil.example' });
      expectRefusal(await get('/clinical', bearer(token)), 401, 'token has the wrong issuer');
    });

    it('when it has the wrong audience, then 401', async () => {
      const token = issuer.token({ role: 'clinician' }, { aud: 'someone-else' });
      expectRefusal(await get('/clinical', bearer(token)), 401, 'token has the wrong audience');
    });

    it('when it has no exp, then 401', async () => {
      const token = issuer.token({ role: 'clinician' }, { exp: undefined });
      expectRefusal(await get('/clinical', bearer(token)), 401);
    });

    it('when a character of its signature is changed, then 401', async () => {
      const [h, p, s] = issuer.token({ role: 'clinician' }).split('.') as [string, string, string];
      const i = 10; // well inside the signature, away from the padding bits of the last character
      const flipped = `${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
      expect(flipped).not.toBe(s);
      expectRefusal(await get('/clinical', bearer(`${h}.${p}.${flipped}`)), 401, 'token signature is invalid');
    });

    it("when it is signed by another key but names this issuer's kid, then 401", async () => {
      const token = es256Token({ alg: 'ES256', typ: 'JWT', kid: issuer.kid }, clinicianClaims(issuer), other.privateKey);
      expectRefusal(await get('/clinical', bearer(token)), 401, 'token signature is invalid');
    });

    it('when the same hand-built token is signed by the right key, then it is accepted (the helper is sound)', async () => {
      const token = es256Token({ alg: 'ES256', typ: 'JWT', kid: issuer.kid }, clinicianClaims(issuer), issuer.privateKey);
      expect((await get('/clinical', bearer(token))).statusCode).toBe(200);
    });

    it('when its kid is unknown, then 401', async () => {
      const token = es256Token({ alg: 'ES256', typ: 'JWT', kid: 'no-such-kid' }, clinicianClaims(issuer), issuer.privateKey);
      expectRefusal(await get('/clinical', bearer(token)), 401, 'token is signed with an unknown key id');
    });

    it('when it names no kid, then 401', async () => {
      const token = es256Token({ alg: 'ES256', typ: 'JWT' }, clinicianClaims(issuer), issuer.privateKey);
      expectRefusal(await get('/clinical', bearer(token)), 401, 'token has no key id (kid)');
    });

    it('when it is a token of another issuer, with its own kid, then 401', async () => {
      expectRefusal(await get('/clinical', bearer(other.token({ role: 'clinician' }))), 401, 'token is signed with an unknown key id');
    });

    it("when its alg is 'none' with an empty signature, then 401", async () => {
      const token = `${b64url({ alg: 'none', typ: 'JWT', kid: issuer.kid })}.${b64url(clinicianClaims(issuer))}.`;
      expectRefusal(await get('/clinical', bearer(token)), 401, 'token algorithm is not allowed');
    });

    it('when it says ES256 but its signature is empty, then 401 says it is not signed', async () => {
      const [h, p] = issuer.token({ role: 'clinician' }).split('.') as [string, string];
      expectRefusal(await get('/clinical', bearer(`${h}.${p}.`)), 401, 'token is not signed');
    });

    it("when it is HS256-signed with the issuer's public key PEM as the secret (algorithm confusion), then 401", async () => {
      const input = `${b64url({ alg: 'HS256', typ: 'JWT', kid: issuer.kid })}.${b64url(clinicianClaims(issuer))}`;
      const signature = createHmac('sha256', publicPem(issuer)).update(input).digest('base64url');
      expectRefusal(await get('/clinical', bearer(`${input}.${signature}`)), 401, 'token algorithm is not allowed');
    });
  });

  describe('when the same token comes again', () => {
    it('when a token was accepted, then it is accepted again from memory until it expires, and refused after', async () => {
      const token = issuer.token({ role: 'clinician', org: 'A81001' }, { exp: now() + 120 });
      expect((await get('/clinical', bearer(token))).statusCode).toBe(200);
      expect((await get('/clinical', bearer(token))).statusCode).toBe(200);
      const realNow = Date.now;
      const later = realNow() + 150_000;
      const spy = jest.spyOn(Date, 'now').mockImplementation(() => later);
      try {
        expectRefusal(await get('/clinical', bearer(token)), 401, 'token has expired');
      } finally {
        spy.mockRestore();
      }
    });

    it('when a remembered token is sent to a route its role may not use, then still 403', async () => {
      const token = issuer.token({ role: 'administrator', org: 'A81001' });
      expect((await get('/open', bearer(token))).statusCode).toBe(200);
      expectRefusal(await get('/clinical', bearer(token)), 403);
      expectRefusal(await get('/clinical', bearer(token)), 403);
    });
  });

  describe('when the claims do not make a principal', () => {
    it('when a user token names an unknown role, then 401', async () => {
      expectRefusal(await get('/clinical', bearer(issuer.token({ role: 'superuser' }))), 401, 'token names an unknown role');
    });

    it('when a user token has no role, then 401', async () => {
      expectRefusal(await get('/clinical', bearer(issuer.token({}))), 401, 'user token has no role');
    });

    it('when a patient token names no patient, then 401', async () => {
      expectRefusal(await get('/clinical', bearer(issuer.token({ role: 'patient' }))), 401, 'patient or proxy token names no patient');
    });

    it('when a client token carries a role, a patient or a registration, then 401 (a system cannot pose as a person)', async () => {
      for (const extra of [{ cmc_role: 'service-team' }, { cmc_patient: '9434765919' }, { cmc_reg: 'GMC:1234567' }]) {
        const token = issuer.token({ kind: 'client', scope: 'system/Flag.rs', org: 'A81001' }, extra);
        expectRefusal(await get('/flags', bearer(token)), 401, 'client token carries claims only people may have');
      }
    });

    it('when a claim is malformed, then 401 naming it', async () => {
      expectRefusal(await get('/clinical', bearer(issuer.token({ role: 'clinician', org: 'not an ods code at all' }))), 401, 'token organisation is not an ODS code');
      expectRefusal(await get('/clinical', bearer(issuer.token({ role: 'clinician', sub: 'x'.repeat(201) }))), 401, 'token subject is malformed');
      expectRefusal(await get('/clinical', bearer(issuer.token({ role: 'patient', patient: '9434765918' }))), 401, 'token patient is not a valid NHS number');
      expectRefusal(await get('/clinical', bearer(issuer.token({ role: 'clinician', patient: '9434765919' }))), 401, 'only patient and proxy tokens name a patient');
      expectRefusal(await get('/clinical', bearer(issuer.token({ role: 'clinician' }, { cmc_reg: 'anything goes' }))), 401, 'token professional registration is malformed');
    });

    it('when the token does not say user or client, then 401', async () => {
      const token = issuer.token({ role: 'clinician' }, { cmc_kind: 'robot' });
      expectRefusal(await get('/clinical', bearer(token)), 401, 'token does not say whether it is for a user or a client');
    });
  });

  describe('when the principal is not allowed', () => {
    it('when a user has a role the route does not allow, then 403', async () => {
      expectRefusal(await get('/clinical', bearer(issuer.token({ role: 'administrator', org: 'A81001' }))), 403, "role 'administrator' may not do this");
    });

    it('when a patient with a patient claim calls a clinician route, then 403', async () => {
      expectRefusal(await get('/clinical', bearer(issuer.token({ role: 'patient', patient: '9434765919' }))), 403);
    });

    it('when a client lacks the scope, then 403', async () => {
      const token = issuer.token({ kind: 'client', sub: 'gp-system', scope: 'system/Consent.c system/Flag.r' });
      expectRefusal(await get('/flags', bearer(token)), 403, 'client lacks a scope this operation needs');
    });

    it('when a client has no scopes at all, then 403', async () => {
      expectRefusal(await get('/flags', bearer(issuer.token({ kind: 'client', sub: 'gp-system' }))), 403);
    });

    it('when a clinician calls a route that allows only scopes, then 403', async () => {
      expectRefusal(await get('/flags', bearer(issuer.token({ role: 'clinician' }))), 403);
    });

    it('when a client with a scope calls a route that allows only roles, then 403', async () => {
      const token = issuer.token({ kind: 'client', sub: 'gp-system', scope: 'system/Flag.rs' });
      expectRefusal(await get('/clinical', bearer(token)), 403);
    });

    it('when a route says neither public nor allow, then even a valid clinician is refused with 403', async () => {
      expectRefusal(await get('/closed', bearer(issuer.token({ role: 'clinician' }))), 403, 'this operation is not open to any caller');
    });

    it('when a route says neither public nor allow and there is no token, then 401', async () => {
      expectRefusal(await get('/closed'), 401);
    });
  });
});

/** A JWKS endpoint on a real local HTTP server, whose keys the test changes; it counts the fetches. */
class JwksServer {
  keys: Jwk[] = [];
  fetches = 0;
  failing = false;
  private server: Server | undefined;

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      this.fetches++;
      if (this.failing) {
        res.writeHead(500).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/.well-known/jwks.json`;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve, reject) => this.server?.close((e) => (e ? reject(e) : resolve())) ?? resolve());
  }
}

/** Lets the wall clock move on: JwksKeys compares millisecond times strictly, so a cooldown of 0 needs 1 ms. */
const aMomentLater = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 3));

/** Whether a compact ES256 JWS verifies against a PEM public key. */
function verifiesWith(token: string, pem: string): boolean {
  const [h, p, s] = token.split('.') as [string, string, string];
  return verify('sha256', Buffer.from(`${h}.${p}`), { key: pem, dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
}

describe('JwksKeys', () => {
  const oldKey = new TestIssuer();
  const newKey = new TestIssuer();
  const jwksServer = new JwksServer();
  let url: string;

  beforeAll(async () => {
    url = await jwksServer.start();
  });

  afterAll(async () => {
    await jwksServer.stop();
  });

  beforeEach(() => {
    jwksServer.keys = [oldKey.publicJwk];
    jwksServer.fetches = 0;
    jwksServer.failing = false;
  });

  it('when the issuer is down, then it is asked once per cooldown however many unknown kids arrive', async () => {
    jwksServer.failing = true;
    const keys = new JwksKeys({ url }, { cooldownMs: 60_000 });
    for (const kid of ['a', 'b', 'c', oldKey.kid]) expect(await keys.get(kid)).toBeUndefined();
    expect(jwksServer.fetches).toBe(1);
  });

  it('when given keys directly, then it finds them by kid, takes no symmetric keys and fetches nothing', async () => {
    const keys = new JwksKeys({ keys: [oldKey.publicJwk, { kty: 'oct', kid: 'hmac', k: 'c2VjcmV0' }, { ...newKey.publicJwk, use: 'enc' }] });
    const found = await keys.get(oldKey.kid);
    expect(found?.alg).toBe('ES256');
    expect(verifiesWith(oldKey.token({ role: 'clinician' }), found!.pem)).toBe(true);
    expect(await keys.get('hmac')).toBeUndefined();
    expect(await keys.get(newKey.kid)).toBeUndefined();
  });

  it('when the issuer starts publishing a new kid, then a token with that kid is accepted on its next fetch', async () => {
    const keys = new JwksKeys({ url }, { cooldownMs: 0 });
    expect(await keys.get(oldKey.kid)).toBeDefined();
    await aMomentLater();
    expect(await keys.get(newKey.kid)).toBeUndefined();
    expect(jwksServer.fetches).toBe(2);

    jwksServer.keys = [oldKey.publicJwk, newKey.publicJwk];
    await aMomentLater();
    const rotated = await keys.get(newKey.kid);
    expect(rotated).toBeDefined();
    expect(verifiesWith(newKey.token({ role: 'clinician' }), rotated!.pem)).toBe(true);
    expect(verifiesWith(oldKey.token({ role: 'clinician' }), rotated!.pem)).toBe(false);
  });

  it('when a kid was never published, then it is refused', async () => {
    const keys = new JwksKeys({ url }, { cooldownMs: 0 });
    expect(await keys.get('never-published')).toBeUndefined();
    expect(jwksServer.fetches).toBeGreaterThan(0);
  });

  it('when the issuer stops publishing a key, then it is no longer trusted after the next fetch', async () => {
    jwksServer.keys = [oldKey.publicJwk, newKey.publicJwk];
    const keys = new JwksKeys({ url }, { cooldownMs: 0, maxAgeMs: 0 });
    expect(await keys.get(oldKey.kid)).toBeDefined();
    jwksServer.keys = [newKey.publicJwk];
    await aMomentLater();
    expect(await keys.get(oldKey.kid)).toBeUndefined();
    expect(await keys.get(newKey.kid)).toBeDefined();
  });

  it('when unknown kids keep arriving within the cooldown, then the issuer is fetched only once', async () => {
    const keys = new JwksKeys({ url }, { cooldownMs: 60_000 });
    expect(await keys.get('bad-1')).toBeUndefined();
    expect(await keys.get('bad-2')).toBeUndefined();
    expect(await keys.get('bad-3')).toBeUndefined();
    expect(await keys.get(oldKey.kid)).toBeDefined();
    expect(jwksServer.fetches).toBe(1);
  });

  it('when many requests for an unknown kid arrive at once, then they share one fetch', async () => {
    const keys = new JwksKeys({ url }, { cooldownMs: 0 });
    const results = await Promise.all([keys.get(oldKey.kid), keys.get(oldKey.kid), keys.get(oldKey.kid)]);
    expect(results.every((r) => r !== undefined)).toBe(true);
    expect(jwksServer.fetches).toBe(1);
  });

  it('when the issuer fails after keys were fetched, then the keys already known are still trusted', async () => {
    const keys = new JwksKeys({ url }, { cooldownMs: 0, maxAgeMs: 0 });
    expect(await keys.get(oldKey.kid)).toBeDefined();
    jwksServer.failing = true;
    await aMomentLater();
    expect(await keys.get(oldKey.kid)).toBeDefined();
    expect(jwksServer.fetches).toBe(2);
    await aMomentLater();
    expect(await keys.get(newKey.kid)).toBeUndefined();
    expect(jwksServer.fetches).toBe(3);
  });

  it('when the plugin reads keys from the JWKS URL, then a rotated kid is accepted once the 30 s cooldown has passed', async () => {
    const app = await buildApp(oldKey, { url });
    const clock = jest.spyOn(Date, 'now');
    try {
      const get = (token: string): Promise<LightMyRequestResponse> => app.inject({ method: 'GET', url: '/clinical', headers: bearer(token) });
      expect((await get(oldKey.token({ role: 'clinician' }))).statusCode).toBe(200);
      expect(jwksServer.fetches).toBe(1);

      // The new key, signed for the same issuer: the issuer rotated its signing key.
      jwksServer.keys = [oldKey.publicJwk, newKey.publicJwk];
      const rotatedToken = es256Token({ alg: 'ES256', typ: 'JWT', kid: newKey.kid }, clinicianClaims(oldKey), newKey.privateKey);
      expectRefusal(await get(rotatedToken), 401, 'token is signed with an unknown key id');
      expect(jwksServer.fetches).toBe(1);

      // 31 s later (the clock keeps running from there): the cooldown is over.
      const [wall, mono] = [Date.now(), performance.now()];
      clock.mockImplementation(() => wall + 31_000 + (performance.now() - mono));
      expect((await get(rotatedToken)).statusCode).toBe(200);
      expect(jwksServer.fetches).toBe(2);

      const unpublished = es256Token({ alg: 'ES256', typ: 'JWT', kid: 'never-published' }, clinicianClaims(oldKey), newKey.privateKey);
      expectRefusal(await get(unpublished), 401, 'token is signed with an unknown key id');
    } finally {
      clock.mockRestore();
      await app.close();
    }
  });
});
