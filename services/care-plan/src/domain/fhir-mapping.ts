/**
 * The FHIR R4 view of a plan, both ways (decision 0006). `toCarePlan` renders a stored plan; `fromCarePlan` is
 * its exact inverse for what clients may write, and the strict validator of POST and PUT bodies: every problem
 * is reported at once, each with the FHIRPath of its element.
 *
 * What FHIR has a resource for travels as a contained resource (Patient, Condition, Observation,
 * AllergyIntolerance); the rest as complex extensions whose nested urls are the field names of plan.ts.
 */
import { createHash } from 'node:crypto';
import { NHS_NUMBER_SYSTEM, OperationOutcomeError, nhsNumberProblem, parseFhirDateTime, type IssueInput } from '@cmc/fhir';
import type { AllergyIntolerance, CarePlan, CodeableConcept, Coding, Condition, Extension, FhirResource, Observation, Patient, Reference } from 'fhir/r4';
import {
  ALERT_CATEGORIES,
  CEILINGS,
  CMC_CODES,
  CMC_FHIR,
  CONTACT_RELATIONSHIPS,
  CPR_DECISION,
  NKA_SOURCES,
  NO_KNOWN_ALLERGY,
  PLACES,
  PLAN_STATES,
  PROGNOSES,
  SNOMED,
  WHO_PERFORMANCE_STATUS,
  type Allergy,
  type AllergySection,
  type Concept,
  type MedicalBackground,
  type NkaSource,
  type PatientDetails,
  type PlanContent,
  type PlanState,
  type StoredPlan,
  type WhoGrade,
} from './plan';

const SD = `${CMC_FHIR}/StructureDefinition`;

/** Every extension of the view. The `careplan-*` ones hold a section each; their nested urls are plan.ts field names. */
export const EXTENSION_URLS = {
  planState: `${SD}/plan-state`,
  prognosis: `${SD}/careplan-prognosis`,
  preferences: `${SD}/careplan-preferences`,
  resuscitation: `${SD}/careplan-resuscitation`,
  recommendations: `${SD}/careplan-recommendations`,
  medication: `${SD}/careplan-medication`,
  alerts: `${SD}/careplan-alerts`,
  homeAccess: `${SD}/careplan-home-access`,
  contacts: `${SD}/careplan-contacts`,
  socialSupport: `${SD}/careplan-social-support`,
  approval: `${SD}/careplan-approval`,
  withdrawal: `${SD}/careplan-withdrawal`,
  death: `${SD}/careplan-death`,
  reviewDue: `${SD}/careplan-review-due`,
  lastUpdatedBy: `${SD}/careplan-last-updated-by`,
  /** On a contained Condition: valueBoolean true marks the main diagnosis. */
  mainDiagnosis: `${SD}/main-diagnosis`,
  /** On the "no known allergy" AllergyIntolerance: valueCode not-known | none-known-by-patient. */
  noKnownAllergySource: `${SD}/no-known-allergy-source`,
  /** On the supportingInfo reference to the Consent: valueCoding, the SNOMED CT code of how consent was obtained. */
  consentBasis: `${SD}/consent-basis`,
  /** On a standalone AllergyIntolerance: valueReference to the CarePlan it comes from. */
  sourceCarePlan: `${SD}/source-care-plan`,
} as const;

export const ODS_SYSTEM = 'https://fhir.nhs.uk/Id/ods-organization-code';
/** Our identifier system for a professional registration number (GMC, NMC, HCPC...: the plan does not say which). */
export const REGISTRATION_SYSTEM = `${CMC_FHIR}/Id/professional-registration`;
/** Our code system for the code of the one Observation a plan holds. */
export const OBSERVATION_CODES = `${CMC_FHIR}/CodeSystem/observation-type`;
export const PERFORMANCE_STATUS_CODE = 'who-performance-status';
export const CARE_PLAN_CATEGORY = { system: SNOMED, code: '861421000000109', display: 'End of life care coordination summary' } as const;
const CONDITION_CLINICAL = 'http://terminology.hl7.org/CodeSystem/condition-clinical';
const ALLERGY_CLINICAL = 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical';
const DATA_ABSENT_REASON = 'http://hl7.org/fhir/StructureDefinition/data-absent-reason';

const CPR_DISPLAY: Record<string, string> = { 'for-cpr': 'For cardiopulmonary resuscitation', 'not-for-cpr': 'Not for cardiopulmonary resuscitation' };
const CARE_PLAN_STATUSES = ['draft', 'active', 'on-hold', 'revoked', 'completed', 'entered-in-error', 'unknown'] as const;
const STATUS_OF_STATE: Record<PlanState, CarePlan['status']> = {
  draft: 'draft',
  'awaiting-approval': 'draft',
  published: 'active',
  withdrawn: 'revoked',
  deceased: 'completed',
};

export const TEXT_MAX = 4000;
export const NAME_MAX = 200;
export const LIST_MAX = 50;
const FHIR_ID = /^[A-Za-z0-9\-.]{1,64}$/;
const ODS_CODE = /^[A-Z0-9]{3,10}$/;
const PATIENT_ID = 'patient';

// ---------------------------------------------------------------------------------------------------------
// Sections held in complex extensions, described once and used both ways (and by expressionFor).

type Spec =
  | { t: 'string'; max: number }
  | { t: 'boolean' }
  | { t: 'date'; past?: boolean }
  | { t: 'dateTime' }
  /** A valueCoding; `codes` maps the plan's value to the code (the same string for our own code systems). */
  | { t: 'code'; system: string; codes: Readonly<Record<string, string>>; display?: Readonly<Record<string, string>> }
  | Group;
interface Group {
  t: 'group';
  fields: Readonly<Record<string, Spec | List>>;
  required?: readonly string[];
}
/** A repeating nested extension (url singular, e.g. `contact`) holding a plan.ts array. */
interface List {
  t: 'list';
  url: string;
  of: Spec;
  max: number;
}

const TEXT: Spec = { t: 'string', max: TEXT_MAX };
const NAME: Spec = { t: 'string', max: NAME_MAX };
const BOOL: Spec = { t: 'boolean' };
const DATE: Spec = { t: 'date' };
const PAST_DATE: Spec = { t: 'date', past: true };
const group = (fields: Group['fields'], required?: readonly string[]): Group => ({ t: 'group', fields, ...(required ? { required } : {}) });
const list = (url: string, of: Spec): List => ({ t: 'list', url, of, max: LIST_MAX });
const coded = (system: string, values: readonly string[]): Spec => ({ t: 'code', system, codes: Object.fromEntries(values.map((v) => [v, v])) });

const PLACE_CHOICE = group({ place: coded(CMC_CODES.place, PLACES), detail: TEXT }, ['place']);
const PLACE_PREFERENCE = group({ first: PLACE_CHOICE, second: PLACE_CHOICE }, ['first']);

type Draft = Partial<Omit<PlanContent, 'consent'>>;
type Obj = Record<string, unknown>;

interface Section {
  url: string;
  spec: Group;
  /** The content path of the group's root ([] when its one field is a top-level key, as `alerts`). */
  prefix: readonly string[];
  get(c: PlanContent): object | undefined;
  set(c: Draft, v: Obj): void;
}

