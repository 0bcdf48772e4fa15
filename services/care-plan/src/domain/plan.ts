/**
 * The urgent care plan as this service understands it: every section of the implementation guide, in plain
 * typed JSON. The FHIR CarePlan (fhir-mapping.ts) is one view of it; the urgent care summary, the flag and the
 * printout (issue #6) are others. Stored as `content` in each version; the rendered FHIR resource beside it.
 *
 * Coded values use SNOMED CT where the guide's EPaCCS codes exist and are certain (CPR decision, WHO
 * performance status, consent basis, "no known allergy"); elsewhere our own code systems (CMC_CODES), so
 * that no code is guessed. Decision 0006 lists them.
 */

export const SNOMED = 'http://snomed.info/sct';
export const CMC_FHIR = 'https://fhir.cmc.example';
export const CMC_CODES = {
  place: `${CMC_FHIR}/CodeSystem/preferred-place`,
  prognosis: `${CMC_FHIR}/CodeSystem/prognosis`,
  ceiling: `${CMC_FHIR}/CodeSystem/treatment-ceiling`,
  alert: `${CMC_FHIR}/CodeSystem/alert-category`,
  contact: `${CMC_FHIR}/CodeSystem/contact-relationship`,
  planState: `${CMC_FHIR}/CodeSystem/plan-state`,
} as const;

/** The lifecycle of the guide. FHIR CarePlan.status shows draft, active, revoked or completed (fhir-mapping). */
export const PLAN_STATES = ['draft', 'awaiting-approval', 'published', 'withdrawn', 'deceased'] as const;
export type PlanState = (typeof PLAN_STATES)[number];
/** States in which a plan is the patient's one current plan (at most one per patient). */
export const OPEN_STATES: readonly PlanState[] = ['draft', 'awaiting-approval', 'published'];

/** A coded value (SNOMED CT or ours) or, where no code fits, free text. At least one of the two. */
export interface Concept {
  system?: string;
  code?: string;
  display?: string;
  text?: string;
}

export interface PatientDetails {
  /** Validated with its modulus-11 check digit. */
  nhsNumber: string;
  name: { family: string; given: string[]; prefix?: string[] };
  gender: 'male' | 'female' | 'other' | 'unknown';
  /** YYYY-MM-DD, not in the future. */
  birthDate: string;
  address?: { line: string[]; city?: string; district?: string; postalCode?: string };
  telecom?: { system: 'phone' | 'email'; value: string }[];
  /** The GP practice by ODS code, with its name. */
  gpPractice?: { odsCode: string; name?: string };
  /** The named GP. */
  gp?: { name: string; registration?: string };
}

/** Set by the server from the consent projection when the plan is created; never written by clients. */
export interface ConsentSection {
  consentId: string;
  /** How consent was obtained (SNOMED CT): 882921000000109 patient, 883001000000106 LPA, 882961000000101 best interests. */
  basisCode?: string;
}

export const WHO_PERFORMANCE_STATUS = {
  // SNOMED CT "WHO performance status grade 0..4".
  0: '373803006',
  1: '373804000',
  2: '373805004',
  3: '373806003',
  4: '373807007',
} as const;
export type WhoGrade = keyof typeof WHO_PERFORMANCE_STATUS;

export const PROGNOSES = ['last-days', 'last-weeks', 'months', 'years', 'uncertain'] as const;
export type Prognosis = (typeof PROGNOSES)[number];

export interface MedicalBackground {
  mainDiagnosis?: Concept;
  otherDiagnoses?: Concept[];
  performanceStatus?: { grade: WhoGrade; date: string };
  prognosis?: Prognosis;
  /** Free text besides the coded prognosis. */
  prognosisNote?: string;
}

/** Places of the guide, and its answers for when no place is chosen. */
export const PLACES = ['home', 'care-home', 'hospice', 'hospital', 'other', 'not-yet-discussed', 'declined', 'unable-to-express', 'undecided'] as const;
export type Place = (typeof PLACES)[number];
export interface PlaceChoice {
  place: Place;
  /** Which home, hospice...; required for `other`. */
  detail?: string;
}
export interface PlacePreference {
  first: PlaceChoice;
  second?: PlaceChoice;
}

export interface Preferences {
  placeOfCare?: PlacePreference;
  placeOfDeath?: PlacePreference;
  culturalReligiousWishes?: string;
}

