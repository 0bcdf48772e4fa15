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
