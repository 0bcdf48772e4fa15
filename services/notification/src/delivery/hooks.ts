import { publish } from '@cmc/events';
import type { Logger } from '@cmc/logging';
import type { Bundle, Parameters } from 'fhir/r4';
import { sql, type Kysely } from 'kysely';
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { NotificationDB } from '../db/schema';
import { SecretUnreadableError, type SecretBox } from '../domain/secrets';
import { CAREPLAN_TOPIC } from '../domain/subscription';
import { ForbiddenAddressError, guardedLookup, ipLiteralOf, isForbiddenAddress } from './address-guard';
import { NOTIFICATION_SOURCE, retryAt } from './worker';

export interface HookSettings {
  timeoutMs: number;
  retryBaseMs: number;
  retryCapMs: number;
  giveUpSeconds: number;
  /** NOTIFY_HOOK_ALLOW_PRIVATE: let endpoints be on private, loopback and other internal networks (tests, local setups). */
  allowPrivate: boolean;
  /** Opens the sealed header lines. */
  box: SecretBox;
  /** The service's schema: a failure for good is announced on cmc.notification.v1 through its outbox. */
  schema?: string;
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
  header_secret: string | null;
  client_id: string;
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

/** The header lines to send: opened from their sealed form (rows stored before sealing still hold them in clear). */
function headerLines(h: DueHook, box: SecretBox): string[] {
  if (h.header_secret) return box.openHeaders(h.header_secret, h.subscription_id);
  return h.headers.filter((l) => l.includes(':'));
}

/**
 * POSTs the notification; resolves when the endpoint answered 2xx within the timeout, else throws why not.
 * Unless private addresses are allowed, an endpoint whose host is such an address, or a name that resolves
 * to one, is refused before any connection (the connection then goes to the address that was checked).
 */
async function post(h: DueHook, s: HookSettings): Promise<void> {
  const url = new URL(h.endpoint);
  // An address in the URL is judged here (no DNS is asked for it); a name, by guardedLookup once resolved
  // (localhost included: it is refused because of what it resolves to).
  const literal = ipLiteralOf(url.hostname);
  if (!s.allowPrivate && literal !== undefined && isForbiddenAddress(literal)) throw new ForbiddenAddressError();
  const headers: Record<string, string> = { 'content-type': 'application/fhir+json' };
  for (const line of headerLines(h, s.box)) {
    const colon = line.indexOf(':');
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  const body = JSON.stringify(notificationBundle(h));
  headers['content-length'] = String(Buffer.byteLength(body));
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  await new Promise<void>((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', headers, signal: AbortSignal.timeout(s.timeoutMs), agent: false, ...(s.allowPrivate ? {} : { lookup: guardedLookup }) },
      (res) => {
        // The answer's body is of no use: do not wait for it (nor let a large one be read).
        res.destroy();
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) reject(new Error(`endpoint answered HTTP ${status}`));
        else resolve();
      },
    );
    req.on('error', (e: Error & { code?: string }) => {
      if (e instanceof ForbiddenAddressError || e.code === 'EFORBIDDENADDRESS') reject(new ForbiddenAddressError());
      else if (e.name === 'AbortError' || e.name === 'TimeoutError') reject(new Error(`no answer within ${s.timeoutMs} ms`, { cause: e }));
      else reject(new Error(`request failed: ${e.code ?? e.message}`.slice(0, 300), { cause: e }));
    });
    req.end(body);
  });
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
      select d.id, d.subscription_id, d.event_number, d.plan_id, d.event_type, d.attempts, d.first_attempt_at, d.created_at, s.endpoint, s.headers, s.header_secret, s.client_id
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
      // A secret that cannot be opened never will be (the key changed): no point retrying for a day.
      const givingUp = e instanceof SecretUnreadableError || Date.now() - firstAttempt.getTime() >= s.giveUpSeconds * 1000;
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
        const reason =
          e instanceof SecretUnreadableError
            ? `notifications cannot be sent: ${error}; make a new subscription`
            : `notifications could not be delivered for ${s.giveUpSeconds} s (${attempts} attempts); last error: ${error}`;
        await trx.updateTable('subscriptions').set({ status: 'error', error: reason, updated_at: sql<Date>`now()` }).where('id', '=', h.subscription_id).execute();
        await trx
          .updateTable('hook_deliveries')
          .set({ status: 'failed', last_error: 'not sent: the subscription is in error' })
          .where('subscription_id', '=', h.subscription_id)
          .where('status', '=', 'pending')
          .execute();
        if (s.schema) {
          // In the same transaction as the statuses they announce.
          const at = new Date().toISOString();
          await publish(trx, s.schema, {
            type: 'cmc.notification.delivery-failed.v1',
            source: NOTIFICATION_SOURCE,
            key: h.subscription_id,
            data: { deliveryId: String(h.id), channel: 'rest-hook', recipient: h.subscription_id, attempts, reason: error.slice(0, 1000), failedAt: at },
          });
          await publish(trx, s.schema, {
            type: 'cmc.notification.subscription-errored.v1',
            source: NOTIFICATION_SOURCE,
            key: h.subscription_id,
            data: { subscriptionId: h.subscription_id, clientId: h.client_id, reason: reason.slice(0, 1000), erroredAt: at },
          });
        }
        logger.warn({ subscription: h.subscription_id, attempts }, 'subscription put in error: its endpoint has not taken notifications, or its secret cannot be read');
      }
    }
    return true;
  });
}
