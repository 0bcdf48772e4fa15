import { TOPICS, type Topic } from './topics';

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

export const EVENT_DEFINITIONS = {
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
