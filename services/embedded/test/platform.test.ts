/**
 * `pnpm start` in a test: the whole platform in one process on an embedded PostgreSQL of its own (a fresh
 * data folder), with the Kafka-free transport, behind the gateway. A service-team admin (bootstrapped)
 * registers an organisation and a clinician; the clinician logs in through the gateway, does the first-login
 * steps and records a consent, which reaches the care-plan projection. Then the platform stops and starts
 * again on the same folder, and the consent is still there.
 */
import { startPlatform, type Platform } from '@cmc/embedded';
import type { AuditDB } from '@cmc/audit-service';
import { activeConsentOf, type CarePlanDB } from '@cmc/care-plan-service';
import type { Database } from '@cmc/db';
import { aConsent, randomNhsNumber, waitFor } from '@cmc/test-support';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

interface Tokens {
  access_token: string;
  refresh_token: string;
  pending?: string;
}

describe('the embedded platform', () => {
  let dataDir: string;
  let env: Record<string, string>;
  let platform: Platform | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cmc-embedded-'));
    await chmod(dataDir, 0o755);
    env = {
      CMC_DATA_DIR: dataDir,
      EMBEDDED_PG_PORT: '0',
      LOG_LEVEL: 'silent',
      CMC_BOOTSTRAP_ADMIN_EMAIL: 'admin@cmc.test',
      CMC_BOOTSTRAP_ADMIN_PASSWORD: 'Bootstrap-Passw0rd',
      // Cheap hashing for a test; the defaults are OWASP's.
      IDENTITY_ARGON2_MEMORY_KIB: '8192',
      IDENTITY_ARGON2_PASSES: '1',
    };
  });

  afterAll(async () => {
    await platform?.stop();
    await rm(dataDir, { recursive: true, force: true });
  });

  const call = async (method: string, url: string, body?: unknown, token?: string) => {
    const res = await fetch(`${platform!.gatewayUrl}${url}`, {
      method,
      headers: { ...(body ? { 'content-type': url.startsWith('/fhir') ? 'application/fhir+json' : 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, json: (text ? JSON.parse(text) : undefined) as unknown, headers: res.headers };
  };

  /** Logs in and does the first-login steps (temporary password, policy) through the gateway. */
  const loginFully = async (email: string, password: string, newPassword?: string): Promise<string> => {
    const step = async (url: string, body: unknown, token?: string): Promise<Tokens> => {
      const res = await call('POST', url, body, token);
      if (res.status !== 200) throw new Error(`${url} answered ${res.status}: ${JSON.stringify(res.json)}`);
      return res.json as Tokens;
    };
    let tokens = await step('/auth/login', { email, password });
    if (tokens.pending === 'password') tokens = await step('/auth/change-password', { currentPassword: password, newPassword }, tokens.access_token);
    if (tokens.pending === 'aup') tokens = await step('/auth/accept-aup', { version: '2026-11' }, tokens.access_token);
    expect(tokens.pending).toBeUndefined();
    return tokens.access_token;
  };

  it('when started with nothing running, then every service is ready, and a clinician set up by the service team records a consent', async () => {
    platform = await startPlatform({ env, ephemeralPorts: true, serviceOptions: { logger: false } });
    expect(platform.services.map((s) => s.name)).toEqual(['identity', 'consent', 'care-plan', 'audit', 'notification']);
    for (const s of platform.services) {
      const res = await fetch(`${s.url}/health/ready`);
      expect({ service: s.name, status: res.status }).toEqual({ service: s.name, status: 200 });
    }
    const ready = await call('GET', '/health/ready');
    expect(ready.status).toBe(200);
    expect(ready.json).toMatchObject({ checks: { identity: 'up', consent: 'up', 'care-plan': 'up', audit: 'up', notification: 'up' } });

    // One CapabilityStatement for the platform, from the running services' routes, with no token.
    const metadata = await call('GET', '/fhir/R4/metadata');
    expect(metadata.status).toBe(200);
    const types = (metadata.json as { rest: { resource: { type: string }[] }[] }).rest[0]!.resource.map((r) => r.type);
    expect(types).toEqual(expect.arrayContaining(['AllergyIntolerance', 'AuditEvent', 'CarePlan', 'Consent', 'DocumentReference', 'Flag']));

    const admin = await loginFully('admin@cmc.test', 'Bootstrap-Passw0rd');
    const today = new Date().toISOString().slice(0, 10);
    const org = await call('POST', '/api/organisations', { odsCode: 'H81001', name: 'Sunrise Care Home', type: 'care-home', isaSignedOn: today, dsptStatus: 'standards-met', dsptAssessedOn: today }, admin);
    expect(org.status).toBe(201);
    const created = await call('POST', '/api/users', { email: 'nurse@sunrise.test', name: 'A Nurse', organisation: 'H81001', role: 'clinician', registration: { body: 'NMC', number: '12A3456B' }, trainedOn: today, temporaryPassword: 'Temporary-Passw0rd' }, admin);
    expect(created.status).toBe(201);
    const nurse = await loginFully('nurse@sunrise.test', 'Temporary-Passw0rd', 'My-Own-Passw0rd');

    const nhs = randomNhsNumber();
    const consent = await call('POST', '/fhir/R4/Consent', aConsent(nhs), nurse);
    expect(consent.status).toBe(201);
    // The Location names the gateway, the one base URL clients know.
    expect(consent.headers.get('location')).toMatch(new RegExp(`^${platform.gatewayUrl}/fhir/R4/Consent/[0-9a-f-]{36}/_history/1$`));
    const carePlan = platform.services.find((s) => s.name === 'care-plan')!.running.database as unknown as Database<CarePlanDB>;
    expect((await waitFor(() => activeConsentOf(carePlan.db, nhs), 15_000, 'projection')).status).toBe('active');
    const id = (consent.json as { id: string }).id;
    // The consent's access entry reaches the audit log, and the service team can check the chain through the gateway.
    const audit = platform.services.find((s) => s.name === 'audit')!.running.database as unknown as Database<AuditDB>;
    await waitFor(async () => (await audit.db.selectFrom('audit_log').select('seq').where('event_type', '=', 'cmc.access.recorded.v1').where('interaction', '=', 'create').execute()).length > 0 || undefined, 15_000, 'the access in the audit log');
    const verified = await call('GET', '/api/audit/verify', undefined, admin);
    expect(verified.status).toBe(200);
    expect(verified.json).toMatchObject({ ok: true, firstProblem: null });
    expect((await call('GET', '/api/audit/verify', undefined, nurse)).status).toBe(403);

    await platform.stop();
    platform = undefined;

    // Started again on the same folder: the accounts, keys and the consent are all still there.
    platform = await startPlatform({ env, ephemeralPorts: true, serviceOptions: { logger: false } });
    const again = await loginFully('nurse@sunrise.test', 'My-Own-Passw0rd');
    expect((await call('GET', `/fhir/R4/Consent/${id}`, undefined, again)).status).toBe(200);
  });
});
