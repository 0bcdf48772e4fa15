/**
 * Hook endpoints inside the service's network are refused (at creation, and at delivery after DNS), and hook
 * secrets are sealed at rest: new ones, ones stored in clear before, and ones sealed with another key.
 */
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, randomNhsNumber, startTestService, uniqueName, waitFor } from '@cmc/test-support';
import type { OperationOutcome, Subscription } from 'fhir/r4';
import { randomUUID } from 'node:crypto';
import { notificationService, type NotificationDB } from '../src';
import { APlan, LOCAL_HOOKS, aSecretKey, fastEnv, send, startReceiver, uniqueOds, whereStored } from './support';

const NHS = 'https://fhir.nhs.uk/Id/nhs-number';

const aSubscription = (criteria: string, endpoint: string, header?: string[]) => ({
  resourceType: 'Subscription',
  status: 'requested',
  reason: 'GP record kept current',
  criteria,
  channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json', ...(header ? { header } : {}) },
});

/** A subscription row as an earlier version of the service stored it (before endpoints and secrets were checked). */
async function storeAsBefore(svc: RunningService<NotificationDB>, row: { nhsNumber: string; endpoint: string; headers?: string[] }): Promise<string> {
  const id = randomUUID();
  await svc.database.db
    .insertInto('subscriptions')
    .values({
      id,
      client_id: uniqueName('old-client'),
      organisation: null,
      criteria: `CarePlan?patient:identifier=${NHS}|${row.nhsNumber}`,
      criteria_kind: 'patient',
      criteria_value: row.nhsNumber,
      endpoint: row.endpoint,
      headers: row.headers ?? [],
      reason: 'stored before',
      status: 'active',
      error: null,
    })
    .execute();
  return id;
}

describe('hook endpoints inside the network, with NOTIFY_HOOK_ALLOW_PRIVATE off (the default)', () => {
  const issuer = new TestIssuer();
  const clientId = uniqueName('gp-system');
  const system = `Bearer ${issuer.token({ kind: 'client', sub: clientId, org: uniqueOds(), scope: 'system/Subscription.crud' })}`;
  let transport: Transport;
  let svc: RunningService<NotificationDB>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    receiver = await startReceiver();
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: fastEnv() });
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
    await receiver?.close();
  });

  const create = (body: unknown) =>
    svc.app.inject({ method: 'POST', url: '/fhir/R4/Subscription', headers: { authorization: system, 'content-type': 'application/fhir+json' }, payload: JSON.stringify(body) });

  it('when a subscription names an endpoint on loopback, private, link-local, multicast or unspecified addresses, then 400 naming channel.endpoint, and nothing is stored', async () => {
    const port = new URL(receiver.url).port;
    const patient = `CarePlan?patient:identifier=${NHS}|${randomNhsNumber()}`;
    const inside = [
      receiver.url, // 127.0.0.1, where the receiver really listens
      `http://localhost:${port}/hook`,
      'http://app.localhost/hook',
      'http://127.8.9.10/hook',
      'http://[::1]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      'http://2130706433/hook', // 127.0.0.1 as a number
      'http://0x7f.1/hook',
      'http://10.1.2.3/hook',
      'http://172.16.0.1/hook',
      'http://172.31.255.254/hook',
      'http://192.168.1.1/hook',
      'http://100.64.0.1/hook',
      'http://169.254.169.254/latest/meta-data/', // cloud metadata
      'http://[fe80::1]/hook',
      'http://[fc00::1]/hook',
      'http://[fd12:3456::1]/hook',
      'http://0.0.0.0/hook',
      'http://[::]/hook',
      'http://224.0.0.1/hook',
      'http://[ff02::1]/hook',
      'http://[64:ff9b::a9fe:a9fe]/hook', // NAT64 of 169.254.169.254
    ];
    for (const endpoint of inside) {
      const res = await create(aSubscription(patient, endpoint, ['Authorization: Bearer x']));
      const outcome = res.json<OperationOutcome>();
      expect({ endpoint, status: res.statusCode, resourceType: outcome.resourceType }).toEqual({ endpoint, status: 400, resourceType: 'OperationOutcome' });
      expect(outcome.issue[0]!.expression).toEqual(['Subscription.channel.endpoint']);
      expect(outcome.issue[0]!.diagnostics).toMatch(/channel\.endpoint may not point inside/);
    }
    const stored = await svc.database.db.selectFrom('subscriptions').select('id').where('client_id', '=', clientId).execute();
    expect(stored).toHaveLength(0);
    // A public name or address is taken (names are judged after DNS, when notifications are sent).
    for (const endpoint of ['https://gp-system.example/cmc/hook', 'https://203.0.113.7/hook', 'http://[2001:db8::1]/hook', 'http://172.32.0.1/hook']) {
      expect({ endpoint, status: (await create(aSubscription(patient, endpoint))).statusCode }).toEqual({ endpoint, status: 201 });
    }
  });

  it('when a stored subscription\'s endpoint is, or resolves to, a loopback address, then no notification is sent to it and the delivery says why', async () => {
    const port = new URL(receiver.url).port;
    const plan = new APlan(uniqueOds(), randomUUID());
    // Stored before the rule: an address, and a name that DNS (the system resolver) turns into 127.0.0.1 or ::1.
    const byAddress = await storeAsBefore(svc, { nhsNumber: plan.nhsNumber, endpoint: `http://127.0.0.1:${port}/hook` });
    const byName = await storeAsBefore(svc, { nhsNumber: plan.nhsNumber, endpoint: `http://localhost:${port}/hook` });
    await send(transport, plan.event('cmc.careplan.published.v1'));
    const rows = await waitFor(async () => {
      const r = await svc.database.db.selectFrom('hook_deliveries').select(['subscription_id', 'last_error', 'attempts', 'status']).where('plan_id', '=', plan.planId).execute();
      return r.length === 2 && r.every((d) => d.attempts >= 2) ? r : undefined;
    }, 20_000, 'two refused attempts at each');
    for (const id of [byAddress, byName]) {
      const row = rows.find((r) => r.subscription_id === id);
      expect(row?.status).toBe('pending');
      expect(row?.last_error).toMatch(/resolves to a loopback, private, link-local, multicast or unspecified address \(refused\)/);
    }
    // Refused before any connection: the receiver on 127.0.0.1 never saw a request.
    expect(receiver.attempts.count).toBe(0);
  });
});

