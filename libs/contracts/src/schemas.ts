import { TOPICS, type Topic } from './topics';
import { ORGANISATION_TYPES } from './types';

/**
 * The JSON schema of every event's `data`, keyed by CloudEvents `type`. Each names the topic it travels on.
 * Schemas are closed (no unknown properties): producer and consumer ship from this one library, so a new
 * field is added here first, and consumers are deployed before producers start sending it.
 */
const nhsNumber = { type: 'string', pattern: '^[0-9]{10}$' } as const;
const uuid = { type: 'string', format: 'uuid' } as const;
const dateTime = { type: 'string', format: 'date-time' } as const;
const versionId = { type: 'string', pattern: '^[1-9][0-9]*$' } as const;

export interface EventDefinition {
  topic: Topic;
  /** What the event means, for the event catalogue. */
  doc: string;
  schema: Record<string, unknown>;
}

const userId = uuid;
const ods = { type: 'string', pattern: '^[A-Z0-9]{3,10}$' } as const;
const roleName = { enum: ['clinician', 'administrator', 'urgent-care', 'service-team', 'patient', 'proxy'] } as const;
const address = { type: 'string', maxLength: 100 } as const;
const email = { type: 'string', format: 'email', maxLength: 254 } as const;
const secretUrl = { type: 'string', format: 'uri', maxLength: 2000 } as const;
const closed = (required: string[], properties: Record<string, unknown>) => ({ type: 'object', additionalProperties: false, required, properties }) as const;

/** Every cmc.careplan.v1 event carries the plan's state after the change; no clinical content. */
const planEvent = closed(['planId', 'versionId', 'nhsNumber', 'state', 'organisation', 'changedBy', 'changedAt'], {
  planId: uuid,
  versionId,
  nhsNumber,
  state: { enum: ['draft', 'awaiting-approval', 'published', 'withdrawn', 'deceased'] },
  /** ODS code of the organisation that holds the plan. */
  organisation: ods,
  /** The user or client that made the change ('system' when the service did, e.g. after a consent withdrawal). */
  changedBy: { type: 'string', maxLength: 200 },
  changedByOrganisation: ods,
  changedAt: dateTime,
  /** The patient's GP practice (ODS), so that it can be told. */
  gpPractice: ods,
  reviewDate: { type: 'string', format: 'date' },
  reason: { type: 'string', maxLength: 1000 },
  byConsentWithdrawal: { type: 'boolean' },
  /** death-recorded: when and where (a category, no detail), and whether the preferred place was met; for the outcome reports. */
  deathDate: { type: 'string', format: 'date' },
  deathPlace: { enum: ['home', 'care-home', 'hospice', 'hospital', 'other'] },
  deathOutcome: { enum: ['met-first', 'met-second', 'not-met', 'no-preference'] },
  /** note-added: the note's id (its text stays in the service) and whether it says the patient was admitted. */
  noteId: uuid,
  admission: { type: 'boolean' },
  /** change-requested: the request's id (its text stays in the service). */
  changeRequestId: uuid,
});

