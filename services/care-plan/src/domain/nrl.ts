/**
 * The National Record Locator's shape (NRL v3, FHIR R4 DocumentReference pointers), so that dispatch and GP
 * systems already built to ask the NRL "is there an end of life care coordination record for this patient?"
 * can ask us the same way. A pointer exists while the plan is published (its flag is up); it points at the
 * urgent care summary (JSON and FHIR) and the printable plan.
 */
import { NHS_NUMBER_SYSTEM } from '@cmc/fhir';
import type { DocumentReference } from 'fhir/r4';
import type { PointerRow } from '../db/flag-repository';
import { EOL_RECORD_TYPE } from './flag';
import { SNOMED } from './plan';

export const ODS_SYSTEM = 'https://fhir.nhs.uk/Id/ods-organization-code';
const FORMAT_SYSTEM = 'https://fhir.nhs.uk/England/CodeSystem/England-NRLFormatCode';
const STRUCTURED = { system: FORMAT_SYSTEM, code: 'urn:nhs-ic:structured', display: 'Structured Document' };
const UNSTRUCTURED = { system: FORMAT_SYSTEM, code: 'urn:nhs-ic:unstructured', display: 'Unstructured Document' };
/** SNOMED CT 734163000 |Care plan (record artifact)|: the NRL's category for care plans. */
const CARE_PLAN_CATEGORY = { system: SNOMED, code: '734163000', display: 'Care plan' };

/** The pointer to a published plan; `origin` is the service's base (scheme, host), `fhirBase` its FHIR base. */
export function toPointer(row: PointerRow, origin: string, fhirBase: string): DocumentReference {
  const creation = row.plan_modified_at.toISOString();
  return {
    resourceType: 'DocumentReference',
    id: row.plan_id,
    meta: { versionId: String(row.version_id), lastUpdated: row.updated_at.toISOString() },
    status: 'current',
    type: { coding: [{ ...EOL_RECORD_TYPE }] },
    category: [{ coding: [CARE_PLAN_CATEGORY] }],
    subject: { identifier: { system: NHS_NUMBER_SYSTEM, value: row.nhs_number.trim() } },
    date: creation,
    author: [{ identifier: { system: ODS_SYSTEM, value: row.organisation } }],
    custodian: { identifier: { system: ODS_SYSTEM, value: row.organisation } },
    content: [
      { attachment: { contentType: 'application/json', url: `${origin}/api/care-plans/${row.plan_id}/summary`, title: 'Urgent care summary', creation }, format: STRUCTURED },
      { attachment: { contentType: 'application/fhir+json', url: `${fhirBase}/CarePlan/${row.plan_id}/$summary`, title: 'Urgent care summary (FHIR Bundle)', creation }, format: STRUCTURED },
      { attachment: { contentType: 'application/pdf', url: `${origin}/api/care-plans/${row.plan_id}/print`, title: 'Printable plan', creation }, format: UNSTRUCTURED },
    ],
    context: { related: [{ reference: `CarePlan/${row.plan_id}` }] },
  };
}
