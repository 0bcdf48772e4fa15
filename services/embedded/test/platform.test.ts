/**
 * `pnpm start` in a test: the whole platform in one process on an embedded PostgreSQL of its own (a fresh
 * data folder), with the Kafka-free transport, behind the gateway; then stopped and started again on the
 * same folder, to show the data stays.
 */
import { startPlatform, type Platform } from '@cmc/embedded';
import { activeConsentOf, type CarePlanDB } from '@cmc/care-plan-service';
import type { Database } from '@cmc/db';
import { TestIssuer, aConsent, randomNhsNumber, waitFor } from '@cmc/test-support';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';

describe('the embedded platform', () => {
  const issuer = new TestIssuer();
  let dataDir: string;
  let jwksServer: http.Server;
  let env: Record<string, string>;
  let platform: Platform | undefined;

  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'cmc-embedded-'));
    await chmod(dataDir, 0o755);
    // The services fetch the issuer's keys over HTTP, as they will from the identity service.
    jwksServer = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(issuer.jwks)));
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', () => r()));
    const { port } = jwksServer.address() as import('node:net').AddressInfo;
    env = {
      CMC_DATA_DIR: dataDir,
      EMBEDDED_PG_PORT: '0',
      AUTH_JWKS_URL: `http://127.0.0.1:${port}/.well-known/jwks.json`,
      AUTH_ISSUER: issuer.issuer,
      AUTH_AUDIENCE: issuer.audience,
      LOG_LEVEL: 'silent',
    };
  });

  afterAll(async () => {
    await platform?.stop();
    await new Promise((r) => jwksServer?.close(r));
    await rm(dataDir, { recursive: true, force: true });
  });

  it('when started with nothing running, then every service and the gateway are ready, and a consent flows through', async () => {
    platform = await startPlatform({ env, ephemeralPorts: true, serviceOptions: { logger: false } });
    for (const s of platform.services) {
      const res = await fetch(`${s.url}/health/ready`);
      expect({ service: s.name, status: res.status }).toEqual({ service: s.name, status: 200 });
    }
    expect(platform.services.map((s) => s.name)).toEqual(['consent', 'care-plan']);
    const ready = await fetch(`${platform.gatewayUrl}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ checks: { consent: 'up', 'care-plan': 'up' } });

    const nhs = randomNhsNumber();
    const created = await fetch(`${platform.gatewayUrl}/fhir/R4/Consent`, {
      method: 'POST',
      headers: { 'content-type': 'application/fhir+json', authorization: issuer.bearer({ role: 'clinician', org: 'A11111' }) },
      body: JSON.stringify(aConsent(nhs)),
    });
    expect(created.status).toBe(201);
    // The Location names the gateway, the one base URL clients know.
    expect(created.headers.get('location')).toMatch(new RegExp(`^${platform.gatewayUrl}/fhir/R4/Consent/[0-9a-f-]{36}/_history/1$`));
    const carePlan = platform.services.find((s) => s.name === 'care-plan')!.running.database as unknown as Database<CarePlanDB>;
    const projected = await waitFor(() => activeConsentOf(carePlan.db, nhs), 15_000, 'projection');
    expect(projected.status).toBe('active');
    const id = ((await created.json()) as { id: string }).id;

    await platform.stop();
    platform = undefined;

    // Started again on the same folder: the consent is still there.
    platform = await startPlatform({ env, ephemeralPorts: true, serviceOptions: { logger: false } });
    const read = await fetch(`${platform.gatewayUrl}/fhir/R4/Consent/${id}`, { headers: { authorization: issuer.bearer({ role: 'clinician', org: 'A11111' }) } });
    expect(read.status).toBe(200);
  });
});
