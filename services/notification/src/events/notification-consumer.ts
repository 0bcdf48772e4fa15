import { TOPICS, type CloudEvent, type EventType, type PlanEventData } from '@cmc/contracts';
import type { Handler, Handlers } from '@cmc/events';
import type { ConsumerDefinition } from '@cmc/service';
import { sql, type Transaction } from 'kysely';
import { applyPlanEvent, deactivateRecipient, plansOfPatient, upsertRecipient } from '../db/projections';
import { sendIdentityEmail, type IdentityEmailSettings } from '../delivery/identity-email';
import type { NotificationDB } from '../db/schema';
import { notify, recipientsFor } from '../domain/notify';
import { isHookEvent, kindOfPlanEvent, sourceKey } from '../domain/rules';

export const NOTIFICATION_CONSUMER = 'notification';

const PLAN_EVENTS = [
  'cmc.careplan.created.v1',
  'cmc.careplan.updated.v1',
  'cmc.careplan.submitted.v1',
  'cmc.careplan.published.v1',
  'cmc.careplan.withdrawn.v1',
  'cmc.careplan.death-recorded.v1',
  'cmc.careplan.note-added.v1',
  'cmc.careplan.change-requested.v1',
] as const;

/**
 * Queues a notification of the event for every active subscription whose criteria match (the patient, or the
 * patient's GP practice), numbered per subscription as the R5 backport's events-since-subscription-start.
 * Inserted in event order, so the id order is the order to send them in, per patient.
 */
async function queueHooks(trx: Transaction<NotificationDB>, event: CloudEvent, d: PlanEventData, gpPractice: string | null): Promise<void> {
  await sql`with matched as (
      update subscriptions set events_since_start = events_since_start + 1, updated_at = now()
      where status = 'active'
        and ((criteria_kind = 'patient' and criteria_value = ${d.nhsNumber})
          or (criteria_kind = 'gp-practice' and criteria_value = ${gpPractice ?? ''}))
      returning id, events_since_start
    )
    insert into hook_deliveries (subscription_id, event_id, event_number, nhs_number, plan_id, event_type)
    select id, ${event.id}::uuid, events_since_start, ${d.nhsNumber}, ${d.planId}::uuid, ${event.type} from matched order by id
    on conflict (subscription_id, event_id) do nothing`.execute(trx);
}

const planHandler: Handler<NotificationDB, EventType> = async (trx, event) => {
  const d = event.data as PlanEventData;
  const plan = await applyPlanEvent(trx, event.type, d);
  const kind = kindOfPlanEvent(event.type, d);
  if (kind) {
    const recipients = await recipientsFor(trx, kind, plan, d.changedBy);
    await notify(trx, { source: sourceKey(kind, event.id, d.planId), kind, planId: d.planId, recipients });
  }
  if (isHookEvent(event.type, d)) await queueHooks(trx, event, d, plan.gp_practice);
};

/**
 * The one consumer of the service: identity events build the recipients, care plan events the plans and
 * the notifications, consent withdrawals tell the care team. Each event is handled once (its id is recorded
 * with its effects), and the notifications' unique keys hold even if it were not.
 */
export function notificationConsumer(identityEmail?: IdentityEmailSettings): ConsumerDefinition<NotificationDB> {
  const email: IdentityEmailSettings = identityEmail ?? { mailer: undefined, from: '', logger: { warn: () => undefined } };
  const handlers: Handlers<NotificationDB> = {
    'cmc.identity.user-created.v1': async (trx, e) => {
      await upsertRecipient(trx, { userId: e.data.userId, role: e.data.role, organisation: e.data.organisation, email: e.data.email });
    },
    'cmc.identity.login-succeeded.v1': async (trx, e) => {
      // Role and organisation as of the latest login, for users created before this service listened.
      await upsertRecipient(trx, { userId: e.data.userId, role: e.data.role, organisation: e.data.organisation, lastLoginAt: e.time });
    },
    'cmc.identity.invitation-created.v1': async (trx, e) => {
      await sendIdentityEmail(trx, e, 'invitation', { email: e.data.email, link: e.data.acceptUrl, expiresAt: e.data.expiresAt }, email);
    },
    'cmc.identity.password-reset-requested.v1': async (trx, e) => {
      await sendIdentityEmail(trx, e, 'password-reset', { email: e.data.email, link: e.data.resetUrl, expiresAt: e.data.expiresAt }, email);
    },
    'cmc.identity.user-deactivated.v1': async (trx, e) => {
      await deactivateRecipient(trx, e.data.userId);
    },
    'cmc.consent.withdrawn.v1': async (trx, e) => {
      for (const plan of await plansOfPatient(trx, e.data.nhsNumber)) {
        if (plan.state === 'withdrawn' || plan.state === 'deceased') continue;
        const recipients = await recipientsFor(trx, 'consent-withdrawn', plan);
        await notify(trx, { source: sourceKey('consent-withdrawn', e.id, plan.plan_id), kind: 'consent-withdrawn', planId: plan.plan_id, recipients });
      }
    },
  };
  for (const type of PLAN_EVENTS) (handlers as Record<string, Handler<NotificationDB, EventType>>)[type] = planHandler;
  return { name: NOTIFICATION_CONSUMER, topics: [TOPICS.identity, TOPICS.consent, TOPICS.careplan], handlers };
}
