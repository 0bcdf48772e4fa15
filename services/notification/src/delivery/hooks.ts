import type { Logger } from '@cmc/logging';
import type { Bundle, Parameters } from 'fhir/r4';
import { sql, type Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';
import type { NotificationDB } from '../db/schema';
import { CAREPLAN_TOPIC } from '../domain/subscription';
import { retryAt } from './worker';

export interface HookSettings {
  timeoutMs: number;
  retryBaseMs: number;
  retryCapMs: number;
  giveUpSeconds: number;
}

interface DueHook {
  id: string;
  subscription_id: string;
  event_number: string;
  plan_id: string;
  event_type: string;
  attempts: number;
  first_attempt_at: Date | null;
  created_at: Date;
  endpoint: string;
  headers: string[];
}

const BACKPORT = 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition';

/**
 * The notification as the R5 Subscriptions backport (for R4) shapes it: a `history` Bundle whose first entry
 * is the SubscriptionStatus (a Parameters), with one notification-event whose focus is the plan. Id-only
 * content: the plan itself is not sent; the receiver reads it through the FHIR API, with its own rights,
 * and that read is recorded like any other.
 */
export function notificationBundle(h: Pick<DueHook, 'subscription_id' | 'event_number' | 'plan_id' | 'created_at'>): Bundle {
  const status: Parameters = {
    resourceType: 'Parameters',
    id: randomUUID(),
    meta: { profile: [`${BACKPORT}/backport-subscription-status-r4`] },
    parameter: [
      { name: 'subscription', valueReference: { reference: `Subscription/${h.subscription_id}` } },
      { name: 'topic', valueCanonical: CAREPLAN_TOPIC },
      { name: 'status', valueCode: 'active' },
      { name: 'type', valueCode: 'event-notification' },
      { name: 'events-since-subscription-start', valueString: String(h.event_number) },
      {
        name: 'notification-event',
        part: [
          { name: 'event-number', valueString: String(h.event_number) },
          { name: 'timestamp', valueInstant: new Date(h.created_at).toISOString() },
          { name: 'focus', valueReference: { reference: `CarePlan/${h.plan_id}` } },
        ],
      },
    ],
  };
  return {
    resourceType: 'Bundle',
    id: randomUUID(),
    meta: { profile: [`${BACKPORT}/backport-subscription-notification-r4`] },
    type: 'history',
    timestamp: new Date().toISOString(),
    entry: [{ fullUrl: `urn:uuid:${status.id}`, resource: status, request: { method: 'GET', url: `Subscription/${h.subscription_id}/$status` }, response: { status: '200' } }],
  };
}

/** POSTs the notification; resolves when the endpoint answered 2xx within the timeout, else throws why not. */
async function post(h: DueHook, s: HookSettings): Promise<void> {
  const headers: Record<string, string> = { 'content-type': 'application/fhir+json' };
  for (const line of h.headers) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  let res: Response;
  try {
    res = await fetch(h.endpoint, { method: 'POST', headers, body: JSON.stringify(notificationBundle(h)), redirect: 'manual', signal: AbortSignal.timeout(s.timeoutMs) });
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    if (err.name === 'TimeoutError' || err.name === 'AbortError') throw new Error(`no answer within ${s.timeoutMs} ms`, { cause: e });
    throw new Error(`request failed: ${err.cause?.code ?? err.cause?.message ?? err.message}`.slice(0, 300), { cause: e });
  }
  // The answer's body is of no use; do not wait for it.
  await res.body?.cancel().catch(() => undefined);
  if (res.status < 200 || res.status > 299) throw new Error(`endpoint answered HTTP ${res.status}`);
}

/**
 * Sends one hook notification that is due, if there is one; returns whether it found one. Per subscription
 * and patient, a notification is only taken when none before it is still pending: a receiver that was down
 * gets them all, in order, once it is back. The row is locked while it is sent (two instances never send the
 * same one); the duplicate window is as for email (the receiver answered 2xx, the commit did not happen).
 * A notification still failing `giveUpSeconds` after its first attempt fails for good and puts its
 * subscription in `error` (with the reason), with what was pending for it.
 */
export async function sendNextHook(db: Kysely<NotificationDB>, s: HookSettings, logger: Pick<Logger, 'warn'>): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const { rows } = await sql<DueHook>`
      select d.id, d.subscription_id, d.event_number, d.plan_id, d.event_type, d.attempts, d.first_attempt_at, d.created_at, s.endpoint, s.headers
      from hook_deliveries d join subscriptions s on s.id = d.subscription_id
      where d.status = 'pending' and d.next_attempt_at <= now() and s.status = 'active'
        and not exists (
          select 1 from hook_deliveries e
          where e.subscription_id = d.subscription_id and e.nhs_number = d.nhs_number and e.status = 'pending' and e.id < d.id)
      order by d.next_attempt_at, d.id
      limit 1
      for update of d skip locked`.execute(trx);
    const h = rows[0];
    if (!h) return false;
    const attempts = h.attempts + 1;
    const firstAttempt = h.first_attempt_at ?? new Date();
    try {
      await post(h, s);
      await trx
        .updateTable('hook_deliveries')
        .set({ status: 'sent', attempts, first_attempt_at: firstAttempt, sent_at: sql<Date>`now()`, last_error: null })
        .where('id', '=', h.id)
        .execute();
    } catch (e) {
      const error = (e as Error).message;
      const givingUp = Date.now() - firstAttempt.getTime() >= s.giveUpSeconds * 1000;
      await trx
        .updateTable('hook_deliveries')
        .set({
          status: givingUp ? 'failed' : 'pending',
          attempts,
          first_attempt_at: firstAttempt,
          last_error: error,
          next_attempt_at: retryAt(attempts, s.retryBaseMs, s.retryCapMs),
        })
        .where('id', '=', h.id)
        .execute();
      if (givingUp) {
        const reason = `notifications could not be delivered for ${s.giveUpSeconds} s (${attempts} attempts); last error: ${error}`;
        await trx.updateTable('subscriptions').set({ status: 'error', error: reason, updated_at: sql<Date>`now()` }).where('id', '=', h.subscription_id).execute();
        await trx
          .updateTable('hook_deliveries')
          .set({ status: 'failed', last_error: 'not sent: the subscription is in error' })
          .where('subscription_id', '=', h.subscription_id)
          .where('status', '=', 'pending')
          .execute();
        logger.warn({ subscription: h.subscription_id, attempts }, 'subscription put in error: its endpoint has not taken notifications for too long');
      }
    }
    return true;
  });
}
