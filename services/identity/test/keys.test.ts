import type { Jwk } from '@cmc/auth';
import { consentService } from '@cmc/consent-service';
import { TestIssuer, aConsent, randomNhsNumber, startTestService } from '@cmc/test-support';
import { startIdentity, type IdentityHarness, type TokenPair } from './support';

const kidOf = (jwt: string) => (JSON.parse(Buffer.from(jwt.split('.')[0]!, 'base64url').toString('utf8')) as { kid: string; alg: string }).kid;

describe('signing keys and discovery', () => {
  let id: IdentityHarness;

  beforeAll(async () => {
    // Keys sign as soon as they are published here; the delay a real rotation waits is tested below.
    id = await startIdentity({ IDENTITY_KEY_ACTIVATION_SECONDS: '0' });
    await id.anOrganisation('KK1');
  });

  afterAll(async () => {
    await id?.close();
  });

  const jwks = async () => (await id.get('/.well-known/jwks.json')).json<{ keys: Jwk[] }>().keys;

  it('when anyone asks, then the JWKS lists public EC keys with kid and alg, and no private part', async () => {
    const res = await id.get('/.well-known/jwks.json');
    expect(res.statusCode).toBe(200);
    const keys = res.json<{ keys: Jwk[] }>().keys;
    expect(keys.length).toBeGreaterThan(0);
    for (const k of keys) {
      expect(k).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
      expect(k.kid).toBeDefined();
      expect(k.d).toBeUndefined();
    }
  });

  it('when a client discovers SMART, then both the root and the FHIR base name the token endpoint', async () => {
    for (const path of ['/.well-known/smart-configuration', '/fhir/R4/.well-known/smart-configuration']) {
      const res = await id.get(path);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toMatchObject({
        token_endpoint: 'http://127.0.0.1:8080/auth/token',
        token_endpoint_auth_methods_supported: ['private_key_jwt'],
        grant_types_supported: ['client_credentials'],
      });
    }
  });

  it('when the key is rotated, then new tokens carry the new kid and tokens signed before still work', async () => {
    await id.aStaffMember({ email: 'rotation@kk1.test', organisation: 'KK1', role: 'administrator' });
    const before = await id.admin();
    const oldKid = kidOf(before);
    const rotated = await id.post('/api/admin/keys/rotate', {}, before);
    expect(rotated.statusCode).toBe(200);
    const newKid = rotated.json<{ kid: string; activatesAt: string }>().kid;
    expect(newKid).not.toBe(oldKid);
    expect((await jwks()).map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));
    // The token from before the rotation still opens the admin API.
    expect((await id.get('/api/organisations', before)).statusCode).toBe(200);
    const after = await id.post('/auth/login', { email: 'rotation@kk1.test', password: 'Temporary-Passw0rd' });
    expect(kidOf(after.json<TokenPair>().access_token)).toBe(newKid);
  });

  it('when another service is given identity\'s keys, then a person\'s token from identity opens it, as far as their role allows', async () => {
    await id.aStaffMember({ email: 'crossing@kk1.test', organisation: 'KK1' });
    const token = (await id.loginFully('crossing@kk1.test', 'Temporary-Passw0rd')).access_token;
    const consent = await startTestService(consentService, { transport: id.transport, issuer: new TestIssuer(), start: { logger: false, jwks: { keys: await jwks() } } });
    try {
      const created = await consent.app.inject({
        method: 'POST',
        url: '/fhir/R4/Consent',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/fhir+json' },
        payload: aConsent(randomNhsNumber()),
      });
      expect(created.statusCode).toBe(201);
      expect(created.json<{ organization: unknown }>().organization).toEqual([{ identifier: { system: 'https://fhir.nhs.uk/Id/ods-organization-code', value: 'KK1' } }]);
      // A pending token from identity is refused by the other service too.
      await id.aStaffMember({ email: 'pending@kk1.test', organisation: 'KK1' });
      const pending = (await id.post('/auth/login', { email: 'pending@kk1.test', password: 'Temporary-Passw0rd' })).json<TokenPair>().access_token;
      const refused = await consent.app.inject({
        method: 'POST',
        url: '/fhir/R4/Consent',
        headers: { authorization: `Bearer ${pending}`, 'content-type': 'application/fhir+json' },
        payload: aConsent(randomNhsNumber()),
      });
      expect(refused.statusCode).toBe(403);
    } finally {
      await consent.close();
    }
  });
});

describe('key rotation across instances', () => {
  it('when a key is rotated, then it is published at once but signs only after the activation time, so every verifier has it first', async () => {
    const id = await startIdentity({ IDENTITY_KEY_ACTIVATION_SECONDS: '3600' });
    try {
      await id.anOrganisation('KK2');
      const before = await id.admin();
      const rotated = (await id.post('/api/admin/keys/rotate', {}, before)).json<{ kid: string; activatesAt: string }>();
      expect(new Date(rotated.activatesAt).getTime()).toBeGreaterThan(Date.now() + 3500 * 1000);
      const published = (await id.get('/.well-known/jwks.json')).json<{ keys: Jwk[] }>().keys.map((k) => k.kid);
      expect(published).toEqual(expect.arrayContaining([kidOf(before), rotated.kid]));
      await id.aStaffMember({ email: 'signer@kk2.test', organisation: 'KK2' });
      const token = (await id.post('/auth/login', { email: 'signer@kk2.test', password: 'Temporary-Passw0rd' })).json<TokenPair>().access_token;
      expect(kidOf(token)).toBe(kidOf(before));
    } finally {
      await id.close();
    }
  });
});
