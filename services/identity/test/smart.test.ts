import { authPlugin, principal, type Jwk } from '@cmc/auth';
import { createApp } from '@cmc/http';
import { createSigner } from 'fast-jwt';
import type { OperationOutcome } from 'fhir/r4';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startIdentity, type IdentityHarness } from './support';

const PUBLIC_URL = 'https://cmc.test';
const TOKEN_URL = `${PUBLIC_URL}/auth/token`;
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const FORM = 'application/x-www-form-urlencoded';

interface ClientKey {
  kid: string;
  privateKey: KeyObject;
  publicJwk: Jwk;
  alg: 'RS384' | 'ES384';
}

/** A key pair made now, as a client would make its own. */
function aKey(kind: 'ec' | 'rsa' = 'ec', kid = randomUUID()): ClientKey {
  const { privateKey, publicKey } = kind === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-384' });
  return { kid, privateKey, publicJwk: { ...publicKey.export({ format: 'jwk' }), kid }, alg: kind === 'rsa' ? 'RS384' : 'ES384' };
}

const pem = (key: KeyObject) => key.export({ type: 'pkcs8', format: 'pem' }).toString();
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A client assertion as SMART Backend Services says; `claims` may change or remove (undefined) any claim. */
function anAssertion(key: ClientKey, clientId: string, claims: Record<string, unknown> = {}, alg: string = key.alg): string {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = { iss: clientId, sub: clientId, aud: TOKEN_URL, exp: now + 240, jti: randomUUID(), ...claims };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  return createSigner({ key: pem(key.privateKey), algorithm: alg as 'ES384', kid: key.kid, noTimestamp: true })(payload);
}

const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
const diagnostics = (body: string) => (JSON.parse(body) as OperationOutcome).issue.map((i) => i.diagnostics).join(' | ');

interface OAuthAnswer {
  error?: string;
  error_description?: string;
  access_token?: string;
  token_type?: string;
  expires_in?: number;
  scope?: string;
}

