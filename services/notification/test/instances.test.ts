/** Two instances of the service on one schema: every email and every hook notification goes out once. */
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, startTestService, uniqueName, waitFor } from '@cmc/test-support';
import { notificationService, type NotificationDB } from '../src';
import { APlan, LOCAL_HOOKS, aUser, fastEnv, focusOf, send, startReceiver, startSmtp, uniqueOds, userCreated } from './support';

describe('two instances', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  const instances: RunningService<NotificationDB>[] = [];

  beforeAll(async () => {
    smtp = await startSmtp();
    receiver = await startReceiver();
    transport = await newTransport('sql');
    const env = { ...fastEnv(smtp.url), ...LOCAL_HOOKS, NOTIFY_DB_SCHEMA: uniqueName('notification'), NOTIFY_HOOK_CONCURRENCY: '3' };
    instances.push(await startTestService(notificationService, { transport, issuer, env }));
    instances.push(await startTestService(notificationService, { transport, issuer, env }));
  });
  afterAll(async () => {
    for (const i of instances) await i.close();
    await transport?.close();
    await smtp?.close();
    await receiver?.close();
  });

  it('when both send at once, then each email and each hook notification arrives exactly once, hooks in order per patient', async () => {
    const [a] = instances;
    const org = uniqueOds();
    const gp = uniqueOds();
    const people = Array.from({ length: 6 }, (_, i) => aUser('clinician', i % 2 === 0 ? org : gp));
    await send(transport, ...people.map(userCreated));
    await waitFor(async () => (await a!.database.db.selectFrom('recipients').select('user_id').where('user_id', 'in', people.map((p) => p.userId)).execute()).length === people.length, 20_000, 'the users');
    const sub = await a!.app.inject({
      method: 'POST',
      url: '/fhir/R4/Subscription',
      headers: { authorization: `Bearer ${issuer.token({ kind: 'client', org: gp, scope: 'system/Subscription.crud' })}`, 'content-type': 'application/fhir+json' },
      payload: { resourceType: 'Subscription', status: 'requested', reason: 'r', criteria: `CarePlan?gp-practice=${gp}`, channel: { type: 'rest-hook', endpoint: receiver.url } },
    });
    expect(sub.statusCode).toBe(201);
    const plans = Array.from({ length: 4 }, () => new APlan(org, crypto.randomUUID(), gp));
    for (const p of plans) await send(transport, p.event('cmc.careplan.published.v1'), p.event('cmc.careplan.updated.v1'), p.event('cmc.careplan.note-added.v1', { noteId: crypto.randomUUID() }));

    // published and updated: 6 people each; note-added: the 3 GP clinicians. Per plan 15 emails; 3 hooks.
    const emails = await waitFor(async () => {
      const rows = await a!.database.db.selectFrom('email_deliveries').select(['id', 'status']).where('address', 'in', people.map((p) => p.email)).execute();
      return rows.length === plans.length * 15 && rows.every((r) => r.status === 'sent') ? rows : undefined;
    }, 30_000, 'every email sent');
    for (const { id } of emails) expect(smtp.mails.filter((m) => m.raw.includes(`<email-${id}@notification.cmc>`))).toHaveLength(1);

    await waitFor(async () => plans.every((p) => receiver.received.filter((h) => focusOf(h).focus === `CarePlan/${p.planId}`).length >= 3), 30_000, 'every hook');
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.received).toHaveLength(plans.length * 3);
    for (const p of plans) {
      const numbers = receiver.received.filter((h) => focusOf(h).focus === `CarePlan/${p.planId}`).map((h) => Number(focusOf(h).eventNumber));
      expect([...numbers].sort((x, y) => x - y)).toEqual(numbers);
    }
  });
});
