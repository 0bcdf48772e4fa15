import type { Principal } from '@cmc/auth';
import { NHS_NUMBER_SYSTEM, OperationOutcomeError, forbidden, nhsNumberProblem, parseFhirDateTime, type IssueInput } from '@cmc/fhir';
import type { Consent } from 'fhir/r4';
import type { ConsentRow } from '../db/consent-repository';

/** What a client sends to record a consent (checked against the route's JSON schema first). */
export interface ConsentInput {
  resourceType: 'Consent';
  status: 'active';
  scope: Consent['scope'];
  category: Consent['category'];
  patient: { identifier: { system: string; value: string } };
  dateTime: string;
}

export const PATIENT_PRIVACY_SCOPE = { system: 'http://terminology.hl7.org/CodeSystem/consentscope', code: 'patient-privacy' };

/**
 * The rules the JSON schema cannot say: a valid NHS number (modulus 11), a date not in the future, the
 * patient-privacy scope. Every problem is reported at once.
 */
export function checkConsentInput(input: ConsentInput, now: Date): Date {
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
  if (issues.length > 0 || !when) throw new OperationOutcomeError(400, issues);
  return when;
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
  };
  if (recorder.organisation) {
    resource.organization = [{ identifier: { system: 'https://fhir.nhs.uk/Id/ods-organization-code', value: recorder.organisation } }];
  }
  return resource;
}

/**
 * Who may read a consent record: the service team, and staff of the organisation that recorded it. Wider
 * sharing comes with the consent issue (#4).
 */
export function assertMayRead(p: Principal, row: ConsentRow): void {
  if (p.kind === 'client') {
    if (p.organisation && p.organisation === row.recorded_by_org) return;
    throw forbidden('this consent was recorded by another organisation');
  }
  if (p.role === 'service-team') return;
  if ((p.role === 'clinician' || p.role === 'administrator') && p.organisation && p.organisation === row.recorded_by_org) return;
  throw forbidden('this consent was recorded by another organisation');
}