export const CPR_DECISION = { 'for-cpr': '450475007', 'not-for-cpr': '450476008' } as const;
export type CprDecision = keyof typeof CPR_DECISION;

/**
 * The eight sections of the adult DNACPR form in line with the Resuscitation Council (UK) guidance, required
 * when the decision is not for CPR.
 */
export interface DnacprQuestions {
  /** 1. Does the patient have capacity to make and communicate decisions about CPR? */
  hasCapacity: boolean;
  /** 2. Summary of the main clinical problems and why CPR would be inappropriate, unsuccessful or not in the patient's best interests. */
  clinicalReasons: string;
  /** 3. Summary of communication with the patient (or why it did not happen). */
  communicationWithPatient: string;
  /** 4. Summary of communication with relatives, friends or a welfare attorney. */
  communicationWithRelatives: string;
  /** 5. Members of the multidisciplinary team who contributed. */
  teamMembers: string;
  /** 6. The healthcare professional who recorded the decision: name, position, registration, date. */
  recordedBy: { name: string; position: string; registration?: string; date: string };
  /** 7. Review and endorsement by the most senior healthcare professional. */
  endorsedBy?: { name: string; position: string; date: string };
  /** 8. Whether the decision is indefinite, or its review date. */
  review: { indefinite: boolean; date?: string };
}

export interface Resuscitation {
  discussed?: boolean;
  discussionDate?: string;
  /** What was discussed (when discussed). */
  discussionSummary?: string;
  /** Why it was not discussed (when not). */
  notDiscussedReason?: string;
  decision?: CprDecision;
  decisionDate?: string;
  dnacpr?: DnacprQuestions;
}

/**
 * The ceiling of treatment. `full-escalation` means every treatment including CPR and intensive care;
 * `limited-escalation` active treatment short of CPR or intensive care (e.g. ward-based, antibiotics);
 * `symptom-control` comfort and symptom relief only.
 */
export const CEILINGS = ['full-escalation', 'limited-escalation', 'symptom-control'] as const;
export type Ceiling = (typeof CEILINGS)[number];

export interface ClinicalRecommendations {
  ceiling?: Ceiling;
  /** The summary of expected treatment. */
  summary?: string;
  /** Expected treatment in named situations (e.g. "chest infection": "oral antibiotics at home"). */
  situations?: { situation: string; recommendation: string }[];
}

export interface Medication {
  items?: { name: string; dose?: string; notes?: string }[];
  /** e.g. where anticipatory ("just in case") medicines are kept. */
  notes?: string;
}

export const NO_KNOWN_ALLERGY = '716186003'; // SNOMED CT "No known allergy"
export const NKA_SOURCES = ['not-known', 'none-known-by-patient'] as const;
export type NkaSource = (typeof NKA_SOURCES)[number];

export interface Allergy {
  substance: Concept;
  reaction?: string;
  severity?: 'mild' | 'moderate' | 'severe';
  criticality?: 'low' | 'high' | 'unable-to-assess';
}

/** Either allergies, or "no known allergies" and its source ("I don't know" / "no allergies known by patient"). */
export type AllergySection = { status: 'known'; items: Allergy[] } | { status: 'no-known-allergies'; source: NkaSource };

export interface EmergencyPlan {
  /** Anticipated problems and what to do about each. */
  problems: { problem: string; action: string }[];
}

export const ALERT_CATEGORIES = ['clinical-risk', 'danger-to-staff', 'safeguarding', 'other'] as const;
export interface Alert {
  category: (typeof ALERT_CATEGORIES)[number];
  text: string;
}

export interface HomeAccess {
  keySafe?: { present: boolean; code?: string; location?: string };
  keyHolders?: string;
  livesWith?: string;
  livesAlone?: boolean;
  accessNotes?: string;
}

export const CONTACT_RELATIONSHIPS = ['gp', 'professional', 'family', 'next-of-kin', 'lasting-power-of-attorney', 'carer', 'other'] as const;
export interface Contact {
  relationship: (typeof CONTACT_RELATIONSHIPS)[number];
  name: string;
  role?: string;
  organisation?: string;
  phone?: string;
  email?: string;
  notes?: string;
}