const SECTIONS: readonly Section[] = [
  {
    url: EXTENSION_URLS.prognosis,
    spec: group({ prognosis: coded(CMC_CODES.prognosis, PROGNOSES), prognosisNote: TEXT }),
    prefix: ['background'],
    get: (c) => c.background && { prognosis: c.background.prognosis, prognosisNote: c.background.prognosisNote },
    set: (c, v) => void (c.background = { ...c.background, ...(v as Partial<MedicalBackground>) }),
  },
  {
    url: EXTENSION_URLS.preferences,
    spec: group({ placeOfCare: PLACE_PREFERENCE, placeOfDeath: PLACE_PREFERENCE, culturalReligiousWishes: TEXT }),
    prefix: ['preferences'],
    get: (c) => c.preferences,
    set: (c, v) => void (c.preferences = v as PlanContent['preferences']),
  },
  {
    url: EXTENSION_URLS.resuscitation,
    spec: group({
      discussed: BOOL,
      discussionDate: PAST_DATE,
      discussionSummary: TEXT,
      notDiscussedReason: TEXT,
      decision: { t: 'code', system: SNOMED, codes: CPR_DECISION, display: CPR_DISPLAY },
      decisionDate: PAST_DATE,
      dnacpr: group(
        {
          hasCapacity: BOOL,
          clinicalReasons: TEXT,
          communicationWithPatient: TEXT,
          communicationWithRelatives: TEXT,
          teamMembers: TEXT,
          recordedBy: group({ name: NAME, position: NAME, registration: NAME, date: PAST_DATE }, ['name', 'position', 'date']),
          endorsedBy: group({ name: NAME, position: NAME, date: PAST_DATE }, ['name', 'position', 'date']),
          review: group({ indefinite: BOOL, date: DATE }, ['indefinite']),
        },
        ['hasCapacity', 'clinicalReasons', 'communicationWithPatient', 'communicationWithRelatives', 'teamMembers', 'recordedBy', 'review'],
      ),
    }),
    prefix: ['resuscitation'],
    get: (c) => c.resuscitation,
    set: (c, v) => void (c.resuscitation = v as PlanContent['resuscitation']),
  },
  {
    url: EXTENSION_URLS.recommendations,
    spec: group({
      ceiling: coded(CMC_CODES.ceiling, CEILINGS),
      summary: TEXT,
      situations: list('situation', group({ situation: TEXT, recommendation: TEXT }, ['situation', 'recommendation'])),
    }),
    prefix: ['recommendations'],
    get: (c) => c.recommendations,
    set: (c, v) => void (c.recommendations = v as PlanContent['recommendations']),
  },
  {
    url: EXTENSION_URLS.medication,
    spec: group({ items: list('item', group({ name: NAME, dose: NAME, notes: TEXT }, ['name'])), notes: TEXT }),
    prefix: ['medication'],
    get: (c) => c.medication,
    set: (c, v) => void (c.medication = v as PlanContent['medication']),
  },
  {
    url: EXTENSION_URLS.alerts,
    spec: group({ alerts: list('alert', group({ category: coded(CMC_CODES.alert, ALERT_CATEGORIES), text: TEXT }, ['category', 'text'])) }),
    prefix: [],
    get: (c) => c.alerts && { alerts: c.alerts },
    set: (c, v) => void (c.alerts = v.alerts as PlanContent['alerts']),
  },
  {
    url: EXTENSION_URLS.homeAccess,
    spec: group({
      keySafe: group({ present: BOOL, code: NAME, location: TEXT }, ['present']),
      keyHolders: TEXT,
      livesWith: TEXT,
      livesAlone: BOOL,
      accessNotes: TEXT,
    }),
    prefix: ['homeAccess'],
    get: (c) => c.homeAccess,
    set: (c, v) => void (c.homeAccess = v as PlanContent['homeAccess']),
  },
  {
    url: EXTENSION_URLS.contacts,
    spec: group({
      contacts: list(
        'contact',
        group(
          { relationship: coded(CMC_CODES.contact, CONTACT_RELATIONSHIPS), name: NAME, role: NAME, organisation: NAME, phone: NAME, email: NAME, notes: TEXT },
          ['relationship', 'name'],
        ),
      ),
    }),
    prefix: [],
    get: (c) => c.contacts && { contacts: c.contacts },
    set: (c, v) => void (c.contacts = v.contacts as PlanContent['contacts']),
  },
  {
    url: EXTENSION_URLS.approval,
    spec: group({ reviewingClinician: group({ name: NAME, registration: NAME, userId: NAME }, ['name']) }),
    prefix: ['approval'],
    get: (c) => c.approval?.reviewingClinician && { reviewingClinician: c.approval.reviewingClinician },
    set: (c, v) => void (c.approval = { ...c.approval, ...(v as PlanContent['approval']) }),
  },
];

/** Server-owned: rendered from PlanMeta, tolerated (and ignored) when a client sends them back. */
const WITHDRAWAL_SPEC = group({ at: { t: 'dateTime' }, reason: TEXT, byConsentWithdrawal: BOOL });
const DEATH_SPEC = group({ date: DATE, place: NAME, placeDetail: TEXT, outcome: NAME, recordedAt: { t: 'dateTime' }, recordedBy: NAME, recordedByOrg: NAME });
const REVIEW_DUE_SPEC = group({ at: { t: 'dateTime' }, reason: TEXT });
const LAST_UPDATED_SPEC = group({ lastUpdatedBy: NAME, lastUpdatedByOrg: NAME });
const SERVER_OWNED_EXTENSIONS: readonly string[] = [EXTENSION_URLS.planState, EXTENSION_URLS.withdrawal, EXTENSION_URLS.death, EXTENSION_URLS.reviewDue, EXTENSION_URLS.lastUpdatedBy];

const valueKey = (spec: Spec): string =>
  ({ string: 'valueString', boolean: 'valueBoolean', date: 'valueDate', dateTime: 'valueDateTime', code: 'valueCoding', group: 'extension' })[spec.t];
const urlOf = (name: string, spec: Spec | List): string => (spec.t === 'list' ? spec.url : name);

// ---------------------------------------------------------------------------------------------------------
// Plan -> FHIR

function encodeValue(spec: Spec, value: unknown): Omit<Extension, 'url'> | undefined {
  switch (spec.t) {
    case 'string':
      return typeof value === 'string' && value !== '' ? { valueString: value } : undefined;
    case 'boolean':
      return { valueBoolean: value as boolean };
    case 'date':
      return { valueDate: value as string };
    case 'dateTime':
      return { valueDateTime: value as string };
    case 'code': {
      const key = value as string;
      const coding: Coding = { system: spec.system, code: spec.codes[key] ?? key };
      const display = spec.display?.[key];
      if (display) coding.display = display;
      return { valueCoding: coding };
    }
    case 'group': {
      const extension = encodeFields(spec, value as Obj);
      return extension.length > 0 ? { extension } : undefined;
    }
  }
}

function encodeFields(spec: Group, value: Obj): Extension[] {
  const out: Extension[] = [];
  for (const [name, field] of Object.entries(spec.fields)) {
    const v = value[name];
    if (v === undefined || v === null) continue;
    if (field.t === 'list') {
      for (const item of v as unknown[]) {
        const e = encodeValue(field.of, item);
        if (e) out.push({ url: field.url, ...e });
      }
    } else {
      const e = encodeValue(field, v);
      if (e) out.push({ url: name, ...e });
    }
  }
  return out;
}

function complexExtension(url: string, spec: Group, value: object | undefined): Extension[] {
  if (!value) return [];
  const extension = encodeFields(spec, value as Obj);
  return extension.length > 0 ? [{ url, extension }] : [];
}

function codeableConcept(c: Concept): CodeableConcept {
  const out: CodeableConcept = {};
  if (c.system || c.code || c.display) {
    const coding: Coding = {};
    if (c.system) coding.system = c.system;
    if (c.code) coding.code = c.code;
    if (c.display) coding.display = c.display;
    out.coding = [coding];
  }
  if (c.text) out.text = c.text;
  return out;
}

/** "Given FAMILY", as the guide shows a patient. */
export function patientDisplay(p: PatientDetails): string {
  return [...p.name.given, p.name.family.toUpperCase()].filter((s) => s !== '').join(' ');
}

const nhsIdentifier = (p: PatientDetails) => ({ system: NHS_NUMBER_SYSTEM, value: p.nhsNumber });

function patientResource(p: PatientDetails): Patient {
  const name: NonNullable<Patient['name']>[number] = { family: p.name.family };
  if (p.name.given.length > 0) name.given = [...p.name.given];
  if (p.name.prefix?.length) name.prefix = [...p.name.prefix];
  const out: Patient = { resourceType: 'Patient', id: PATIENT_ID, identifier: [nhsIdentifier(p)], name: [name], gender: p.gender, birthDate: p.birthDate };
  if (p.address) {
    const a: NonNullable<Patient['address']>[number] = {};
    if (p.address.line.length > 0) a.line = [...p.address.line];
    if (p.address.city) a.city = p.address.city;
    if (p.address.district) a.district = p.address.district;
    if (p.address.postalCode) a.postalCode = p.address.postalCode;
    if (Object.keys(a).length > 0) out.address = [a];
  }
  if (p.telecom?.length) out.telecom = p.telecom.map((t) => ({ system: t.system, value: t.value }));
  const gps: Reference[] = [];
  if (p.gpPractice) {
    const practice: Reference = { type: 'Organization', identifier: { system: ODS_SYSTEM, value: p.gpPractice.odsCode } };
    if (p.gpPractice.name) practice.display = p.gpPractice.name;
    gps.push(practice);
  }
  if (p.gp) {
    const gp: Reference = { type: 'Practitioner' };
    if (p.gp.registration) gp.identifier = { system: REGISTRATION_SYSTEM, value: p.gp.registration };
    gp.display = p.gp.name;
    gps.push(gp);
  }
  if (gps.length > 0) out.generalPractitioner = gps;
  return out;
}

