/**
 * The FHIR R4 view of the audit log: each entry as an AuditEvent, shaped after IHE Basic Audit Log Patterns
 * (BALP) for accesses and after the DICOM audit event codes for the domain events. Pure functions of a row:
 * the log is never changed, so the same row always gives the same resource.
 */
import type { AccessInteraction, AccessRecordedData, EventType } from '@cmc/contracts';
import { NHS_NUMBER_SYSTEM } from '@cmc/fhir';
import type { AuditEvent, AuditEventAgent, AuditEventEntity, Coding, Extension } from 'fhir/r4';
import type { AuditLogTable } from '../db/schema';

export const ACCESS_EVENT = 'cmc.access.recorded.v1';

const AUDIT_EVENT_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-event-type';
const RESTFUL_INTERACTION = 'http://hl7.org/fhir/restful-interaction';
const DCM = 'http://dicom.nema.org/resources/ontology/DCM';
const ENTITY_TYPE = 'http://terminology.hl7.org/CodeSystem/audit-entity-type';
const OBJECT_ROLE = 'http://terminology.hl7.org/CodeSystem/object-role';
const PARTICIPATION_TYPE = 'http://terminology.hl7.org/CodeSystem/v3-ParticipationType';
const SOURCE_TYPE = 'http://terminology.hl7.org/CodeSystem/security-source-type';
export const ODS_SYSTEM = 'https://fhir.nhs.uk/Id/ods-organization-code';

const CMC = 'https://fhir.cmc.example';
/** Our interactions that are not a RESTful one (flag lookup, summary, print, export, report). */
export const CMC_INTERACTION_SYSTEM = `${CMC}/CodeSystem/access-interaction`;
/** The event type of a domain event (cmc.careplan.published.v1...), as a second subtype. */
export const CMC_EVENT_TYPE_SYSTEM = `${CMC}/CodeSystem/event-type`;
export const CMC_ROLE_SYSTEM = `${CMC}/CodeSystem/user-role`;
/** A user's id (the subject of their token). */
export const CMC_USER_SYSTEM = `${CMC}/Id/user`;
/** A system client's id (the subject of its token). */
export const CMC_CLIENT_SYSTEM = `${CMC}/Id/client`;
/** One of the platform's services (care-plan, consent, identity, audit...). */
export const CMC_SERVICE_SYSTEM = `${CMC}/Id/service`;
/** The ODS code of the agent's organisation: R4 AuditEvent.agent has no element for it. */
export const AGENT_ORGANISATION_URL = `${CMC}/StructureDefinition/audit-agent-organisation`;

export type Action = NonNullable<AuditEvent['action']>;
export type Outcome = NonNullable<AuditEvent['outcome']>;

const coding = (system: string, code: string, display?: string): Coding => (display ? { system, code, display } : { system, code });

const REST = coding(AUDIT_EVENT_TYPE, 'rest', 'RESTful Operation');
const PATIENT_RECORD = coding(DCM, '110110', 'Patient Record');
const USER_AUTHENTICATION = coding(DCM, '110114', 'User Authentication');
const SECURITY_ALERT = coding(DCM, '110113', 'Security Alert');
const LOGIN = coding(DCM, '110122', 'Login');
const USER_ATTRIBUTES_CHANGED = coding(DCM, '110137', 'User Security Attributes Changed');
const SECURITY_CONFIGURATION = coding(DCM, '110129', 'Security Configuration');
const APPLICATION_ACTIVITY = coding(DCM, '110100', 'Application Activity');

/** An access's interaction as BALP shows it: the RESTful interaction and the action (a search is an Execute). */
export const INTERACTIONS: Record<AccessInteraction, { restful: string; action: Action; ours?: true }> = {
  create: { restful: 'create', action: 'C' },
  read: { restful: 'read', action: 'R' },
  vread: { restful: 'vread', action: 'R' },
  update: { restful: 'update', action: 'U' },
  delete: { restful: 'delete', action: 'D' },
  search: { restful: 'search-type', action: 'E' },
  history: { restful: 'history-instance', action: 'R' },
  // Not FHIR interactions but operations of ours; a second subtype names them.
  flag: { restful: 'operation', action: 'E', ours: true },
  summary: { restful: 'operation', action: 'R', ours: true },
  print: { restful: 'operation', action: 'R', ours: true },
  export: { restful: 'operation', action: 'R', ours: true },
  report: { restful: 'operation', action: 'E', ours: true },
};

