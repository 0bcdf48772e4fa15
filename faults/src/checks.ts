/**
 * What the suite reads back from its own database to judge each fault: the audit log (one entry per answered
 * access, found by the request id the load put on it), the care-plan service's domain events and their
 * effects (in the audit log, in the notification service, its hook and email deliveries), and every
 * consumer's dead letters. Each query opens a connection of its own: the database may just have restarted.
 */
import pg from 'pg';

export async function query<R>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, statement_timeout: 60_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query(text, params)).rows as R[];
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The phase a request id belongs to (`flt.<phase>.<kind>.<n>`). */
export const phaseOf = (requestId: string | null | undefined): string => (requestId?.startsWith('flt.') ? (requestId.split('.')[1] ?? '?') : '?');

/**
 * Reads the audit log as it grows (seq after seq), counting access entries by request id and entries by event
 * id, so that polling for "caught up" does not re-read the whole log.
 */
export class AuditReader {
  private lastSeq = 0;
  readonly accessByRequest = new Map<string, number>();
  readonly entriesByEvent = new Map<string, number>();

  constructor(private readonly url: () => string) {}

  async poll(): Promise<void> {
    for (;;) {
      const rows = await query<{ seq: string; topic: string; event_id: string; rid: string | null }>(
        this.url(),
        `select seq::text, topic, event_id::text, event::jsonb ->> 'requestid' as rid
         from audit.audit_log where seq > $1 order by seq limit 20000`,
        [this.lastSeq],
      );
      for (const r of rows) {
        this.lastSeq = Math.max(this.lastSeq, Number(r.seq));
        this.entriesByEvent.set(r.event_id, (this.entriesByEvent.get(r.event_id) ?? 0) + 1);
        if (r.topic === 'cmc.access.v1' && r.rid) this.accessByRequest.set(r.rid, (this.accessByRequest.get(r.rid) ?? 0) + 1);
      }
      if (rows.length < 20000) return;
    }
  }
}

export interface DomainEvent {
  event_id: string;
  type: string;
  rid: string | null;
  state: string | null;
  plan_id: string | null;
  sent: boolean;
}

/** The care-plan service's domain events (not its access entries), from its outbox. */
export function carePlanEvents(url: string): Promise<DomainEvent[]> {
  return query<DomainEvent>(
    url,
    `select event_id::text, type, payload::jsonb ->> 'requestid' as rid, payload::jsonb -> 'data' ->> 'state' as state,
       payload::jsonb -> 'data' ->> 'planId' as plan_id, sent_at is not null as sent
     from careplan.outbox where type like 'cmc.careplan.%' order by id`,
  );
}

export interface DeadLetter {
  schema: string;
  consumer: string;
  topic: string;
  event_id: string | null;
  event_type: string | null;
  reason: string;
}

export async function deadLetters(url: string): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  for (const schema of ['consent', 'careplan', 'audit', 'notification']) {
    const rows = await query<Omit<DeadLetter, 'schema'>>(url, `select consumer, topic, event_id::text, event_type, reason from ${schema}.dead_letters order by id`);
    out.push(...rows.map((r) => ({ schema, ...r })));
  }
  return out;
}

export async function notificationProcessed(url: string): Promise<Map<string, number>> {
  const rows = await query<{ event_id: string; n: number }>(url, `select event_id::text, count(*)::int as n from notification.processed_events where event_type like 'cmc.careplan.%' group by 1`);
  return new Map(rows.map((r) => [r.event_id, r.n]));
}

export interface HookRow {
  id: string;
  subscription_id: string;
  event_id: string;
  event_number: string;
  status: string;
}

export function hookRows(url: string): Promise<HookRow[]> {
  return query<HookRow>(url, `select id::text, subscription_id::text, event_id::text, event_number::text, status from notification.hook_deliveries order by id`);
}

export interface EmailRow {
  id: string;
  source: string;
  recipient: string;
  status: string;
}

export function emailRows(url: string): Promise<EmailRow[]> {
  return query<EmailRow>(url, `select id::text, source, recipient, status from notification.email_deliveries order by id`);
}

/** Domain events of a phase that the notification service has neither handled nor dead-lettered yet, and that are not yet sent. */
export async function pendingEventsOf(url: string, phase: string): Promise<number> {
  const rows = await query<{ n: number }>(
    url,
    `select count(*)::int as n from careplan.outbox o
     where o.type like 'cmc.careplan.%' and o.payload::jsonb ->> 'requestid' like $1
       and (o.sent_at is null
         or not exists (select 1 from notification.processed_events p where p.event_id::text = o.event_id::text)
           and not exists (select 1 from notification.dead_letters d where d.event_id::text = o.event_id::text))`,
    [`flt.${phase}.%`],
  );
  return rows[0]?.n ?? 0;
}

/** Hook and email deliveries not yet sent (pending). */
export async function pendingDeliveries(url: string): Promise<number> {
  const rows = await query<{ n: number }>(
    url,
    `select (select count(*) from notification.hook_deliveries where status = 'pending')::int
          + (select count(*) from notification.email_deliveries where status = 'pending')::int as n`,
  );
  return rows[0]?.n ?? 0;
}
