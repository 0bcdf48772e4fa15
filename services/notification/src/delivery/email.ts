import type { Kysely } from 'kysely';
import { sql } from 'kysely';
import { createTransport, type Transporter } from 'nodemailer';
import type { SmtpOptions } from '../config';
import type { NotificationDB } from '../db/schema';
import type { NotificationKind } from '../domain/rules';
import { retryAt } from './worker';

const REVIEW_KINDS: readonly string[] = ['review-due', 'review-overdue'] satisfies NotificationKind[];

export interface EmailSettings {
  from: string;
  appUrl: string;
  maxAttempts: number;
  retryBaseMs: number;
  retryCapMs: number;
}

/**
 * What an email says. Never clinical detail, the patient's name or NHS number, nor even the plan's id: only
 * that something changed and where to sign in (an email can be read by anyone who sees the mailbox).
 */
export function renderEmail(kind: string, appUrl: string): { subject: string; text: string } {
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
    const { subject, text } = renderEmail(row.kind, s.appUrl);
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
    }
    return true;
  });
}

/** The SMTP error, short, without the address (the server's reply may quote it). */
function describeSmtpError(e: unknown): string {
  const err = e as { code?: string; responseCode?: number; message?: string };
  const parts = [err.code, err.responseCode ? String(err.responseCode) : undefined, (err.message ?? 'unknown error').replace(/<[^>]*@[^>]*>|\S+@\S+/g, '<address>')];
  return parts.filter(Boolean).join(' ').slice(0, 500);
}
