import { SECRET_FIELDS, topicOf, type CloudEvent } from '@cmc/contracts';
import { createHash } from 'node:crypto';

/** prev_hash of entry 1. */
export const GENESIS_HASH: Buffer = Buffer.alloc(32);

/**
 * Canonical JSON: objects with their keys sorted by UTF-16 code unit, no whitespace, strings and numbers as
 * JSON.stringify writes them, undefined members left out. Hashed as UTF-8. The same value always gives the
 * same bytes, so a hash can be recomputed from what is stored.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const s = JSON.stringify(value);
    if (s === undefined) throw new TypeError(`not representable in JSON: ${typeof value}`);
    return s;
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The columns of an entry, before it has a place in the chain. */
export interface EntryFields {
  eventId: string;
  eventType: string;
  topic: string;
  recordedAt: Date;
  appendedAt: Date;
  agentKind: string | null;
  agentId: string | null;
  agentRole: string | null;
  agentOrganisation: string | null;
  interaction: string | null;
  outcome: string | null;
  nhsNumbers: string[];
  /** The event in canonical JSON. */
  event: string;
}

export interface ChainedEntry extends EntryFields {
  seq: number;
  prevHash: Buffer;
  hash: Buffer;
}

function redacted(event: CloudEvent): CloudEvent {
  // A log that can never be edited must not keep a bearer link (the contracts' list of them).
  const fields = SECRET_FIELDS[event.type];
  if (!fields) return event;
  const data: Record<string, unknown> = { ...(event.data as unknown as Record<string, unknown>) };
  for (const f of fields) if (f in data) data[f] = '[redacted]';
  return { ...event, data } as unknown as CloudEvent;
}

/** The report columns of an event: who, what, outcome and the patients it is about. */
export function entryOf(event: CloudEvent, appendedAt: Date): EntryFields {
  const fields: EntryFields = {
    eventId: event.id,
    eventType: event.type,
    topic: topicOf(event.type),
    recordedAt: new Date(event.time),
    appendedAt,
    agentKind: null,
    agentId: null,
    agentRole: null,
    agentOrganisation: null,
    interaction: null,
    outcome: null,
    nhsNumbers: [],
    event: canonicalJson(redacted(event)),
  };
  const data = event.data as unknown as Record<string, unknown>;
  if (event.type === 'cmc.access.recorded.v1') {
    const access = (event as CloudEvent<'cmc.access.recorded.v1'>).data;
    fields.recordedAt = new Date(access.recordedAt);
    fields.agentKind = access.agent.kind;
    fields.agentId = access.agent.id;
    fields.agentRole = access.agent.role ?? null;
    fields.agentOrganisation = access.agent.organisation ?? null;
    fields.interaction = access.interaction;
    fields.outcome = access.outcome;
    fields.nhsNumbers = [...new Set(access.entities.flatMap((e) => (e.nhsNumber ? [e.nhsNumber] : [])))].sort();
  } else {
    if (typeof data.nhsNumber === 'string') fields.nhsNumbers = [data.nhsNumber];
    const agent = data.changedBy ?? data.createdBy ?? data.invitedBy ?? data.by;
    if (typeof agent === 'string') fields.agentId = agent;
    const organisation = data.changedByOrganisation;
    if (typeof organisation === 'string') fields.agentOrganisation = organisation;
  }
  return fields;
}

/** An entry's columns with the times as text (ISO 8601 to the millisecond, UTC). */
export interface EntryText extends Omit<EntryFields, 'recordedAt' | 'appendedAt' | 'nhsNumbers'> {
  recordedAt: string;
  appendedAt: string;
  nhsNumbers: readonly string[];
}

const str = (v: string | null): string => JSON.stringify(v);

/**
 * The canonical JSON of an entry's columns (what canonicalJson gives for the object of them), written out
 * with its keys already in order: the append runs this once per entry, and the general canonicalJson is
 * several times slower. A test holds the two equal. Verification has the database write the same form
 * (db/verification-rows.ts): a change here is a change there.
 */
export function entryText(seq: number, e: EntryText): string {
  return (
    `{"agentId":${str(e.agentId)},"agentKind":${str(e.agentKind)},"agentOrganisation":${str(e.agentOrganisation)},"agentRole":${str(e.agentRole)},` +
    `"appendedAt":${str(e.appendedAt)},"event":${str(e.event)},"eventId":${str(e.eventId)},"eventType":${str(e.eventType)},` +
    `"interaction":${str(e.interaction)},"nhsNumbers":[${e.nhsNumbers.map(str).join(',')}],"outcome":${str(e.outcome)},` +
    `"recordedAt":${str(e.recordedAt)},"seq":${seq},"topic":${str(e.topic)}}`
  );
}

/**
 * The bytes an entry's hash covers: every column but the hashes themselves, as canonical JSON (dates as ISO
 * 8601 to the millisecond, the event as its canonical JSON text). Editing any column changes them.
 */
export function entryBytes(seq: number, e: EntryFields): Buffer {
  return Buffer.from(entryText(seq, { ...e, recordedAt: e.recordedAt.toISOString(), appendedAt: e.appendedAt.toISOString() }), 'utf8');
}

/** hash = SHA-256(prev_hash || entry bytes). */
export function entryHash(prevHash: Buffer, seq: number, e: EntryFields): Buffer {
  return createHash('sha256').update(prevHash).update(entryBytes(seq, e)).digest();
}

/** Places entries after the head (seq and hash of the last entry, or 0 and the genesis hash). */
export function chain(head: { seq: number; hash: Buffer }, entries: readonly EntryFields[]): ChainedEntry[] {
  let { seq, hash } = head;
  return entries.map((e) => {
    seq += 1;
    const prevHash = hash;
    hash = entryHash(prevHash, seq, e);
    return { ...e, seq, prevHash, hash };
  });
}