type AllergyItem = Allergy | { nka: NkaSource };

function allergyResource(item: AllergyItem, id: string, patient: Reference, extension: Extension[]): AllergyIntolerance {
  const ext = [...extension];
  if ('nka' in item) ext.push({ url: EXTENSION_URLS.noKnownAllergySource, valueCode: item.nka });
  const out: AllergyIntolerance = {
    resourceType: 'AllergyIntolerance',
    id,
    ...(ext.length > 0 ? { extension: ext } : {}),
    clinicalStatus: { coding: [{ system: ALLERGY_CLINICAL, code: 'active' }] },
    code: 'nka' in item ? { coding: [{ system: SNOMED, code: NO_KNOWN_ALLERGY, display: 'No known allergy' }] } : codeableConcept(item.substance),
    patient,
  };
  if ('nka' in item) return out;
  if (item.criticality) out.criticality = item.criticality;
  if (item.reaction || item.severity) {
    // FHIR needs a manifestation for any reaction; a severity alone says so with data-absent-reason.
    const manifestation: CodeableConcept = item.reaction ? { text: item.reaction } : { extension: [{ url: DATA_ABSENT_REASON, valueCode: 'unknown' }] };
    out.reaction = [{ manifestation: [manifestation], ...(item.severity ? { severity: item.severity } : {}) }];
  }
  return out;
}

function allergyItems(a: AllergySection | undefined): AllergyItem[] {
  if (!a) return [];
  return a.status === 'no-known-allergies' ? [{ nka: a.source }] : a.items;
}

/** The plan as a FHIR R4 CarePlan, with what FHIR has resources for contained, and the rest in extensions. */
export function toCarePlan(plan: StoredPlan): CarePlan {
  const { meta, content: c } = plan;
  const patientRef: Reference = { reference: `#${PATIENT_ID}` };
  const contained: FhirResource[] = [patientResource(c.patient)];
  const addresses: Reference[] = [];
  const supportingInfo: Reference[] = [];

  const bg = c.background;
  const diagnoses = [...(bg?.mainDiagnosis ? [{ main: true, concept: bg.mainDiagnosis }] : []), ...(bg?.otherDiagnoses ?? []).map((concept) => ({ main: false, concept }))];
  diagnoses.forEach((d, i) => {
    const id = `diagnosis-${i + 1}`;
    const condition: Condition = {
      resourceType: 'Condition',
      id,
      ...(d.main ? { extension: [{ url: EXTENSION_URLS.mainDiagnosis, valueBoolean: true }] } : {}),
      clinicalStatus: { coding: [{ system: CONDITION_CLINICAL, code: 'active' }] },
      code: codeableConcept(d.concept),
      subject: patientRef,
    };
    contained.push(condition);
    addresses.push({ reference: `#${id}` });
  });
  if (bg?.performanceStatus) {
    const { grade, date } = bg.performanceStatus;
    const observation: Observation = {
      resourceType: 'Observation',
      id: 'performance-status',
      status: 'final',
      code: { coding: [{ system: OBSERVATION_CODES, code: PERFORMANCE_STATUS_CODE, display: 'WHO performance status' }] },
      subject: patientRef,
      effectiveDateTime: date,
      valueCodeableConcept: { coding: [{ system: SNOMED, code: WHO_PERFORMANCE_STATUS[grade], display: `WHO performance status grade ${grade}` }] },
    };
    contained.push(observation);
    supportingInfo.push({ reference: '#performance-status' });
  }
  allergyItems(c.allergies).forEach((item, i) => {
    const id = 'nka' in item ? 'no-known-allergy' : `allergy-${i + 1}`;
    contained.push(allergyResource(item, id, patientRef, []));
    supportingInfo.push({ reference: `#${id}` });
  });
  if (c.consent) {
    const ref: Reference = { reference: `Consent/${c.consent.consentId}` };
    if (c.consent.basisCode) ref.extension = [{ url: EXTENSION_URLS.consentBasis, valueCoding: { system: SNOMED, code: c.consent.basisCode } }];
    supportingInfo.push(ref);
  }

  const extension: Extension[] = [{ url: EXTENSION_URLS.planState, valueCode: meta.state }];
  for (const s of SECTIONS) {
    if (s.url === EXTENSION_URLS.approval) continue; // after social support, below
    extension.push(...complexExtension(s.url, s.spec, s.get(c)));
  }
  if (c.socialSupport) extension.push({ url: EXTENSION_URLS.socialSupport, valueString: c.socialSupport });
  const approval = SECTIONS.find((s) => s.url === EXTENSION_URLS.approval)!;
  extension.push(...complexExtension(approval.url, approval.spec, approval.get(c)));
  if (meta.withdrawal) extension.push(...complexExtension(EXTENSION_URLS.withdrawal, WITHDRAWAL_SPEC, meta.withdrawal));
  if (meta.death) extension.push(...complexExtension(EXTENSION_URLS.death, DEATH_SPEC, meta.death));
  if (meta.reviewDue) extension.push(...complexExtension(EXTENSION_URLS.reviewDue, REVIEW_DUE_SPEC, meta.reviewDue));
  extension.push(...complexExtension(EXTENSION_URLS.lastUpdatedBy, LAST_UPDATED_SPEC, { lastUpdatedBy: meta.lastUpdatedBy, lastUpdatedByOrg: meta.lastUpdatedByOrg }));

  const out: CarePlan = {
    resourceType: 'CarePlan',
    id: meta.id,
    meta: { versionId: String(meta.versionId), lastUpdated: meta.lastUpdated },
    contained,
    extension,
    status: STATUS_OF_STATE[meta.state],
    intent: 'plan',
    category: [{ coding: [{ ...CARE_PLAN_CATEGORY }] }],
    title: 'Urgent care plan',
    subject: { reference: `#${PATIENT_ID}`, identifier: nhsIdentifier(c.patient), display: patientDisplay(c.patient) },
  };
  const period: NonNullable<CarePlan['period']> = {};
  if (meta.publishedAt) period.start = meta.publishedAt;
  if (c.approval?.reviewDate) period.end = c.approval.reviewDate;
  if (Object.keys(period).length > 0) out.period = period;
  out.created = meta.createdAt;
  out.author = { type: 'Organization', identifier: { system: ODS_SYSTEM, value: meta.organisation } };
  if (addresses.length > 0) out.addresses = addresses;
  if (supportingInfo.length > 0) out.supportingInfo = supportingInfo;
  const problems = c.emergencyPlan?.problems ?? [];
  if (problems.length > 0) {
    out.activity = problems.map((p) => ({ detail: { status: 'not-started', reasonCode: [{ text: p.problem }], description: p.action } }));
  }
  return out;
}

