import { bool, int, optionalStr, optionalUrl, str, url, type ConfigOf } from '@cmc/config';

/** The notification service's own settings (besides those every service reads). */
export const notificationConfigSpec = {
  NOTIFY_SMTP_URL: optionalUrl({
    doc: 'SMTP server for email, as a URL (`smtp://user:password@host:587` or `smtps://...:465`); takes the place of NOTIFY_SMTP_HOST and the rest. With neither, email is off.',
    protocols: ['smtp', 'smtps'],
    secret: true,
  }),
  NOTIFY_SMTP_HOST: optionalStr({ doc: 'SMTP server host, when NOTIFY_SMTP_URL is not set. With neither, email is off (the inbox and subscriptions still work).' }),
  NOTIFY_SMTP_PORT: int({ doc: 'SMTP server port.', default: 587, min: 1, max: 65535 }),
  NOTIFY_SMTP_SECURE: bool({ doc: 'TLS from the first byte (port 465); otherwise STARTTLS is used when the server offers it.', default: false }),
  NOTIFY_SMTP_USER: optionalStr({ doc: 'SMTP user name, when the server asks for one.' }),
  NOTIFY_SMTP_PASSWORD: optionalStr({ doc: 'SMTP password.', secret: true }),
  NOTIFY_SMTP_TIMEOUT_MS: int({ doc: 'Longest wait for the SMTP server at each step (connect, greeting, each command).', default: 30_000, min: 10, max: 300_000 }),
  NOTIFY_EMAIL_FROM: str({ doc: 'Sender of the emails (`Name <address>`).', default: 'Coordinate My Care <no-reply@cmc.invalid>' }),
  NOTIFY_APP_URL: url({ doc: 'Where people sign in: the only link an email carries.', default: 'http://127.0.0.1:8080/', protocols: ['http', 'https'] }),
  NOTIFY_EMAIL_CONCURRENCY: int({ doc: 'Emails sent at once, each over its own pooled SMTP connection (kept open between emails); each holds a database connection while it sends.', default: 2, min: 1, max: 32 }),
  NOTIFY_EMAIL_MAX_ATTEMPTS: int({ doc: 'Attempts at an email before it is marked failed (visible at /api/notifications/deliveries).', default: 10, min: 1, max: 100 }),
  NOTIFY_RETRY_BASE_MS: int({ doc: 'Base of the exponential backoff (with jitter) between email attempts.', default: 30_000, min: 1, max: 3_600_000 }),
  NOTIFY_RETRY_CAP_MS: int({ doc: 'Longest wait between two attempts of an email or a hook.', default: 3_600_000, min: 1, max: 86_400_000 }),
  NOTIFY_POLL_MS: int({ doc: 'How often an idle sender looks for deliveries that are due (a sender that found one looks again at once); the wait a new delivery may have before it is picked up.', default: 250, min: 10, max: 60_000 }),
  NOTIFY_HOOK_TIMEOUT_MS: int({ doc: 'Longest wait for a subscriber\'s endpoint to answer one notification.', default: 10_000, min: 10, max: 120_000 }),
  NOTIFY_HOOK_RETRY_BASE_MS: int({ doc: 'Base of the exponential backoff (with jitter) between attempts at a hook.', default: 10_000, min: 1, max: 3_600_000 }),
  NOTIFY_HOOK_GIVE_UP_SECONDS: int({
    doc: 'How long a hook notification is retried (from its first attempt) before the subscription is put in error.',
    default: 86_400,
    min: 1,
    max: 30 * 86_400,
  }),
  NOTIFY_HOOK_ALLOW_PRIVATE: bool({
    doc: 'Let hook endpoints be on loopback, private (RFC 1918, fc00::/7, 100.64/10), link-local (169.254/16 with cloud metadata, fe80::/10), multicast or unspecified addresses. Off, such endpoints are refused when a subscription is made and again when each notification is sent, after DNS. Only for tests and local setups whose receiver runs on 127.0.0.1.',
    default: false,
  }),
  NOTIFY_SECRET_KEY: optionalStr({
    doc: 'Key that seals the hook secrets subscribers give (channel.header values) in the database, with AES-256-GCM: 32 random bytes in base64 (`openssl rand -base64 32`). Changing it makes the sealed secrets unreadable: their subscriptions go to error at their next notification.',
    secret: true,
  }),
  NOTIFY_SECRET_KEY_FILE: optionalStr({
    doc: 'File holding NOTIFY_SECRET_KEY, when that is not set; made with a new random key (mode 0600) when missing. With neither, a key for the life of the process (development only).',
  }),
  NOTIFY_HOOK_CONCURRENCY: int({ doc: 'Hook notifications sent at once (never two for the same subscription and patient).', default: 4, min: 1, max: 64 }),
  NOTIFY_REVIEW_CHECK_SECONDS: int({
    doc: 'How often the review reminder job looks for plans due for review (it sends each reminder once, so running more often than daily only makes it catch up sooner).',
    default: 3600,
    min: 1,
    max: 86_400,
  }),
  NOTIFY_REVIEW_SOON_DAYS: int({ doc: 'A plan whose review date is this many days away or fewer gets a "review due" reminder.', default: 14, min: 1, max: 90 }),
  NOTIFY_APPROVAL_REMINDER_DAYS: int({
    doc: 'A plan still awaiting approval this many days after it was submitted: its organisation\'s clinicians are reminded (once per submission), checked every NOTIFY_REVIEW_CHECK_SECONDS.',
    default: 3,
    min: 1,
    max: 60,
  }),
  NOTIFY_APPROVAL_ESCALATION_DAYS: int({
    doc: 'Days after the approval reminder (so NOTIFY_APPROVAL_REMINDER_DAYS + this after submission) when a plan still awaiting approval is escalated to its organisation\'s CMC lead (decision 0016).',
    default: 2,
    min: 1,
    max: 60,
  }),
  NOTIFY_INACTIVITY_DAYS: int({
    doc: 'Days without a login after which identity locks an account (keep equal to IDENTITY_INACTIVITY_DAYS); the account lock warning is reckoned from it.',
    default: 180,
    min: 2,
    max: 3650,
  }),
  NOTIFY_LOCK_WARNING_DAYS: int({ doc: 'How many days before an account is locked for inactivity its holder is emailed a warning (once per last login), checked every NOTIFY_REVIEW_CHECK_SECONDS.', default: 14, min: 1, max: 365 }),
} as const;

