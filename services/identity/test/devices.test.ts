import type { Jwk } from '@cmc/auth';
import { createSigner } from 'fast-jwt';
import type { OperationOutcome } from 'fhir/r4';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { startIdentity, type IdentityHarness, type TokenPair } from './support';

const PUBLIC_URL = 'https://cmc.test';
const LOGIN_URL = `${PUBLIC_URL}/auth/login`;
const RENEW_URL = `${PUBLIC_URL}/auth/devices/renew`;
const PASSWORD = 'Temporary-Passw0rd';
const DAY = 86_400_000;

interface DeviceKey {
  privateKey: KeyObject;
  publicJwk: Jwk;
  alg: 'ES256' | 'ES384' | 'RS256';
}

/** A key pair made now, as the device makes its own. */
function aDeviceKey(kind: 'P-256' | 'P-384' | 'RSA' = 'P-256'): DeviceKey {
  const { privateKey, publicKey } = kind === 'RSA' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: kind });
  return { privateKey, publicJwk: publicKey.export({ format: 'jwk' }), alg: kind === 'RSA' ? 'RS256' : kind === 'P-384' ? 'ES384' : 'ES256' };
}

/** The device's proof: a short JWT signed with its key, kid and iss and sub its id. */
function anAssertion(deviceId: string, key: DeviceKey, audience = LOGIN_URL, claims: Record<string, unknown> = {}): string {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: deviceId, sub: deviceId, aud: audience, exp: now + 120, jti: randomUUID(), ...claims };
  return createSigner({ key: key.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: key.alg, kid: deviceId, noTimestamp: true })(payload);
}

const diagnostics = (body: string) => (JSON.parse(body) as OperationOutcome).issue.map((i) => i.diagnostics).join(' | ');
const daysFromNow = (iso: string) => (new Date(iso).getTime() - Date.now()) / DAY;

