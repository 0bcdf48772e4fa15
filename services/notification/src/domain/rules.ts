import type { EventType, PlanEventData } from '@cmc/contracts';

/** What a notification is about. The inbox shows it; emails do not name it (they say only that something changed). */
export const NOTIFICATION_KINDS = [
  'plan-submitted',
  'plan-published',
  'plan-updated',
  'note-added',
  'change-requested',
  'plan-withdrawn',
  'consent-withdrawn',
  'death-recorded',
  'review-due',
  'review-overdue',
  'approval-reminder',
  'approval-escalation',
] as const;
export type NotificationKind = (typeof NOTIFICATION_KINDS)[number];

/**
 * Who hears of a plan:
 * - `organisation-clinicians`: the clinicians of the organisation that holds the plan;
 * - `gp-practice-clinicians`: the clinicians of the patient's GP practice;
 * - `author`: who created the plan;
 * - `reviewer`: the clinician who last published it (the reviewing clinician as far as the events say), else the author;
 * - `approving-gp-practice-clinicians`: the clinicians of the patient's GP practice, when the plan's organisation
 *   has agreed with its GP practices that they approve its plans (`organisation_settings.gp_practice_approves`,
 *   set by the service team; decision 0016);
 * - `organisation-lead`: the organisation's CMC lead, an address the service team records (decision 0016).
 */
export type Audience = 'organisation-clinicians' | 'gp-practice-clinicians' | 'author' | 'reviewer' | 'approving-gp-practice-clinicians' | 'organisation-lead';

const CARE_TEAM: readonly Audience[] = ['author', 'organisation-clinicians', 'gp-practice-clinicians'];

/** The rule table: what goes to whom (issue #8, "What it tells, to whom"). The person who made the change is never told of it. */
export const RULES: Readonly<Record<NotificationKind, readonly Audience[]>> = {
  'plan-submitted': ['organisation-clinicians', 'approving-gp-practice-clinicians'],
  'plan-published': ['gp-practice-clinicians', 'author', 'organisation-clinicians'],
  'plan-updated': ['gp-practice-clinicians', 'author', 'organisation-clinicians'],
  'note-added': ['gp-practice-clinicians', 'author'],
  'change-requested': ['author', 'reviewer'],
  'plan-withdrawn': CARE_TEAM,
  'consent-withdrawn': CARE_TEAM,
  'death-recorded': CARE_TEAM,
  'review-due': ['reviewer'],
  'review-overdue': ['reviewer', 'organisation-clinicians'],
  'approval-reminder': ['organisation-clinicians', 'approving-gp-practice-clinicians'],
  'approval-escalation': ['organisation-lead'],
};

/** What each kind says in the inbox (behind login; still no patient detail: the plan is named by its id only). */
export const INBOX_TEXT: Readonly<Record<NotificationKind, string>> = {
  'plan-submitted': 'A care plan was submitted for approval',
  'plan-published': 'A care plan was published',
  'plan-updated': 'A published care plan was changed',
  'note-added': 'An urgent care note was added to a care plan',
  'change-requested': 'A patient asked for a change to their care plan',
  'plan-withdrawn': 'A care plan was withdrawn',
  'consent-withdrawn': 'Consent was withdrawn and the care plan withdrawn',
  'death-recorded': 'A death was recorded on a care plan',
  'review-due': 'A care plan is due for review within the next days',
  'review-overdue': 'A care plan is overdue for review',
  'approval-reminder': 'A care plan has been waiting for approval for days',
  'approval-escalation': 'A care plan of your organisation is still waiting for approval',
};

/** The notification a care plan event makes, if any (a created or draft change concerns nobody yet). */
export function kindOfPlanEvent(type: EventType, data: PlanEventData): NotificationKind | undefined {
  switch (type) {
    case 'cmc.careplan.submitted.v1':
      return 'plan-submitted';
    case 'cmc.careplan.published.v1':
      return 'plan-published';
    case 'cmc.careplan.updated.v1':
      return data.state === 'published' ? 'plan-updated' : undefined;
    case 'cmc.careplan.note-added.v1':
      return 'note-added';
    case 'cmc.careplan.change-requested.v1':
      return 'change-requested';
    case 'cmc.careplan.withdrawn.v1':
      return data.byConsentWithdrawal ? 'consent-withdrawn' : 'plan-withdrawn';
    case 'cmc.careplan.death-recorded.v1':
      return 'death-recorded';
    default:
      return undefined;
  }
}

/** Plan events GP systems' subscriptions hear of: changes to plans urgent care can see, never drafts. */
export function isHookEvent(type: EventType, data: PlanEventData): boolean {
  return data.state !== 'draft' && data.state !== 'awaiting-approval' && type !== 'cmc.careplan.created.v1' && type !== 'cmc.careplan.submitted.v1';
}

/**
 * The key that makes a notification happen once per recipient. Usually the event id; a consent withdrawal is
 * heard twice (from consent, and from care-plan when it withdraws the plan), so both use one key per plan.
 */
export function sourceKey(kind: NotificationKind, eventId: string, planId: string): string {
  return kind === 'consent-withdrawn' ? `consent-withdrawn:${planId}` : eventId;
}