/** What an access's outcome column says, as an AuditEvent.outcome. */
export const ACCESS_OUTCOMES: Record<AccessRecordedData['outcome'], Outcome> = { allowed: '0', refused: '4', failed: '8' };

/** A domain event as an AuditEvent: its type, a DICOM subtype where one fits, action and outcome. */
interface DomainShape {
  type: Coding;
  subtype?: Coding;
  action: Action;
  outcome: Outcome;
}

const record = (action: Action): DomainShape => ({ type: PATIENT_RECORD, action, outcome: '0' });
const security = (subtype: Coding, action: Action): DomainShape => ({ type: SECURITY_ALERT, subtype, action, outcome: '0' });

export const DOMAIN_EVENTS: Record<Exclude<EventType, typeof ACCESS_EVENT>, DomainShape> = {
  'cmc.consent.granted.v1': record('C'),
  'cmc.consent.withdrawn.v1': record('U'),
  'cmc.careplan.created.v1': record('C'),
  'cmc.careplan.updated.v1': record('U'),
  'cmc.careplan.submitted.v1': record('U'),
  'cmc.careplan.published.v1': record('U'),
  'cmc.careplan.withdrawn.v1': record('U'),
  'cmc.careplan.death-recorded.v1': record('U'),
  'cmc.careplan.note-added.v1': record('U'),
  'cmc.careplan.change-requested.v1': record('U'),
  'cmc.identity.login-succeeded.v1': { type: USER_AUTHENTICATION, subtype: LOGIN, action: 'E', outcome: '0' },
  'cmc.identity.login-failed.v1': { type: USER_AUTHENTICATION, subtype: LOGIN, action: 'E', outcome: '4' },
  'cmc.identity.user-created.v1': security(USER_ATTRIBUTES_CHANGED, 'C'),
  'cmc.identity.user-locked.v1': security(USER_ATTRIBUTES_CHANGED, 'U'),
  'cmc.identity.user-unlocked.v1': security(USER_ATTRIBUTES_CHANGED, 'U'),
  'cmc.identity.user-deactivated.v1': security(USER_ATTRIBUTES_CHANGED, 'U'),
  'cmc.identity.policy-accepted.v1': security(USER_ATTRIBUTES_CHANGED, 'U'),
  'cmc.identity.password-reset-requested.v1': security(USER_ATTRIBUTES_CHANGED, 'E'),
  'cmc.identity.invitation-created.v1': security(USER_ATTRIBUTES_CHANGED, 'C'),
  'cmc.identity.organisation-changed.v1': security(SECURITY_CONFIGURATION, 'U'),
  'cmc.identity.client-registered.v1': security(SECURITY_CONFIGURATION, 'C'),
  // The notification service's failures for good (an email, a hook notification, a subscription put in error).
  'cmc.notification.delivery-failed.v1': { type: APPLICATION_ACTIVITY, action: 'E', outcome: '4' },
  'cmc.notification.subscription-errored.v1': { type: APPLICATION_ACTIVITY, action: 'E', outcome: '4' },
};

/** Domain events whose actor is the user they are about (the log's agent column is empty for them). */
export const SELF_ACTED_EVENTS: readonly string[] = ['cmc.identity.login-succeeded.v1', 'cmc.identity.login-failed.v1', 'cmc.identity.policy-accepted.v1'];

/** The resource a domain event is about, by the prefix of its type and the member holding the id. */
export const DOMAIN_RESOURCES: readonly { resourceType: string; typePrefix: string; idField: string }[] = [
  { resourceType: 'CarePlan', typePrefix: 'cmc.careplan.', idField: 'planId' },
  { resourceType: 'Consent', typePrefix: 'cmc.consent.', idField: 'consentId' },
];

/** The type and subtypes of an access with this interaction. */
export function accessCodings(interaction: AccessInteraction): { type: Coding; subtype: Coding[] } {
  const i = INTERACTIONS[interaction];
  const subtype = [coding(RESTFUL_INTERACTION, i.restful, i.restful)];
  if (i.ours) subtype.push(coding(CMC_INTERACTION_SYSTEM, interaction));
  return { type: REST, subtype };
}

