/** Typed builders of request bodies, one place for every test. */

/** A FHIR Consent as a clinician would send it: consent given by the patient, dated yesterday. */
export function aConsent(nhsNumber: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    resourceType: 'Consent',
    status: 'active',
    scope: { coding: [{ system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' }] },
    category: [{ coding: [{ system: 'http://snomed.info/sct', code: '882921000000109', display: 'Consent given by patient for urgent care plan' }] }],
    patient: { identifier: { system: 'https://fhir.nhs.uk/Id/nhs-number', value: nhsNumber } },
    dateTime: new Date(Date.now() - 86_400_000).toISOString(),
    ...overrides,
  };
}
