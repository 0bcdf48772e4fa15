import { randomUUID } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { NotificationDB, Plan } from '../db/schema';
import { RULES, type Audience, type NotificationKind } from './rules';

type Db = Kysely<NotificationDB> | Transaction<NotificationDB>;

/** Roles of people who hear of plans. Patients and proxies have their own view, not this service's inbox. */
export const STAFF_ROLES = ['clinician', 'administrator', 'urgent-care', 'service-team'] as const;

/** Who is told: a user (inbox, and email when the address is known), or an address alone (`inbox: false`). */
export interface Recipient {
  user_id: string;
  email: string | null;
  /** false: email only (an organisation's lead known by address, with no account here). */
  inbox?: boolean;
}

/** The users (active staff, with what we know of them) a kind of notification about a plan goes to, the actor left out. */
export async function recipientsFor(
  db: Db,
  kind: NotificationKind,
  plan: Pick<Plan, 'organisation' | 'gp_practice' | 'author' | 'reviewer'>,
  actor?: string,
): Promise<Recipient[]> {
  const audiences: readonly Audience[] = RULES[kind];
  const people = new Set<string>();
  const organisations = new Set<string>();
  const settings = audiences.some((a) => a === 'approving-gp-practice-clinicians' || a === 'organisation-lead')
    ? await db.selectFrom('organisation_settings').select(['lead_email', 'gp_practice_approves']).where('organisation', '=', plan.organisation).executeTakeFirst()
    : undefined;
  let leadEmail: string | undefined;
  for (const a of audiences) {
    if (a === 'author') people.add(plan.author);
    else if (a === 'reviewer') people.add(plan.reviewer ?? plan.author);
    else if (a === 'organisation-clinicians') organisations.add(plan.organisation);
    else if (a === 'approving-gp-practice-clinicians') {
      if (settings?.gp_practice_approves && plan.gp_practice) organisations.add(plan.gp_practice);
    } else if (a === 'organisation-lead') leadEmail = settings?.lead_email ?? undefined;
    else if (plan.gp_practice) organisations.add(plan.gp_practice);
  }
  if (people.size === 0 && organisations.size === 0 && !leadEmail) return [];
  const rows = await db
    .selectFrom('recipients')
    .select(['user_id', 'email'])
    .where('active', '=', true)
    .where('role', 'in', STAFF_ROLES)
    .where((eb) => {
      const or = [];
      if (people.size > 0) or.push(eb('user_id', 'in', [...people]));
      if (organisations.size > 0) or.push(eb.and([eb('role', '=', 'clinician'), eb('organisation', 'in', [...organisations])]));
      // The lead has an account here when an active member of staff has that address: the inbox too.
      if (leadEmail) or.push(eb('email', '=', leadEmail));
      return eb.or(or);
    })
    .orderBy('user_id')
    .execute();
  const found: Recipient[] = rows.filter((r) => r.user_id !== actor);
  if (leadEmail && !rows.some((r) => r.email === leadEmail)) found.push({ user_id: `lead:${plan.organisation}`, email: leadEmail, inbox: false });
  return found;
}

/**
 * Puts a notification in each recipient's inbox and, for those with an address, an email to send: in the
 * caller's transaction (the consumer's, which also records the event as processed). Each is unique by
 * (source, recipient), so a second delivery of the same event adds nothing. Returns how many were new.
 */
export async function notify(db: Db, n: { source: string; kind: NotificationKind; planId: string; recipients: Recipient[] }): Promise<number> {
  if (n.recipients.length === 0) return 0;
  const inboxes = n.recipients.filter((r) => r.inbox !== false);
  const inserted = inboxes.length === 0 ? [] : await db
    .insertInto('notifications')
    .values(inboxes.map((r) => ({ id: randomUUID(), user_id: r.user_id, source: n.source, kind: n.kind, plan_id: n.planId, read_at: null })))
    .onConflict((oc) => oc.columns(['source', 'user_id']).doNothing())
    .returning('user_id')
    .execute();
  const withEmail = n.recipients.filter((r) => r.email);
  if (withEmail.length > 0) {
    await db
      .insertInto('email_deliveries')
      .values(withEmail.map((r) => ({ source: n.source, recipient: r.user_id, address: r.email!, kind: n.kind, last_error: null, sent_at: null })))
      .onConflict((oc) => oc.columns(['source', 'recipient']).doNothing())
      .execute();
  }
  return inserted.length;
}
