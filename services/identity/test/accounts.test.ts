import type { OperationOutcome } from 'fhir/r4';
import { TODAY, startIdentity, type IdentityHarness } from './support';

const issues = (body: string) => (JSON.parse(body) as OperationOutcome).issue;

describe('the service team administering organisations and accounts', () => {
  let id: IdentityHarness;

  beforeAll(async () => {
    id = await startIdentity();
  });

  afterAll(async () => {
    await id?.close();
  });

  it('when an organisation is registered, then it can be read and changed, and each change is an event', async () => {
    expect((await id.anOrganisation('ORG1', { outsideSecureNetwork: true })).statusCode).toBe(201);
    const read = await id.get('/api/organisations/ORG1', await id.admin());
    expect(read.json()).toMatchObject({ odsCode: 'ORG1', type: 'care-home', dsptStatus: 'standards-met', isaSignedOn: TODAY(), outsideSecureNetwork: true });
    const changed = await id.patch('/api/organisations/ORG1', { dsptStatus: 'standards-exceeded', name: 'Renamed' }, await id.admin());
    expect(changed.json()).toMatchObject({ dsptStatus: 'standards-exceeded', name: 'Renamed' });
    const events = await id.events<{ odsCode: string; change: string }>('cmc.identity.organisation-changed.v1');
    expect(events.filter((e) => e.odsCode === 'ORG1').map((e) => e.change)).toEqual(['created', 'updated']);
  });

  it('when an organisation is registered with bad details, then 4xx naming each problem, and nothing is stored', async () => {
    const admin = await id.admin();
    const unknownField = await id.post('/api/organisations', { odsCode: 'BAD1', name: 'x', type: 'care-home', dsptStatus: 'none', colour: 'red' }, admin);
    expect(unknownField.statusCode).toBe(400);
    expect(issues(unknownField.body)[0]?.expression).toEqual(['body.colour']);
    const badOds = await id.post('/api/organisations', { odsCode: 'not ods', name: 'x', type: 'care-home', dsptStatus: 'none' }, admin);
    expect(badOds.statusCode).toBe(400);
    const badType = await id.post('/api/organisations', { odsCode: 'BAD2', name: 'x', type: 'spaceship', dsptStatus: 'none' }, admin);
    expect(badType.statusCode).toBe(400);
    const future = await id.post('/api/organisations', { odsCode: 'BAD3', name: 'x', type: 'care-home', dsptStatus: 'standards-met', isaSignedOn: '2999-01-01' }, admin);
    expect(future.statusCode).toBe(400);
    expect(issues(future.body)[0]?.expression).toEqual(['isaSignedOn']);
    for (const ods of ['BAD1', 'BAD2', 'BAD3']) expect((await id.get(`/api/organisations/${ods}`, admin)).statusCode).toBe(404);
    expect((await id.anOrganisation('ORG1')).statusCode).toBe(409);
  });

  it('when staff are created with bad details, then 4xx naming the problem', async () => {
    await id.anOrganisation('ORG2');
    const admin = await id.admin();
    const base = { email: 'x@org2.test', name: 'X', organisation: 'ORG2', role: 'clinician', registration: { body: 'GMC', number: '1234567' }, trainedOn: TODAY(), temporaryPassword: 'Temporary-Passw0rd' };
    const noRegistration = await id.post('/api/users', { ...base, registration: undefined }, admin);
    expect(noRegistration.statusCode).toBe(400);
    expect(issues(noRegistration.body)[0]?.expression).toEqual(['registration']);
    const weak = await id.post('/api/users', { ...base, temporaryPassword: 'password12' }, admin);
    expect(weak.statusCode).toBe(400);
    expect(issues(weak.body).map((i) => i.diagnostics)).toEqual(['password must contain an upper-case letter']);
    const badEmail = await id.post('/api/users', { ...base, email: 'not-an-email' }, admin);
    expect(badEmail.statusCode).toBe(400);
    const unknownOrg = await id.post('/api/users', { ...base, organisation: 'NOPE1' }, admin);
    expect(unknownOrg.statusCode).toBe(422);
    const serviceTeamElsewhere = await id.post('/api/users', { ...base, role: 'service-team' }, admin);
    expect(serviceTeamElsewhere.statusCode).toBe(422);
    expect((await id.post('/api/users', base, admin)).statusCode).toBe(201);
    expect((await id.post('/api/users', { ...base, email: 'X@ORG2.test' }, admin)).statusCode).toBe(409);
    const created = await id.events<{ role: string; organisation: string; email: string }>('cmc.identity.user-created.v1');
    // The address goes with the event, for the notification service to mail the user.
    expect(created).toEqual(expect.arrayContaining([expect.objectContaining({ role: 'clinician', organisation: 'ORG2', email: 'x@org2.test' })]));
  });

  it('when someone other than the service team calls the admin API, then 403; without a token, 401', async () => {
    await id.anOrganisation('ORG3');
    await id.aStaffMember({ email: 'admin@org3.test', organisation: 'ORG3', role: 'administrator' });
    const orgAdmin = (await id.loginFully('admin@org3.test', 'Temporary-Passw0rd')).access_token;
    for (const [method, url] of [['GET', '/api/organisations'], ['GET', '/api/users'], ['POST', '/api/admin/keys/rotate']] as const) {
      const res = method === 'GET' ? await id.get(url, orgAdmin) : await id.post(url, {}, orgAdmin);
      expect({ url, status: res.statusCode }).toEqual({ url, status: 403 });
      expect((method === 'GET' ? await id.get(url) : await id.post(url, {})).statusCode).toBe(401);
    }
  });

  it('when text carries a NUL character, then 400 rather than a database error', async () => {
    const res = await id.post('/auth/login', { email: 'a\u0000b@org.test', password: 'Whatever-Passw0rd' });
    expect(res.statusCode).toBe(400);
    expect(issues(res.body)[0]?.diagnostics).toMatch(/NUL/);
  });

  it('when the same organisation is registered twice at once, then one 201 and the other 409, never a 500', async () => {
    const admin = await id.admin();
    const body = { odsCode: 'TWICE1', name: 'Twice', type: 'hospice', dsptStatus: 'standards-met' };
    const answers = await Promise.all([id.post('/api/organisations', body, admin), id.post('/api/organisations', body, admin), id.post('/api/organisations', body, admin)]);
    expect(answers.map((a) => a.statusCode).sort()).toEqual([201, 409, 409]);
  });

  it('when a user id is unknown or malformed, then 404', async () => {
    const admin = await id.admin();
    expect((await id.get('/api/users/00000000-0000-4000-8000-000000000000', admin)).statusCode).toBe(404);
    expect((await id.get('/api/users/not-a-uuid', admin)).statusCode).toBe(404);
    expect((await id.post('/api/users/not-a-uuid/deactivate', {}, admin)).statusCode).toBe(404);
  });

  it('when the service team sets a temporary password, then sessions end and it must be changed at the next login', async () => {
    await id.anOrganisation('ORG4');
    const userId = await id.aStaffMember({ email: 'temp@org4.test', organisation: 'ORG4' });
    const tokens = await id.loginFully('temp@org4.test', 'Temporary-Passw0rd', 'Own-Passw0rd1');
    expect((await id.post(`/api/users/${userId}/password`, { temporaryPassword: 'Another-Temp0rary' }, await id.admin())).statusCode).toBe(204);
    expect((await id.post('/auth/refresh', { refreshToken: tokens.refresh_token })).statusCode).toBe(401);
    const login = await id.post('/auth/login', { email: 'temp@org4.test', password: 'Another-Temp0rary' });
    expect(login.json<{ pending: string }>().pending).toBe('password');
  });

  it('when users are listed by organisation, then only theirs, and no password hash is ever shown', async () => {
    await id.anOrganisation('ORG5');
    await id.aStaffMember({ email: 'one@org5.test', organisation: 'ORG5' });
    await id.aStaffMember({ email: 'two@org5.test', organisation: 'ORG5', role: 'urgent-care' });
    const res = await id.get('/api/users?organisation=ORG5', await id.admin());
    expect(res.json<{ email: string; organisation: string }[]>().map((u) => [u.email, u.organisation])).toEqual([
      ['one@org5.test', 'ORG5'],
      ['two@org5.test', 'ORG5'],
    ]);
    expect(res.body).not.toMatch(/argon2|password_hash|passwordHash/);
  });
});