/** A stable id for a plan's allergy across its versions, in the UUID form our servers use (RFC 9562 version 8). */
export function allergyIdOf(planId: string, a: Allergy | 'nka'): string {
  const key = a === 'nka' ? 'nka' : a.substance.code ? `${a.substance.system ?? ''}|${a.substance.code}` : `text:${(a.substance.text ?? a.substance.display ?? '').trim().toLowerCase()}`;
  const hex = createHash('sha256').update(`${planId}|${key}`).digest('hex').slice(0, 32).split('');
  hex[12] = '8';
  hex[16] = ((parseInt(hex[16]!, 16) & 0x3) | 0x8).toString(16);
  const h = hex.join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

/** The plan's allergies (or its "no known allergy" statement) as standalone resources for /AllergyIntolerance. */
export function allergyIntolerances(plan: StoredPlan): AllergyIntolerance[] {
  const { meta, content } = plan;
  const patient: Reference = { identifier: nhsIdentifier(content.patient), display: patientDisplay(content.patient) };
  const source: Extension = { url: EXTENSION_URLS.sourceCarePlan, valueReference: { reference: `CarePlan/${meta.id}` } };
  return allergyItems(content.allergies).map((item) => {
    const resource = allergyResource(item, allergyIdOf(meta.id, 'nka' in item ? 'nka' : item), patient, [source]);
    return { ...resource, meta: { versionId: String(meta.versionId), lastUpdated: meta.lastUpdated } };
  });
}

// ---------------------------------------------------------------------------------------------------------
// FHIR -> plan: the strict reader of client bodies.

export interface ParsedCarePlan {
  content: Omit<PlanContent, 'consent'>;
  /** What the client says of the plan's state; the caller compares it with the stored one. */
  asserted: { status?: string; state?: string; id?: string };
}

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

class Reader {
  readonly issues: IssueInput[] = [];
  /** The latest date that is not in the future anywhere (UTC+14). */
  readonly today: string;

  constructor(now: Date) {
    this.today = new Date(now.getTime() + 14 * 3_600_000).toISOString().slice(0, 10);
  }

  add(code: IssueInput['code'], expression: string, diagnostics: string): undefined {
    this.issues.push({ code, expression, diagnostics });
    return undefined;
  }

  object(v: unknown, path: string, allowed: readonly string[]): Obj | undefined {
    if (!isObj(v)) return this.add('structure', path, 'must be a JSON object');
    if (Object.keys(v).length === 0) return this.add('structure', path, 'must not be empty');
    for (const k of Object.keys(v)) if (!allowed.includes(k)) this.add('structure', `${path}.${k}`, `unknown element '${k}'`);
    return v;
  }

  array(v: unknown, path: string, max: number): unknown[] | undefined {
    if (!Array.isArray(v)) return this.add('structure', path, 'must be a JSON array');
    if (v.length === 0) return this.add('structure', path, 'must not be an empty array');
    if (v.length > max) return this.add('too-long', path, `at most ${max} entries, not ${v.length}`);
    return v as unknown[];
  }

  string(v: unknown, path: string, max: number): string | undefined {
    if (typeof v !== 'string') return this.add('structure', path, 'must be a string');
    if (v.trim() === '') return this.add('value', path, 'must not be blank');
    if (v.length > max) return this.add('too-long', path, `at most ${max} characters, not ${v.length}`);
    return v;
  }

  boolean(v: unknown, path: string): boolean | undefined {
    return typeof v === 'boolean' ? v : this.add('structure', path, 'must be true or false');
  }

  date(v: unknown, path: string, past = false): string | undefined {
    if (typeof v !== 'string') return this.add('structure', path, 'must be a date string (YYYY-MM-DD)');
    if (!/^\d{4}-\d{2}-\d{2}$/.test(v) || !parseFhirDateTime(v)) return this.add('value', path, `'${v}' is not a valid date (YYYY-MM-DD)`);
    if (past && v > this.today) return this.add('value', path, `${v} is in the future`);
    return v;
  }

  code<T extends string>(v: unknown, path: string, allowed: readonly T[]): T | undefined {
    if (typeof v !== 'string') return this.add('structure', path, 'must be a code (string)');
    if (!(allowed as readonly string[]).includes(v)) return this.add('code-invalid', path, `'${v}' is not one of ${allowed.join(', ')}`);
    return v as T;
  }

  uri(v: unknown, path: string): string | undefined {
    const s = this.string(v, path, 1000);
    if (s !== undefined && /\s/.test(s)) return this.add('value', path, 'a uri has no whitespace');
    // A code system is named by an absolute URI (http..., urn:oid:...): anything else names nothing a reader can look up.
    if (s !== undefined && !/^[A-Za-z][A-Za-z0-9+.-]*:./.test(s)) return this.add('value', path, 'a uri must be absolute (a scheme such as http: or urn:)');
    return s;
  }

  required(o: Obj, key: string, path: string, what: string): boolean {
    if (o[key] !== undefined) return true;
    this.add('required', `${path}.${key}`, `${what} is required`);
    return false;
  }

  /** A free coding or text (diagnosis, substance): at most one coding. */
  concept(v: unknown, path: string): Concept | undefined {
    const o = this.object(v, path, ['coding', 'text']);
    if (!o) return undefined;
    const out: Concept = {};
    if (o.coding !== undefined) {
      const codings = this.array(o.coding, `${path}.coding`, 1);
      const c = codings && this.object(codings[0], `${path}.coding[0]`, ['system', 'code', 'display']);
      if (c) {
        const at = `${path}.coding[0]`;
        if (c.system !== undefined) out.system = this.uri(c.system, `${at}.system`);
        if (c.code !== undefined) {
          const code = this.string(c.code, `${at}.code`, 100);
          if (code !== undefined && code !== code.trim()) this.add('value', `${at}.code`, 'a code has no leading or trailing whitespace');
          // A SNOMED CT code is a concept id (digits); anything else would be shown to crews as a code that means nothing.
          else if (code !== undefined && c.system === SNOMED && !/^[1-9][0-9]{5,17}$/.test(code)) this.add('code-invalid', `${at}.code`, 'a SNOMED CT code is a concept id (6 to 18 digits)');
          out.code = code;
        }
        if (c.display !== undefined) out.display = this.string(c.display, `${at}.display`, 1000);
        if (c.code !== undefined && c.system === undefined) this.add('required', `${at}.system`, 'a code needs its system');
        if (c.system !== undefined && c.code === undefined) this.add('required', `${at}.code`, 'a coding needs a code');
      }
    }
    if (o.text !== undefined) out.text = this.string(o.text, `${path}.text`, TEXT_MAX);
    if (o.coding === undefined && o.text === undefined) this.add('required', path, 'needs a coding or text');
    for (const k of Object.keys(out) as (keyof Concept)[]) if (out[k] === undefined) delete out[k];
    return out;
  }

  /** A Coding that must come from `system` with one of `codes` (plan value -> code); returns the plan value. */
  coding(v: unknown, path: string, system: string, codes: Readonly<Record<string, string>>): string | undefined {
    const c = this.object(v, path, ['system', 'code', 'display']);
    if (!c) return undefined;
    if (c.display !== undefined) this.string(c.display, `${path}.display`, 1000);
    if (c.system !== system) return this.add('code-invalid', `${path}.system`, `the system must be ${system}`);
    const entry = Object.entries(codes).find(([, code]) => code === c.code);
    if (!entry) return this.add('code-invalid', `${path}.code`, `'${String(c.code)}' is not one of ${Object.values(codes).join(', ')}`);
    return entry[0];
  }

  /** A CodeableConcept that must carry one coding from `system` with one of `codes`. */
  codedConcept(v: unknown, path: string, system: string, codes: Readonly<Record<string, string>>): string | undefined {
    const o = this.object(v, path, ['coding', 'text']);
    if (!o) return undefined;
    if (o.text !== undefined) this.string(o.text, `${path}.text`, TEXT_MAX);
    if (!this.required(o, 'coding', path, 'a coding')) return undefined;
    const codings = this.array(o.coding, `${path}.coding`, 1);
    return codings && this.coding(codings[0], `${path}.coding[0]`, system, codes);
  }

  /** An element the server fixes (e.g. clinicalStatus active): tolerated when absent or right. */
  fixedConcept(o: Obj, key: string, path: string, system: string, code: string): void {
    if (o[key] !== undefined) this.codedConcept(o[key], `${path}.${key}`, system, { [code]: code });
  }

  reference(o: Obj, key: string, path: string, expected: string, required: boolean): void {
    if (o[key] === undefined) {
      if (required) this.add('required', `${path}.${key}`, `must reference ${expected}`);
      return;
    }
    const r = this.object(o[key], `${path}.${key}`, ['reference']);
    if (r && r.reference !== expected) this.add('value', `${path}.${key}.reference`, `must be ${expected}`);
  }

  // Complex extensions, by their Spec.

  extensionValue(spec: Spec, ext: Obj, path: string): unknown {
    const key = valueKey(spec);
    let wrongType = false;
    for (const k of Object.keys(ext)) {
      if (k === 'url' || k === key) continue;
      if (k.startsWith('value') || k === 'extension') {
        wrongType = true;
        this.add('structure', path, `${k} is not allowed here: this extension takes ${key === 'extension' ? 'nested extensions' : key}`);
      } else this.add('structure', `${path}.${k}`, `unknown element '${k}'`);
    }
    const v = ext[key];
    if (v === undefined) return wrongType ? undefined : this.add('required', path, `${key} is missing`);
    switch (spec.t) {
      case 'string':
        return this.string(v, path, spec.max);
      case 'boolean':
        return this.boolean(v, path);
      case 'date':
        return this.date(v, path, spec.past);
      case 'dateTime':
        return typeof v === 'string' && parseFhirDateTime(v) ? v : this.add('value', path, 'must be a FHIR dateTime');
      case 'code':
        return this.coding(v, path, spec.system, spec.codes);
      case 'group':
        return this.group(spec, v, path);
    }
  }

  group(spec: Group, nested: unknown, path: string): Obj | undefined {
    const items = this.array(nested, `${path}.extension`, 200);
    if (!items) return undefined;
    const byUrl = new Map<string, Obj[]>();
    const urls = Object.entries(spec.fields).map(([name, f]) => urlOf(name, f));
    items.forEach((item, i) => {
      const o = isObj(item) ? item : this.add('structure', `${path}.extension[${i}]`, 'must be a JSON object');
      if (!o) return;
      if (typeof o.url !== 'string' || o.url === '') return void this.add('required', `${path}.extension[${i}].url`, 'an extension needs its url');
      if (!urls.includes(o.url)) return void this.add('structure', `${path}.extension('${o.url}')`, `unknown extension '${o.url}': expected one of ${urls.join(', ')}`);
      byUrl.set(o.url, [...(byUrl.get(o.url) ?? []), o]);
    });
    const out: Obj = {};
    for (const [name, field] of Object.entries(spec.fields)) {
      const url = urlOf(name, field);
      const found = byUrl.get(url) ?? [];
      const at = `${path}.extension('${url}')`;
      if (found.length === 0) {
        if (spec.required?.includes(name)) this.add('required', at, `'${url}' is required`);
        continue;
      }
      if (field.t === 'list') {
        if (found.length > field.max) {
          this.add('too-long', at, `at most ${field.max} entries, not ${found.length}`);
          continue;
        }
        const values = found.map((e, k) => this.extensionValue(field.of, e, `${at}[${k}]`));
        out[name] = values.filter((x) => x !== undefined);
      } else {
        if (found.length > 1) this.add('structure', at, `'${url}' may appear only once`);
        const v = this.extensionValue(field, found[0]!, at);
        if (v !== undefined) out[name] = v;
      }
    }
    return out;
  }
}

const CARE_PLAN_ELEMENTS = [
  'resourceType', 'id', 'meta', 'text', 'contained', 'extension', 'status', 'intent', 'category', 'title', 'subject', 'period', 'created', 'author', 'addresses', 'supportingInfo', 'activity',
];

interface ContainedIndex {
  patient?: { index: number; id: string; details?: PatientDetails };
  conditions: { index: number; id: string; main: boolean; concept?: Concept }[];
  observation?: { index: number; id: string; value?: { grade: WhoGrade; date: string } };
  allergies: { index: number; id: string; item?: AllergyItem }[];
}

function readPatient(r: Reader, o: Obj, path: string): PatientDetails | undefined {
  r.object(o, path, ['resourceType', 'id', 'identifier', 'name', 'gender', 'birthDate', 'address', 'telecom', 'generalPractitioner']);
  let nhsNumber: string | undefined;
  if (r.required(o, 'identifier', path, "the patient's NHS number")) {
    const ids = r.array(o.identifier, `${path}.identifier`, 1);
    const id = ids && r.object(ids[0], `${path}.identifier[0]`, ['system', 'value']);
    if (id) {
      if (id.system !== NHS_NUMBER_SYSTEM) r.add('value', `${path}.identifier[0].system`, `the patient is identified by NHS number (${NHS_NUMBER_SYSTEM})`);
      const problem = nhsNumberProblem(id.value);
      if (problem) r.add('value', `${path}.identifier[0].value`, problem);
      else nhsNumber = id.value as string;
    }
  }
  let name: PatientDetails['name'] | undefined;
  if (r.required(o, 'name', path, "the patient's name")) {
    const names = r.array(o.name, `${path}.name`, 1);
    const n = names && r.object(names[0], `${path}.name[0]`, ['family', 'given', 'prefix']);
    if (n) {
      const at = `${path}.name[0]`;
      const family = r.required(n, 'family', at, 'the family name') ? r.string(n.family, `${at}.family`, NAME_MAX) : undefined;
      const strings = (key: string, max: number) =>
        n[key] === undefined ? [] : (r.array(n[key], `${at}.${key}`, max) ?? []).map((g, i) => r.string(g, `${at}.${key}[${i}]`, NAME_MAX));
      const given = strings('given', 10);
      const prefix = strings('prefix', 5);
      if (family !== undefined && given.every((g) => g !== undefined) && prefix.every((g) => g !== undefined)) {
        name = { family, given };
        if (prefix.length > 0) name.prefix = prefix;
      }
    }
  }
  const gender = r.required(o, 'gender', path, "the patient's gender") ? r.code(o.gender, `${path}.gender`, ['male', 'female', 'other', 'unknown'] as const) : undefined;
  const birthDate = r.required(o, 'birthDate', path, "the patient's date of birth") ? r.date(o.birthDate, `${path}.birthDate`, true) : undefined;
  if (!nhsNumber || !name || !gender || !birthDate) return undefined;
  const out: PatientDetails = { nhsNumber, name, gender, birthDate };

  if (o.address !== undefined) {
    const addresses = r.array(o.address, `${path}.address`, 1);
    const a = addresses && r.object(addresses[0], `${path}.address[0]`, ['line', 'city', 'district', 'postalCode']);
    if (a) {
      const at = `${path}.address[0]`;
      const lines = a.line === undefined ? [] : (r.array(a.line, `${at}.line`, 5) ?? []).map((l, i) => r.string(l, `${at}.line[${i}]`, NAME_MAX));
      const address: NonNullable<PatientDetails['address']> = { line: lines.filter((l): l is string => l !== undefined) };
      for (const key of ['city', 'district', 'postalCode'] as const) {
        if (a[key] !== undefined) {
          const s = r.string(a[key], `${at}.${key}`, NAME_MAX);
          if (s !== undefined) address[key] = s;
        }
      }
      out.address = address;
    }
  }
  if (o.telecom !== undefined) {
    const telecom: NonNullable<PatientDetails['telecom']> = [];
    (r.array(o.telecom, `${path}.telecom`, 10) ?? []).forEach((t, i) => {
      const at = `${path}.telecom[${i}]`;
      const c = r.object(t, at, ['system', 'value']);
      if (!c) return;
      const system = r.required(c, 'system', at, 'the system (phone or email)') ? r.code(c.system, `${at}.system`, ['phone', 'email'] as const) : undefined;
      const value = r.required(c, 'value', at, 'the number or address') ? r.string(c.value, `${at}.value`, NAME_MAX) : undefined;
      if (system && value) telecom.push({ system, value });
    });
    if (telecom.length > 0) out.telecom = telecom;
  }
  if (o.generalPractitioner !== undefined) {
    (r.array(o.generalPractitioner, `${path}.generalPractitioner`, 2) ?? []).forEach((g, i) => {
      const at = `${path}.generalPractitioner[${i}]`;
      const ref = r.object(g, at, ['type', 'identifier', 'display']);
      if (!ref) return;
      const type = r.required(ref, 'type', at, 'the type (Organization for the practice, Practitioner for the GP)')
        ? r.code(ref.type, `${at}.type`, ['Organization', 'Practitioner'] as const)
        : undefined;
      const display = ref.display === undefined ? undefined : r.string(ref.display, `${at}.display`, NAME_MAX);
      if (type === 'Organization') {
        if (out.gpPractice) r.add('structure', at, 'only one GP practice');
        if (!r.required(ref, 'identifier', at, "the practice's ODS code")) return;
        const id = r.object(ref.identifier, `${at}.identifier`, ['system', 'value']);
        if (!id) return;
        if (id.system !== ODS_SYSTEM) r.add('value', `${at}.identifier.system`, `a practice is identified by ODS code (${ODS_SYSTEM})`);
        if (typeof id.value !== 'string' || !ODS_CODE.test(id.value)) return void r.add('value', `${at}.identifier.value`, 'an ODS code is 3 to 10 upper-case letters and digits');
        out.gpPractice = { odsCode: id.value, ...(display !== undefined ? { name: display } : {}) };
      } else if (type === 'Practitioner') {
        if (out.gp) r.add('structure', at, 'only one named GP');
        if (!r.required(ref, 'display', at, "the GP's name") || display === undefined) return;
        out.gp = { name: display };
        if (ref.identifier !== undefined) {
          const id = r.object(ref.identifier, `${at}.identifier`, ['system', 'value']);
          if (!id) return;
          if (id.system !== REGISTRATION_SYSTEM) r.add('value', `${at}.identifier.system`, `a registration number has the system ${REGISTRATION_SYSTEM}`);
          const reg = r.string(id.value, `${at}.identifier.value`, NAME_MAX);
          if (reg !== undefined) out.gp.registration = reg;
        }
      }
    });
  }
  return out;
}

function readCondition(r: Reader, o: Obj, path: string, patientRef: string): { main: boolean; concept?: Concept } {
  r.object(o, path, ['resourceType', 'id', 'extension', 'clinicalStatus', 'code', 'subject']);
  let main = false;
  if (o.extension !== undefined) {
    (r.array(o.extension, `${path}.extension`, 1) ?? []).forEach((e, i) => {
      if (!isObj(e) || e.url !== EXTENSION_URLS.mainDiagnosis) {
        return void r.add('structure', `${path}.extension[${i}]`, `the only extension of a diagnosis is ${EXTENSION_URLS.mainDiagnosis}`);
      }
      const at = `${path}.extension('${EXTENSION_URLS.mainDiagnosis}')`;
      main = r.extensionValue(BOOL, e, at) === true;
    });
  }
  r.fixedConcept(o, 'clinicalStatus', path, CONDITION_CLINICAL, 'active');
  r.reference(o, 'subject', path, patientRef, true);
  const concept = r.required(o, 'code', path, 'the diagnosis') ? r.concept(o.code, `${path}.code`) : undefined;
  return { main, concept };
}

function readObservation(r: Reader, o: Obj, path: string, patientRef: string): { grade: WhoGrade; date: string } | undefined {
  r.object(o, path, ['resourceType', 'id', 'status', 'code', 'subject', 'effectiveDateTime', 'valueCodeableConcept']);
  if (o.status !== undefined) r.code(o.status, `${path}.status`, ['final', 'amended', 'corrected'] as const);
  if (r.required(o, 'code', path, 'the code of the WHO performance status')) {
    r.codedConcept(o.code, `${path}.code`, OBSERVATION_CODES, { [PERFORMANCE_STATUS_CODE]: PERFORMANCE_STATUS_CODE });
  }
  r.reference(o, 'subject', path, patientRef, false);
  const grades = Object.fromEntries(Object.entries(WHO_PERFORMANCE_STATUS));
  const grade = r.required(o, 'valueCodeableConcept', path, 'the WHO performance status grade') ? r.codedConcept(o.valueCodeableConcept, `${path}.valueCodeableConcept`, SNOMED, grades) : undefined;
  const date = r.required(o, 'effectiveDateTime', path, 'the date of the WHO performance status') ? r.date(o.effectiveDateTime, `${path}.effectiveDateTime`, true) : undefined;
  return grade !== undefined && date !== undefined ? { grade: Number(grade) as WhoGrade, date } : undefined;
}

function readAllergy(r: Reader, o: Obj, path: string, patientRef: string): AllergyItem | undefined {
  r.object(o, path, ['resourceType', 'id', 'extension', 'clinicalStatus', 'code', 'patient', 'criticality', 'reaction']);
  r.fixedConcept(o, 'clinicalStatus', path, ALLERGY_CLINICAL, 'active');
  r.reference(o, 'patient', path, patientRef, true);
  let source: NkaSource | undefined;
  let sourceGiven = false;
  if (o.extension !== undefined) {
    (r.array(o.extension, `${path}.extension`, 1) ?? []).forEach((e, i) => {
      if (!isObj(e) || e.url !== EXTENSION_URLS.noKnownAllergySource) {
        return void r.add('structure', `${path}.extension[${i}]`, `the only extension of an allergy is ${EXTENSION_URLS.noKnownAllergySource}`);
      }
      sourceGiven = true;
      const at = `${path}.extension('${EXTENSION_URLS.noKnownAllergySource}')`;
      r.object(e, at, ['url', 'valueCode']);
      source = r.required(e, 'valueCode', at, 'the source') ? r.code(e.valueCode, `${at}.valueCode`, NKA_SOURCES) : undefined;
    });
  }
  const substance = r.required(o, 'code', path, 'the substance') ? r.concept(o.code, `${path}.code`) : undefined;
  if (!substance) return undefined;
  if (substance.system === SNOMED && substance.code === NO_KNOWN_ALLERGY) {
    if (o.criticality !== undefined || o.reaction !== undefined) r.add('value', path, 'a "no known allergy" statement has no criticality or reaction');
    if (!sourceGiven) r.add('required', `${path}.extension('${EXTENSION_URLS.noKnownAllergySource}')`, `"no known allergy" needs its source: ${NKA_SOURCES.join(' or ')}`);
    return source ? { nka: source } : undefined;
  }
  if (sourceGiven) r.add('value', `${path}.extension('${EXTENSION_URLS.noKnownAllergySource}')`, `only the "no known allergy" statement (SNOMED CT ${NO_KNOWN_ALLERGY}) has a source`);
  const allergy: Allergy = { substance };
  if (o.criticality !== undefined) {
    const c = r.code(o.criticality, `${path}.criticality`, ['low', 'high', 'unable-to-assess'] as const);
    if (c) allergy.criticality = c;
  }
  if (o.reaction !== undefined) {
    const reactions = r.array(o.reaction, `${path}.reaction`, 1);
    const at = `${path}.reaction[0]`;
    const reaction = reactions && r.object(reactions[0], at, ['manifestation', 'severity']);
    if (reaction) {
      if (r.required(reaction, 'manifestation', at, 'the manifestation')) {
        const ms = r.array(reaction.manifestation, `${at}.manifestation`, 1);
        const m = ms && r.object(ms[0], `${at}.manifestation[0]`, ['text', 'extension']);
        if (m && m.text !== undefined) {
          const text = r.string(m.text, `${at}.manifestation[0].text`, TEXT_MAX);
          if (text !== undefined) allergy.reaction = text;
          if (m.extension !== undefined) r.add('structure', `${at}.manifestation[0].extension`, 'a manifestation has text or data-absent-reason, not both');
        } else if (m) {
          const exts = r.array(m.extension, `${at}.manifestation[0].extension`, 1);
          const e = exts?.[0];
          if (exts && !(isObj(e) && e.url === DATA_ABSENT_REASON && typeof e.valueCode === 'string' && Object.keys(e).length === 2)) {
            r.add('structure', `${at}.manifestation[0]`, `a manifestation is text, or a ${DATA_ABSENT_REASON} extension when only the severity is known`);
          }
        }
      }
      if (reaction.severity !== undefined) {
        const s = r.code(reaction.severity, `${at}.severity`, ['mild', 'moderate', 'severe'] as const);
        if (s) allergy.severity = s;
      }
    }
  }
  return allergy;
}

function readContained(r: Reader, contained: unknown): ContainedIndex {
  const index: ContainedIndex = { conditions: [], allergies: [] };
  if (contained === undefined) return index;
  const items = r.array(contained, 'CarePlan.contained', 2 * LIST_MAX + 2) ?? [];
  const ids = new Set<string>();
  const resources: { o: Obj; i: number; id: string; type: string }[] = [];
  items.forEach((item, i) => {
    const path = `CarePlan.contained[${i}]`;
    if (!isObj(item)) return void r.add('structure', path, 'must be a FHIR resource (JSON object)');
    const type = item.resourceType;
    if (!['Patient', 'Condition', 'Observation', 'AllergyIntolerance'].includes(type as string)) {
      return void r.add('structure', `${path}.resourceType`, 'a care plan contains only Patient, Condition, Observation and AllergyIntolerance');
    }
    if (typeof item.id !== 'string' || !FHIR_ID.test(item.id)) return void r.add('required', `${path}.id`, 'a contained resource needs an id (1 to 64 letters, digits, - and .)');
    if (ids.has(item.id)) return void r.add('value', `${path}.id`, `the id '${item.id}' is used twice`);
    ids.add(item.id);
    resources.push({ o: item, i, id: item.id, type: type as string });
  });
  const patients = resources.filter((x) => x.type === 'Patient');
  if (patients.length > 1) r.add('structure', `CarePlan.contained[${patients[1]!.i}]`, 'a care plan contains one Patient');
  const p = patients[0];
  if (p) index.patient = { index: p.i, id: p.id, details: readPatient(r, p.o, `CarePlan.contained[${p.i}]`) };
  const patientRef = `#${p?.id ?? PATIENT_ID}`;
  for (const x of resources) {
    const path = `CarePlan.contained[${x.i}]`;
    if (x.type === 'Condition') index.conditions.push({ index: x.i, id: x.id, ...readCondition(r, x.o, path, patientRef) });
    else if (x.type === 'Observation') {
      if (index.observation) r.add('structure', path, 'a care plan contains one Observation: the WHO performance status');
      else index.observation = { index: x.i, id: x.id, value: readObservation(r, x.o, path, patientRef) };
    } else if (x.type === 'AllergyIntolerance') index.allergies.push({ index: x.i, id: x.id, item: readAllergy(r, x.o, path, patientRef) });
  }
  if (index.conditions.length > LIST_MAX + 1) r.add('too-long', 'CarePlan.contained', `at most ${LIST_MAX + 1} diagnoses`);
  if (index.allergies.length > LIST_MAX) r.add('too-long', 'CarePlan.contained', `at most ${LIST_MAX} allergies`);
  return index;
}

/** Every local reference of a list (addresses, supportingInfo) must point at a contained resource of the right types. */
function readLocalReferences(r: Reader, v: unknown, path: string, targets: Map<string, string>, allowed: readonly string[], consent: boolean): Set<string> {
  const referenced = new Set<string>();
  if (v === undefined) return referenced;
  (r.array(v, path, 2 * LIST_MAX + 2) ?? []).forEach((ref, i) => {
    const at = `${path}[${i}]`;
    if (!isObj(ref)) return void r.add('structure', at, 'must be a Reference (JSON object)');
    const target = typeof ref.reference === 'string' ? ref.reference : '';
    if (consent && target.startsWith('Consent/')) {
      r.object(ref, at, ['reference', 'extension', 'display']); // server-owned: tolerated, not read
      return;
    }
    r.object(ref, at, ['reference']);
    const type = target.startsWith('#') ? targets.get(target.slice(1)) : undefined;
    if (!type || !allowed.includes(type)) {
      return void r.add('value', `${at}.reference`, `must reference a contained ${allowed.join(' or ')} ('#id')${consent ? ' or the Consent' : ''}`);
    }
    if (referenced.has(target.slice(1))) r.add('value', `${at}.reference`, `${target} is referenced twice`);
    referenced.add(target.slice(1));
  });
  return referenced;
}

function allergyKey(item: AllergyItem): string {
  return 'nka' in item ? 'nka' : allergyIdOf('', item);
}

/**
 * Reads a client's CarePlan into plan content: the inverse of toCarePlan for what clients write. Server-owned
 * elements (id, meta, text, created, author, period.start, category, title, intent, subject.display, the
 * Consent reference, the plan-state, withdrawal and last-updated-by extensions) are tolerated and not read,
 * except status, the plan-state and id, returned in `asserted`. Anything else unknown, and every invalid
 * value, is an issue; all of them are thrown at once as a 400.
 */
export function fromCarePlan(body: unknown, opts: { now?: Date } = {}): ParsedCarePlan {
  const r = new Reader(opts.now ?? new Date());
  if (!isObj(body)) throw new OperationOutcomeError(400, { code: 'structure', diagnostics: 'the body must be a FHIR CarePlan (a JSON object)', expression: 'CarePlan' });
  const root = r.object(body, 'CarePlan', CARE_PLAN_ELEMENTS) ?? body;
  if (root.resourceType !== 'CarePlan') r.add('value', 'CarePlan.resourceType', "resourceType must be 'CarePlan'");
  const asserted: ParsedCarePlan['asserted'] = {};

  // Server-owned elements: tolerated, with a glance at their form.
  if (root.id !== undefined) {
    if (typeof root.id === 'string' && FHIR_ID.test(root.id)) asserted.id = root.id;
    else r.add('value', 'CarePlan.id', 'an id is 1 to 64 letters, digits, - and .');
  }
  for (const key of ['meta', 'text', 'author'] as const) if (root[key] !== undefined && !isObj(root[key])) r.add('structure', `CarePlan.${key}`, 'must be a JSON object');
  for (const key of ['title', 'created'] as const) if (root[key] !== undefined && typeof root[key] !== 'string') r.add('structure', `CarePlan.${key}`, 'must be a string');
  if (root.category !== undefined && !Array.isArray(root.category)) r.add('structure', 'CarePlan.category', 'must be a JSON array');
  if (root.intent !== undefined) r.code(root.intent, 'CarePlan.intent', ['plan'] as const);
  if (root.status !== undefined) asserted.status = r.code(root.status, 'CarePlan.status', CARE_PLAN_STATUSES);

  const contained = readContained(r, root.contained);
  const patient = contained.patient;
  if (!patient) r.add('required', 'CarePlan.contained', 'the plan needs its patient: a contained Patient with NHS number, name, gender and date of birth');
  const patientRef = `#${patient?.id ?? PATIENT_ID}`;

  // subject: the contained patient
  if (r.required(root, 'subject', 'CarePlan', 'the subject (a reference to the contained Patient)')) {
    const s = r.object(root.subject, 'CarePlan.subject', ['reference', 'identifier', 'display']);
    if (s) {
      if (s.reference !== patientRef) r.add('value', 'CarePlan.subject.reference', `must reference the contained Patient (${patientRef})`);
      if (s.display !== undefined && typeof s.display !== 'string') r.add('structure', 'CarePlan.subject.display', 'must be a string');
      if (s.identifier !== undefined) {
        const id = r.object(s.identifier, 'CarePlan.subject.identifier', ['system', 'value']);
        const nhs = patient?.details?.nhsNumber;
        if (id && nhs && (id.system !== NHS_NUMBER_SYSTEM || id.value !== nhs)) r.add('value', 'CarePlan.subject.identifier', "must be the contained Patient's NHS number");
      }
    }
  }

  // references to contained resources (FHIR dom-3: each must be referenced)
  const types = new Map<string, string>();
  if (patient) types.set(patient.id, 'Patient');
  contained.conditions.forEach((c) => types.set(c.id, 'Condition'));
  if (contained.observation) types.set(contained.observation.id, 'Observation');
  contained.allergies.forEach((a) => types.set(a.id, 'AllergyIntolerance'));
  const addressed = readLocalReferences(r, root.addresses, 'CarePlan.addresses', types, ['Condition'], false);
  const supporting = readLocalReferences(r, root.supportingInfo, 'CarePlan.supportingInfo', types, ['Observation', 'AllergyIntolerance'], true);
  for (const c of contained.conditions) if (!addressed.has(c.id)) r.add('structure', `CarePlan.contained[${c.index}]`, 'a contained Condition must be referenced from CarePlan.addresses');
  for (const x of [contained.observation, ...contained.allergies]) {
    if (x && !supporting.has(x.id)) r.add('structure', `CarePlan.contained[${x.index}]`, 'a contained Observation or AllergyIntolerance must be referenced from CarePlan.supportingInfo');
  }

  const content: Draft = {};
  // background: diagnoses and performance status (prognosis comes with the extensions)
  const background: MedicalBackground = {};
  const mains = contained.conditions.filter((c) => c.main);
  if (mains.length > 1) r.add('value', `CarePlan.contained[${mains[1]!.index}].extension('${EXTENSION_URLS.mainDiagnosis}')`, 'only one main diagnosis');
  if (mains[0]?.concept) background.mainDiagnosis = mains[0].concept;
  const others = contained.conditions.filter((c) => !c.main && c.concept).map((c) => c.concept!);
  if (others.length > 0) background.otherDiagnoses = others;
  if (contained.observation?.value) background.performanceStatus = contained.observation.value;
  if (Object.keys(background).length > 0) content.background = background;

  // allergies
  const items = contained.allergies.filter((a) => a.item);
  const nka = items.find((a) => a.item && 'nka' in a.item);
  if (nka && contained.allergies.length > 1) r.add('value', `CarePlan.contained[${nka.index}]`, '"no known allergy" cannot stand beside listed allergies');
  else if (nka?.item && 'nka' in nka.item) content.allergies = { status: 'no-known-allergies', source: nka.item.nka };
  else if (items.length > 0) {
    const seen = new Set<string>();
    for (const a of items) {
      const key = allergyKey(a.item!);
      if (seen.has(key)) r.add('value', `CarePlan.contained[${a.index}].code`, 'this substance is listed twice');
      seen.add(key);
    }
    content.allergies = { status: 'known', items: items.map((a) => a.item as Allergy) };
  }

  // extensions
  if (root.extension !== undefined) {
    const seen = new Set<string>();
    (r.array(root.extension, 'CarePlan.extension', 40) ?? []).forEach((e, i) => {
      if (!isObj(e)) return void r.add('structure', `CarePlan.extension[${i}]`, 'must be a JSON object');
      if (typeof e.url !== 'string' || e.url === '') return void r.add('required', `CarePlan.extension[${i}].url`, 'an extension needs its url');
      const at = `CarePlan.extension('${e.url}')`;
      if (seen.has(e.url)) return void r.add('structure', at, 'this extension may appear only once');
      seen.add(e.url);
      if (e.url === EXTENSION_URLS.planState) {
        r.object(e, at, ['url', 'valueCode']);
        if (r.required(e, 'valueCode', at, 'the state')) asserted.state = r.code(e.valueCode, `${at}.valueCode`, PLAN_STATES);
        return;
      }
      if (SERVER_OWNED_EXTENSIONS.includes(e.url)) return; // rendered from the plan's meta; ignored
      if (e.url === EXTENSION_URLS.socialSupport) {
        const v = r.extensionValue(TEXT, e, at);
        if (typeof v === 'string') content.socialSupport = v;
        return;
      }
      const section = SECTIONS.find((s) => s.url === e.url);
      if (!section) return void r.add('structure', at, `unknown extension '${e.url}'`);
      const v = r.extensionValue(section.spec, e, at);
      if (isObj(v) && Object.keys(v).length > 0) section.set(content, v);
    });
  }

  // period: the end is the review date; the start (publication) is the server's
  if (root.period !== undefined) {
    const period = r.object(root.period, 'CarePlan.period', ['start', 'end']);
    if (period?.end !== undefined) {
      const end = r.date(period.end, 'CarePlan.period.end');
      if (end) content.approval = { ...content.approval, reviewDate: end };
    }
  }

  // activities: the emergency plan
  if (root.activity !== undefined) {
    const problems: { problem: string; action: string }[] = [];
    (r.array(root.activity, 'CarePlan.activity', LIST_MAX) ?? []).forEach((a, i) => {
      const at = `CarePlan.activity[${i}]`;
      const activity = r.object(a, at, ['detail']);
      if (!activity || !r.required(activity, 'detail', at, 'the detail')) return;
      const d = r.object(activity.detail, `${at}.detail`, ['status', 'reasonCode', 'description']);
      if (!d) return;
      if (d.status !== undefined) r.code(d.status, `${at}.detail.status`, ['not-started'] as const);
      let problem: string | undefined;
      if (r.required(d, 'reasonCode', `${at}.detail`, 'the anticipated problem (reasonCode text)')) {
        const reasons = r.array(d.reasonCode, `${at}.detail.reasonCode`, 1);
        const reason = reasons && r.object(reasons[0], `${at}.detail.reasonCode[0]`, ['text']);
        if (reason && r.required(reason, 'text', `${at}.detail.reasonCode[0]`, 'the problem')) problem = r.string(reason.text, `${at}.detail.reasonCode[0].text`, TEXT_MAX);
      }
      const action = r.required(d, 'description', `${at}.detail`, 'what to do (description)') ? r.string(d.description, `${at}.detail.description`, TEXT_MAX) : undefined;
      if (problem !== undefined && action !== undefined) problems.push({ problem, action });
    });
    if (problems.length > 0) content.emergencyPlan = { problems };
  }

  if (r.issues.length > 0 || !patient?.details) {
    if (r.issues.length === 0) r.add('required', 'CarePlan.contained', 'the patient is incomplete');
    throw new OperationOutcomeError(400, r.issues);
  }
  return { content: { ...content, patient: patient.details }, asserted };
}

// ---------------------------------------------------------------------------------------------------------
// Paths of the plan (as publish rules name them) -> FHIRPath in the CarePlan

const PATIENT_PATH = "CarePlan.contained.where(resourceType='Patient')";
const CONDITIONS = "CarePlan.contained.where(resourceType='Condition'";
const PATIENT_ELEMENTS: Record<string, string> = {
  nhsNumber: `.identifier.where(system='${NHS_NUMBER_SYSTEM}').value`,
  name: '.name',
  gender: '.gender',
  birthDate: '.birthDate',
  address: '.address',
  telecom: '.telecom',
  gpPractice: ".generalPractitioner.where(type='Organization')",
  gp: ".generalPractitioner.where(type='Practitioner')",
};
const REFERENCE_PARTS: Record<string, string> = { odsCode: '.identifier.value', name: '.display', registration: '.identifier.value' };

function walk(spec: Group, segments: readonly string[], expr: string): string {
  const [seg, ...rest] = segments;
  if (seg === undefined) return expr;
  const field = spec.fields[seg];
  if (!field) return expr;
  if (field.t === 'list') {
    const [index, ...after] = rest;
    const listExpr = `${expr}.extension('${field.url}')`;
    if (index === undefined || !/^\d+$/.test(index)) return listExpr;
    const itemExpr = `${listExpr}[${index}]`;
    return field.of.t === 'group' ? walk(field.of, after, itemExpr) : itemExpr;
  }
  const next = `${expr}.extension('${seg}')`;
  return field.t === 'group' ? walk(field, rest, next) : next;
}

/**
 * The FHIRPath, in the CarePlan of toCarePlan, of a plan content path such as `patient.address` or
 * `resuscitation.dnacpr.recordedBy` (array indexes as numbers: `contacts.0.name`). Unknown paths give the
 * nearest known element, or `CarePlan`.
 */
export function expressionFor(path: string): string {
  const segs = path.split('.').filter((s) => s !== '');
  const [head, second, ...rest] = segs;
  switch (head) {
    case 'state':
      return `CarePlan.extension('${EXTENSION_URLS.planState}')`;
    case 'status':
      return 'CarePlan.status';
    case 'patient': {
      if (!second || !(second in PATIENT_ELEMENTS)) return PATIENT_PATH;
      const base = `${PATIENT_PATH}${PATIENT_ELEMENTS[second]}`;
      const part = rest[0];
      if (!part) return base;
      if (second === 'gpPractice' || second === 'gp') return REFERENCE_PARTS[part] ? `${base}${REFERENCE_PARTS[part]}` : base;
      if (second === 'name' || second === 'address') return `${base}.${part}`;
      return base;
    }
    case 'consent':
      return "CarePlan.supportingInfo.where(reference.startsWith('Consent/'))";
    case 'allergies':
      return "CarePlan.contained.where(resourceType='AllergyIntolerance')";
    case 'emergencyPlan': {
      const index = rest[0];
      return second === 'problems' && index !== undefined && /^\d+$/.test(index) ? `CarePlan.activity[${index}]` : 'CarePlan.activity';
    }
    case 'socialSupport':
      return `CarePlan.extension('${EXTENSION_URLS.socialSupport}')`;
    case 'background':
      if (second === 'mainDiagnosis') return `${CONDITIONS} and extension('${EXTENSION_URLS.mainDiagnosis}').value = true)`;
      if (second === 'otherDiagnoses') return `${CONDITIONS} and extension('${EXTENSION_URLS.mainDiagnosis}').empty())`;
      if (second === 'performanceStatus') {
        const base = "CarePlan.contained.where(resourceType='Observation')";
        return rest[0] === 'grade' ? `${base}.value` : rest[0] === 'date' ? `${base}.effective` : base;
      }
      if (second === undefined) return 'CarePlan.addresses';
      break;
    case 'approval':
      if (second === 'reviewDate') return 'CarePlan.period.end';
      break;
  }
  for (const s of SECTIONS) {
    const n = s.prefix.length;
    if (!s.prefix.every((p, i) => segs[i] === p)) continue;
    const inner = segs.slice(n);
    if (n === 0 ? inner[0] !== undefined && inner[0] in s.spec.fields : inner.length === 0 || (inner[0] !== undefined && inner[0] in s.spec.fields)) {
      const base = `CarePlan.extension('${s.url}')`;
      // `alerts`, `contacts`: the section's one field is the list itself, so the bare name is the extension
      return n === 0 && inner.length === 1 ? base : walk(s.spec, inner, base);
    }
  }
  return 'CarePlan';
}