/** The shape of a domain event; an event type this code does not know yet is shown by its own code. */
export function domainShape(eventType: string): { type: Coding; subtype: Coding[]; action: Action; outcome: Outcome } {
  const shape = DOMAIN_EVENTS[eventType as keyof typeof DOMAIN_EVENTS] as DomainShape | undefined;
  const own = coding(CMC_EVENT_TYPE_SYSTEM, eventType);
  if (!shape) return { type: own, subtype: [], action: 'E', outcome: '0' };
  return { type: shape.type, subtype: shape.subtype ? [shape.subtype, own] : [own], action: shape.action, outcome: shape.outcome };
}

/** A log row, as much of it as the mapping reads. */
export type AuditRow = Pick<AuditLogTable, 'event_id' | 'event_type' | 'recorded_at' | 'appended_at' | 'agent_kind' | 'agent_id' | 'agent_role' | 'agent_organisation' | 'nhs_numbers' | 'event'>;

interface Actor {
  kind: string;
  id: string;
  role?: string | undefined;
  organisation?: string | undefined;
  address?: string | undefined;
}

function actorAgent(a: Actor, type: Coding | undefined): AuditEventAgent {
  const agent: AuditEventAgent = { requestor: true };
  if (type) agent.type = { coding: [type] };
  if (a.role) agent.role = [{ coding: [coding(CMC_ROLE_SYSTEM, a.role)] }];
  if (a.kind === 'anonymous') agent.who = { display: 'anonymous (no valid token)' };
  else agent.who = { identifier: { system: a.kind === 'client' ? CMC_CLIENT_SYSTEM : CMC_USER_SYSTEM, value: a.id } };
  if (a.organisation) {
    const org: Extension = { url: AGENT_ORGANISATION_URL, valueReference: { type: 'Organization', identifier: { system: ODS_SYSTEM, value: a.organisation } } };
    agent.extension = [org];
  }
  if (a.address) agent.network = { address: a.address, type: /^[0-9a-f.:]+$/i.test(a.address) ? '2' : '1' };
  return agent;
}

/** The service that answered (BALP's server agent, "Destination Role ID"); the requestor only when no one else acted. */
function serverAgent(service: string, requestor: boolean): AuditEventAgent {
  return {
    type: { coding: [coding(DCM, '110152', 'Destination Role ID')] },
    who: { identifier: { system: CMC_SERVICE_SYSTEM, value: service }, display: `CMC ${service} service` },
    requestor,
  };
}

function patientEntity(nhsNumber: string): AuditEventEntity {
  return {
    what: { type: 'Patient', identifier: { system: NHS_NUMBER_SYSTEM, value: nhsNumber } },
    type: coding(ENTITY_TYPE, '1', 'Person'),
    role: coding(OBJECT_ROLE, '1', 'Patient'),
  };
}

function resourceEntity(resourceType: string, id: string | undefined, versionId: string | undefined): AuditEventEntity {
  // Without an id (a search that found nothing, the whole log) the entity still says what kind of thing was asked for.
  const what = id ? { reference: `${resourceType}/${id}${versionId ? `/_history/${versionId}` : ''}` } : { type: resourceType };
  return { what, type: coding(ENTITY_TYPE, '2', 'System Object'), role: coding(OBJECT_ROLE, '4', 'Domain Resource') };
}