describe('SMART Backend Services: system clients and their tokens', () => {
  let id: IdentityHarness;
  let jwksServer: Server | undefined;

  const tokenRequest = (body: string, contentType = FORM) => id.svc.app.inject({ method: 'POST', url: '/auth/token', headers: { 'content-type': contentType }, payload: body });
  const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
  const clientCredentials = (assertion: string, extra: Record<string, string> = {}) =>
    form({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion, ...extra });
  const askToken = async (assertion: string, extra: Record<string, string> = {}) => {
    const res = await tokenRequest(clientCredentials(assertion, extra));
    return { status: res.statusCode, body: res.json<OAuthAnswer>(), headers: res.headers };
  };

  /** Registers a client of `ods` with a key of its own; returns its id and key. */
  const aClient = async (ods: string, opts: { scopes?: string[]; key?: ClientKey } = {}) => {
    const key = opts.key ?? aKey();
    const clientId = `client-${randomUUID().slice(0, 8)}`;
    const res = await id.post('/api/clients', { clientId, name: 'GP system', organisation: ods, jwks: { keys: [key.publicJwk] }, scopes: opts.scopes ?? ['system/Flag.rs', 'system/CarePlan.rs'] }, await id.admin());
    if (res.statusCode !== 201) throw new Error(`registering ${clientId} answered ${res.statusCode}: ${res.body}`);
    return { clientId, key };
  };

  beforeAll(async () => {
    id = await startIdentity({ IDENTITY_PUBLIC_URL: PUBLIC_URL });
    expect((await id.anOrganisation('GP1', { type: 'gp-practice' })).statusCode).toBe(201);
    expect((await id.anOrganisation('NOISA', { isaSignedOn: null })).statusCode).toBe(201);
    expect((await id.anOrganisation('ENTRY', { dsptStatus: 'entry-level' })).statusCode).toBe(201);
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => (jwksServer ? jwksServer.close(() => resolve()) : resolve()));
    await id?.close();
  });

  describe('a token', () => {
    it('when a registered client signs an assertion, then it gets a bearer token of at most 5 minutes that the auth library accepts for its scopes', async () => {
      const { clientId, key } = await aClient('GP1');
      const res = await askToken(anAssertion(key, clientId));
      expect(res.status).toBe(200);
      expect(res.headers['cache-control']).toBe('no-store');
      expect(res.body).toMatchObject({ token_type: 'bearer', expires_in: 300, scope: 'system/Flag.rs system/CarePlan.rs' });
      const claims = claimsOf(res.body.access_token!);
      expect(claims).toMatchObject({ sub: clientId, cmc_kind: 'client', cmc_org: 'GP1', scope: 'system/Flag.rs system/CarePlan.rs' });
      expect(claims).not.toHaveProperty('cmc_role');
      expect(claims).not.toHaveProperty('cmc_patient');
      expect((claims.exp as number) - (claims.iat as number)).toBe(300);

      // A service elsewhere trusts identity's published keys, issuer and audience: nothing else.
      const jwks = (await id.get('/.well-known/jwks.json')).json<{ keys: Jwk[] }>();
      const app = await createApp({ service: 'smart-test', logger: false });
      await app.register(authPlugin, { issuer: id.svc.config.auth.issuer, audience: id.svc.config.auth.audience, jwks: { keys: jwks.keys } });
      app.get('/flags', { config: { allow: { scopes: ['system/Flag.rs'] } } }, async (request) => {
        const p = principal(request);
        return { kind: p.kind, subject: p.subject, organisation: p.organisation, role: p.role ?? null };
      });
      app.get('/consents', { config: { allow: { scopes: ['system/Consent.c'] } } }, async () => ({}));
      app.get('/staff-only', { config: { allow: { roles: ['clinician'] } } }, async () => ({}));
      try {
        const bearer = { authorization: `Bearer ${res.body.access_token!}` };
        const flags = await app.inject({ method: 'GET', url: '/flags', headers: bearer });
        expect(flags.statusCode).toBe(200);
        expect(flags.json()).toEqual({ kind: 'client', subject: clientId, organisation: 'GP1', role: null });
        expect((await app.inject({ method: 'GET', url: '/consents', headers: bearer })).statusCode).toBe(403);
        expect((await app.inject({ method: 'GET', url: '/staff-only', headers: bearer })).statusCode).toBe(403);
      } finally {
        await app.close();
      }
    });

    it('when the client asks for some of its scopes, then it gets those only, and an RSA key signing RS384 works as well as EC', async () => {
      const { clientId, key } = await aClient('GP1', { key: aKey('rsa') });
      const res = await tokenRequest(clientCredentials(anAssertion(key, clientId), { scope: 'system/CarePlan.rs', client_id: clientId }), `${FORM}; charset=UTF-8`);
      expect(res.statusCode).toBe(200);
      const body = res.json<OAuthAnswer>();
      expect(body.scope).toBe('system/CarePlan.rs');
      expect(claimsOf(body.access_token!).scope).toBe('system/CarePlan.rs');
      // client_id, when sent, must be the assertion's.
      const mismatch = await askToken(anAssertion(key, clientId), { client_id: 'another-client' });
      expect({ status: mismatch.status, error: mismatch.body.error }).toEqual({ status: 401, error: 'invalid_client' });
    });

    it('when the client publishes its keys at a URL, then the key is fetched from there', async () => {
      const key = aKey();
      jwksServer = createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [key.publicJwk] })));
      await new Promise<void>((resolve) => jwksServer!.listen(0, '127.0.0.1', resolve));
      const { port } = jwksServer.address() as AddressInfo;
      const clientId = `url-${randomUUID().slice(0, 8)}`;
      const created = await id.post('/api/clients', { clientId, name: 'Dispatch', organisation: 'GP1', jwksUrl: `http://127.0.0.1:${port}/jwks.json`, scopes: ['system/Flag.rs'] }, await id.admin());
      expect(created.statusCode).toBe(201);
      expect((await askToken(anAssertion(key, clientId))).status).toBe(200);
    });

    it('when the service team replaces a client\'s keys, then the old key is refused at once and the new one accepted', async () => {
      const { clientId, key } = await aClient('GP1');
      expect((await askToken(anAssertion(key, clientId))).status).toBe(200);
      const next = aKey();
      expect((await id.patch(`/api/clients/${clientId}`, { jwks: { keys: [next.publicJwk] } }, await id.admin())).statusCode).toBe(200);
      const old = await askToken(anAssertion(key, clientId));
      expect(old.status).toBe(401);
      expect(old.body.error).toBe('invalid_client');
      expect((await askToken(anAssertion(next, clientId))).status).toBe(200);
    });
  });

  describe('refused token requests', () => {
    let client: { clientId: string; key: ClientKey };
    let rsaClient: { clientId: string; key: ClientKey };

    beforeAll(async () => {
      client = await aClient('GP1');
      rsaClient = await aClient('GP1', { key: aKey('rsa') });
    });

    const expectOAuthError = (res: { status: number; body: OAuthAnswer; headers: Record<string, unknown> }, status: number, error: string, description?: RegExp) => {
      expect({ status: res.status, error: res.body.error }).toEqual({ status, error });
      if (description) expect(res.body.error_description).toMatch(description);
      expect(res.body).not.toHaveProperty('resourceType');
      expect(res.body).not.toHaveProperty('access_token');
      expect(res.headers['cache-control']).toBe('no-store');
    };

    it('when the client is not registered, then 401 invalid_client', async () => {
      expectOAuthError(await askToken(anAssertion(aKey(), 'nobody-registered')), 401, 'invalid_client', /not registered/);
    });

    it('when the client has been made inactive, then 401 invalid_client', async () => {
      const { clientId, key } = await aClient('GP1');
      expect((await id.patch(`/api/clients/${clientId}`, { active: false }, await id.admin())).statusCode).toBe(200);
      expectOAuthError(await askToken(anAssertion(key, clientId)), 401, 'invalid_client', /not active/);
    });

    it.each([
      ['the audience is another endpoint', { aud: `${PUBLIC_URL}/auth/login` }, /audience/],
      ['exp is more than 5 minutes ahead', { exp: Math.floor(Date.now() / 1000) + 600 }, /more than 5 minutes ahead/],
      ['the assertion has expired', { exp: Math.floor(Date.now() / 1000) - 120 }, /expired/],
      ['there is no exp', { exp: undefined }, /no expiry/],
      ['there is no jti', { jti: undefined }, /no jti/],
      ['sub is not the client', { sub: 'someone-else' }, /iss and sub/],
    ])('when %s, then 401 invalid_client', async (_what, claims, description) => {
      expectOAuthError(await askToken(anAssertion(client.key, client.clientId, claims)), 401, 'invalid_client', description);
    });

    it('when the assertion was used before, then 401 invalid_client', async () => {
      const assertion = anAssertion(client.key, client.clientId);
      expect((await askToken(assertion)).status).toBe(200);
      expectOAuthError(await askToken(assertion), 401, 'invalid_client', /used before/);
      // Another assertion with the same jti is the same replay.
      const jti = claimsOf(assertion).jti as string;
      expectOAuthError(await askToken(anAssertion(client.key, client.clientId, { jti })), 401, 'invalid_client', /used before/);
    });

    it('when the assertion is signed RS256 with the registered RSA key, then 401 invalid_client (RS384 and ES384 only)', async () => {
      expectOAuthError(await askToken(anAssertion(rsaClient.key, rsaClient.clientId, {}, 'RS256')), 401, 'invalid_client', /algorithm "RS256" is not accepted/);
    });

    it('when the assertion is HS256, keyed with the client\'s public key, then 401 invalid_client', async () => {
      const now = Math.floor(Date.now() / 1000);
      const hmac = createSigner({ key: JSON.stringify(client.key.publicJwk), algorithm: 'HS256', kid: client.key.kid })({
        iss: client.clientId,
        sub: client.clientId,
        aud: TOKEN_URL,
        exp: now + 60,
        jti: randomUUID(),
      });
      expectOAuthError(await askToken(hmac), 401, 'invalid_client', /algorithm "HS256" is not accepted/);
    });

    it('when the assertion is unsigned (alg none), then 401 invalid_client', async () => {
      const now = Math.floor(Date.now() / 1000);
      const unsigned = `${b64({ alg: 'none', kid: client.key.kid, typ: 'JWT' })}.${b64({ iss: client.clientId, sub: client.clientId, aud: TOKEN_URL, exp: now + 60, jti: randomUUID() })}.`;
      expectOAuthError(await askToken(unsigned), 401, 'invalid_client', /algorithm "none" is not accepted/);
    });

    it('when the assertion is signed by another key under the registered kid, then 401 invalid_client', async () => {
      const impostor = { ...aKey(), kid: client.key.kid };
      expectOAuthError(await askToken(anAssertion(impostor, client.clientId)), 401, 'invalid_client', /signature does not verify/);
    });

    it('when the assertion names a kid the client never registered, then 401 invalid_client', async () => {
      expectOAuthError(await askToken(anAssertion(aKey(), client.clientId)), 401, 'invalid_client', /no registered key with kid/);
    });

    it('when a scope is asked for that is not registered for the client, then 400 invalid_scope', async () => {
      expectOAuthError(await askToken(anAssertion(client.key, client.clientId), { scope: 'system/Flag.rs system/Consent.c' }), 400, 'invalid_scope', /system\/Consent\.c/);
    });

    it.each([
      ['has not signed the information sharing agreement', 'NOISA', /has not signed the CMC information sharing agreement/],
      ['holds only Entry Level on the toolkit', 'ENTRY', /does not hold Standards Met/],
    ])('when the client\'s organisation %s, then 400 invalid_grant naming that gate', async (_what, ods, description) => {
      const { clientId, key } = await aClient(ods);
      expectOAuthError(await askToken(anAssertion(key, clientId)), 400, 'invalid_grant', description);
    });

    it('when the grant type is not client_credentials, then 400 unsupported_grant_type', async () => {
      const res = await tokenRequest(form({ grant_type: 'authorization_code' }));
      expectOAuthError({ status: res.statusCode, body: res.json(), headers: res.headers }, 400, 'unsupported_grant_type', /client_credentials/);
    });

    it.each([
      ['JSON', 'application/json'],
      ['plain text', 'text/plain'],
    ])('when the request is %s rather than a form, then 400 invalid_request', async (_what, contentType) => {
      const res = await tokenRequest(JSON.stringify({ grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: anAssertion(client.key, client.clientId) }), contentType);
      expectOAuthError({ status: res.statusCode, body: res.json(), headers: res.headers }, 400, 'invalid_request', /application\/x-www-form-urlencoded/);
    });

    it('when the form has a parameter the endpoint does not know, then 400 invalid_request', async () => {
      const res = await tokenRequest(clientCredentials(anAssertion(client.key, client.clientId), { audience: 'anything' }));
      expectOAuthError({ status: res.statusCode, body: res.json(), headers: res.headers }, 400, 'invalid_request', /unknown parameter audience/);
    });

    it('when a parameter is repeated, then 400 invalid_request', async () => {
      const body = `${clientCredentials(anAssertion(client.key, client.clientId))}&scope=system%2FFlag.rs&scope=system%2FCarePlan.rs`;
      const res = await tokenRequest(body);
      expectOAuthError({ status: res.statusCode, body: res.json(), headers: res.headers }, 400, 'invalid_request', /scope is repeated/);
    });

    it('when the assertion is missing, then 400 invalid_request; when its type is another, then 401 invalid_client', async () => {
      const missing = await tokenRequest(form({ grant_type: 'client_credentials' }));
      expectOAuthError({ status: missing.statusCode, body: missing.json(), headers: missing.headers }, 400, 'invalid_request', /client_assertion/);
      const otherType = await askToken(anAssertion(client.key, client.clientId), { client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:saml2-bearer' });
      expectOAuthError(otherType, 401, 'invalid_client', /client_assertion_type/);
    });

    it('when the token endpoint refuses, then the rest of the service still answers with OperationOutcomes', async () => {
      const res = await id.post('/api/clients', { name: 'x' }, await id.admin());
      expect(res.statusCode).toBe(400);
      expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    });
  });

  describe('registration', () => {
    const register = async (body: Record<string, unknown>, token?: string) =>
      id.post('/api/clients', { name: 'A system', organisation: 'GP1', jwks: { keys: [aKey().publicJwk] }, scopes: ['system/Flag.rs'], ...body }, token ?? (await id.admin()));

    it('when the service team registers, reads and changes a client, then each registration and change is an event', async () => {
      const created = await register({ clientId: undefined, scopes: ['system/Flag.rs'] });
      expect(created.statusCode).toBe(201);
      const { clientId } = created.json<{ clientId: string }>();
      expect(clientId).toMatch(/^[0-9a-f-]{36}$/);
      expect(created.json()).toMatchObject({ organisation: 'GP1', scopes: ['system/Flag.rs'], active: true, jwksUrl: null });
      // Only the public members of the key are kept.
      expect(created.json<{ jwks: { keys: Jwk[] } }>().jwks.keys[0]).toEqual(expect.objectContaining({ kty: 'EC', crv: 'P-384', alg: 'ES384', use: 'sig' }));

      const changed = await id.patch(`/api/clients/${clientId}`, { name: 'Renamed', scopes: ['system/Flag.rs', 'system/AuditEvent.c'] }, await id.admin());
      expect(changed.statusCode).toBe(200);
      expect((await id.get(`/api/clients/${clientId}`, await id.admin())).json()).toMatchObject({ name: 'Renamed', scopes: ['system/Flag.rs', 'system/AuditEvent.c'] });
      expect((await id.get('/api/clients', await id.admin())).json<{ clientId: string }[]>().map((c) => c.clientId)).toContain(clientId);
      const events = (await id.events<{ clientId: string; scopes: string[] }>('cmc.identity.client-registered.v1')).filter((e) => e.clientId === clientId);
      expect(events).toEqual([
        { clientId, organisation: 'GP1', scopes: ['system/Flag.rs'] },
        { clientId, organisation: 'GP1', scopes: ['system/Flag.rs', 'system/AuditEvent.c'] },
      ]);
    });

    it('when a jwks holds a private key, then 400 and nothing is registered', async () => {
      const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-384' });
      const clientId = `leaky-${randomUUID().slice(0, 8)}`;
      const res = await register({ clientId, jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'k1' }] } });
      expect(res.statusCode).toBe(400);
      expect(diagnostics(res.body)).toMatch(/private key material \(d\)/);
      expect((await id.get(`/api/clients/${clientId}`, await id.admin())).statusCode).toBe(404);
    });

    it.each([
      ['a symmetric key', { kty: 'oct', kid: 'k1', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ' }, /symmetric/],
      ['an EC key on P-256 (ES384 needs P-384)', { ...(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }) as Jwk), kid: 'k1' }, /curve "P-256"/],
      ['a key for encryption', { ...aKey().publicJwk, use: 'enc' }, /not for signatures/],
    ])('when a jwks holds %s, then 400', async (_what, key, message) => {
      const res = await register({ jwks: { keys: [key] } });
      expect(res.statusCode).toBe(400);
      expect(diagnostics(res.body)).toMatch(message);
    });

    it.each([
      ['a resource we do not serve', 'system/Patient.rs'],
      ['a user scope', 'user/Flag.rs'],
      ['no permissions', 'system/Flag.'],
      ['permissions out of order', 'system/Flag.sr'],
      ['a SMART v1 scope', 'system/Flag.read'],
    ])('when a scope names %s, then 400', async (_what, scope) => {
      const res = await register({ scopes: ['system/Flag.rs', scope] });
      expect(res.statusCode).toBe(400);
      expect(diagnostics(res.body)).toMatch(/is not a SMART v2 system scope/);
    });

    it('when the organisation is not registered, then 422', async () => {
      const res = await register({ organisation: 'NOSUCH' });
      expect(res.statusCode).toBe(422);
      expect(diagnostics(res.body)).toMatch(/organisation NOSUCH is not registered/);
    });

    it('when the body has a field the API does not know, then 400', async () => {
      const res = await register({ secret: 'x' });
      expect(res.statusCode).toBe(400);
      expect(diagnostics(res.body)).toMatch(/unknown element/);
    });

    it('when keys are given both inline and by URL, or the URL is plain http to another host, then 400', async () => {
      expect((await register({ jwksUrl: 'https://gp.example/jwks.json' })).statusCode).toBe(400);
      const http = await register({ jwks: undefined, jwksUrl: 'http://gp.example/jwks.json' });
      expect(http.statusCode).toBe(400);
      expect(diagnostics(http.body)).toMatch(/must use https/);
    });

    it('when the client id is taken, then 409', async () => {
      const clientId = `taken-${randomUUID().slice(0, 8)}`;
      expect((await register({ clientId })).statusCode).toBe(201);
      expect((await register({ clientId })).statusCode).toBe(409);
    });

    it('when someone outside the service team registers a client, then 403', async () => {
      await id.aStaffMember({ email: 'clinician@gp1.test', organisation: 'GP1' });
      const { access_token } = await id.loginFully('clinician@gp1.test', 'Temporary-Passw0rd');
      expect((await register({}, access_token)).statusCode).toBe(403);
    });
  });
});
