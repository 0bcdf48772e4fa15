import type { CloudEvent } from '@cmc/contracts';
import type { Logger } from '@cmc/logging';
import { sql, type Transaction } from 'kysely';
import type { NotificationDB } from '../db/schema';
import { describeSmtpError, type Mailer } from './email';

export type IdentityEmailKind = 'invitation' | 'password-reset';

export interface IdentityEmailSettings {
  mailer: Mailer | undefined;
  from: string;
  logger: Pick<Logger, 'warn'>;
}

/** How an expiry reads in an email: the UTC time, to the minute. */
const when = (iso: string): string => {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : `${new Date(t).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
};

/** What the email says: the link and its expiry, nothing clinical (an invitation event's NHS number is never used). */
export function renderIdentityEmail(kind: IdentityEmailKind, link: string, expiresAt: string): { subject: string; text: string } {
  if (kind === 'invitation') {
    return {
      subject: 'Your Coordinate My Care invitation',
      text: [
        'You have been invited to Coordinate My Care.',
        '',
        `Accept the invitation here: ${link}`,
        '',
        `This link can be used once and expires at ${when(expiresAt)}. Do not share it. If you did not expect this invitation, ignore this email.`,
      ].join('\n'),
    };
  }
  return {
    subject: 'Reset your Coordinate My Care password',
    text: [
      'Someone asked to reset the password of your Coordinate My Care account.',
      '',
      `Choose a new password here: ${link}`,
      '',
      `This link can be used once and expires at ${when(expiresAt)}. Do not share it. If you did not ask for this, ignore this email: your password stays as it is.`,
    ].join('\n'),
  };
}

/**
 * Sends an invitation or password reset email from the consumer's handler, in the event's transaction. The
 * link is a bearer secret: it goes to the SMTP server and nowhere else (not in email_deliveries, not in logs,
 * not in errors). A row of identity_emails (event id, kind, outcome; no link, no address) is written first:
 * when sending throws, the transaction rolls back and the consumer retries the event (then dead-letters it).
 * Without SMTP settings the row says so and nothing is retried. The one window for a duplicate is the one of
 * other email: the SMTP server accepted it and the commit failed; its Message-ID is the same on every attempt.
 */
export async function sendIdentityEmail(
  trx: Transaction<NotificationDB>,
  event: CloudEvent,
  kind: IdentityEmailKind,
  mail: { email: string; link: string; expiresAt: string },
  s: IdentityEmailSettings,
): Promise<void> {
  const inserted = await trx
    .insertInto('identity_emails')
    .values({ event_id: event.id, kind, status: 'sending', sent_at: null })
    .onConflict((oc) => oc.column('event_id').doNothing())
    .returning('event_id')
    .executeTakeFirst();
  if (!inserted) return;
  const transporter = s.mailer?.get();
  if (!transporter) {
    s.logger.warn({ eventId: event.id, kind }, 'identity email not sent: no SMTP configured');
    await trx.updateTable('identity_emails').set({ status: 'not-sent: no SMTP configured' }).where('event_id', '=', event.id).execute();
    return;
  }
  const { subject, text } = renderIdentityEmail(kind, mail.link, mail.expiresAt);
  try {
    await transporter.sendMail({ from: s.from, to: mail.email, subject, text, messageId: `<identity-${event.id}@notification.cmc>` });
  } catch (e) {
    // Re-thrown without the original (its message may quote the address): retried by the consumer, then dead-lettered.
    // eslint-disable-next-line preserve-caught-error -- the cause is left off on purpose: it may quote the address.
    throw new Error(`SMTP: ${describeSmtpError(e)}`);
  }
  await trx.updateTable('identity_emails').set({ status: 'sent', sent_at: sql<Date>`now()` }).where('event_id', '=', event.id).execute();
}
