/** Typed builders of request bodies, one place for every test. */

export type ProvisionChoice = 'permit' | 'deny';

/** Consent.provision as the consent service wants it: deny at the top, one nested provision per purpose. */
export function consentProvisions(choices: { planCreation?: ProvisionChoice; sharing?: ProvisionChoice; secondaryUse?: ProvisionChoice } = {}): Record<string, unknown> {
  const nested = (code: string, type: ProvisionChoice) => ({ type, purpose: [{ system: 'https://fhir.cmc.example/CodeSystem/consent-purpose', code }] });
  return {
    type: 'deny',
    provision: [
      nested('plan-creation', choices.planCreation ?? 'permit'),
      nested('sharing', choices.sharing ?? 'permit'),
      nested('secondary-use', choices.secondaryUse ?? 'permit'),
    ],
  };
}

/**
 * A FHIR Consent as a clinician would send it: consent given by the patient, dated yesterday, permitting plan
 * creation, sharing and secondary use.
 */
export function aConsent(nhsNumber: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://snomed.info/sct', code: '882921000000109', display: 'Consent given by patient for urgent care plan' }] }],
    patient: { identifier: { system: 'https://fhir.nhs.uk/Id/nhs-number', value: nhsNumber } },
    dateTime: new Date(Date.now() - 86_400_000).toISOString(),
    provision: consentProvisions(),
    ...overrides,
  };
}

const CMC = 'https://fhir.cmc.example';
const SNOMED_CT = 'http://snomed.info/sct';
const ext = (name: string): string => `${CMC}/StructureDefinition/${name}`;
const isoDate = (d: Date): string => d.toISOString().slice(0, 10);
const daysFromNow = (days: number): string => isoDate(new Date(Date.now() + days * 86_400_000));
function monthsFromNow(months: number): string {
  const d = new Date();
  const target = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months, 1));
  const last = new Date(Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0)).getUTCDate();
  target.setUTCDate(Math.min(d.getUTCDate(), last));
  return isoDate(target);
}
const str = (url: string, valueString: string) => ({ url, valueString });
const coding = (url: string, system: string, code: string) => ({ url, valueCoding: { system: `${CMC}/CodeSystem/${system}`, code } });
const nested = (url: string, extension: unknown[]) => ({ url, extension });

/**
 * A FHIR CarePlan as a GP system would POST it, complete enough to publish under the guide's mandatory table:
 * every section filled in. `cpr` picks the decision (default not for CPR, with the eight DNACPR questions, and a
 * ceiling of symptom control; for CPR: full escalation, no questions). `omit` leaves out sections by their
 * plan.ts names (patient, background, preferences, resuscitation, recommendations, medication, allergies,
 * emergencyPlan, alerts, homeAccess, contacts, socialSupport, approval); `overrides` replaces top-level elements.
 * The URLs are those of services/care-plan's fhir-mapping (decision 0006), repeated here as literals.
 */
