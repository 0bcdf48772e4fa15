/** FHIR Subscription (rest-hook) for GP systems: what is accepted, and delivery to a real HTTP receiver. */
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, randomNhsNumber, startTestService, uniqueName, waitFor } from '@cmc/test-support';
import type { Bundle, OperationOutcome, Subscription } from 'fhir/r4';
import { notificationService, type NotificationDB } from '../src';
import { APlan, LOCAL_HOOKS, fastEnv, focusOf, send, startReceiver, uniqueOds, whereStored } from './support';

const NHS = 'https://fhir.nhs.uk/Id/nhs-number';

function aSubscription(criteria: string, endpoint: string, more: Record<string, unknown> = {}): Record<string, unknown> {
  return { resourceType: 'Subscription', status: 'requested', reason: 'GP record kept current', criteria, channel: { type: 'rest-hook', endpoint, payload: 'application/fhir+json', header: ['Authorization: Bearer hook-secret'] }, ...more };
}

describe('FHIR Subscription', () => {
  const issuer = new TestIssuer();
  const gp = uniqueOds();
  const clientId = uniqueName('gp-system');
  const system = `Bearer ${issuer.token({ kind: 'client', sub: clientId, org: gp, scope: 'system/Subscription.crud' })}`;
  const otherSystem = `Bearer ${issuer.token({ kind: 'client', sub: uniqueName('other-system'), org: uniqueOds(), scope: 'system/Subscription.crud' })}`;
  let transport: Transport;
  let svc: RunningService<NotificationDB>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    receiver = await startReceiver();
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: { ...fastEnv(), ...LOCAL_HOOKS, NOTIFY_HOOK_TIMEOUT_MS: '300' } });
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
    await receiver?.close();
  });

  const create = (body: unknown, authorization = system) =>
    svc.app.inject({ method: 'POST', url: '/fhir/R4/Subscription', headers: { authorization, 'content-type': 'application/fhir+json' }, payload: JSON.stringify(body) });
  const subscribe = async (criteria: string, endpoint = receiver.url): Promise<Subscription> => {
    const res = await create(aSubscription(criteria, endpoint));
    expect(res.statusCode).toBe(201);
    return res.json<Subscription>();
  };
  const hooksFor = (planId: string) => receiver.received.filter((h) => focusOf(h).focus === `CarePlan/${planId}`);

  it('when the subscription is not one the service supports, then 400 with an OperationOutcome that says why, and nothing is stored', async () => {
    const nhs = randomNhsNumber();
    const patient = `CarePlan?patient:identifier=${NHS}|${nhs}`;
    const bad: [string, unknown][] = [
      ['channel websocket', aSubscription(patient, receiver.url, { channel: { type: 'websocket', endpoint: receiver.url } })],
      ['channel email', aSubscription(patient, receiver.url, { channel: { type: 'email', endpoint: 'mailto:gp@example.org' } })],
      ['endpoint ftp', aSubscription(patient, 'ftp://example.org/hook')],
      ['endpoint not a URL', aSubscription(patient, 'not a url')],
      ['endpoint with credentials', aSubscription(patient, 'https://user:pass@example.org/hook')],
      ['criteria on Patient', aSubscription(`Patient?identifier=${NHS}|${nhs}`, receiver.url)],
      ['criteria by status', aSubscription('CarePlan?status=active', receiver.url)],
      ['criteria with two parameters', aSubscription(`${patient}&gp-practice=${gp}`, receiver.url)],
      ['criteria with an invalid NHS number', aSubscription(`CarePlan?patient:identifier=${NHS}|1234567890`, receiver.url)],
      ['criteria with another identifier system', aSubscription(`CarePlan?patient:identifier=urn:oid:1.2|${nhs}`, receiver.url)],
      ['an unknown field', aSubscription(patient, receiver.url, { colour: 'red' })],
      ['another payload', aSubscription(patient, receiver.url, { channel: { type: 'rest-hook', endpoint: receiver.url, payload: 'application/xml' } })],
      ['a header that is not Name: value', aSubscription(patient, receiver.url, { channel: { type: 'rest-hook', endpoint: receiver.url, header: ['Bearer abc'] } })],
      ['a Host header', aSubscription(patient, receiver.url, { channel: { type: 'rest-hook', endpoint: receiver.url, header: ['Host: evil.example'] } })],
      ['a header with a line break', aSubscription(patient, receiver.url, { channel: { type: 'rest-hook', endpoint: receiver.url, header: ['X-A: b\r\nX-C: d'] } })],
      ['not a Subscription', { resourceType: 'Patient' }],
    ];
    for (const [what, body] of bad) {
      const res = await create(body);
      expect({ what, status: res.statusCode }).toEqual({ what, status: 400 });
      expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    }
    const stored = await svc.database.db.selectFrom('subscriptions').select('id').where('client_id', '=', clientId).execute();
    expect(stored).toHaveLength(0);
  });

  it('when a person, a system without the scope, a system for another GP practice or nobody subscribes, then 403, 403, 403 and 401', async () => {
    const body = aSubscription(`CarePlan?gp-practice=${gp}`, receiver.url);
    expect((await create(body, issuer.bearer({ role: 'clinician', org: gp }))).statusCode).toBe(403);
    expect((await create(body, `Bearer ${issuer.token({ kind: 'client', org: gp, scope: 'system/CarePlan.rs' })}`)).statusCode).toBe(403);
    const refusals = async () => (await svc.database.db.selectFrom('outbox').select('payload').where('type', '=', 'cmc.access.recorded.v1').where('payload', 'like', '%own GP practice%').execute()).length;
    const before = await refusals();
    const elsewhere = await create(body, otherSystem);
    expect(elsewhere.statusCode).toBe(403);
    expect(elsewhere.json<OperationOutcome>().issue[0]!.diagnostics).toMatch(/own GP practice/);
    expect(await refusals()).toBe(before + 1); // the refused attempt is in the access log
    expect((await svc.app.inject({ method: 'POST', url: '/fhir/R4/Subscription', payload: body })).statusCode).toBe(401);
  });

  it('when a GP system subscribes to a patient, then 201 active, its secret header never shown; only it can read or end it', async () => {
    const nhs = randomNhsNumber();
    const sub = await subscribe(`CarePlan?patient:identifier=${NHS}|${nhs}`);
    expect(sub).toMatchObject({ resourceType: 'Subscription', status: 'active', channel: { type: 'rest-hook', endpoint: receiver.url, header: ['Authorization: [redacted]'] } });
    expect(JSON.stringify(sub)).not.toContain('hook-secret');
    // Nor readable in the database: sealed (AES-256-GCM), only the header's name in clear.
    expect(await whereStored(svc, 'Bearer hook-secret')).toEqual([]);
    const stored = await svc.database.db.selectFrom('subscriptions').select(['headers', 'header_secret']).where('id', '=', sub.id!).executeTakeFirstOrThrow();
    expect(stored.headers).toEqual(['Authorization']);
    expect(stored.header_secret).toMatch(/^v1\./);
    const own = await svc.app.inject({ method: 'GET', url: `/fhir/R4/Subscription/${sub.id}`, headers: { authorization: system } });
    expect(own.statusCode).toBe(200);
    expect((await svc.app.inject({ method: 'GET', url: `/fhir/R4/Subscription/${sub.id}`, headers: { authorization: otherSystem } })).statusCode).toBe(404);
    const search = await svc.app.inject({ method: 'GET', url: '/fhir/R4/Subscription', headers: { authorization: system } });
    expect(search.json<Bundle>().entry?.map((e) => e.resource?.id)).toContain(sub.id);
    const othersSearch = await svc.app.inject({ method: 'GET', url: '/fhir/R4/Subscription', headers: { authorization: otherSystem } });
    expect(othersSearch.json<Bundle>().entry ?? []).toHaveLength(0);
    expect((await svc.app.inject({ method: 'DELETE', url: `/fhir/R4/Subscription/${sub.id}`, headers: { authorization: otherSystem } })).statusCode).toBe(404);
    expect((await svc.app.inject({ method: 'DELETE', url: `/fhir/R4/Subscription/${sub.id}`, headers: { authorization: system } })).statusCode).toBe(204);
    expect((await svc.app.inject({ method: 'GET', url: `/fhir/R4/Subscription/${sub.id}`, headers: { authorization: system } })).statusCode).toBe(404);
    // Subscribing to a patient is an access to that patient's plans: recorded, and so are the other system's
    // attempts to read and end it (refused, though answered as not known).
    const accesses = await svc.database.db.selectFrom('outbox').select('payload').where('type', '=', 'cmc.access.recorded.v1').where('key', '=', nhs).execute();
    const seen = accesses.map((a) => (JSON.parse(a.payload) as { data: { interaction: string; outcome: string } }).data).map((d) => `${d.interaction} ${d.outcome}`);
    expect(seen.sort()).toEqual(['create allowed', 'delete allowed', 'delete refused', 'read allowed', 'read refused', 'search allowed']);
  });

  it('when a subscribed patient\'s plan changes, then the endpoint gets id-only notification Bundles with the secret header, in order, drafts left out', async () => {
    const plan = new APlan(uniqueOds(), crypto.randomUUID(), gp);
    const sub = await subscribe(`CarePlan?patient:identifier=${NHS}|${plan.nhsNumber}`);
    await send(transport, plan.event('cmc.careplan.created.v1'), plan.event('cmc.careplan.submitted.v1'), plan.event('cmc.careplan.published.v1'), plan.event('cmc.careplan.note-added.v1', { noteId: crypto.randomUUID() }), plan.event('cmc.careplan.updated.v1'));
    await waitFor(async () => hooksFor(plan.planId).length >= 3, 20_000, 'three notifications');
    const hooks = hooksFor(plan.planId);
    expect(hooks.map((h) => focusOf(h).eventNumber)).toEqual(['1', '2', '3']);
    const [first] = hooks;
    expect(first!.headers.authorization).toBe('Bearer hook-secret');
    expect(first!.headers['content-type']).toBe('application/fhir+json');
    expect(first!.body).toMatchObject({ resourceType: 'Bundle', type: 'history' });
    expect(first!.body.entry[0]!.resource.parameter).toEqual(
      expect.arrayContaining([
        { name: 'subscription', valueReference: { reference: `Subscription/${sub.id}` } },
        { name: 'type', valueCode: 'event-notification' },
      ]),
    );
    expect(JSON.stringify(hooks.map((h) => h.body))).not.toContain(plan.nhsNumber);
  });

  it('when a GP system subscribes to its practice, then it hears of the plans of that practice\'s patients only', async () => {
    const practice = uniqueOds();
    const practiceSystem = `Bearer ${issuer.token({ kind: 'client', sub: uniqueName('practice'), org: practice, scope: 'system/Subscription.c' })}`;
    const res = await create(aSubscription(`CarePlan?gp-practice=${practice}`, receiver.url), practiceSystem);
    expect(res.statusCode).toBe(201);
    const ours = new APlan(uniqueOds(), crypto.randomUUID(), practice);
    const theirs = new APlan(uniqueOds(), crypto.randomUUID(), uniqueOds());
    await send(transport, theirs.event('cmc.careplan.published.v1'), ours.event('cmc.careplan.published.v1'));
    await waitFor(async () => hooksFor(ours.planId).length >= 1, 20_000, 'the practice\'s notification');
    expect(hooksFor(theirs.planId)).toHaveLength(0);
  });

  it('when the receiver is down, then slow, then answers garbage, then comes back, then it gets every notification once, in order per patient', async () => {
    const plan = new APlan(uniqueOds(), crypto.randomUUID(), gp);
    await subscribe(`CarePlan?patient:identifier=${NHS}|${plan.nhsNumber}`);
    const errorsOf = async () => (await svc.database.db.selectFrom('hook_deliveries').select(['last_error', 'attempts', 'status']).where('plan_id', '=', plan.planId).orderBy('id').execute());
    receiver.mode.value = 'down';
    try {
      await send(transport, plan.event('cmc.careplan.published.v1'), plan.event('cmc.careplan.note-added.v1', { noteId: crypto.randomUUID() }), plan.event('cmc.careplan.updated.v1'), plan.event('cmc.careplan.withdrawn.v1'));
      await waitFor(async () => (await errorsOf())[0]?.last_error === 'endpoint answered HTTP 503', 20_000, 'a refused attempt');
      receiver.mode.value = 'slow';
      await waitFor(async () => /no answer within 300 ms/.test((await errorsOf())[0]?.last_error ?? ''), 20_000, 'a timed-out attempt');
      receiver.mode.value = 'garbage';
      await waitFor(async () => /request failed/.test((await errorsOf())[0]?.last_error ?? ''), 20_000, 'a garbage answer');
      // Nothing behind the first was tried while it was pending.
      const waiting = await errorsOf();
      expect(waiting.slice(1).every((d) => d.attempts === 0)).toBe(true);
      expect(hooksFor(plan.planId)).toHaveLength(0);
    } finally {
      receiver.mode.value = 'ok';
    }
    await waitFor(async () => hooksFor(plan.planId).length >= 4, 20_000, 'every notification after the receiver came back');
    expect(hooksFor(plan.planId).map((h) => focusOf(h).eventNumber)).toEqual(['1', '2', '3', '4']);
    // The receiver has them; the sender records each as sent just after.
    const done = await waitFor(async () => {
      const rows = await errorsOf();
      return rows.every((d) => d.status === 'sent') ? rows : undefined;
    }, 20_000, 'every notification recorded as sent');
    expect(done[0]!.attempts).toBeGreaterThanOrEqual(4);
  });
});