export interface Approval {
  /** YYYY-MM-DD; default 3 months after publishing, at most 12 months after it. */
  reviewDate?: string;
  reviewingClinician?: { name: string; registration?: string; userId?: string };
}

/** Everything the plan says. Every section is optional in a draft; publishing requires the guide's mandatory ones. */
export interface PlanContent {
  patient: PatientDetails;
  consent?: ConsentSection;
  background?: MedicalBackground;
  preferences?: Preferences;
  resuscitation?: Resuscitation;
  recommendations?: ClinicalRecommendations;
  medication?: Medication;
  allergies?: AllergySection;
  emergencyPlan?: EmergencyPlan;
  alerts?: Alert[];
  homeAccess?: HomeAccess;
  contacts?: Contact[];
  socialSupport?: string;
  approval?: Approval;
}

export type SectionName = Exclude<keyof PlanContent, 'patient' | 'consent'> | 'patient';

/**
 * The guide's clinical sections (marked * in its table, and the resuscitation decision): only registered
 * clinicians write them. Administrators write the rest and submit for approval.
 */
export const CLINICAL_SECTIONS: readonly SectionName[] = ['background', 'resuscitation', 'recommendations', 'medication', 'allergies', 'emergencyPlan', 'approval'];

/** What a patient may write in a draft of their own: their details and wishes, never clinical sections. */
export const PATIENT_SECTIONS: readonly SectionName[] = ['patient', 'preferences', 'homeAccess', 'contacts', 'socialSupport'];

/** What a plan is, besides its content: held by the service, never written by clients directly. */
export interface PlanMeta {
  id: string;
  versionId: number;
  state: PlanState;
  /** ODS code of the organisation that created the plan (drafts are visible only inside it). */
  organisation: string;
  createdBy: string;
  createdAt: string;
  lastUpdated: string;
  lastUpdatedBy: string;
  /** Author's display and organisation for "last modified by". */
  lastUpdatedByOrg?: string;
  publishedAt?: string;
  publishedBy?: string;
  /** When withdrawn: why (on request, consent withdrawn...). */
  withdrawal?: { at: string; reason: string; byConsentWithdrawal: boolean };
  /** When the patient has died: the record that closed the plan, and whether the preferred place was met. */
  death?: DeathRecord;
  /** A draft the patient started themselves (myCMC): their GP practice holds it until a clinician takes it on. */
  startedByPatient?: boolean;
  /** When the review became due before its date (an admission to hospital, noted by urgent care). */
  reviewDue?: { at: string; reason: string };
}

/** Where a person died: the places of the guide's preferences, without the "no choice" answers. */
export const DEATH_PLACES = ['home', 'care-home', 'hospice', 'hospital', 'other'] as const;
export type DeathPlace = (typeof DEATH_PLACES)[number];

/**
 * Whether the preferred place of death was met: as first choice (PPD1), as second choice (PPD2), not met, or
 * no place had been chosen (not yet discussed, declined, unable to express, undecided).
 */
export const DEATH_OUTCOMES = ['met-first', 'met-second', 'not-met', 'no-preference'] as const;
export type DeathOutcome = (typeof DEATH_OUTCOMES)[number];

export interface DeathRecord {
  /** YYYY-MM-DD, not in the future. */
  date: string;
  place: DeathPlace;
  /** Which hospital, hospice...; required for `other`. */
  placeDetail?: string;
  outcome: DeathOutcome;
  recordedAt: string;
  recordedBy: string;
  recordedByOrg?: string;
}

/** Met as first or second choice when the place (and, for `other`, its detail) matches the preference. */
export function deathOutcome(preference: PlacePreference | undefined, place: DeathPlace, detail?: string): DeathOutcome {
  const real = (c: PlaceChoice | undefined): c is PlaceChoice => !!c && (DEATH_PLACES as readonly string[]).includes(c.place);
  const same = (c: PlaceChoice): boolean => c.place === place && (place !== 'other' || (c.detail ?? '').trim().toLowerCase() === (detail ?? '').trim().toLowerCase());
  const first = preference?.first;
  const second = preference?.second;
  if (!real(first) && !real(second)) return 'no-preference';
  if (real(first) && same(first)) return 'met-first';
  if (real(second) && same(second)) return 'met-second';
  return 'not-met';
}

export interface StoredPlan {
  meta: PlanMeta;
  content: PlanContent;
}