const serviceOf = (cloudEventSource: unknown): string => (typeof cloudEventSource === 'string' ? cloudEventSource.replace(/^\/cmc\//, '') : '') || 'unknown';

function base(row: AuditRow, service: string): AuditEvent {
  return {
    resourceType: 'AuditEvent',
    id: row.event_id,
    meta: { versionId: '1', lastUpdated: row.appended_at.toISOString() },
    type: REST,
    recorded: row.recorded_at.toISOString(),
    agent: [],
    source: {
      observer: { identifier: { system: CMC_SERVICE_SYSTEM, value: service }, display: `CMC ${service} service` },
      type: [coding(SOURCE_TYPE, '4', 'Application Server')],
    },
  };
}

function fromAccess(row: AuditRow, source: unknown, data: AccessRecordedData): AuditEvent {
  const service = data.source?.service ?? serviceOf(source);
  const { type, subtype } = accessCodings(data.interaction);
  const resource: AuditEvent = { ...base(row, service), type, subtype, action: INTERACTIONS[data.interaction].action, outcome: ACCESS_OUTCOMES[data.outcome] };
  if (data.outcome !== 'allowed') resource.outcomeDesc = data.outcomeReason ?? data.outcome;
  if (data.purposeOfUse) resource.purposeOfEvent = [{ text: data.purposeOfUse }];
  // BALP: the user (or, with no user, the system client) asked; the service answered.
  const userType = data.agent.kind === 'client' ? coding(DCM, '110153', 'Source Role ID') : coding(PARTICIPATION_TYPE, 'IRCP', 'information recipient');
  resource.agent = [
    actorAgent({ ...data.agent, address: data.source?.clientAddress }, userType),
    serverAgent(service, false),
  ];
  const entities = row.nhs_numbers.map(patientEntity);
  // An entity per resource (once, though an access names it once per patient), and none for an id-less one
  // that names a patient: the patient's entity says it.
  const named = new Set<string>();
  for (const e of data.entities) {
    const key = `${e.resourceType}/${e.id ?? ''}/${e.versionId ?? ''}`;
    if ((e.id || !e.nhsNumber) && !named.has(key)) entities.push(resourceEntity(e.resourceType, e.id, e.versionId));
    named.add(key);
  }
  if (data.query) {
    entities.push({
      type: coding(ENTITY_TYPE, '2', 'System Object'),
      role: coding(OBJECT_ROLE, '24', 'Query'),
      query: Buffer.from(data.query, 'utf8').toString('base64'),
    });
  }
  if (entities.length > 0) resource.entity = entities;
  return resource;
}

function fromDomainEvent(row: AuditRow, source: unknown, data: Record<string, unknown>): AuditEvent {
  const service = serviceOf(source);
  const shape = domainShape(row.event_type);
  const resource: AuditEvent = { ...base(row, service), type: shape.type, action: shape.action, outcome: shape.outcome };
  if (shape.subtype.length > 0) resource.subtype = shape.subtype;
  if (shape.outcome !== '0') resource.outcomeDesc = typeof data.reason === 'string' ? data.reason : 'refused';
  const str = (k: string): string | undefined => (typeof data[k] === 'string' ? data[k] : undefined);
  const selfActed = SELF_ACTED_EVENTS.includes(row.event_type);
  const actorId = row.agent_id ?? (selfActed ? str('userId') : undefined);
  resource.agent = [];
  if (actorId) {
    const actor: Actor = { kind: 'user', id: actorId, role: selfActed ? str('role') : undefined, organisation: row.agent_organisation ?? (selfActed ? str('organisation') : undefined), address: str('clientAddress') };
    resource.agent.push(actorAgent(actor, selfActed ? undefined : coding(PARTICIPATION_TYPE, 'AUT', 'author')));
  }
  resource.agent.push(serverAgent(service, !actorId));
  const entities = row.nhs_numbers.map(patientEntity);
  for (const r of DOMAIN_RESOURCES) {
    const id = str(r.idField);
    if (row.event_type.startsWith(r.typePrefix) && id) entities.push(resourceEntity(r.resourceType, id, str('versionId')));
  }
  const subjectUser = selfActed ? undefined : str('userId');
  if (subjectUser) entities.push({ what: { identifier: { system: CMC_USER_SYSTEM, value: subjectUser } }, type: coding(ENTITY_TYPE, '1', 'Person'), role: coding(OBJECT_ROLE, '11', 'Security User Entity') });
  const ods = str('odsCode');
  if (ods) entities.push({ what: { type: 'Organization', identifier: { system: ODS_SYSTEM, value: ods } }, type: coding(ENTITY_TYPE, '3', 'Organization') });
  const client = str('clientId');
  if (client) entities.push({ what: { identifier: { system: CMC_CLIENT_SYSTEM, value: client } }, type: coding(ENTITY_TYPE, '2', 'System Object'), role: coding(OBJECT_ROLE, '13', 'Security Resource') });
  if (entities.length > 0) resource.entity = entities;
  return resource;
}

/**
 * An entry of the log as a FHIR R4 AuditEvent; its id is the event's id. Accesses follow BALP (type `rest`,
 * the RESTful interaction as subtype, agents for the user or client and for the service, an entity per patient
 * and per resource, the query of a search); domain events use the DICOM codes (decision 0011).
 */
export function toAuditEvent(row: AuditRow): AuditEvent {
  const event = JSON.parse(row.event) as { source?: unknown; data?: unknown };
  const data = (event.data ?? {}) as Record<string, unknown>;
  if (row.event_type === ACCESS_EVENT) return fromAccess(row, event.source, data as unknown as AccessRecordedData);
  return fromDomainEvent(row, event.source, data);
}