describe('registered devices of organisations outside the secure network', () => {
  let id: IdentityHarness;

  beforeAll(async () => {
    id = await startIdentity({ IDENTITY_PUBLIC_URL: PUBLIC_URL });
    expect((await id.anOrganisation('OUT1', { outsideSecureNetwork: true })).statusCode).toBe(201);
    expect((await id.anOrganisation('OUT2', { outsideSecureNetwork: true })).statusCode).toBe(201);
    expect((await id.anOrganisation('IN1')).statusCode).toBe(201);
  });

  afterAll(async () => {
    await id?.close();
  });

  const register = async (ods: string, label = `Device ${randomUUID().slice(0, 8)}`) => {
    const res = await id.post(`/api/organisations/${ods}/devices`, { label }, await id.admin());
    if (res.statusCode !== 201) throw new Error(`registering a device answered ${res.statusCode}: ${res.body}`);
    return res.json<{ id: string; label: string; enrolmentCode: string; enrolmentExpiresAt: string }>();
  };
  const enrol = (enrolmentCode: string, publicJwk: Jwk) => id.post('/auth/devices/enrol', { enrolmentCode, publicJwk });
  /** A device of `ods`, registered and enrolled with a key of its own. */
  const anEnrolledDevice = async (ods: string, kind: 'P-256' | 'P-384' | 'RSA' = 'P-256') => {
    const device = await register(ods);
    const key = aDeviceKey(kind);
    const res = await enrol(device.enrolmentCode, key.publicJwk);
    if (res.statusCode !== 200) throw new Error(`enrolling answered ${res.statusCode}: ${res.body}`);
    return { id: device.id, key };
  };
  /** A member of staff of `ods` (temporary password, first-login steps still to do). */
  const aPerson = async (ods: string) => {
    const email = `${randomUUID().slice(0, 8)}@${ods.toLowerCase()}.test`;
    await id.aStaffMember({ email, organisation: ods });
    return email;
  };
  const login = (email: string, deviceAssertion?: string) => id.post('/auth/login', { email, password: PASSWORD, ...(deviceAssertion ? { deviceAssertion } : {}) });
  const setDevice = (deviceId: string, values: { credential_expires_at?: Date; enrolment_expires_at?: Date }) =>
    id.svc.database.db.updateTable('devices').set(values).where('id', '=', deviceId).execute();

  it('when a device is registered, enrolled with its own key and proves itself, then a person of its organisation logs in from it', async () => {
    const device = await register('OUT1', 'Reception PC');
    expect(device.enrolmentCode).toMatch(/^enrol_/);
    expect(daysFromNow(device.enrolmentExpiresAt)).toBeGreaterThan(0.9);
    expect(daysFromNow(device.enrolmentExpiresAt)).toBeLessThanOrEqual(1);

    const key = aDeviceKey();
    const enrolled = await enrol(device.enrolmentCode, key.publicJwk);
    expect(enrolled.statusCode).toBe(200);
    const credential = enrolled.json<{ deviceId: string; credentialExpiresAt: string }>();
    expect(credential.deviceId).toBe(device.id);
    // Nine calendar months: between 272 and 276 days, whatever the months.
    expect(daysFromNow(credential.credentialExpiresAt)).toBeGreaterThan(271);
    expect(daysFromNow(credential.credentialExpiresAt)).toBeLessThan(277);

    const email = await aPerson('OUT1');
    const res = await login(email, anAssertion(device.id, key));
    expect(res.statusCode).toBe(200);
    const pair = res.json<TokenPair>();
    expect(pair.pending).toBe('password');
    expect(await id.events('cmc.identity.login-succeeded.v1')).toEqual(expect.arrayContaining([expect.objectContaining({ organisation: 'OUT1', deviceId: device.id })]));
    // The login is bound to the device: its refresh tokens say so.
    const session = await id.svc.database.db.selectFrom('refresh_tokens').select('device_id').where('device_id', '=', device.id).executeTakeFirst();
    expect(session?.device_id).toBe(device.id);

    const listed = await id.get('/api/organisations/OUT1/devices', await id.admin());
    expect(listed.statusCode).toBe(200);
    const row = listed.json<Record<string, unknown>[]>().find((d) => d.id === device.id);
    expect(row).toMatchObject({ label: 'Reception PC', organisation: 'OUT1', status: 'enrolled', enrolmentExpiresAt: null, credentialExpiresAt: credential.credentialExpiresAt, revokedAt: null });
    expect(JSON.stringify(listed.json())).not.toMatch(/enrolmentCode|enrol_|public|"x"/);
  });

  it('when a person of an organisation outside the secure network logs in without a device assertion, then 403 saying a registered device is needed', async () => {
    const res = await login(await aPerson('OUT1'));
    expect(res.statusCode).toBe(403);
    expect(diagnostics(res.body)).toMatch(/outside the secure network: a login must come from a registered device/);
  });

  it('when a device refuses a login, then a login-failed event says so, like any other failed login', async () => {
    const before = (await id.events<{ reason: string }>('cmc.identity.login-failed.v1')).filter((e) => e.reason === 'device').length;
    expect((await login(await aPerson('OUT1'))).statusCode).toBe(403);
    const after = (await id.events<{ reason: string }>('cmc.identity.login-failed.v1')).filter((e) => e.reason === 'device').length;
    expect(after).toBe(before + 1);
  });

  it('when a first login from a device goes through its steps and the device is then revoked, then that login ends', async () => {
    const device = await anEnrolledDevice('OUT1');
    const email = await aPerson('OUT1');
    const first = (await login(email, anAssertion(device.id, device.key))).json<TokenPair>();
    const changed = (await id.post('/auth/change-password', { currentPassword: PASSWORD, newPassword: 'Chosen-Passw0rd' }, first.access_token)).json<TokenPair>();
    const accepted = (await id.post('/auth/accept-aup', { version: '2026-11' }, changed.access_token)).json<TokenPair>();
    expect(accepted.pending).toBeUndefined();
    expect((await id.post(`/api/devices/${device.id}/revoke`, {}, await id.admin())).statusCode).toBe(200);
    expect((await id.post('/auth/refresh', { refreshToken: accepted.refresh_token })).statusCode).toBe(401);
  });

  it('when the device credential expires during a login, then the next refresh is refused and the login ends', async () => {
    const device = await anEnrolledDevice('OUT1');
    const tokens = (await login(await aPerson('OUT1'), anAssertion(device.id, device.key))).json<TokenPair>();
    await setDevice(device.id, { credential_expires_at: new Date(Date.now() - 1000) });
    const refreshed = await id.post('/auth/refresh', { refreshToken: tokens.refresh_token });
    expect(refreshed.statusCode).toBe(403);
    expect(diagnostics(refreshed.body)).toMatch(/credential has expired/);
  });

  it('when an organisation inside the secure network logs in, then no device is needed', async () => {
    const res = await login(await aPerson('IN1'));
    expect(res.statusCode).toBe(200);
  });

  it('when the device belongs to another organisation, then 403 naming that', async () => {
    const device = await anEnrolledDevice('OUT2');
    const res = await login(await aPerson('OUT1'), anAssertion(device.id, device.key));
    expect(res.statusCode).toBe(403);
    expect(diagnostics(res.body)).toMatch(/registered to another organisation/);
  });

  it('when the device is not registered, or registered but never enrolled, then 403', async () => {
    const unknown = await login(await aPerson('OUT1'), anAssertion(randomUUID(), aDeviceKey()));
    expect(unknown.statusCode).toBe(403);
    expect(diagnostics(unknown.body)).toMatch(/device is not registered/);
    const pending = await register('OUT1');
    const notEnrolled = await login(await aPerson('OUT1'), anAssertion(pending.id, aDeviceKey()));
    expect(notEnrolled.statusCode).toBe(403);
    expect(diagnostics(notEnrolled.body)).toMatch(/not been enrolled/);
  });

  it('when the service team revokes a device, then it logs no one in and the logins made from it end', async () => {
    const device = await anEnrolledDevice('OUT1');
    const email = await aPerson('OUT1');
    const before = await login(email, anAssertion(device.id, device.key));
    expect(before.statusCode).toBe(200);

    const revoked = await id.post(`/api/devices/${device.id}/revoke`, {}, await id.admin());
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ id: device.id, status: 'revoked' });

    const after = await login(email, anAssertion(device.id, device.key));
    expect(after.statusCode).toBe(403);
    expect(diagnostics(after.body)).toMatch(/this device has been revoked/);
    const refreshed = await id.post('/auth/refresh', { refreshToken: before.json<TokenPair>().refresh_token });
    expect(refreshed.statusCode).toBe(401);
    expect((await id.post(`/api/devices/${device.id}/enrolment-code`, {}, await id.admin())).statusCode).toBe(409);
  });

  it('when the device credential has expired, then 403, it cannot be renewed, and a new enrolment code lets it enrol again', async () => {
    const device = await anEnrolledDevice('OUT1');
    await setDevice(device.id, { credential_expires_at: new Date(Date.now() - DAY) });
    const email = await aPerson('OUT1');

    const refused = await login(email, anAssertion(device.id, device.key));
    expect(refused.statusCode).toBe(403);
    expect(diagnostics(refused.body)).toMatch(/credential expired on .*must be enrolled again/);
    const renewal = await id.post('/auth/devices/renew', { deviceAssertion: anAssertion(device.id, device.key, RENEW_URL) });
    expect(renewal.statusCode).toBe(403);
    expect(diagnostics(renewal.body)).toMatch(/credential expired/);
    const listed = (await id.get('/api/organisations/OUT1/devices', await id.admin())).json<{ id: string; status: string }[]>();
    expect(listed.find((d) => d.id === device.id)?.status).toBe('expired');

    const code = await id.post(`/api/devices/${device.id}/enrolment-code`, {}, await id.admin());
    expect(code.statusCode).toBe(201);
    const newKey = aDeviceKey('P-384');
    expect((await enrol(code.json<{ enrolmentCode: string }>().enrolmentCode, newKey.publicJwk)).statusCode).toBe(200);
    expect((await login(email, anAssertion(device.id, newKey))).statusCode).toBe(200);
  });

  it('when a device assertion is used twice, then the second login is refused with 403', async () => {
    const device = await anEnrolledDevice('OUT1');
    const email = await aPerson('OUT1');
    const assertion = anAssertion(device.id, device.key);
    expect((await login(email, assertion)).statusCode).toBe(200);
    const again = await login(email, assertion);
    expect(again.statusCode).toBe(403);
    expect(diagnostics(again.body)).toMatch(/used before/);
  });

  it.each([
    ['signed by another key', (d: { id: string; key: DeviceKey }) => anAssertion(d.id, aDeviceKey()), /signature does not verify/],
    ['made for another endpoint', (d: { id: string; key: DeviceKey }) => anAssertion(d.id, d.key, RENEW_URL), /audience/],
    ['valid for more than 5 minutes', (d: { id: string; key: DeviceKey }) => anAssertion(d.id, d.key, LOGIN_URL, { exp: Math.floor(Date.now() / 1000) + 3600 }), /more than 5 minutes ahead/],
    ['expired', (d: { id: string; key: DeviceKey }) => anAssertion(d.id, d.key, LOGIN_URL, { exp: Math.floor(Date.now() / 1000) - 120 }), /expired/],
    ['without a jti', (d: { id: string; key: DeviceKey }) => anAssertion(d.id, d.key, LOGIN_URL, { jti: undefined }), /no jti/],
    ['issued in another device\'s name', (d: { id: string; key: DeviceKey }) => anAssertion(d.id, d.key, LOGIN_URL, { iss: randomUUID() }), /iss and sub/],
  ])('when the device assertion is %s, then 403 saying why', async (_what, make, message) => {
    const device = await anEnrolledDevice('OUT1');
    const res = await login(await aPerson('OUT1'), make(device));
    expect(res.statusCode).toBe(403);
    expect(diagnostics(res.body)).toMatch(message);
  });

  it('when the device assertion is HS256 or unsigned, then 403 before any key is looked at', async () => {
    const device = await anEnrolledDevice('OUT1');
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: device.id, sub: device.id, aud: LOGIN_URL, exp: now + 60, jti: randomUUID() };
    const hmac = createSigner({ key: JSON.stringify(device.key.publicJwk), algorithm: 'HS256', kid: device.id })(claims);
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const unsigned = `${b64({ alg: 'none', kid: device.id })}.${b64(claims)}.`;
    for (const assertion of [hmac, unsigned]) {
      const res = await login(await aPerson('OUT1'), assertion);
      expect(res.statusCode).toBe(403);
      expect(diagnostics(res.body)).toMatch(/algorithm .* is not accepted/);
    }
  });

  it('when a device renews before expiry, then its credential runs 9 months from now, and a new key replaces the old one', async () => {
    const device = await anEnrolledDevice('OUT1', 'RSA');
    await setDevice(device.id, { credential_expires_at: new Date(Date.now() + 10 * DAY) });
    const newKey = aDeviceKey();
    const renewed = await id.post('/auth/devices/renew', { deviceAssertion: anAssertion(device.id, device.key, RENEW_URL), newPublicJwk: newKey.publicJwk });
    expect(renewed.statusCode).toBe(200);
    const credential = renewed.json<{ deviceId: string; credentialExpiresAt: string }>();
    expect(credential.deviceId).toBe(device.id);
    expect(daysFromNow(credential.credentialExpiresAt)).toBeGreaterThan(271);

    const email = await aPerson('OUT1');
    const oldKey = await login(email, anAssertion(device.id, device.key));
    expect(oldKey.statusCode).toBe(403);
    expect(diagnostics(oldKey.body)).toMatch(/does not fit the registered key/);
    expect((await login(email, anAssertion(device.id, newKey))).statusCode).toBe(200);
    // A login assertion is not a renewal.
    const wrongAudience = await id.post('/auth/devices/renew', { deviceAssertion: anAssertion(device.id, newKey) });
    expect(wrongAudience.statusCode).toBe(403);
  });

  it('when an enrolment code is used a second time, or after its 24 hours, then 400 and the device keeps its key', async () => {
    const device = await register('OUT1');
    const key = aDeviceKey();
    expect((await enrol(device.enrolmentCode, key.publicJwk)).statusCode).toBe(200);
    const again = await enrol(device.enrolmentCode, aDeviceKey().publicJwk);
    expect(again.statusCode).toBe(400);
    expect(diagnostics(again.body)).toMatch(/enrolment code is not valid/);
    expect((await login(await aPerson('OUT1'), anAssertion(device.id, key))).statusCode).toBe(200);

    const late = await register('OUT1');
    await setDevice(late.id, { enrolment_expires_at: new Date(Date.now() - 1000) });
    expect((await enrol(late.enrolmentCode, aDeviceKey().publicJwk)).statusCode).toBe(400);
  });

  it.each([
    ['a private key', () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }), /private key material/],
    ['a symmetric key', () => ({ kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQ' }), /symmetric/],
    ['an RSA key of 1024 bits', () => generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' }), /fewer than 2048 bits/],
    ['an EC key on P-521', () => generateKeyPairSync('ec', { namedCurve: 'P-521' }).publicKey.export({ format: 'jwk' }), /curve "P-521"/],
  ])('when a device enrols %s, then 400 and the code stays usable', async (_what, jwk, message) => {
    const device = await register('OUT1');
    const res = await enrol(device.enrolmentCode, jwk());
    expect(res.statusCode).toBe(400);
    expect(diagnostics(res.body)).toMatch(message);
    expect((await enrol(device.enrolmentCode, aDeviceKey().publicJwk)).statusCode).toBe(200);
  });

  it('when a label is taken, the organisation unknown, or the caller not the service team, then 409, 404 and 403', async () => {
    const device = await register('OUT1');
    expect((await id.post('/api/organisations/OUT1/devices', { label: device.label }, await id.admin())).statusCode).toBe(409);
    expect((await id.post('/api/organisations/NOSUCH/devices', { label: 'x' }, await id.admin())).statusCode).toBe(404);
    expect((await id.get('/api/organisations/NOSUCH/devices', await id.admin())).statusCode).toBe(404);
    expect((await id.post(`/api/devices/${randomUUID()}/revoke`, {}, await id.admin())).statusCode).toBe(404);
    expect((await id.post('/api/organisations/OUT1/devices', { label: 'y', extra: true }, await id.admin())).statusCode).toBe(400);

    await id.aStaffMember({ email: 'clinician@in1.test', organisation: 'IN1' });
    const { access_token } = await id.loginFully('clinician@in1.test', PASSWORD);
    expect((await id.post('/api/organisations/IN1/devices', { label: 'mine' }, access_token)).statusCode).toBe(403);
    expect((await id.get('/api/organisations/OUT1/devices', access_token)).statusCode).toBe(403);
  });
});
