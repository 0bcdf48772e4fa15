import { NHS_NUMBER_SYSTEM } from '@cmc/fhir';
import type { Flag } from 'fhir/r4';
import type { FlagRow } from '../db/flag-repository';
import { CMC_FHIR, CPR_DECISION, SNOMED } from './plan';

const SD = `${CMC_FHIR}/StructureDefinition`;
export const FLAG_EXTENSIONS = {
  /** Core R4 extension: the resource the flag is about (the CarePlan). */
  detail: 'http://hl7.org/fhir/StructureDefinition/flag-detail',
  resuscitation: `${SD}/flag-resuscitation`,
  alerts: `${SD}/flag-alerts`,
  planLastModified: `${SD}/flag-plan-last-modified`,
  downReason: `${SD}/flag-down-reason`,
} as const;

/** SNOMED CT 861421000000109: the record type the National Record Locator uses for end of life care coordination. */
export const EOL_RECORD_TYPE = { system: SNOMED, code: '861421000000109', display: 'End of life care coordination summary' } as const;

const CPR_TEXT = { 'for-cpr': 'For CPR', 'not-for-cpr': 'Not for CPR', 'not-recorded': 'CPR decision not recorded' } as const;

/** The flag as FHIR R4: that a plan exists, its resuscitation status and alerts, and when the plan last changed. */
export function toFlag(row: FlagRow): Flag {
  const r = row.resuscitation;
  const resuscitation =
    r === 'not-recorded' ? { text: CPR_TEXT[r] } : { coding: [{ system: SNOMED, code: CPR_DECISION[r], display: r === 'for-cpr' ? 'For cardiopulmonary resuscitation' : 'Not for cardiopulmonary resuscitation' }], text: CPR_TEXT[r] };
  const flag: Flag = {
    resourceType: 'Flag',
    id: row.plan_id,
    meta: { versionId: String(row.version_id), lastUpdated: row.updated_at.toISOString() },
    extension: [
      { url: FLAG_EXTENSIONS.detail, valueReference: { reference: `CarePlan/${row.plan_id}` } },
      { url: FLAG_EXTENSIONS.resuscitation, valueCodeableConcept: resuscitation },
      { url: FLAG_EXTENSIONS.alerts, valueBoolean: row.alerts },
      { url: FLAG_EXTENSIONS.planLastModified, valueDateTime: row.plan_modified_at.toISOString() },
      ...(row.down_reason ? [{ url: FLAG_EXTENSIONS.downReason, valueCode: row.down_reason }] : []),
    ],
    status: row.status,
    category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/flag-category', code: 'clinical', display: 'Clinical' }] }],
    code: { coding: [{ ...EOL_RECORD_TYPE }], text: `Urgent care plan: ${CPR_TEXT[r]}${row.alerts ? '; alerts' : ''}` },
    subject: { identifier: { system: NHS_NUMBER_SYSTEM, value: row.nhs_number.trim() } },
    period: { start: row.active_from.toISOString(), ...(row.active_until ? { end: row.active_until.toISOString() } : {}) },
  };
  return flag;
}

/** What dispatch software gets per patient: a normal answer with or without a plan. */
export interface FlagLookup {
  nhsNumber: string;
  hasPlan: boolean;
  planId?: string;
  resuscitation?: FlagRow['resuscitation'];
  alerts?: boolean;
  lastModified?: string;
  summaryUrl?: string;
}

export function toLookup(nhsNumber: string, row: FlagRow | undefined): FlagLookup {
  if (!row) return { nhsNumber, hasPlan: false };
  return {
    nhsNumber,
    hasPlan: true,
    planId: row.plan_id,
    resuscitation: row.resuscitation,
    alerts: row.alerts,
    lastModified: row.plan_modified_at.toISOString(),
    summaryUrl: `/api/care-plans/${row.plan_id}/summary`,
  };
}

export const flagLookupSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['nhsNumber', 'hasPlan'],
  properties: {
    nhsNumber: { type: 'string', description: 'As asked' },
    hasPlan: { type: 'boolean', description: 'Whether the patient has a published plan (false is a normal answer)' },
    planId: { type: 'string', format: 'uuid' },
    resuscitation: { enum: ['for-cpr', 'not-for-cpr', 'not-recorded'] },
    alerts: { type: 'boolean', description: 'Whether the plan holds alerts (risks, danger to attending staff)' },
    lastModified: { type: 'string', format: 'date-time', description: 'When the plan last changed' },
    summaryUrl: { type: 'string', description: 'The urgent care summary, relative to the base URL' },
  },
} as const;
