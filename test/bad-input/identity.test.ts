/**
 * Bad input to every write route of the identity service (see sweep.ts): its own tokens (the bootstrap admin's,
 * a clinician's, people half-way through their first login), reset and invitation links from its outbox,
 * devices, and a system client whose signed assertion gets a token. The token endpoint answers in OAuth's error
 * format (RFC 6749 §5.2), as SMART Backend Services asks, not in FHIR's.
 */
import type { Jwk } from '@cmc/auth';
import { randomNhsNumber, waitFor } from '@cmc/test-support';
import type { Kysely } from '@cmc/db';
import { generateKeyPairSync, randomBytes, randomUUID, sign, type KeyObject } from 'node:crypto';
import { startIdentity, type TokenPair } from '../../services/identity/test/support';
import { sweepSuite, type InjectResponse, type Prepared, type RouteSpec } from './sweep';

const PUBLIC_URL = 'https://cmc.test';
const PASSWORD = 'Temporary-Passw0rd';
const ASSERTION_TYPE = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const today = () => new Date().toISOString().slice(0, 10);
const ods = () => `B${randomBytes(3).toString('hex').toUpperCase()}`;
const email = (who: string) => `${who}-${randomUUID().slice(0, 8)}@bad-input.test`;

interface Key {
  privateKey: KeyObject;
  publicJwk: Jwk;
}
const aKey = (curve: 'P-256' | 'P-384'): Key => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: curve });
  return { privateKey, publicJwk: publicKey.export({ format: 'jwk' }) };
};
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
/** A signed JWT (JWS, ECDSA) as clients and devices make them: iss and sub themselves, aud the endpoint, a new jti. */
const assertion = (key: Key, alg: 'ES256' | 'ES384', kid: string, subject: string, audience: string) => {
  const now = Math.floor(Date.now() / 1000);
  const input = `${b64({ alg, typ: 'JWT', kid })}.${b64({ iss: subject, sub: subject, aud: audience, exp: now + 240, jti: randomUUID() })}`;
  const signature = sign(alg === 'ES384' ? 'sha384' : 'sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
  return `${input}.${signature.toString('base64url')}`;
};

sweepSuite('identity', async () => {
  const id = await startIdentity({ IDENTITY_PUBLIC_URL: PUBLIC_URL });
  const auth = (token: string) => ({ authorization: `Bearer ${token}` });
  const admin = await id.admin();
  const org = ods();
  const outside = ods();
  for (const [code, extra] of [[org, {}], [outside, { outsideSecureNetwork: true }]] as const) {
    const res = await id.anOrganisation(code, extra);
    if (res.statusCode !== 201) throw new Error(`registering ${code} answered ${res.statusCode}: ${res.body}`);
  }
  const ok = async (res: Promise<InjectResponse>, what: string) => {
    const r = await res;
    if (r.statusCode >= 300) throw new Error(`${what} answered ${r.statusCode}: ${r.body}`);
    return r;
  };
  /** A member of staff, their id and email (temporary password not yet changed). */
  const aPerson = async (role = 'clinician') => {
    const address = email(role);
    return { userId: await id.aStaffMember({ email: address, organisation: org, role }), email: address };
  };
  const loggedIn = async (role = 'clinician'): Promise<TokenPair> => {
    const p = await aPerson(role);
    return id.loginFully(p.email, PASSWORD);
  };
  const clinician = (await loggedIn()).access_token;
  const linkToken = (url: string) => new URL(url).hash.replace('#token=', '');
  const aDevice = async () => (await ok(id.post(`/api/organisations/${outside}/devices`, { label: `Device ${randomUUID().slice(0, 8)}` }, admin), 'registering a device')).json<{ id: string; enrolmentCode: string }>();

  const json = (url: string, body: unknown, expect: number, token?: string): Prepared => ({ url, body, expect, ...(token ? { headers: auth(token) } : {}) });

  const specs: Record<string, RouteSpec> = {
    'POST /auth/login': {
      body: 'json',
      prepare: async () => {
        const p = await aPerson();
        return json('/auth/login', { email: p.email, password: PASSWORD }, 200);
      },
    },
    'POST /auth/refresh': { body: 'json', prepare: async () => json('/auth/refresh', { refreshToken: (await id.loginFully(...(await personWithPassword()))).refresh_token }, 200) },
    'POST /auth/logout': { body: 'json', prepare: async () => json('/auth/logout', { refreshToken: (await id.loginFully(...(await personWithPassword()))).refresh_token }, 204) },
    'POST /auth/change-password': {
      body: 'json',
      prepare: async () => {
        const p = await aPerson();
        const pending = (await ok(id.post('/auth/login', { email: p.email, password: PASSWORD }), 'logging in')).json<TokenPair>();
        return json('/auth/change-password', { currentPassword: PASSWORD, newPassword: 'Chosen-Passw0rd-1' }, 200, pending.access_token);
      },
    },
    'POST /auth/accept-aup': {
      body: 'json',
      prepare: async () => {
        const p = await aPerson();
        const pending = (await ok(id.post('/auth/login', { email: p.email, password: PASSWORD }), 'logging in')).json<TokenPair>();
        const changed = (await ok(id.post('/auth/change-password', { currentPassword: PASSWORD, newPassword: 'Chosen-Passw0rd-1' }, pending.access_token), 'changing the password')).json<TokenPair>();
        return json('/auth/accept-aup', { version: '2026-11' }, 200, changed.access_token);
      },
    },
    'POST /auth/password-reset': { body: 'json', prepare: async () => json('/auth/password-reset', { email: (await aPerson()).email }, 202) },
    'POST /auth/password-reset/complete': {
      body: 'json',
      prepare: async () => {
        const p = await aPerson();
        await ok(id.post('/auth/password-reset', { email: p.email }), 'asking for a reset');
        const link = await waitFor(async () => (await id.events<{ userId: string; resetUrl: string }>('cmc.identity.password-reset-requested.v1')).find((e) => e.userId === p.userId), 10_000, 'the reset link');
        return json('/auth/password-reset/complete', { token: linkToken(link.resetUrl), newPassword: 'Reset-Passw0rd-1' }, 204);
      },
    },
    'POST /auth/invitations/accept': {
      body: 'json',
      prepare: async () => {
        const nhsNumber = randomNhsNumber();
        await ok(id.post('/api/invitations', { email: email('patient'), name: 'A Patient', role: 'patient', nhsNumber }, clinician), 'inviting a patient');
        const invitation = await waitFor(async () => (await id.events<{ acceptUrl: string; nhsNumber: string }>('cmc.identity.invitation-created.v1')).find((e) => e.nhsNumber === nhsNumber), 10_000, 'the invitation');
        return json('/auth/invitations/accept', { token: linkToken(invitation.acceptUrl), password: 'Patient-Passw0rd-1' }, 204);
      },
    },
    'POST /api/organisations': {
      body: 'json',
      prepare: async () =>
        json('/api/organisations', { odsCode: ods(), name: 'Riverside Hospice', type: 'hospice', isaSignedOn: today(), dsptStatus: 'standards-met', dsptAssessedOn: today(), outsideSecureNetwork: false }, 201, admin),
    },
    'PATCH /api/organisations/{ods}': {
      body: 'json',
      prepare: async () => json(`/api/organisations/${org}`, { name: 'Sunrise Care Home', dsptStatus: 'standards-exceeded', dsptAssessedOn: today() }, 200, admin),
    },
    'POST /api/users': {
      body: 'json',
      prepare: async () =>
        json('/api/users', { email: email('nurse'), name: 'A Nurse', organisation: org, role: 'clinician', registration: { body: 'NMC', number: '12A3456B' }, trainedOn: today(), temporaryPassword: PASSWORD }, 201, admin),
    },
    'PATCH /api/users/{id}': {
      body: 'json',
      prepare: async () => json(`/api/users/${(await aPerson()).userId}`, { name: 'A Renamed Nurse', trainedOn: today(), registration: { body: 'GMC', number: '7654321' } }, 200, admin),
    },
    'POST /api/users/{id}/deactivate': { body: 'none', prepare: async () => ({ url: `/api/users/${(await aPerson()).userId}/deactivate`, headers: auth(admin), expect: 200 }) },
    'POST /api/users/{id}/unlock': { body: 'none', prepare: async () => ({ url: `/api/users/${(await aPerson()).userId}/unlock`, headers: auth(admin), expect: 200 }) },
    'POST /api/users/{id}/password': { body: 'json', prepare: async () => json(`/api/users/${(await aPerson()).userId}/password`, { temporaryPassword: 'Another-Temp-Passw0rd' }, 204, admin) },
    'POST /api/invitations': {
      body: 'json',
      prepare: async () => json('/api/invitations', { email: email('proxy'), name: 'A Proxy', role: 'proxy', nhsNumber: randomNhsNumber(), relationship: 'Daughter' }, 201, clinician),
    },
    'POST /api/admin/keys/rotate': { body: 'none', prepare: async () => ({ url: '/api/admin/keys/rotate', headers: auth(admin), expect: 200 }) },
    'POST /api/clients': {
      body: 'json',
      // A JWK may carry members nobody knows (RFC 7517 §4): not bad input.
      open: ['jwks.keys[0]'],
      prepare: async () => {
        const kid = randomUUID();
        return json('/api/clients', { clientId: `gp-${randomUUID().slice(0, 8)}`, name: 'GP system', organisation: org, jwks: { keys: [{ ...aKey('P-384').publicJwk, kid }] }, scopes: ['system/Flag.rs', 'system/CarePlan.rs'] }, 201, admin);
      },
    },
    'PATCH /api/clients/{clientId}': {
      body: 'json',
      open: ['jwks.keys[0]'],
      prepare: async () => {
        const clientId = `gp-${randomUUID().slice(0, 8)}`;
        await ok(id.post('/api/clients', { clientId, name: 'GP system', organisation: org, jwks: { keys: [{ ...aKey('P-384').publicJwk, kid: randomUUID() }] }, scopes: ['system/Flag.rs'] }, admin), 'registering a client');
        return json(`/api/clients/${clientId}`, { name: 'GP system, renamed', scopes: ['system/Flag.rs', 'system/CarePlan.rs'], jwks: { keys: [{ ...aKey('P-384').publicJwk, kid: randomUUID() }] }, active: true }, 200, admin);
      },
    },
    'POST /auth/token': {
      body: 'form',
      errors: 'oauth',
      prepare: async () => {
        const clientId = `gp-${randomUUID().slice(0, 8)}`;
        const key = aKey('P-384');
        const kid = randomUUID();
        await ok(id.post('/api/clients', { clientId, name: 'GP system', organisation: org, jwks: { keys: [{ ...key.publicJwk, kid }] }, scopes: ['system/Flag.rs'] }, admin), 'registering a client');
        const request = (): Prepared => ({
          url: '/auth/token',
          body: { grant_type: 'client_credentials', client_assertion_type: ASSERTION_TYPE, client_assertion: assertion(key, 'ES384', kid, clientId, `${PUBLIC_URL}/auth/token`), scope: 'system/Flag.rs' },
          expect: 200,
        });
        // A used assertion cannot be used again (its jti): the last, valid request gets a new one.
        return { ...request(), again: async () => request() };
      },
    },
    'POST /api/organisations/{ods}/devices': { body: 'json', prepare: async () => json(`/api/organisations/${outside}/devices`, { label: `Ward ${randomUUID().slice(0, 8)} tablet` }, 201, admin) },
    'POST /api/devices/{id}/revoke': { body: 'none', prepare: async () => ({ url: `/api/devices/${(await aDevice()).id}/revoke`, headers: auth(admin), expect: 200 }) },
    'POST /api/devices/{id}/enrolment-code': { body: 'none', prepare: async () => ({ url: `/api/devices/${(await aDevice()).id}/enrolment-code`, headers: auth(admin), expect: 201 }) },
    'POST /auth/devices/enrol': {
      body: 'json',
      open: ['publicJwk'],
      prepare: async () => json('/auth/devices/enrol', { enrolmentCode: (await aDevice()).enrolmentCode, publicJwk: aKey('P-256').publicJwk }, 200),
    },
    'POST /auth/devices/renew': {
      body: 'json',
      open: ['newPublicJwk'],
      prepare: async () => {
        const device = await aDevice();
        const key = aKey('P-256');
        await ok(id.post('/auth/devices/enrol', { enrolmentCode: device.enrolmentCode, publicJwk: key.publicJwk }), 'enrolling a device');
        const request = (): Prepared => json('/auth/devices/renew', { deviceAssertion: assertion(key, 'ES256', device.id, device.id, `${PUBLIC_URL}/auth/devices/renew`), newPublicJwk: aKey('P-256').publicJwk }, 200);
        return { ...request(), again: async () => request() };
      },
    },
  };

  /** Someone who has done the first-login steps: [email, password] that log in fully. */
  async function personWithPassword(): Promise<[string, string]> {
    const p = await aPerson();
    await id.loginFully(p.email, PASSWORD, 'Chosen-Passw0rd-1');
    return [p.email, 'Chosen-Passw0rd-1'];
  }

  return {
    app: id.svc.app,
    db: id.svc.database.db as unknown as Kysely<unknown>,
    schema: id.svc.database.schema,
    specs,
    close: () => id.close(),
  };
});