export const EVENT_DEFINITIONS = {
  'cmc.identity.user-created.v1': {
    topic: TOPICS.identity,
    doc: 'An account was created: staff by the service team, a patient or proxy by invitation.',
    // email: optional, since events already sent lack it; identity sends it on every new account (notifications).
    schema: closed(['userId', 'role'], { userId, role: roleName, organisation: ods, createdBy: { type: 'string', maxLength: 200 }, email }),
  },
  'cmc.identity.user-locked.v1': {
    topic: TOPICS.identity,
    doc: 'An account was locked: after 180 days unused, after too many failed logins (until a time), or by an administrator.',
    schema: closed(['userId', 'reason'], { userId, reason: { enum: ['inactivity', 'failed-attempts'] }, until: dateTime }),
  },
  'cmc.identity.user-unlocked.v1': {
    topic: TOPICS.identity,
    doc: 'A locked account was unlocked by the service team.',
    schema: closed(['userId', 'by'], { userId, by: { type: 'string', maxLength: 200 } }),
  },
  'cmc.identity.user-deactivated.v1': {
    topic: TOPICS.identity,
    doc: 'An account was deactivated (the person left); every session of theirs ended.',
    schema: closed(['userId', 'by'], { userId, by: { type: 'string', maxLength: 200 } }),
  },
  'cmc.identity.login-succeeded.v1': {
    topic: TOPICS.identity,
    doc: 'A person logged in.',
    schema: closed(['userId', 'role'], { userId, role: roleName, organisation: ods, clientAddress: address, deviceId: uuid }),
  },
  'cmc.identity.login-failed.v1': {
    topic: TOPICS.identity,
    doc: 'A login was refused: wrong password, or a governance gate (which one is in reason).',
    schema: closed(['reason'], { userId, reason: { type: 'string', maxLength: 100 }, clientAddress: address }),
  },
  'cmc.identity.policy-accepted.v1': {
    topic: TOPICS.identity,
    doc: 'A person accepted the acceptable use policy (a version of it).',
    schema: closed(['userId', 'policyVersion'], { userId, policyVersion: { type: 'string', maxLength: 50 } }),
  },
  'cmc.identity.organisation-changed.v1': {
    topic: TOPICS.identity,
    doc: 'An organisation was registered or its governance details changed.',
    schema: closed(['odsCode', 'change'], {
      odsCode: ods,
      change: { enum: ['created', 'updated'] },
      fields: { type: 'array', maxItems: 20, items: { type: 'string', maxLength: 50 } },
      // Optional because events already sent lack them; identity sends both on every change (the reports group by type).
      organisationType: { enum: ORGANISATION_TYPES },
      name: { type: 'string', maxLength: 200 },
    }),
  },
  'cmc.identity.client-registered.v1': {
    topic: TOPICS.identity,
    doc: 'A system client (GP system, dispatch) was registered or changed.',
    schema: closed(['clientId', 'organisation', 'scopes'], { clientId: { type: 'string', maxLength: 200 }, organisation: ods, scopes: { type: 'array', maxItems: 50, items: { type: 'string', maxLength: 100 } } }),
  },
  'cmc.identity.password-reset-requested.v1': {
    topic: TOPICS.identity,
    doc: 'A password reset was asked for. Carries a single-use secret link for the notification service to mail: consumers must not store resetUrl.',
    schema: closed(['userId', 'email', 'resetUrl', 'expiresAt'], { userId, email, resetUrl: secretUrl, expiresAt: dateTime }),
  },
  'cmc.identity.invitation-created.v1': {
    topic: TOPICS.identity,
    doc: 'A clinician invited a patient or proxy viewer of one patient. Carries a single-use secret link: consumers must not store acceptUrl.',
    schema: closed(['userId', 'email', 'role', 'nhsNumber', 'acceptUrl', 'expiresAt', 'invitedBy'], {
      userId,
      email,
      nhsNumber,
      role: { enum: ['patient', 'proxy'] },
      acceptUrl: secretUrl,
      expiresAt: dateTime,
      invitedBy: { type: 'string', maxLength: 200 },
    }),
  },
  'cmc.consent.granted.v1': {
    topic: TOPICS.consent,
    doc: 'A patient consent to an urgent care plan became active (created, or a new active version).',
    schema: {
      type: 'object',
      additionalProperties: false,
      required: ['consentId', 'versionId', 'nhsNumber', 'status', 'dateTime'],
      properties: {
        consentId: uuid,
        versionId,
        nhsNumber,
        status: { const: 'active' },
        dateTime: dateTime,
        // Optional in v1 only because events already sent lack it; the consent service always sends it.
        secondaryUse: { enum: ['permit', 'deny'], description: 'Whether the patient allows secondary use (audit reports leave out those who deny it).' },
        // Optional for the same reason; the consent service always sends it.
        basisCode: { enum: ['882921000000109', '883001000000106', '882961000000101'], description: 'How consent was obtained (SNOMED CT): patient, Lasting Power of Attorney, best-interests decision.' },
      },
    },
  },
  'cmc.consent.withdrawn.v1': {
    topic: TOPICS.consent,
    doc: 'A patient consent was withdrawn; plans must leave every view but the service team\'s.',
    schema: {
      type: 'object',
      additionalProperties: false,
      required: ['consentId', 'versionId', 'nhsNumber', 'status', 'withdrawnAt'],
      properties: {
        consentId: uuid,
        versionId,
        nhsNumber,
        status: { const: 'inactive' },
        withdrawnAt: dateTime,
        reason: { type: 'string', maxLength: 1000 },
      },
    },
  },
  'cmc.careplan.created.v1': {
    topic: TOPICS.careplan,
    doc: 'A plan was created as a draft.',
    schema: planEvent,
  },
  'cmc.careplan.updated.v1': {
    topic: TOPICS.careplan,
    doc: 'A plan was changed: a new version, in the same state.',
    schema: planEvent,
  },
  'cmc.careplan.submitted.v1': {
    topic: TOPICS.careplan,
    doc: 'A draft was submitted for approval by a clinician.',
    schema: planEvent,
  },
  'cmc.careplan.published.v1': {
    topic: TOPICS.careplan,
    doc: 'A plan was published: urgent care can see it from now on.',
    schema: planEvent,
  },
  'cmc.careplan.withdrawn.v1': {
    topic: TOPICS.careplan,
    doc: 'A plan was withdrawn (on request, or because consent was withdrawn); it leaves every view but the service team\'s.',
    schema: planEvent,
  },
  'cmc.careplan.death-recorded.v1': {
    topic: TOPICS.careplan,
    doc: 'The patient died: the plan is closed (deceased) and its flag is down; says whether the preferred place of death was met.',
    schema: planEvent,
  },
  'cmc.careplan.note-added.v1': {
    topic: TOPICS.careplan,
    doc: 'Urgent care added a note to a published plan (the GP is to be told); an admission makes the review due at once.',
    schema: planEvent,
  },
  'cmc.careplan.change-requested.v1': {
    topic: TOPICS.careplan,
    doc: 'The patient (or their proxy) asked the care team to change the plan.',
    schema: planEvent,
  },
  'cmc.notification.delivery-failed.v1': {
    topic: TOPICS.notification,
    doc: 'An email or a hook notification failed for good (its attempts or its retry period ran out): for the service team. No address, no patient.',
    schema: closed(['deliveryId', 'channel', 'recipient', 'attempts', 'reason', 'failedAt'], {
      /** The delivery, as GET /api/notifications/deliveries shows it. */
      deliveryId: { type: 'string', pattern: '^[0-9]{1,20}$' },
      channel: { enum: ['email', 'rest-hook'] },
      /** email: the user id (or `lead:<ODS code>`); rest-hook: the subscription id. */
      recipient: { type: 'string', maxLength: 200 },
      /** email: what it was about (e.g. plan-published, review-due). */
      kind: { type: 'string', maxLength: 50 },
      attempts: { type: 'integer', minimum: 1 },
      reason: { type: 'string', maxLength: 1000 },
      failedAt: dateTime,
    }),
  },
  'cmc.notification.subscription-errored.v1': {
    topic: TOPICS.notification,
    doc: 'A FHIR Subscription was put in error (its endpoint did not take notifications for too long, or its secret cannot be read): it receives nothing more.',
    schema: closed(['subscriptionId', 'clientId', 'reason', 'erroredAt'], {
      subscriptionId: uuid,
      clientId: { type: 'string', maxLength: 200 },
      reason: { type: 'string', maxLength: 1000 },
      erroredAt: dateTime,
    }),
  },
  'cmc.access.recorded.v1': {
    topic: TOPICS.access,
    doc: 'Patient data was served (or refused): who, what, when, where, why. The audit log keeps every one.',
    schema: {
      type: 'object',
      additionalProperties: false,
      required: ['agent', 'interaction', 'outcome', 'recordedAt', 'entities'],
      properties: {
        agent: {
          type: 'object',
          additionalProperties: false,
          required: ['kind', 'id'],
          properties: {
            kind: { enum: ['user', 'client', 'patient', 'anonymous'] },
            id: { type: 'string', maxLength: 200 },
            role: { type: 'string', maxLength: 50 },
            organisation: { type: 'string', maxLength: 20 },
          },
        },
        interaction: {
          enum: ['create', 'read', 'vread', 'update', 'search', 'history', 'flag', 'summary', 'print', 'export', 'report', 'delete'],
        },
        outcome: { enum: ['allowed', 'refused', 'failed'] },
        outcomeReason: { type: 'string', maxLength: 500 },
        recordedAt: dateTime,
        entities: {
          type: 'array',
          maxItems: 1000,
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['resourceType'],
            properties: {
              resourceType: { type: 'string', maxLength: 64 },
              id: { type: 'string', maxLength: 64 },
              versionId: { type: 'string', maxLength: 20 },
              nhsNumber,
            },
          },
        },
        query: { type: 'string', maxLength: 2000 },
        source: {
          type: 'object',
          additionalProperties: false,
          properties: {
            service: { type: 'string', maxLength: 50 },
            clientAddress: { type: 'string', maxLength: 100 },
            userAgent: { type: 'string', maxLength: 500 },
            device: { type: 'string', maxLength: 200 },
          },
        },
        purposeOfUse: { type: 'string', maxLength: 100 },
      },
    },
  },
} as const satisfies Record<string, EventDefinition>;

export type EventType = keyof typeof EVENT_DEFINITIONS;
