import type { ServiceDefinition } from '@cmc/service';
import type { Closeable } from '@cmc/http';
import { notificationConfigSpec, type NotificationConfig } from './config';
import { migrations } from './db/migrations';
import type { NotificationDB } from './db/schema';
import { mailerOf, sendNextEmail } from './delivery/email';
import { sendNextHook } from './delivery/hooks';
import { startWorker } from './delivery/worker';
import { runApprovalReminders } from './domain/approvals';
import { runLockWarnings } from './domain/lock-warnings';
import { loadSecretBox, sealLegacyHeaders } from './domain/secrets';
import type { NotificationState } from './domain/state';
import { runReviewReminders } from './domain/reminders';
import { notificationConsumer } from './events/notification-consumer';
import { inboxRoutes } from './routes/inbox';
import { organisationRoutes } from './routes/organisations';
import { subscriptionRoutes } from './routes/subscriptions';

/** The notification service: who hears of what, by inbox, email and FHIR Subscription. Built here; `server.ts` runs it. */
export const notificationService: ServiceDefinition<NotificationDB> = {
  name: 'notification',
  envPrefix: 'NOTIFY',
  defaultPort: 3005,
  defaultSchema: 'notification',
  description: 'Tells the right people of changes to care plans: the in-app inbox, email over SMTP, FHIR Subscriptions (rest-hook) for GP systems, and review reminders.',
  configSpec: notificationConfigSpec,
  migrations,
  // The key for hook secrets (the service does not start on a bad one), and subscriptions stored before their
  // secrets were sealed, sealed now: before any route or sender reads them.
  setup: async (ctx) => {
    const box = loadSecretBox(ctx.config.own as NotificationConfig, ctx.logger);
    const sealed = await sealLegacyHeaders(ctx.database.db, box);
    if (sealed > 0) ctx.logger.info({ subscriptions: sealed }, 'sealed the hook secrets of subscriptions stored in clear');
    const state: NotificationState = { box };
    return { state };
  },
  // A function of the configuration: invitations and password resets are mailed from the handler itself.
  consumers: (_schema, ctx) => {
    if (!ctx) return [notificationConsumer()];
    const own = ctx.config.own as NotificationConfig;
    return [notificationConsumer({ mailer: mailerOf(own), from: own.NOTIFY_EMAIL_FROM, logger: ctx.logger })];
  },
  background: (ctx) => {
    const own = ctx.config.own as NotificationConfig;
    const { db } = ctx.database;
    const running: Closeable[] = [];
    const mailer = mailerOf(own);
    const transporter = mailer.get();
    if (transporter) {
      const settings = { from: own.NOTIFY_EMAIL_FROM, appUrl: own.NOTIFY_APP_URL, inactivityDays: own.NOTIFY_INACTIVITY_DAYS, maxAttempts: own.NOTIFY_EMAIL_MAX_ATTEMPTS, retryBaseMs: own.NOTIFY_RETRY_BASE_MS, retryCapMs: own.NOTIFY_RETRY_CAP_MS, schema: ctx.database.schema };
      // Closed in reverse: the sender stops before its SMTP transport does.
      running.push({ name: 'smtp', close: async () => mailer.close() });
      running.push(
        startWorker('email sender', () => sendNextEmail(db, transporter, settings), { pollMs: own.NOTIFY_POLL_MS, concurrency: own.NOTIFY_EMAIL_CONCURRENCY }, ctx.logger.child({ component: 'email' })),
      );
    } else {
      ctx.logger.warn('no NOTIFY_SMTP_URL or NOTIFY_SMTP_HOST: emails are kept pending until an SMTP server is configured');
    }
    const { box } = ctx.state as NotificationState;
    const hooks = {
      timeoutMs: own.NOTIFY_HOOK_TIMEOUT_MS,
      retryBaseMs: own.NOTIFY_HOOK_RETRY_BASE_MS,
      retryCapMs: own.NOTIFY_RETRY_CAP_MS,
      giveUpSeconds: own.NOTIFY_HOOK_GIVE_UP_SECONDS,
      allowPrivate: own.NOTIFY_HOOK_ALLOW_PRIVATE,
      box,
      schema: ctx.database.schema,
    };
    const hookLogger = ctx.logger.child({ component: 'rest-hook' });
    running.push(startWorker('hook sender', () => sendNextHook(db, hooks, hookLogger), { pollMs: own.NOTIFY_POLL_MS, concurrency: own.NOTIFY_HOOK_CONCURRENCY }, hookLogger));
    const reminderLogger = ctx.logger.child({ component: 'review-reminders' });
    // The reminder job (review reminders, approval reminders, then account lock warnings): at start, then every
    // NOTIFY_REVIEW_CHECK_SECONDS; a step that found work is not repeated at once.
    let lastRun = 0;
    running.push(
      startWorker(
        'review reminders',
        async () => {
          if (Date.now() - lastRun < own.NOTIFY_REVIEW_CHECK_SECONDS * 1000) return false;
          lastRun = Date.now();
          await runReviewReminders(db, { soonDays: own.NOTIFY_REVIEW_SOON_DAYS });
          await runApprovalReminders(db, { reminderDays: own.NOTIFY_APPROVAL_REMINDER_DAYS, escalationDays: own.NOTIFY_APPROVAL_ESCALATION_DAYS }, reminderLogger);
          await runLockWarnings(db, { inactivityDays: own.NOTIFY_INACTIVITY_DAYS, warningDays: Math.min(own.NOTIFY_LOCK_WARNING_DAYS, own.NOTIFY_INACTIVITY_DAYS - 1) });
          return false;
        },
        { pollMs: Math.min(1000, own.NOTIFY_REVIEW_CHECK_SECONDS * 1000) },
        reminderLogger,
      ),
    );
    return running;
  },
  routes: async (app, ctx) => {
    await inboxRoutes(app, ctx);
    await subscriptionRoutes(app, ctx);
    await organisationRoutes(app, ctx);
  },
};
