import type { Principal } from '@cmc/auth';
import { NHS_NUMBER_SYSTEM, OperationOutcomeError, invalidResource, nhsNumberProblem, parseFhirDateTime, type IssueInput } from '@cmc/fhir';
import type { Consent, Extension } from 'fhir/r4';
import type { ConsentRow } from '../db/consent-repository';

export const JUSTIFICATION_URL = 'https://fhir.cmc.example/StructureDefinition/consent-justification';
export const WITHDRAWAL_REASON_URL = 'https://fhir.cmc.example/StructureDefinition/consent-withdrawal-reason';
export const PURPOSE_SYSTEM = 'https://fhir.cmc.example/CodeSystem/consent-purpose';
export const SNOMED = 'http://snomed.info/sct';

/** The guide's three ways consent is obtained, as SNOMED CT codes of Consent.category. */
export const CONSENT_BASIS = {
  '882921000000109': 'patient',
  '883001000000106': 'lasting-power-of-attorney',
  '882961000000101': 'best-interests',
} as const;
export type ConsentBasis = (typeof CONSENT_BASIS)[keyof typeof CONSENT_BASIS];

export const PURPOSES = ['plan-creation', 'sharing', 'secondary-use'] as const;
export type Purpose = (typeof PURPOSES)[number];

export interface StringExtension {
  url: string;
  valueString: string;
}

/** What a client sends to record a consent (checked against the route's JSON schema first). */
export interface ConsentInput {
  resourceType: 'Consent';
  status: 'active';
  scope: Consent['scope'];
  category: Consent['category'];
  patient: { identifier: { system: string; value: string } };
  dateTime: string;
  extension?: StringExtension[];
  provision: { type: 'deny' | 'permit'; provision: { type: 'deny' | 'permit'; purpose: { system?: string; code?: string }[] }[] };
}

