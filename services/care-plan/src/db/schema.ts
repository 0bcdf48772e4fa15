import type { EventsTables } from '@cmc/events';
import type { AllergyIntolerance, CarePlan } from 'fhir/r4';
import type { PlanContent, PlanMeta, PlanState } from '../domain/plan';

/** Care-plan's own copy of what it needs of consent, kept from cmc.consent.v1 (one row per consent). */
export interface ConsentProjectionTable {
  consent_id: string;
  nhs_number: string;
  version_id: number;
  status: 'active' | 'inactive';
  basis_code: string | null;
  changed_at: Date;
  updated_at: Date;
}

/** The current version of each plan; the columns beside the JSON are what searches and rules need. */
export interface CarePlansTable {
  id: string;
  nhs_number: string;
  state: PlanState;
  version_id: number;
  organisation: string;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  published_at: Date | null;
  review_date: string | null;
  gp_practice: string | null;
  meta: PlanMeta;
  content: PlanContent;
  resource: CarePlan;
}

export interface CarePlanVersionsTable {
  id: string;
  version_id: number;
  state: PlanState;
  meta: PlanMeta;
  content: PlanContent;
  resource: CarePlan;
  recorded_by: string;
  recorded_at: Date;
}

export interface PlanAllergiesTable {
  id: string;
  plan_id: string;
  nhs_number: string;
  resource: AllergyIntolerance;
}

export type Resuscitation = 'for-cpr' | 'not-for-cpr' | 'not-recorded';

/** The flag of a plan that was published: active while it is; down (inactive) once withdrawn or closed by death. */
export interface FlagsTable {
  plan_id: string;
  nhs_number: string;
  status: 'active' | 'inactive';
  /** The flag's own version (each change of what it says). */
  version_id: number;
  plan_version: number;
  resuscitation: Resuscitation;
  alerts: boolean;
  plan_modified_at: Date;
  active_from: Date;
  active_until: Date | null;
  down_reason: string | null;
  updated_at: Date;
}

export interface PlanNotesTable {
  id: string;
  plan_id: string;
  nhs_number: string;
  text: string;
  admission: boolean;
  author: string;
  author_role: string;
  organisation: string;
  created_at: Date;
}

export interface ChangeRequestsTable {
  id: string;
  plan_id: string;
  nhs_number: string;
  text: string;
  requested_by: string;
  requested_by_role: string;
  created_at: Date;
}

export interface CarePlanDB extends EventsTables {
  flags: FlagsTable;
  plan_notes: PlanNotesTable;
  change_requests: ChangeRequestsTable;
  consent_projection: ConsentProjectionTable;
  care_plans: CarePlansTable;
  care_plan_versions: CarePlanVersionsTable;
  plan_allergies: PlanAllergiesTable;
}
