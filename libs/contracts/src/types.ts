/** The data of each event type, as TypeScript sees it (kept by hand beside the JSON schemas in schemas.ts). */
export interface ConsentGrantedData {
  consentId: string;
  versionId: string;
  nhsNumber: string;
  status: 'active';
  dateTime: string;
  /** Whether the patient allows secondary use; sent by every current producer, absent from older events. */
  secondaryUse?: 'permit' | 'deny';
  /** How consent was obtained (SNOMED CT); sent by every current producer, absent from older events. */
  basisCode?: '882921000000109' | '883001000000106' | '882961000000101';
}

export type PlanStateName = 'draft' | 'awaiting-approval' | 'published' | 'withdrawn' | 'deceased';

/** The data of every cmc.careplan.v1 event: the plan's state after the change, no clinical content. */
export interface PlanEventData {
  planId: string;
  versionId: string;
  nhsNumber: string;
  state: PlanStateName;
  organisation: string;
  changedBy: string;
  changedByOrganisation?: string;
  changedAt: string;
  gpPractice?: string;
  reviewDate?: string;
  reason?: string;
  byConsentWithdrawal?: boolean;
  deathDate?: string;
  deathPlace?: 'home' | 'care-home' | 'hospice' | 'hospital' | 'other';
  deathOutcome?: 'met-first' | 'met-second' | 'not-met' | 'no-preference';
  noteId?: string;
  admission?: boolean;
  changeRequestId?: string;
}

export interface ConsentWithdrawnData {
  consentId: string;
  versionId: string;
  nhsNumber: string;
  status: 'inactive';
  withdrawnAt: string;
  reason?: string;
}

export type AccessInteraction =
  | 'create' | 'read' | 'vread' | 'update' | 'search' | 'history' | 'flag' | 'summary' | 'print' | 'export' | 'report' | 'delete';

export interface AccessRecordedData {
  agent: { kind: 'user' | 'client' | 'patient' | 'anonymous'; id: string; role?: string; organisation?: string };
  interaction: AccessInteraction;
  outcome: 'allowed' | 'refused' | 'failed';
  outcomeReason?: string;
  recordedAt: string;
  entities: { resourceType: string; id?: string; versionId?: string; nhsNumber?: string }[];
  query?: string;
  source?: { service?: string; clientAddress?: string; userAgent?: string; device?: string };
  purposeOfUse?: string;
}

/** The kinds of organisation that take part (identity registers each with one). */
export const ORGANISATION_TYPES = [
  'care-home',
  'gp-practice',
  'hospice',
  'acute-trust',
  'community-trust',
  'ambulance-trust',
  'nhs-111',
  'out-of-hours-gp',
  'service-team',
] as const;
export type OrganisationType = (typeof ORGANISATION_TYPES)[number];

type Role = 'clinician' | 'administrator' | 'urgent-care' | 'service-team' | 'patient' | 'proxy';

export interface IdentityEventData {
  'cmc.identity.user-created.v1': {
    userId: string;
    role: Role;
    organisation?: string;
    createdBy?: string;
    /** Where the notification service mails the user; absent from older events. */
    email?: string;
  };
  'cmc.identity.user-locked.v1': { userId: string; reason: 'inactivity' | 'failed-attempts'; until?: string };
  'cmc.identity.user-unlocked.v1': { userId: string; by: string };
  'cmc.identity.user-deactivated.v1': { userId: string; by: string };
  'cmc.identity.login-succeeded.v1': { userId: string; role: Role; organisation?: string; clientAddress?: string; deviceId?: string };
  'cmc.identity.login-failed.v1': { userId?: string; reason: string; clientAddress?: string };
  'cmc.identity.policy-accepted.v1': { userId: string; policyVersion: string };
  'cmc.identity.organisation-changed.v1': {
    odsCode: string;
    change: 'created' | 'updated';
    fields?: string[];
    /** The organisation's type after the change; absent from older events. */
    organisationType?: OrganisationType;
    /** The organisation's name after the change; absent from older events. */
    name?: string;
  };
  'cmc.identity.client-registered.v1': { clientId: string; organisation: string; scopes: string[] };
  'cmc.identity.password-reset-requested.v1': { userId: string; email: string; resetUrl: string; expiresAt: string };
  'cmc.identity.invitation-created.v1': { userId: string; email: string; role: 'patient' | 'proxy'; nhsNumber: string; acceptUrl: string; expiresAt: string; invitedBy: string };
}

export interface NotificationEventData {
  'cmc.notification.delivery-failed.v1': { deliveryId: string; channel: 'email' | 'rest-hook'; recipient: string; kind?: string; attempts: number; reason: string; failedAt: string };
  'cmc.notification.subscription-errored.v1': { subscriptionId: string; clientId: string; reason: string; erroredAt: string };
}

export interface EventDataMap extends IdentityEventData, NotificationEventData {
  'cmc.consent.granted.v1': ConsentGrantedData;
  'cmc.consent.withdrawn.v1': ConsentWithdrawnData;
  'cmc.access.recorded.v1': AccessRecordedData;
  'cmc.careplan.created.v1': PlanEventData;
  'cmc.careplan.updated.v1': PlanEventData;
  'cmc.careplan.submitted.v1': PlanEventData;
  'cmc.careplan.published.v1': PlanEventData;
  'cmc.careplan.withdrawn.v1': PlanEventData;
  'cmc.careplan.death-recorded.v1': PlanEventData;
  'cmc.careplan.note-added.v1': PlanEventData;
  'cmc.careplan.change-requested.v1': PlanEventData;
}
