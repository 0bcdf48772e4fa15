import type { OperationOutcome } from 'fhir/r4';
import { waitFor } from '@cmc/test-support';
import { ADMIN_EMAIL, ADMIN_PASSWORD, TODAY, startIdentity, type IdentityHarness, type TokenPair } from './support';

const diagnostics = (body: string) => (JSON.parse(body) as OperationOutcome).issue.map((i) => i.diagnostics).join(' | ');
const claimsOf = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

describe('people logging in', () => {
  let id: IdentityHarness;

  beforeAll(async () => {
    id = await startIdentity({ IDENTITY_MAX_FAILED_LOGINS: '3' });
    expect((await id.anOrganisation('AB1')).statusCode).toBe(201);
  });

  afterAll(async () => {
    await id?.close();
  });

  it('when a clinician logs in for the first time, then the token opens nothing until the password is changed and the policy accepted', async () => {
    await id.aStaffMember({ email: 'first@ab1.test', organisation: 'AB1' });
    const first = await id.post('/auth/login', { email: 'First@AB1.test ', password: 'Temporary-Passw0rd' });
    expect(first.statusCode).toBe(200);
    const pair = first.json<TokenPair>();
    expect(pair.pending).toBe('password');
    expect(claimsOf(pair.access_token)).toMatchObject({ cmc_pending: 'password', cmc_role: 'clinician', cmc_org: 'AB1', cmc_reg: 'NMC:12A3456B' });
    // A pending token is refused everywhere else.
    const blocked = await id.get('/api/organisations', pair.access_token);
    expect(blocked.statusCode).toBe(403);
    expect(diagnostics(blocked.body)).toMatch(/change your temporary password first/);
    const aupTooSoon = await id.post('/auth/accept-aup', { version: '2026-11' }, pair.access_token);
    expect(aupTooSoon.statusCode).toBe(403);

    const weak = await id.post('/auth/change-password', { currentPassword: 'Temporary-Passw0rd', newPassword: 'alllowercase' }, pair.access_token);
    expect(weak.statusCode).toBe(400);
    expect(diagnostics(weak.body)).toMatch(/at least 10 characters|upper-case/);

    const changed = await id.post('/auth/change-password', { currentPassword: 'Temporary-Passw0rd', newPassword: 'Chosen-Passw0rd' }, pair.access_token);
    expect(changed.statusCode).toBe(200);
    expect(changed.json<TokenPair>().pending).toBe('aup');
    const oldVersion = await id.post('/auth/accept-aup', { version: '2020-01' }, changed.json<TokenPair>().access_token);
    expect(oldVersion.statusCode).toBe(409);
    const accepted = await id.post('/auth/accept-aup', { version: '2026-11' }, changed.json<TokenPair>().access_token);
    expect(accepted.statusCode).toBe(200);
    const full = accepted.json<TokenPair>();
    expect(full.pending).toBeUndefined();
    expect(claimsOf(full.access_token).cmc_pending).toBeUndefined();
    expect(await id.events('cmc.identity.policy-accepted.v1')).toEqual(expect.arrayContaining([expect.objectContaining({ policyVersion: '2026-11' })]));
    // The temporary password no longer works; the chosen one does, with no step left.
    expect((await id.post('/auth/login', { email: 'first@ab1.test', password: 'Temporary-Passw0rd' })).statusCode).toBe(401);
    const again = await id.post('/auth/login', { email: 'first@ab1.test', password: 'Chosen-Passw0rd' });
    expect(again.json<TokenPair>().pending).toBeUndefined();
  });

  it('when the password is wrong or the email unknown, then the same 401 and a login-failed event', async () => {
    await id.aStaffMember({ email: 'wrong@ab1.test', organisation: 'AB1' });
    const wrong = await id.post('/auth/login', { email: 'wrong@ab1.test', password: 'Not-The-Passw0rd' });
    const unknown = await id.post('/auth/login', { email: 'nobody@ab1.test', password: 'Not-The-Passw0rd' });
    expect([wrong.statusCode, unknown.statusCode]).toEqual([401, 401]);
    expect(diagnostics(wrong.body)).toBe(diagnostics(unknown.body));
    const failed = await id.events<{ reason: string }>('cmc.identity.login-failed.v1');
    expect(failed.map((f) => f.reason)).toEqual(expect.arrayContaining(['wrong-password', 'unknown-email']));
  });

  it('when the password is wrong too many times, then the account is locked for a while, even for the right password, and an event says so', async () => {
    const userId = await id.aStaffMember({ email: 'guessed@ab1.test', organisation: 'AB1' });
    for (let i = 0; i < 3; i++) expect((await id.post('/auth/login', { email: 'guessed@ab1.test', password: `Wrong-Passw0rd${i}` })).statusCode).toBe(401);
    const right = await id.post('/auth/login', { email: 'guessed@ab1.test', password: 'Temporary-Passw0rd' });
    expect(right.statusCode).toBe(403);
    expect(diagnostics(right.body)).toMatch(/too many failed logins/);
    expect(await id.events('cmc.identity.user-locked.v1')).toEqual(expect.arrayContaining([expect.objectContaining({ userId, reason: 'failed-attempts' })]));
    // The service team unlocks it.
    expect((await id.post(`/api/users/${userId}/unlock`, {}, await id.admin())).statusCode).toBe(200);
    expect((await id.post('/auth/login', { email: 'guessed@ab1.test', password: 'Temporary-Passw0rd' })).statusCode).toBe(200);
  });

  it('when wrong passwords arrive all at once, then every one is counted and the account locks', async () => {
    const userId = await id.aStaffMember({ email: 'parallel@ab1.test', organisation: 'AB1' });
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => id.post('/auth/login', { email: 'parallel@ab1.test', password: `Wrong-Passw0rd${i}` })));
    expect(answers.every((a) => a.statusCode === 401 || a.statusCode === 403)).toBe(true);
    const row = await id.svc.database.db.selectFrom('users').select('locked_until').where('id', '=', userId).executeTakeFirstOrThrow();
    expect(row.locked_until).not.toBeNull();
  });

  it('when the account is locked, then a wrong password gets the same answer as the right one, and the lock is not extended', async () => {
    const userId = await id.aStaffMember({ email: 'lockedout@ab1.test', organisation: 'AB1' });
    for (let i = 0; i < 3; i++) await id.post('/auth/login', { email: 'lockedout@ab1.test', password: `Wrong-Passw0rd${i}` });
    const until = (await id.svc.database.db.selectFrom('users').select('locked_until').where('id', '=', userId).executeTakeFirstOrThrow()).locked_until;
    const wrong = await id.post('/auth/login', { email: 'lockedout@ab1.test', password: 'Still-Wrong-Passw0rd' });
    const right = await id.post('/auth/login', { email: 'lockedout@ab1.test', password: 'Temporary-Passw0rd' });
    expect([wrong.statusCode, right.statusCode]).toEqual([403, 403]);
    expect(diagnostics(wrong.body)).toBe(diagnostics(right.body));
    const after = (await id.svc.database.db.selectFrom('users').select('locked_until').where('id', '=', userId).executeTakeFirstOrThrow()).locked_until;
    expect(after).toEqual(until);
  });

  it('when the current password is guessed at change-password, then the guesses count towards the same lock', async () => {
    await id.aStaffMember({ email: 'guesser@ab1.test', organisation: 'AB1' });
    const token = (await id.loginFully('guesser@ab1.test', 'Temporary-Passw0rd', 'Owner-Passw0rd1')).access_token;
    for (let i = 0; i < 3; i++) {
      expect((await id.post('/auth/change-password', { currentPassword: `Guess-Passw0rd${i}`, newPassword: 'Taken-Over-Passw0rd' }, token)).statusCode).toBe(400);
    }
    expect((await id.post('/auth/change-password', { currentPassword: 'Owner-Passw0rd1', newPassword: 'Taken-Over-Passw0rd' }, token)).statusCode).toBe(403);
    expect((await id.post('/auth/login', { email: 'guesser@ab1.test', password: 'Owner-Passw0rd1' })).statusCode).toBe(403);
  });

  it('when the organisation loses its agreement before the first-login steps are done, then they are refused too', async () => {
    const ods = `P${Math.floor(Math.random() * 1e6)}`;
    await id.anOrganisation(ods);
    await id.aStaffMember({ email: `steps@${ods}.test`, organisation: ods });
    const pending = (await id.post('/auth/login', { email: `steps@${ods}.test`, password: 'Temporary-Passw0rd' })).json<TokenPair>();
    const changed = (await id.post('/auth/change-password', { currentPassword: 'Temporary-Passw0rd', newPassword: 'Chosen-Passw0rd' }, pending.access_token)).json<TokenPair>();
    expect((await id.patch(`/api/organisations/${ods}`, { isaSignedOn: null }, await id.admin())).statusCode).toBe(200);
    const refused = await id.post('/auth/accept-aup', { version: '2026-11' }, changed.access_token);
    expect(refused.statusCode).toBe(403);
    expect(diagnostics(refused.body)).toMatch(/information sharing agreement/);
  });

  it('when the first-login steps are done, then they continue the one session rather than open new ones', async () => {
    const userId = await id.aStaffMember({ email: 'onesession@ab1.test', organisation: 'AB1' });
    const tokens = await id.loginFully('onesession@ab1.test', 'Temporary-Passw0rd');
    const again = await id.post('/auth/accept-aup', { version: '2026-11' }, tokens.access_token);
    expect(again.statusCode).toBe(409);
    const live = await id.svc.database.db
      .selectFrom('refresh_tokens')
      .select('family_id')
      .distinct()
      .where('user_id', '=', userId)
      .where('revoked_at', 'is', null)
      .execute();
    expect(live).toHaveLength(1);
    // And the refresh token of the first step is spent with its step.
    expect((await id.post('/auth/refresh', { refreshToken: tokens.refresh_token })).statusCode).toBe(200);
  });

  it.each([
    ['no signed information sharing agreement', { isaSignedOn: null }, /has not signed the CMC information sharing agreement/],
    ['a toolkit status of Entry Level', { dsptStatus: 'entry-level' }, /does not hold Standards Met/],
    ['a toolkit assessment over 12 months old', { dsptAssessedOn: '2025-01-01' }, /assessment is over 12 months old/],
  ])('when the organisation has %s, then 403 naming that gate', async (_what, overrides, message) => {
    const ods = `G${Math.floor(Math.random() * 1e6)}`;
    expect((await id.anOrganisation(ods, overrides)).statusCode).toBe(201);
    await id.aStaffMember({ email: `staff@${ods}.test`, organisation: ods });
    const res = await id.post('/auth/login', { email: `staff@${ods}.test`, password: 'Temporary-Passw0rd' });
    expect(res.statusCode).toBe(403);
    expect(diagnostics(res.body)).toMatch(message);
  });

  it('when the person has not completed training, then 403; once the service team records it, they get in', async () => {
    const userId = await id.aStaffMember({ email: 'untrained@ab1.test', organisation: 'AB1', trainedOn: null });
    const res = await id.post('/auth/login', { email: 'untrained@ab1.test', password: 'Temporary-Passw0rd' });
    expect(res.statusCode).toBe(403);
    expect(diagnostics(res.body)).toMatch(/not completed CMC training/);
    expect((await id.patch(`/api/users/${userId}`, { trainedOn: TODAY() }, await id.admin())).statusCode).toBe(200);
    expect((await id.post('/auth/login', { email: 'untrained@ab1.test', password: 'Temporary-Passw0rd' })).statusCode).toBe(200);
  });

  it('when 180 days pass without a login, then the account locks (with an event) until the service team unlocks it', async () => {
    const userId = await id.aStaffMember({ email: 'away@ab1.test', organisation: 'AB1' });
    await id.svc.database.db.updateTable('users').set({ activity_since: new Date(Date.now() - 181 * 86_400_000) }).where('id', '=', userId).execute();
    const res = await id.post('/auth/login', { email: 'away@ab1.test', password: 'Temporary-Passw0rd' });
    expect(res.statusCode).toBe(403);
    expect(diagnostics(res.body)).toMatch(/locked after 180 days without a login/);
    expect(await id.events('cmc.identity.user-locked.v1')).toEqual(expect.arrayContaining([expect.objectContaining({ userId, reason: 'inactivity' })]));
    // Still locked next time, whatever the clock says now.
    expect((await id.post('/auth/login', { email: 'away@ab1.test', password: 'Temporary-Passw0rd' })).statusCode).toBe(403);
    expect((await id.post(`/api/users/${userId}/unlock`, {}, await id.admin())).statusCode).toBe(200);
    expect((await id.post('/auth/login', { email: 'away@ab1.test', password: 'Temporary-Passw0rd' })).statusCode).toBe(200);
  });

  it('when the organisation loses its toolkit status, then a refresh is refused and that login ends', async () => {
    const ods = `R${Math.floor(Math.random() * 1e6)}`;
    await id.anOrganisation(ods);
    await id.aStaffMember({ email: `refresh@${ods}.test`, organisation: ods });
    const tokens = await id.loginFully(`refresh@${ods}.test`, 'Temporary-Passw0rd');
    expect((await id.patch(`/api/organisations/${ods}`, { dsptStatus: 'entry-level' }, await id.admin())).statusCode).toBe(200);
    const res = await id.post('/auth/refresh', { refreshToken: tokens.refresh_token });
    expect(res.statusCode).toBe(403);
    const failed = await id.events<{ reason: string }>('cmc.identity.login-failed.v1');
    expect(failed.map((f) => f.reason)).toContain('refresh:dspt');
  });
});

