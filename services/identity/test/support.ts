/** Shared by the identity tests: a running identity service of the test's own, and ways to act in it. */
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, startTestService } from '@cmc/test-support';
import type { LightMyRequestResponse } from 'fastify';
import { identityService, type IdentityDB } from '../src';

export const ADMIN_EMAIL = 'admin@cmc.test';
export const ADMIN_PASSWORD = 'Bootstrap-Passw0rd';
export const TODAY = (): string => new Date().toISOString().slice(0, 10);

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  token_type: string;
  pending?: 'password' | 'aup';
}

export interface IdentityHarness {
  svc: RunningService<IdentityDB>;
  transport: Transport;
  close: () => Promise<void>;
  post: (url: string, body: unknown, token?: string, headers?: Record<string, string>) => Promise<LightMyRequestResponse>;
  get: (url: string, token?: string) => Promise<LightMyRequestResponse>;
  patch: (url: string, body: unknown, token?: string) => Promise<LightMyRequestResponse>;
  /** Logs in and finishes the first-login steps; returns a token that opens everything the role allows. */
  loginFully: (email: string, password: string, newPassword?: string) => Promise<TokenPair>;
  /** The bootstrap admin's full token. */
  admin: () => Promise<string>;
  /** Registers an organisation that passes every gate (override any field). */
  anOrganisation: (ods: string, overrides?: Record<string, unknown>) => Promise<LightMyRequestResponse>;
  /** Creates a member of staff with a temporary password; returns their id. */
  aStaffMember: (input: { email: string; organisation: string; role?: string; trainedOn?: string | null; temporaryPassword?: string }) => Promise<string>;
  /** The events this service has put in its outbox, of one type, oldest first. */
  events: <T = Record<string, unknown>>(type: string) => Promise<T[]>;
}

/** Starts identity with a bootstrap admin, cheap password hashing (tests only) and the SQL transport. */
export async function startIdentity(env: Record<string, string> = {}): Promise<IdentityHarness> {
  const transport = await newTransport('sql');
  const svc = await startTestService(identityService, {
    transport,
    issuer: new TestIssuer(),
    env: {
      CMC_BOOTSTRAP_ADMIN_EMAIL: ADMIN_EMAIL,
      CMC_BOOTSTRAP_ADMIN_PASSWORD: ADMIN_PASSWORD,
      IDENTITY_ARGON2_MEMORY_KIB: '8192',
      IDENTITY_ARGON2_PASSES: '1',
      ...env,
    },
  }).catch(async (e: unknown) => {
    await transport.close();
    throw e;
  });
  const auth = (token?: string) => (token ? { authorization: `Bearer ${token}` } : {});
  const post = (url: string, body: unknown, token?: string, headers: Record<string, string> = {}) =>
    svc.app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...auth(token), ...headers }, payload: JSON.stringify(body) });
  const get = (url: string, token?: string) => svc.app.inject({ method: 'GET', url, headers: auth(token) });
  const patch = (url: string, body: unknown, token?: string) =>
    svc.app.inject({ method: 'PATCH', url, headers: { 'content-type': 'application/json', ...auth(token) }, payload: JSON.stringify(body) });
  const step = async (url: string, body: unknown, token?: string): Promise<TokenPair> => {
    const res = await post(url, body, token);
    if (res.statusCode !== 200) throw new Error(`${url} answered ${res.statusCode}: ${res.body}`);
    return res.json<TokenPair>();
  };
  const loginFully = async (email: string, password: string, newPassword = 'Changed-Passw0rd'): Promise<TokenPair> => {
    let tokens = await step('/auth/login', { email, password });
    if (tokens.pending === 'password') tokens = await step('/auth/change-password', { currentPassword: password, newPassword }, tokens.access_token);
    if (tokens.pending === 'aup') tokens = await step('/auth/accept-aup', { version: '2026-11' }, tokens.access_token);
    return tokens;
  };
  let adminToken: string | undefined;
  const admin = async () => (adminToken ??= (await loginFully(ADMIN_EMAIL, ADMIN_PASSWORD)).access_token);
  const anOrganisation = async (ods: string, overrides: Record<string, unknown> = {}) =>
    post('/api/organisations', { odsCode: ods, name: `Organisation ${ods}`, type: 'care-home', isaSignedOn: TODAY(), dsptStatus: 'standards-met', dsptAssessedOn: TODAY(), ...overrides }, await admin());
  const aStaffMember = async (input: { email: string; organisation: string; role?: string; trainedOn?: string | null; temporaryPassword?: string }) => {
    const role = input.role ?? 'clinician';
    const res = await post(
      '/api/users',
      {
        email: input.email,
        name: 'Test Person',
        organisation: input.organisation,
        role,
        ...(role === 'clinician' ? { registration: { body: 'NMC', number: '12A3456B' } } : {}),
        trainedOn: input.trainedOn === undefined ? TODAY() : input.trainedOn,
        temporaryPassword: input.temporaryPassword ?? 'Temporary-Passw0rd',
      },
      await admin(),
    );
    if (res.statusCode !== 201) throw new Error(`creating ${input.email} answered ${res.statusCode}: ${res.body}`);
    return res.json<{ id: string }>().id;
  };
  const events = async <T>(type: string): Promise<T[]> =>
    (await svc.database.db.selectFrom('outbox').select('payload').where('type', '=', type).orderBy('id').execute()).map((r) => (JSON.parse(r.payload) as { data: T }).data);
  return {
    svc,
    transport,
    close: async () => {
      await svc.close();
      await transport.close();
    },
    post,
    get,
    patch,
    loginFully,
    admin,
    anOrganisation,
    aStaffMember,
    events,
  };
}
