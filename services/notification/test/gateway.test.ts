/** The gateway's one base URL reaches the notification service for the inbox and for Subscription. */
import type { Transport } from '@cmc/events';
import { buildGateway } from '@cmc/gateway';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, startTestService } from '@cmc/test-support';
import type { Bundle } from 'fhir/r4';
import type { FastifyInstance } from 'fastify';
import { notificationService, type NotificationDB } from '../src';
import { fastEnv, uniqueOds } from './support';

describe('through the gateway', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let svc: RunningService<NotificationDB>;
  let gateway: FastifyInstance;

  beforeAll(async () => {
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: fastEnv() });
    const url = await svc.listen();
    gateway = await buildGateway({ upstreams: { notification: url }, logger: false });
    await gateway.ready();
  });
  afterAll(async () => {
    await gateway?.close();
    await svc?.close();
    await transport?.close();
  });

  it('when a clinician asks /api/notifications and a GP system /fhir/R4/Subscription at the gateway, then the notification service answers', async () => {
    const inbox = await gateway.inject({ method: 'GET', url: '/api/notifications', headers: { authorization: issuer.bearer({ role: 'clinician', org: uniqueOds() }) } });
    expect(inbox.statusCode).toBe(200);
    expect(inbox.json()).toEqual({ notifications: [], next: null });
    const subs = await gateway.inject({ method: 'GET', url: '/fhir/R4/Subscription', headers: { authorization: `Bearer ${issuer.token({ kind: 'client', org: uniqueOds(), scope: 'system/Subscription.rs' })}` } });
    expect(subs.statusCode).toBe(200);
    expect(subs.json<Bundle>()).toMatchObject({ resourceType: 'Bundle', type: 'searchset' });
  });
});
