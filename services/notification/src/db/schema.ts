import type { EventsTables } from '@cmc/events';
import type { Generated, Selectable } from 'kysely';

export interface RecipientsTable {
  user_id: string;
  role: string;
  organisation: string | null;
  email: string | null;
  active: Generated<boolean>;
  /** The latest login-succeeded seen (for the account lock warning); null when none was seen. */
  last_login_at: Generated<Date | null>;
  updated_at: Generated<Date>;
}

export interface PlansTable {
  plan_id: string;
  nhs_number: string;
  organisation: string;
  /** Who created the plan (first event seen). */
  author: string;
  /** The clinician who last published it: the reviewing clinician as far as events tell. */
  reviewer: string | null;
  gp_practice: string | null;
  review_date: string | null;
  state: string;
  version_id: number;
  /** When it was last submitted for approval (the approval reminder and escalation count from it). */
  submitted_at: Generated<Date | null>;
  updated_at: Generated<Date>;
}

export interface NotificationsTable {
  id: string;
  user_id: string;
  source: string;
  kind: string;
  plan_id: string | null;
  created_at: Generated<Date>;
  read_at: Date | null;
}

export type DeliveryStatus = 'pending' | 'sent' | 'failed';

export interface EmailDeliveriesTable {
  id: Generated<string>;
  source: string;
  recipient: string;
  address: string;
  kind: string;
  status: Generated<DeliveryStatus>;
  attempts: Generated<number>;
  next_attempt_at: Generated<Date>;
  last_error: string | null;
  sent_at: Date | null;
  created_at: Generated<Date>;
}

export interface SubscriptionsTable {
  id: string;
  client_id: string;
  organisation: string | null;
  criteria: string;
  criteria_kind: 'patient' | 'gp-practice';
  criteria_value: string;
  endpoint: string;
  /** The names of the hook's headers only; their lines are sealed in header_secret. */
  headers: string[];
  /** The header lines (`Name: value`), sealed with AES-256-GCM (domain/secrets.ts); null when there are none. */
  header_secret: Generated<string | null>;
  reason: string;
  status: 'active' | 'error' | 'off';
  error: string | null;
  events_since_start: Generated<string>;
  created_at: Generated<Date>;
  updated_at: Generated<Date>;
}

export interface HookDeliveriesTable {
  id: Generated<string>;
  subscription_id: string;
  event_id: string;
  event_number: string;
  nhs_number: string;
  plan_id: string;
  event_type: string;
  status: Generated<DeliveryStatus>;
  attempts: Generated<number>;
  next_attempt_at: Generated<Date>;
  first_attempt_at: Date | null;
  last_error: string | null;
  sent_at: Date | null;
  created_at: Generated<Date>;
}

export interface ReviewRemindersTable {
  plan_id: string;
  kind: 'review-due' | 'review-overdue';
  review_date: string;
  created_at: Generated<Date>;
}

/** An identity email (invitation, password reset) handled: never its link nor its address. */
export interface IdentityEmailsTable {
  event_id: string;
  kind: 'invitation' | 'password-reset';
  /** 'sent', or 'not-sent: <why>'. */
  status: string;
  sent_at: Date | null;
}

export interface LockWarningsTable {
  user_id: string;
  last_login_date: string;
  created_at: Generated<Date>;
}

export interface ApprovalRemindersTable {
  plan_id: string;
  kind: 'approval-reminder' | 'approval-escalation';
  submitted_at: Date;
  recipients: number;
  created_at: Generated<Date>;
}

/** What the service team records of an organisation for notifications (decision 0016). */
export interface OrganisationSettingsTable {
  organisation: string;
  lead_email: string | null;
  gp_practice_approves: Generated<boolean>;
  updated_by: string;
  updated_at: Generated<Date>;
}

export interface NotificationDB extends EventsTables {
  recipients: RecipientsTable;
  plans: PlansTable;
  notifications: NotificationsTable;
  email_deliveries: EmailDeliveriesTable;
  subscriptions: SubscriptionsTable;
  hook_deliveries: HookDeliveriesTable;
  review_reminders: ReviewRemindersTable;
  identity_emails: IdentityEmailsTable;
  lock_warnings: LockWarningsTable;
  approval_reminders: ApprovalRemindersTable;
  organisation_settings: OrganisationSettingsTable;
}

export type Plan = Selectable<PlansTable>;
export type SubscriptionRow = Selectable<SubscriptionsTable>;
