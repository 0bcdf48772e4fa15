import Ajv, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import { randomUUID } from 'node:crypto';
import { EVENT_DEFINITIONS, type EventType } from './schemas';
import type { EventDataMap } from './types';
import type { Topic } from './topics';

/** A CloudEvents 1.0 event in JSON structured mode, with our `requestid` extension. */
export interface CloudEvent<T extends EventType = EventType> {
  specversion: '1.0';
  id: string;
  source: string;
  type: T;
  subject?: string;
  time: string;
  datacontenttype: 'application/json';
  /** Extension: the HTTP request that caused the event, for tracing across services. */
  requestid?: string;
  /** Extension: the Kafka key (NHS number where there is a patient, else the aggregate id). */
  partitionkey: string;
  data: EventDataMap[T];
}

const envelopeSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['specversion', 'id', 'source', 'type', 'time', 'datacontenttype', 'partitionkey', 'data'],
  properties: {
    specversion: { const: '1.0' },
    id: { type: 'string', format: 'uuid' },
    source: { type: 'string', minLength: 1, maxLength: 200 },
    type: { enum: Object.keys(EVENT_DEFINITIONS) },
    subject: { type: 'string', minLength: 1, maxLength: 200 },
    time: { type: 'string', format: 'date-time' },
    datacontenttype: { const: 'application/json' },
    requestid: { type: 'string', minLength: 1, maxLength: 200 },
    partitionkey: { type: 'string', minLength: 1, maxLength: 200 },
    data: { type: 'object' },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: true });
addFormats(ajv);
const validateEnvelopeShape = ajv.compile(envelopeSchema);
const dataValidators = new Map<string, ValidateFunction>(
  Object.entries(EVENT_DEFINITIONS).map(([type, def]) => [type, ajv.compile(def.schema)]),
);

export class ContractError extends Error {
  constructor(message: string, readonly errors: string[]) {
    super(`${message}: ${errors.join('; ')}`);
    this.name = 'ContractError';
  }
}

const describe = (errors: ErrorObject[] | null | undefined, at: string): string[] =>
  (errors ?? []).map((e) => `${at}${e.instancePath || ''} ${e.message ?? 'is invalid'}`.trim());

/** Checks an event's envelope and data against the contracts; throws ContractError saying what is wrong. */
export function assertValidEvent(value: unknown): asserts value is CloudEvent {
  if (!validateEnvelopeShape(value)) throw new ContractError('invalid CloudEvent envelope', describe(validateEnvelopeShape.errors, 'event'));
  const ev = value as unknown as CloudEvent;
  const validateData = dataValidators.get(ev.type);
  if (!validateData) throw new ContractError('unknown event type', [ev.type]);
  if (!validateData(ev.data)) throw new ContractError(`invalid data for ${ev.type}`, describe(validateData.errors, 'data'));
}

export function topicOf(type: EventType): Topic {
  return EVENT_DEFINITIONS[type].topic;
}

export interface NewEvent<T extends EventType> {
  type: T;
  source: string;
  data: EventDataMap[T];
  /** Kafka key: the patient's NHS number where there is a patient, else the aggregate id. */
  key: string;
  subject?: string;
  requestId?: string;
  id?: string;
  time?: Date;
}

/** Builds a CloudEvent and checks it against its contract. */
export function makeEvent<T extends EventType>(e: NewEvent<T>): CloudEvent<T> {
  const ev: CloudEvent<T> = {
    specversion: '1.0',
    id: e.id ?? randomUUID(),
    source: e.source,
    type: e.type,
    time: (e.time ?? new Date()).toISOString(),
    datacontenttype: 'application/json',
    partitionkey: e.key,
    data: e.data,
  };
  if (e.subject !== undefined) ev.subject = e.subject;
  if (e.requestId !== undefined) ev.requestid = e.requestId;
  assertValidEvent(ev);
  return ev;
}