export const PATIENT_PRIVACY_SCOPE = { system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' };

const extensionPath = (url: string): string => `Consent.extension('${url}')`;

/** How consent was obtained, from Consent.category; pushes an issue unless exactly one of the three is there. */
function basisOf(category: Consent['category'], issues: IssueInput[]): keyof typeof CONSENT_BASIS | undefined {
  const found = (category ?? []).flatMap((c) => c.coding ?? []).filter((c) => c.system === SNOMED && c.code !== undefined && c.code in CONSENT_BASIS);
  if (found.length !== 1) {
    issues.push({
      code: 'value',
      diagnostics: `Consent.category must carry exactly one of the SNOMED CT codes ${Object.keys(CONSENT_BASIS).join(', ')} (given by the patient, Lasting Power of Attorney for health and welfare, best-interests decision); found ${found.length}`,
      expression: 'Consent.category',
    });
    return undefined;
  }
  return found[0]!.code as keyof typeof CONSENT_BASIS;
}

/** The three purposes' choices; pushes issues for any structural problem. */
function provisionsOf(provision: ConsentInput['provision'], issues: IssueInput[]): Partial<Record<Purpose, 'permit' | 'deny'>> {
  const choices: Partial<Record<Purpose, 'permit' | 'deny'>> = {};
  provision.provision.forEach((p, i) => {
    const path = `Consent.provision.provision[${i}].purpose`;
    const coding = p.purpose[0];
    if (p.purpose.length !== 1 || coding?.system !== PURPOSE_SYSTEM || !(PURPOSES as readonly string[]).includes(coding.code ?? '')) {
      issues.push({ code: 'value', diagnostics: `each nested provision needs exactly one purpose from ${PURPOSE_SYSTEM}: ${PURPOSES.join(', ')}`, expression: path });
      return;
    }
    const code = coding.code as Purpose;
    if (choices[code]) issues.push({ code: 'value', diagnostics: `purpose ${code} is given more than once`, expression: path });
    choices[code] = p.type;
  });
  const missing = PURPOSES.filter((p) => !choices[p]);
  if (missing.length > 0) issues.push({ code: 'required', diagnostics: `provisions are missing for: ${missing.join(', ')}`, expression: 'Consent.provision.provision' });
  return choices;
}

export interface CheckedConsent {
  dateTime: Date;
  basis: ConsentBasis;
  basisCode: keyof typeof CONSENT_BASIS;
  secondaryUse: 'permit' | 'deny';
}

/**
 * The rules the JSON schema cannot say: a valid NHS number (modulus 11), a date not in the future, the
 * patient-privacy scope, one way of obtaining consent (with its justification when not the patient's own),
 * and one choice for each purpose. Every problem is reported at once (400); a well-formed consent that does
 * not allow a plan is a 422.
 */
export function checkConsentInput(input: ConsentInput, now: Date): CheckedConsent {
  const issues: IssueInput[] = [];
  const nhsProblem = nhsNumberProblem(input.patient.identifier.value);
  if (nhsProblem) issues.push({ code: 'value', diagnostics: nhsProblem, expression: 'Consent.patient.identifier.value' });
  if (input.patient.identifier.system !== NHS_NUMBER_SYSTEM) {
    issues.push({ code: 'value', diagnostics: `patient must be identified by NHS number (${NHS_NUMBER_SYSTEM})`, expression: 'Consent.patient.identifier.system' });
  }
  const when = parseFhirDateTime(input.dateTime);
  if (!when) issues.push({ code: 'value', diagnostics: 'dateTime is not a valid date or date-time', expression: 'Consent.dateTime' });
  else if (when.getTime() > now.getTime() + 60_000) issues.push({ code: 'value', diagnostics: 'dateTime is in the future', expression: 'Consent.dateTime' });
  const scopeOk = input.scope.coding?.some((c) => c.system === PATIENT_PRIVACY_SCOPE.system && c.code === PATIENT_PRIVACY_SCOPE.code);
  if (!scopeOk) issues.push({ code: 'value', diagnostics: 'scope must be patient-privacy', expression: 'Consent.scope' });
  const basisCode = basisOf(input.category, issues);
  const basis = basisCode ? CONSENT_BASIS[basisCode] : undefined;
  const extensions = input.extension ?? [];
  const justifications = extensions.filter((e) => e.url === JUSTIFICATION_URL);
  if (justifications.length > 1) issues.push({ code: 'value', diagnostics: 'only one justification may be given', expression: extensionPath(JUSTIFICATION_URL) });
  if (justifications.some((j) => j.valueString.trim() === '')) issues.push({ code: 'value', diagnostics: 'the justification is blank', expression: extensionPath(JUSTIFICATION_URL) });
  if ((basis === 'lasting-power-of-attorney' || basis === 'best-interests') && justifications.length === 0) {
    issues.push({
      code: 'required',
      diagnostics: basis === 'best-interests' ? 'a best-interests decision needs a justification: who took part in the decision' : 'consent under a Lasting Power of Attorney needs a justification: who holds it',
      expression: extensionPath(JUSTIFICATION_URL),
    });
  }
  if (extensions.some((e) => e.url === WITHDRAWAL_REASON_URL)) {
    issues.push({ code: 'value', diagnostics: 'a withdrawal reason belongs to a withdrawal (PUT with status inactive), not to a new consent', expression: extensionPath(WITHDRAWAL_REASON_URL) });
  }
  const choices = provisionsOf(input.provision, issues);
  if (issues.length > 0 || !when || !basis || !basisCode) throw new OperationOutcomeError(400, issues);
  if (choices['plan-creation'] !== 'permit' || choices.sharing !== 'permit') {
    throw invalidResource([{ diagnostics: 'an urgent care plan needs both plan-creation and sharing permitted', expression: 'Consent.provision.provision' }]);
  }
  return { dateTime: when, basis, basisCode, secondaryUse: choices['secondary-use'] ?? 'deny' };
}

/** The resource as stored and served: the client's content plus what the server asserts. */
export function toStoredConsent(input: ConsentInput, id: string, versionId: number, updated: Date, recorder: Principal): Consent {
  const resource: Consent = {
    resourceType: 'Consent',
    id,
    meta: { versionId: String(versionId), lastUpdated: updated.toISOString() },
    status: input.status,
    scope: input.scope,
    category: input.category,
    patient: { identifier: { system: NHS_NUMBER_SYSTEM, value: input.patient.identifier.value } },
    dateTime: input.dateTime,
    provision: input.provision,
  };
  const extension: Extension[] = (input.extension ?? []).map((e) => ({ url: e.url, valueString: e.valueString }));
  if (extension.length > 0) resource.extension = extension;
  if (recorder.organisation) {
    resource.organization = [{ identifier: { system: 'https://fhir.nhs.uk/Id/ods-organization-code', value: recorder.organisation } }];
  }
  return resource;
}

export const READ_REFUSAL = 'this consent was recorded by another organisation';

/**
 * Who may read a consent record: the service team, and staff (clinicians, administrators) or system clients
 * of the organisation that recorded it. Wider sharing comes with the consent issue (#4).
 */
export function mayRead(p: Principal, row: Pick<ConsentRow, 'recorded_by_org'>): boolean {
  if (p.kind === 'client') return !!p.organisation && p.organisation === row.recorded_by_org;
  if (p.role === 'service-team') return true;
  return (p.role === 'clinician' || p.role === 'administrator') && !!p.organisation && p.organisation === row.recorded_by_org;
}