describe('a subscription whose endpoint never comes back', () => {
  const issuer = new TestIssuer();
  const gp = uniqueOds();
  const system = `Bearer ${issuer.token({ kind: 'client', sub: uniqueName('gp-system'), org: gp, scope: 'system/Subscription.cruds' })}`;
  let transport: Transport;
  let svc: RunningService<NotificationDB>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    receiver = await startReceiver();
    receiver.mode.value = 'down';
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: { ...fastEnv(), ...LOCAL_HOOKS, NOTIFY_HOOK_GIVE_UP_SECONDS: '1' } });
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
    await receiver?.close();
  });

  it('when its notifications keep failing past the retry period, then the subscription is in error with the reason, and the service team sees the failed delivery', async () => {
    const plan = new APlan(uniqueOds(), crypto.randomUUID(), gp);
    const res = await svc.app.inject({ method: 'POST', url: '/fhir/R4/Subscription', headers: { authorization: system, 'content-type': 'application/fhir+json' }, payload: aSubscription(`CarePlan?gp-practice=${gp}`, receiver.url) });
    const sub = res.json<Subscription>();
    await send(transport, plan.event('cmc.careplan.published.v1'), plan.event('cmc.careplan.updated.v1'));
    const inError = await waitFor(async () => {
      const r = await svc.app.inject({ method: 'GET', url: `/fhir/R4/Subscription/${sub.id}`, headers: { authorization: system } });
      const s = r.json<Subscription>();
      return s.status === 'error' ? s : undefined;
    }, 20_000, 'the subscription in error');
    expect(inError.error).toMatch(/could not be delivered for 1 s .* last error: endpoint answered HTTP 503/);
    const seen = await svc.app.inject({ method: 'GET', url: '/api/notifications/deliveries?channel=rest-hook&status=failed', headers: { authorization: issuer.bearer({ role: 'service-team', org: 'X26' }) } });
    const failed = seen.json<{ deliveries: { recipient: string; lastError: string }[] }>().deliveries.filter((d) => d.recipient === sub.id);
    expect(failed.map((d) => d.lastError).sort()).toEqual(['endpoint answered HTTP 503', 'not sent: the subscription is in error']);
    const attemptsThen = receiver.attempts.count;
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.attempts.count).toBe(attemptsThen);
  });
});