describe('hook secrets at rest', () => {
  const issuer = new TestIssuer();
  const gp = uniqueOds();
  const system = `Bearer ${issuer.token({ kind: 'client', sub: uniqueName('gp-system'), org: gp, scope: 'system/Subscription.crud' })}`;
  const schema = uniqueName('notification');
  const key = aSecretKey();
  let transport: Transport;
  let svc: RunningService<NotificationDB>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    receiver = await startReceiver();
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: { ...fastEnv(), ...LOCAL_HOOKS, NOTIFY_DB_SCHEMA: schema, NOTIFY_SECRET_KEY: key } });
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
    await receiver?.close();
  });

  const received = (tag: string) => receiver.received.filter((h) => h.headers['x-test-tag'] === tag);

  it('when a subscription gives a bearer header, then the database holds only its name and ciphertext, reads show it masked, and the receiver gets it', async () => {
    const plan = new APlan(uniqueOds(), randomUUID(), gp);
    const secret = `s3cret-${randomUUID()}`;
    const res = await svc.app.inject({
      method: 'POST',
      url: '/fhir/R4/Subscription',
      headers: { authorization: system, 'content-type': 'application/fhir+json' },
      payload: aSubscription(`CarePlan?patient:identifier=${NHS}|${plan.nhsNumber}`, receiver.url, [`Authorization: Bearer ${secret}`, `X-Test-Tag: ${plan.planId}`]),
    });
    expect(res.statusCode).toBe(201);
    const sub = res.json<Subscription>();
    expect(sub.channel.header).toEqual(['Authorization: [redacted]', 'X-Test-Tag: [redacted]']);
    expect(await whereStored(svc, secret)).toEqual([]);
    const read = await svc.app.inject({ method: 'GET', url: `/fhir/R4/Subscription/${sub.id}`, headers: { authorization: system } });
    expect(read.body).not.toContain(secret);
    expect(read.json<Subscription>().channel.header).toEqual(['Authorization: [redacted]', 'X-Test-Tag: [redacted]']);
    const search = await svc.app.inject({ method: 'GET', url: '/fhir/R4/Subscription', headers: { authorization: issuer.bearer({ role: 'service-team', org: 'X26' }) } });
    expect(search.body).not.toContain(secret);

    await send(transport, plan.event('cmc.careplan.published.v1'));
    await waitFor(async () => received(plan.planId).length >= 1, 20_000, 'the notification');
    expect(received(plan.planId)[0]!.headers.authorization).toBe(`Bearer ${secret}`);
  });

  it('when subscriptions were stored with their secrets in clear, then the service seals them at start, and they still work', async () => {
    const plan = new APlan(uniqueOds(), randomUUID());
    const secret = `legacy-${randomUUID()}`;
    const id = await storeAsBefore(svc, { nhsNumber: plan.nhsNumber, endpoint: receiver.url, headers: [`Authorization: Bearer ${secret}`, `X-Test-Tag: ${plan.planId}`] });
    expect(await whereStored(svc, secret)).toEqual(['subscriptions.headers']);
    // An instance (re)starting on the same schema, as after the upgrade.
    const bus = await newTransport('sql');
    try {
      const restarted = await startTestService(notificationService, { transport: bus, issuer, env: { ...fastEnv(), NOTIFY_DB_SCHEMA: schema, NOTIFY_SECRET_KEY: key } });
      await restarted.close();
    } finally {
      await bus.close();
    }
    expect(await whereStored(svc, secret)).toEqual([]);
    const row = await svc.database.db.selectFrom('subscriptions').select(['headers', 'header_secret']).where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.headers).toEqual(['Authorization', 'X-Test-Tag']);
    expect(row.header_secret).toMatch(/^v1\./);

    await send(transport, plan.event('cmc.careplan.published.v1'));
    await waitFor(async () => received(plan.planId).length >= 1, 20_000, 'the notification');
    expect(received(plan.planId)[0]!.headers.authorization).toBe(`Bearer ${secret}`);
  });
});

