/**
 * Bad input to every write route of the notification service (see sweep.ts): a system client's subscriptions,
 * and a member of staff's inbox (a notification put in it as the service's own consumer would).
 */
import type { Transport } from '@cmc/events';
import { notificationService, type NotificationDB } from '@cmc/notification-service';
import type { RunningService } from '@cmc/service';
import { TestIssuer, newTransport, randomNhsNumber, startTestService } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';
import { serviceTarget, sweepSuite, type RouteSpec } from './sweep';

const issuer = new TestIssuer();
const ORG = 'H81001';
const client = issuer.bearer({ kind: 'client', sub: `gp-${randomUUID().slice(0, 8)}`, org: ORG, scope: 'system/Subscription.crud' });

sweepSuite('notification', async () => {
  const transport: Transport = await newTransport('sql');
  const svc: RunningService<NotificationDB> = await startTestService(notificationService, {
    transport,
    issuer,
    env: { NOTIFY_APP_URL: 'https://cmc.example.test/', NOTIFY_REVIEW_CHECK_SECONDS: '86400' },
  });
  const subscription = (nhs: string) => ({
    resourceType: 'Subscription',
    status: 'requested',
    reason: 'Keep our record of the plan current',
    criteria: `CarePlan?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|${nhs}`,
    channel: { type: 'rest-hook', endpoint: 'https://gp-system.example.org/cmc/hook', payload: 'application/fhir+json', header: ['Authorization: Bearer a-shared-secret'] },
  });

  const specs: Record<string, RouteSpec> = {
    'POST /fhir/R4/Subscription': {
      body: 'json',
      prepare: async () => ({ url: '/fhir/R4/Subscription', headers: { authorization: client }, body: subscription(randomNhsNumber()), expect: 201 }),
    },
    'DELETE /fhir/R4/Subscription/{id}': {
      body: 'none',
      prepare: async () => {
        const res = await svc.app.inject({ method: 'POST', url: '/fhir/R4/Subscription', headers: { authorization: client, 'content-type': 'application/fhir+json' }, payload: subscription(randomNhsNumber()) });
        if (res.statusCode !== 201) throw new Error(`subscribing answered ${res.statusCode}: ${res.body}`);
        return { url: `/fhir/R4/Subscription/${res.json<{ id: string }>().id}`, headers: { authorization: client }, expect: 204 };
      },
    },
    'PUT /api/notifications/organisations/{ods}': {
      body: 'json',
      prepare: async () => ({
        url: `/api/notifications/organisations/${ORG}`,
        headers: { authorization: issuer.bearer({ role: 'service-team', org: 'X26' }) },
        body: { leadEmail: 'cmc-lead@sunrise.example.org', gpPracticeApproves: true },
        expect: 200,
      }),
    },
    'POST /api/notifications/{id}/read': {
      body: 'none',
      prepare: async () => {
        const userId = randomUUID();
        const id = randomUUID();
        await svc.database.db.insertInto('notifications').values({ id, user_id: userId, source: 'bad-input-test', kind: 'plan-published', plan_id: randomUUID(), read_at: null }).execute();
        return { url: `/api/notifications/${id}/read`, headers: { authorization: issuer.bearer({ sub: userId, role: 'clinician', org: ORG }) }, expect: 200 };
      },
    },
  };

  return serviceTarget(svc, transport, specs);
});
