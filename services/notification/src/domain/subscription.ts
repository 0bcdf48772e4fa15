import { badRequest, isValidNhsNumber } from '@cmc/fhir';
import type { Subscription } from 'fhir/r4';
import type { SubscriptionRow } from '../db/schema';
import { forbiddenHost } from '../delivery/address-guard';
import { namesOf } from './secrets';

export const NHS_NUMBER_SYSTEM = 'https://fhir.nhs.uk/Id/nhs-number';
/** The one topic: a care plan that urgent care can see was published, changed, noted, withdrawn or closed by a death. */
export const CAREPLAN_TOPIC = 'https://cmc.nhs.example/fhir/SubscriptionTopic/careplan-changed';
const ODS = /^[A-Z0-9]{3,10}$/;
/** Headers the service sets itself, or that would change how the request is read. */
const RESERVED_HEADERS = new Set(['host', 'content-type', 'content-length', 'transfer-encoding', 'connection', 'expect', 'upgrade', 'te', 'trailer', 'keep-alive']);
const MAX_HEADERS = 5;

export interface Criteria {
  kind: 'patient' | 'gp-practice';
  value: string;
}

/**
 * Reads Subscription.criteria. Two forms are supported:
 * - `CarePlan?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|<NHS number>`: one patient's plans;
 * - `CarePlan?gp-practice=<ODS code>`: the plans of every patient registered with a GP practice (the
 *   caller's own practice only).
 * Anything else is a 400 that says what is supported.
 */
export function parseCriteria(criteria: string): Criteria {
  const supported = 'supported criteria: CarePlan?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|<NHS number>, or CarePlan?gp-practice=<ODS code>';
  const [type, query, ...rest] = criteria.split('?');
  if (type !== 'CarePlan' || query === undefined || rest.length > 0) throw badRequest(`criteria must be a CarePlan search; ${supported}`, 'Subscription.criteria');
  const params = [...new URLSearchParams(query)];
  if (params.length !== 1) throw badRequest(`criteria must have exactly one parameter; ${supported}`, 'Subscription.criteria');
  const [name, value] = params[0]!;
  if (name === 'patient:identifier') {
    const bar = value.indexOf('|');
    const system = value.slice(0, bar);
    const nhs = value.slice(bar + 1);
    if (bar < 0 || system !== NHS_NUMBER_SYSTEM) throw badRequest(`criteria must name the patient by NHS number (${NHS_NUMBER_SYSTEM}|<NHS number>)`, 'Subscription.criteria');
    if (!isValidNhsNumber(nhs)) throw badRequest('criteria names an invalid NHS number', 'Subscription.criteria');
    return { kind: 'patient', value: nhs };
  }
  if (name === 'gp-practice') {
    if (!ODS.test(value)) throw badRequest('criteria gp-practice must be an ODS code', 'Subscription.criteria');
    return { kind: 'gp-practice', value };
  }
  throw badRequest(`criteria parameter '${name}' is not supported; ${supported}`, 'Subscription.criteria');
}

/**
 * Reads Subscription.channel.endpoint: http or https, absolute, no credentials in it, and (unless
 * `allowPrivate`, NOTIFY_HOOK_ALLOW_PRIVATE) not an address on a loopback, private, link-local, multicast or
 * unspecified network, nor a localhost name. A name is checked again after DNS at each delivery.
 */
export function parseEndpoint(endpoint: string, allowPrivate = false): string {
  let u: URL;
  try {
    u = new URL(endpoint);
  } catch {
    throw badRequest('channel.endpoint must be an absolute URL', 'Subscription.channel.endpoint');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw badRequest('channel.endpoint must be an http or https URL', 'Subscription.channel.endpoint');
  if (u.username || u.password) throw badRequest('channel.endpoint must not carry credentials; send them in channel.header', 'Subscription.channel.endpoint');
  if (!allowPrivate) {
    const why = forbiddenHost(u.hostname);
    if (why) throw badRequest(`channel.endpoint may not point inside the service's network: ${why}`, 'Subscription.channel.endpoint');
  }
  return u.toString();
}

/** Reads Subscription.channel.header: `Name: value` each (e.g. `Authorization: Bearer <secret>`), at most five. */
export function parseHeaders(headers: readonly string[]): string[] {
  if (headers.length > MAX_HEADERS) throw badRequest(`channel.header takes at most ${MAX_HEADERS} headers`, 'Subscription.channel.header');
  return headers.map((h, i) => {
    const colon = h.indexOf(':');
    const name = colon > 0 ? h.slice(0, colon).trim() : '';
    const value = colon > 0 ? h.slice(colon + 1).trim() : '';
    if (!/^[A-Za-z0-9-]{1,64}$/.test(name) || value.length === 0 || /[^\x20-\x7e]/.test(value)) {
      throw badRequest('each channel.header must be `Name: value` in printable ASCII', `Subscription.channel.header[${i}]`);
    }
    if (RESERVED_HEADERS.has(name.toLowerCase())) throw badRequest(`channel.header may not set ${name}`, `Subscription.channel.header[${i}]`);
    return `${name}: ${value}`;
  });
}

/** The stored subscription as FHIR R4. Header values are secrets: only their names are shown. */
export function toFhirSubscription(row: SubscriptionRow): Subscription {
  const s: Subscription = {
    resourceType: 'Subscription',
    id: row.id,
    meta: { lastUpdated: new Date(row.updated_at).toISOString() },
    status: row.status,
    reason: row.reason,
    criteria: row.criteria,
    channel: {
      type: 'rest-hook',
      endpoint: row.endpoint,
      payload: 'application/fhir+json',
      // Names only: the values are secrets, sealed in the database and never shown, even to their owner.
      ...(row.headers.length > 0 ? { header: namesOf(row.headers).map((name) => `${name}: [redacted]`) } : {}),
    },
  };
  if (row.error) s.error = row.error;
  return s;
}