describe('sessions', () => {
  let id: IdentityHarness;

  beforeAll(async () => {
    id = await startIdentity();
    await id.anOrganisation('SS1');
  });

  afterAll(async () => {
    await id?.close();
  });

  it('when a refresh token is used, then a new pair comes and the old refresh token is spent; reusing it ends the whole login', async () => {
    await id.aStaffMember({ email: 'rotate@ss1.test', organisation: 'SS1' });
    const first = await id.loginFully('rotate@ss1.test', 'Temporary-Passw0rd');
    const second = await id.post('/auth/refresh', { refreshToken: first.refresh_token });
    expect(second.statusCode).toBe(200);
    const next = second.json<TokenPair>();
    expect(next.refresh_token).not.toBe(first.refresh_token);
    // Replaying the spent token: refused, and the family (including the newest token) is revoked.
    const replay = await id.post('/auth/refresh', { refreshToken: first.refresh_token });
    expect(replay.statusCode).toBe(401);
    expect(diagnostics(replay.body)).toMatch(/used before/);
    expect((await id.post('/auth/refresh', { refreshToken: next.refresh_token })).statusCode).toBe(401);
  });

  it('when someone logs out, then their refresh token no longer works', async () => {
    await id.aStaffMember({ email: 'logout@ss1.test', organisation: 'SS1' });
    const tokens = await id.loginFully('logout@ss1.test', 'Temporary-Passw0rd');
    expect((await id.post('/auth/logout', { refreshToken: tokens.refresh_token })).statusCode).toBe(204);
    expect((await id.post('/auth/refresh', { refreshToken: tokens.refresh_token })).statusCode).toBe(401);
    // Logging out with nonsense says nothing either way.
    expect((await id.post('/auth/logout', { refreshToken: 'rt_nonsense' })).statusCode).toBe(204);
  });

  it('when a person is deactivated, then every session of theirs ends at once and they cannot log in', async () => {
    const userId = await id.aStaffMember({ email: 'leaver@ss1.test', organisation: 'SS1' });
    const a = await id.loginFully('leaver@ss1.test', 'Temporary-Passw0rd', 'Leaver-Passw0rd');
    const b = (await id.post('/auth/login', { email: 'leaver@ss1.test', password: 'Leaver-Passw0rd' })).json<TokenPair>();
    const res = await id.post(`/api/users/${userId}/deactivate`, {}, await id.admin());
    expect(res.statusCode).toBe(200);
    expect(res.json<{ active: boolean }>().active).toBe(false);
    for (const t of [a, b]) expect((await id.post('/auth/refresh', { refreshToken: t.refresh_token })).statusCode).toBe(401);
    const login = await id.post('/auth/login', { email: 'leaver@ss1.test', password: 'Leaver-Passw0rd' });
    expect(login.statusCode).toBe(403);
    expect(diagnostics(login.body)).toMatch(/deactivated/);
    expect(await id.events('cmc.identity.user-deactivated.v1')).toEqual([expect.objectContaining({ userId })]);
  });

  it('when a password reset is asked for, then the answer does not say whether the email exists, and the link works once', async () => {
    const userId = await id.aStaffMember({ email: 'forgot@ss1.test', organisation: 'SS1' });
    expect((await id.post('/auth/password-reset', { email: 'forgot@ss1.test' })).statusCode).toBe(202);
    expect((await id.post('/auth/password-reset', { email: 'nobody@ss1.test' })).statusCode).toBe(202);
    expect((await id.post('/auth/password-reset', { email: 'forgot@ss1.test' })).statusCode).toBe(202);
    // The links are made just after the answer (so its timing says nothing): wait for both.
    const resets = () => id.events<{ userId: string; resetUrl: string }>('cmc.identity.password-reset-requested.v1');
    await waitFor(async () => (await resets()).length === 2 || undefined, 10_000, 'two reset links');
    const [older, requested] = await resets();
    expect(requested?.userId).toBe(userId);
    const token = new URL(requested!.resetUrl).hash.replace('#token=', '');
    // A newer link ends the older one.
    const olderToken = new URL(older!.resetUrl).hash.replace('#token=', '');
    expect((await id.post('/auth/password-reset/complete', { token: olderToken, newPassword: 'Older-Passw0rd1' })).statusCode).toBe(400);
    const weak = await id.post('/auth/password-reset/complete', { token, newPassword: 'short' });
    expect(weak.statusCode).toBe(400);
    expect((await id.post('/auth/password-reset/complete', { token, newPassword: 'Reset-Passw0rd1' })).statusCode).toBe(204);
    expect((await id.post('/auth/password-reset/complete', { token, newPassword: 'Reset-Passw0rd2' })).statusCode).toBe(400);
    const login = await id.post('/auth/login', { email: 'forgot@ss1.test', password: 'Reset-Passw0rd1' });
    expect(login.statusCode).toBe(200);
    // A reset password is the person's own: no change is asked for, only the policy.
    expect(login.json<TokenPair>().pending).toBe('aup');
  });

  it('when a clinician invites a patient, then the patient sets a password and gets a read-only token bound to their NHS number', async () => {
    await id.aStaffMember({ email: 'inviter@ss1.test', organisation: 'SS1' });
    const clinician = (await id.loginFully('inviter@ss1.test', 'Temporary-Passw0rd')).access_token;
    const bad = await id.post('/api/invitations', { email: 'patient@home.test', name: 'A Patient', role: 'patient', nhsNumber: '9434765918' }, clinician);
    expect(bad.statusCode).toBe(400);
    const proxyWithoutRelationship = await id.post('/api/invitations', { email: 'proxy@home.test', name: 'A Proxy', role: 'proxy', nhsNumber: '9434765919' }, clinician);
    expect(proxyWithoutRelationship.statusCode).toBe(400);
    const invited = await id.post('/api/invitations', { email: 'patient@home.test', name: 'A Patient', role: 'patient', nhsNumber: '9434765919' }, clinician);
    expect(invited.statusCode).toBe(201);
    // One patient account per patient.
    expect((await id.post('/api/invitations', { email: 'patient2@home.test', name: 'A Patient', role: 'patient', nhsNumber: '9434765919' }, clinician)).statusCode).toBe(409);
    const [invitation] = await id.events<{ acceptUrl: string; role: string; nhsNumber: string }>('cmc.identity.invitation-created.v1');
    expect(invitation?.nhsNumber).toBe('9434765919');
    const token = new URL(invitation!.acceptUrl).hash.replace('#token=', '');
    expect((await id.post('/auth/invitations/accept', { token, password: 'Patient-Passw0rd' })).statusCode).toBe(204);
    const login = await id.post('/auth/login', { email: 'patient@home.test', password: 'Patient-Passw0rd' });
    expect(login.statusCode).toBe(200);
    const claims = claimsOf(login.json<TokenPair>().access_token);
    expect(claims).toMatchObject({ cmc_role: 'patient', cmc_patient: '9434765919', scope: 'patient/CarePlan.r patient/AllergyIntolerance.r' });
    expect(claims.cmc_org).toBeUndefined();
    expect(claims.cmc_pending).toBeUndefined();
    // Patients cannot invite, nor administer.
    expect((await id.get('/api/organisations', login.json<TokenPair>().access_token)).statusCode).toBe(403);
  });
});

describe('the bootstrap admin', () => {
  it('when the bootstrap settings are given, then exactly one service-team admin exists, who must accept the policy', async () => {
    const id = await startIdentity();
    try {
      const login = await id.post('/auth/login', { email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
      expect(login.statusCode).toBe(200);
      expect(login.json<TokenPair>().pending).toBe('aup');
      expect(claimsOf(login.json<TokenPair>().access_token)).toMatchObject({ cmc_role: 'service-team', cmc_org: 'CMC' });
      const users = (await id.get('/api/users', await id.admin())).json<{ role: string }[]>();
      expect(users.filter((u) => u.role === 'service-team')).toHaveLength(1);
    } finally {
      await id.close();
    }
  });

  it('when the bootstrap password breaks the rules, then the service refuses to start', async () => {
    await expect(startIdentity({ CMC_BOOTSTRAP_ADMIN_PASSWORD: 'tooweak' })).rejects.toThrow(/CMC_BOOTSTRAP_ADMIN_PASSWORD is not acceptable/);
  });
});