export function aCarePlan(
  nhsNumber: string,
  opts: { cpr?: 'for-cpr' | 'not-for-cpr'; omit?: string[]; overrides?: Record<string, unknown> } = {},
): Record<string, unknown> {
  const cpr = opts.cpr ?? 'not-for-cpr';
  const has = (section: string): boolean => !(opts.omit ?? []).includes(section);
  const lastWeek = daysFromNow(-7);
  const patientRef = { reference: '#patient' };
  const contained: Record<string, unknown>[] = [];
  const addresses: Record<string, unknown>[] = [];
  const supportingInfo: Record<string, unknown>[] = [];
  const extension: Record<string, unknown>[] = [];
  const body: Record<string, unknown> = { resourceType: 'CarePlan', status: 'draft', intent: 'plan' };

  if (has('patient')) {
    contained.push({
      resourceType: 'Patient',
      id: 'patient',
      identifier: [{ system: 'https://fhir.nhs.uk/Id/nhs-number', value: nhsNumber }],
      name: [{ family: 'Smith', given: ['Margaret', 'Ann'], prefix: ['Mrs'] }],
      gender: 'female',
      birthDate: '1938-04-12',
      address: [{ line: ['12 Acacia Avenue'], city: 'London', postalCode: 'SE1 7EH' }],
      telecom: [{ system: 'phone', value: '020 7946 0000' }],
      generalPractitioner: [
        { type: 'Organization', identifier: { system: 'https://fhir.nhs.uk/Id/ods-organization-code', value: 'Y12345' }, display: 'Acacia Medical Centre' },
        { type: 'Practitioner', identifier: { system: `${CMC}/Id/professional-registration`, value: 'GMC 1234567' }, display: 'Dr Priya Patel' },
      ],
    });
    body.subject = { reference: '#patient', identifier: { system: 'https://fhir.nhs.uk/Id/nhs-number', value: nhsNumber } };
  }
  if (has('background')) {
    contained.push(
      {
        resourceType: 'Condition',
        id: 'diagnosis-1',
        extension: [{ url: ext('main-diagnosis'), valueBoolean: true }],
        code: { coding: [{ system: SNOMED_CT, code: '254637007', display: 'Non-small cell lung cancer' }], text: 'Non-small cell lung cancer, stage IV' },
        subject: patientRef,
      },
      { resourceType: 'Condition', id: 'diagnosis-2', code: { text: 'Chronic obstructive pulmonary disease' }, subject: patientRef },
      {
        resourceType: 'Observation',
        id: 'performance-status',
        status: 'final',
        code: { coding: [{ system: `${CMC}/CodeSystem/observation-type`, code: 'who-performance-status' }] },
        subject: patientRef,
        effectiveDateTime: lastWeek,
        valueCodeableConcept: { coding: [{ system: SNOMED_CT, code: '373806003' }] },
      },
    );
    addresses.push({ reference: '#diagnosis-1' }, { reference: '#diagnosis-2' });
    supportingInfo.push({ reference: '#performance-status' });
    extension.push(nested(ext('careplan-prognosis'), [coding('prognosis', 'prognosis', 'last-weeks'), str('prognosisNote', 'Deteriorating over the last month')]));
  }
  if (has('allergies')) {
    contained.push({
      resourceType: 'AllergyIntolerance',
      id: 'allergy-1',
      code: { coding: [{ system: SNOMED_CT, code: '764146007', display: 'Penicillin' }], text: 'Penicillin' },
      patient: patientRef,
      criticality: 'high',
      reaction: [{ manifestation: [{ text: 'Rash and facial swelling' }], severity: 'moderate' }],
    });
    supportingInfo.push({ reference: '#allergy-1' });
  }
  if (has('preferences')) {
    const place = (url: string, first: string, second: string, secondDetail: string) =>
      nested(url, [nested('first', [coding('place', 'preferred-place', first)]), nested('second', [coding('place', 'preferred-place', second), str('detail', secondDetail)])]);
    extension.push(
      nested(ext('careplan-preferences'), [
        place('placeOfCare', 'home', 'hospice', "St Christopher's Hospice"),
        place('placeOfDeath', 'home', 'hospice', "St Christopher's Hospice"),
        str('culturalReligiousWishes', 'Roman Catholic: would like a priest called'),
      ]),
    );
  }
  if (has('resuscitation')) {
    const decision = { url: 'decision', valueCoding: { system: SNOMED_CT, code: cpr === 'for-cpr' ? '450475007' : '450476008' } };
    const dnacpr = nested('dnacpr', [
      { url: 'hasCapacity', valueBoolean: true },
      str('clinicalReasons', 'Advanced metastatic cancer; CPR would not be successful'),
      str('communicationWithPatient', 'Discussed with the patient, who agrees'),
      str('communicationWithRelatives', 'Discussed with her daughter'),
      str('teamMembers', 'GP, district nurse, palliative care nurse specialist'),
      nested('recordedBy', [str('name', 'Dr Priya Patel'), str('position', 'General practitioner'), str('registration', 'GMC 1234567'), { url: 'date', valueDate: lastWeek }]),
      nested('endorsedBy', [str('name', 'Dr Alan Jones'), str('position', 'Senior partner'), { url: 'date', valueDate: lastWeek }]),
      nested('review', [{ url: 'indefinite', valueBoolean: true }]),
    ]);
    extension.push(
      nested(ext('careplan-resuscitation'), [
        { url: 'discussed', valueBoolean: true },
        { url: 'discussionDate', valueDate: lastWeek },
        str('discussionSummary', 'Discussed CPR and its likely outcome with the patient and her daughter'),
        decision,
        { url: 'decisionDate', valueDate: lastWeek },
        ...(cpr === 'not-for-cpr' ? [dnacpr] : []),
      ]),
    );
  }
  if (has('recommendations')) {
    extension.push(
      nested(ext('careplan-recommendations'), [
        coding('ceiling', 'treatment-ceiling', cpr === 'for-cpr' ? 'full-escalation' : 'symptom-control'),
        str('summary', cpr === 'for-cpr' ? 'Full active treatment, including admission' : 'Comfort and symptom control at home; avoid admission'),
        nested('situation', [str('situation', 'Chest infection'), str('recommendation', 'Oral antibiotics at home')]),
      ]),
    );
  }
  if (has('medication')) {
    extension.push(
      nested(ext('careplan-medication'), [
        nested('item', [str('name', 'Morphine sulfate oral solution'), str('dose', '2.5 mg every 4 hours as needed'), str('notes', 'For breathlessness')]),
        str('notes', 'Anticipatory medicines are in the kitchen cupboard'),
      ]),
    );
  }
  if (has('alerts')) {
    extension.push(nested(ext('careplan-alerts'), [nested('alert', [coding('category', 'alert-category', 'clinical-risk'), str('text', 'Oxygen in use at home')])]));
  }
  if (has('homeAccess')) {
    extension.push(
      nested(ext('careplan-home-access'), [
        nested('keySafe', [{ url: 'present', valueBoolean: true }, str('code', '4321'), str('location', 'Left of the front door')]),
        str('keyHolders', 'Daughter (Jane Smith)'),
        { url: 'livesAlone', valueBoolean: true },
        str('accessNotes', 'Ground floor flat'),
      ]),
    );
  }
  if (has('contacts')) {
    extension.push(
      nested(ext('careplan-contacts'), [
        nested('contact', [coding('relationship', 'contact-relationship', 'next-of-kin'), str('name', 'Jane Smith'), str('role', 'Daughter'), str('phone', '07700 900123')]),
      ]),
    );
  }
  if (has('socialSupport')) extension.push(str(ext('careplan-social-support'), 'Carers twice a day; daughter visits daily'));
  if (has('approval')) {
    body.period = { end: monthsFromNow(3) };
    extension.push(nested(ext('careplan-approval'), [nested('reviewingClinician', [str('name', 'Dr Priya Patel'), str('registration', 'GMC 1234567')])]));
  }
  if (has('emergencyPlan')) {
    body.activity = [
      { detail: { status: 'not-started', reasonCode: [{ text: 'Breathlessness' }], description: 'Oramorph 2.5 mg; fan; call the palliative care team' } },
      { detail: { status: 'not-started', reasonCode: [{ text: 'Fall at home' }], description: 'Check for injury; avoid admission if possible' } },
    ];
  }

  if (extension.length > 0) body.extension = extension;
  if (contained.length > 0) body.contained = contained;
  if (addresses.length > 0) body.addresses = addresses;
  if (supportingInfo.length > 0) body.supportingInfo = supportingInfo;
  return { ...body, ...opts.overrides };
}