export type NotificationConfig = ConfigOf<typeof notificationConfigSpec>;

/** The nodemailer transport options of the configuration, or undefined when email is off. */
export function smtpOptions(c: NotificationConfig): SmtpOptions | undefined {
  const timeouts = { connectionTimeout: c.NOTIFY_SMTP_TIMEOUT_MS, greetingTimeout: c.NOTIFY_SMTP_TIMEOUT_MS, socketTimeout: c.NOTIFY_SMTP_TIMEOUT_MS };
  if (c.NOTIFY_SMTP_URL) {
    const u = new URL(c.NOTIFY_SMTP_URL);
    return {
      host: u.hostname,
      port: u.port ? Number(u.port) : u.protocol === 'smtps:' ? 465 : 587,
      secure: u.protocol === 'smtps:',
      ...(u.username ? { auth: { user: decodeURIComponent(u.username), pass: decodeURIComponent(u.password) } } : {}),
      ...timeouts,
    };
  }
  if (!c.NOTIFY_SMTP_HOST) return undefined;
  return {
    host: c.NOTIFY_SMTP_HOST,
    port: c.NOTIFY_SMTP_PORT,
    secure: c.NOTIFY_SMTP_SECURE,
    ...(c.NOTIFY_SMTP_USER ? { auth: { user: c.NOTIFY_SMTP_USER, pass: c.NOTIFY_SMTP_PASSWORD ?? '' } } : {}),
    ...timeouts,
  };
}

export interface SmtpOptions {
  host: string;
  port: number;
  secure: boolean;
  auth?: { user: string; pass: string };
  connectionTimeout: number;
  greetingTimeout: number;
  socketTimeout: number;
}