describe('a hook secret sealed with another key', () => {
  const issuer = new TestIssuer();
  const gp = uniqueOds();
  const schema = uniqueName('notification');
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const transports: Transport[] = [];

  beforeAll(async () => {
    receiver = await startReceiver();
  });
  afterAll(async () => {
    for (const t of transports) await t.close();
    await receiver?.close();
  });

  it('when NOTIFY_SECRET_KEY changed, then nothing is sent, the subscription goes to error at once with why, and that is announced on cmc.notification.v1 through the outbox', async () => {
    const plan = new APlan(uniqueOds(), randomUUID(), gp);
    const system = `Bearer ${issuer.token({ kind: 'client', sub: uniqueName('gp-system'), org: gp, scope: 'system/Subscription.crud' })}`;
    transports.push(await newTransport('sql'), await newTransport('sql'));
    const before = await startTestService(notificationService, { transport: transports[0]!, issuer, env: { ...fastEnv(), ...LOCAL_HOOKS, NOTIFY_DB_SCHEMA: schema } });
    let id: string;
    try {
      const res = await before.app.inject({
        method: 'POST',
        url: '/fhir/R4/Subscription',
        headers: { authorization: system, 'content-type': 'application/fhir+json' },
        payload: aSubscription(`CarePlan?gp-practice=${gp}`, receiver.url, ['Authorization: Bearer old-key-secret']),
      });
      expect(res.statusCode).toBe(201);
      id = res.json<Subscription>().id!;
    } finally {
      await before.close();
    }
    // The same schema with another key (fastEnv makes a new one).
    const after = await startTestService(notificationService, { transport: transports[1]!, issuer, env: { ...fastEnv(), ...LOCAL_HOOKS, NOTIFY_DB_SCHEMA: schema } });
    try {
      await send(transports[1]!, plan.event('cmc.careplan.published.v1'));
      const sub = await waitFor(async () => {
        const r = await after.app.inject({ method: 'GET', url: `/fhir/R4/Subscription/${id}`, headers: { authorization: system } });
        const s = r.json<Subscription>();
        return s.status === 'error' ? s : undefined;
      }, 20_000, 'the subscription in error');
      expect(sub.error).toMatch(/sealed with another NOTIFY_SECRET_KEY; make a new subscription/);
      expect(receiver.attempts.count).toBe(0);
      const announced = await after.database.db.selectFrom('outbox').select(['type', 'topic', 'key', 'payload']).where('topic', '=', 'cmc.notification.v1').orderBy('id').execute();
      expect(announced.map((e) => e.type)).toEqual(['cmc.notification.delivery-failed.v1', 'cmc.notification.subscription-errored.v1']);
      const [failed, errored] = announced.map((e) => JSON.parse(e.payload) as { source: string; data: Record<string, unknown> });
      expect(errored).toMatchObject({ source: '/cmc/notification', data: { subscriptionId: id } });
      expect(errored!.data.reason).toMatch(/another NOTIFY_SECRET_KEY/);
      expect(failed!.data).toMatchObject({ channel: 'rest-hook', recipient: id, attempts: 1 });
      // No patient in what is announced.
      expect(announced.map((e) => e.payload).join()).not.toContain(plan.nhsNumber);
    } finally {
      await after.close();
    }
  });
});
