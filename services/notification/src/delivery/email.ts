import { publish } from '@cmc/events';
import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { createTransport, type Transporter } from 'nodemailer';
import { smtpOptions, type NotificationConfig, type SmtpOptions } from '../config';
import type { NotificationDB } from '../db/schema';
import type { NotificationKind } from '../domain/rules';
import { NOTIFICATION_SOURCE, retryAt } from './worker';

const REVIEW_KINDS: readonly string[] = ['review-due', 'review-overdue'] satisfies NotificationKind[];
const APPROVAL_KINDS: readonly string[] = ['approval-reminder', 'approval-escalation'] satisfies NotificationKind[];

export interface EmailSettings {
  from: string;
  appUrl: string;
  /** NOTIFY_INACTIVITY_DAYS: when an account lock warning says the account will be locked. */
  inactivityDays?: number;
  maxAttempts: number;
  retryBaseMs: number;
  retryCapMs: number;
  /** The service's schema: an email that fails for good is announced on cmc.notification.v1 through its outbox. */
  schema?: string;
}

/**
 * What an email says. Never clinical detail, the patient's name or NHS number, nor even the plan's id: only
 * that something changed and where to sign in (an email can be read by anyone who sees the mailbox).
 */
export function renderEmail(kind: string, appUrl: string, lock?: { daysLeft: number }): { subject: string; text: string } {
  if (kind === 'account-lock-warning') {
    const days = Math.max(1, lock?.daysLeft ?? 1);
    return {
      subject: 'Your Coordinate My Care account will be locked soon',
      text: [
        'You have not signed in to Coordinate My Care for a long time; accounts unused for that long are locked.',
        '',
        `Sign in within ${days} day${days === 1 ? '' : 's'} to keep your account: ${appUrl}`,
        '',
        'If your account is locked, your organisation\'s Coordinate My Care lead can unlock it.',
      ].join('\n'),
    };
  }
  if (APPROVAL_KINDS.includes(kind)) {
    return {
      subject: 'A care plan is waiting for approval',
      text: [
        kind === 'approval-escalation'
          ? 'A care plan of your organisation has been waiting for approval for several days. Until a clinician approves it, urgent care services cannot see it.'
          : 'A care plan has been waiting for approval for several days. Until it is approved, urgent care services cannot see it.',
        '',
        `Sign in to see it: ${appUrl}`,
        '',
        'This message carries no patient details by design. If you did not expect it, tell your organisation\'s Coordinate My Care lead.',
      ].join('\n'),
    };
  }
  const review = REVIEW_KINDS.includes(kind);
  const subject = review ? 'A care plan is due for review' : 'A care plan you follow has changed';
  const text = [
    review ? 'A care plan you look after is due for review.' : 'A care plan you follow has changed.',
    '',
    `Sign in to see it: ${appUrl}`,
    '',
    'This message carries no patient details by design. If you did not expect it, tell your organisation\'s Coordinate My Care lead.',
  ].join('\n');
  return { subject, text };
}

/**
 * The SMTP side: one nodemailer transport for the service's life, pooling up to `connections` connections
 * that stay open between emails (a new connection per email costs the greeting, TLS and the login each time:
 * about 100 ms even against a local server, which capped sending at about 9 emails/s).
 */
export function smtpSender(options: SmtpOptions, connections = 1): Transporter {
  return createTransport({ ...options, pool: true, maxConnections: connections, maxMessages: 1000 });
}

/**
 * The service's one SMTP transport, made on first use from its configuration, shared by the email sender and
 * the consumer's identity emails (invitations, password resets). `get()` is undefined when email is off, and
 * throws once the service has closed it (a handler still running then fails, and its event is redelivered).
 */
export class Mailer {
  private transporter: Transporter | undefined;
  private closed = false;
  constructor(
    private readonly options: SmtpOptions | undefined,
    private readonly connections: number,
  ) {}

  get(): Transporter | undefined {
    if (!this.options) return undefined;
    if (this.closed) throw new Error('the SMTP transport is closed');
    this.transporter ??= smtpSender(this.options, this.connections);
    return this.transporter;
  }

  close(): void {
    this.closed = true;
    this.transporter?.close();
  }
}

const mailers = new WeakMap<NotificationConfig, Mailer>();

/** The Mailer of this configuration (one per running service: its consumers and background share it). */
export function mailerOf(c: NotificationConfig): Mailer {
  let m = mailers.get(c);
  if (!m) {
    m = new Mailer(smtpOptions(c), c.NOTIFY_EMAIL_CONCURRENCY);
    mailers.set(c, m);
  }
  return m;
}

/**
 * Sends one email that is due, if there is one; returns whether it found one. The row is locked (FOR UPDATE
 * SKIP LOCKED) while it is sent and its outcome is written in the same transaction, so two instances never
 * send the same row. The one window for a duplicate: the SMTP server has accepted the message and the
 * process dies (or the database goes) before the commit; the row is then still pending and sent again. Its
 * Message-ID is the same each time, so mail systems that de-duplicate by Message-ID show it once.
 */
export async function sendNextEmail(db: Kysely<NotificationDB>, transporter: Pick<Transporter, 'sendMail'>, s: EmailSettings): Promise<boolean> {
  return db.transaction().execute(async (trx) => {
    const row = await trx
      .selectFrom('email_deliveries')
      .selectAll()
      .where('status', '=', 'pending')
      .where('next_attempt_at', '<=', sql<Date>`now()`)
      .orderBy('next_attempt_at')
      .orderBy('id')
      .limit(1)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!row) return false;
    const { subject, text } = renderEmail(row.kind, s.appUrl, lockOf(row.source, s.inactivityDays));
    const attempts = row.attempts + 1;
    try {
      await transporter.sendMail({ from: s.from, to: row.address, subject, text, messageId: `<email-${row.id}@notification.cmc>` });
      await trx.updateTable('email_deliveries').set({ status: 'sent', attempts, sent_at: sql<Date>`now()`, last_error: null }).where('id', '=', row.id).execute();
    } catch (e) {
      const error = describeSmtpError(e);
      const failed = attempts >= s.maxAttempts;
      await trx
        .updateTable('email_deliveries')
        .set({
          status: failed ? 'failed' : 'pending',
          attempts,
          last_error: error,
          next_attempt_at: retryAt(attempts, s.retryBaseMs, s.retryCapMs),
        })
        .where('id', '=', row.id)
        .execute();
      if (failed && s.schema) {
        // In the same transaction as the row's status: announced if and only if it is recorded as failed.
        await publish(trx, s.schema, {
          type: 'cmc.notification.delivery-failed.v1',
          source: NOTIFICATION_SOURCE,
          key: `email-${row.id}`,
          data: { deliveryId: String(row.id), channel: 'email', recipient: row.recipient, kind: row.kind, attempts, reason: error, failedAt: new Date().toISOString() },
        });
      }
    }
    return true;
  });
}

/** For an account lock warning (source `account-lock-warning:<user>:<last login date>`): the days left before the lock. */
function lockOf(source: string, inactivityDays: number | undefined): { daysLeft: number } | undefined {
  const m = /^account-lock-warning:.*:(\d{4}-\d{2}-\d{2})$/.exec(source);
  if (!m || !inactivityDays) return undefined;
  const lockAt = Date.parse(`${m[1]}T00:00:00Z`) + inactivityDays * 86_400_000;
  return { daysLeft: Math.floor((lockAt - Date.now()) / 86_400_000) };
}

/** The SMTP error, short, without the address (the server's reply may quote it). */
export function describeSmtpError(e: unknown): string {
  const err = e as { code?: string; responseCode?: number; message?: string };
  const parts = [err.code, err.responseCode ? String(err.responseCode) : undefined, (err.message ?? 'unknown error').replace(/<[^>]*@[^>]*>|\S+@\S+/g, '<address>')];
  return parts.filter(Boolean).join(' ').slice(0, 500);
}
