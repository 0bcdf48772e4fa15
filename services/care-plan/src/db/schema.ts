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

export interface CarePlanDB extends EventsTables {
  consent_projection: ConsentProjectionTable;
  care_plans: CarePlansTable;
  care_plan_versions: CarePlanVersionsTable;
  plan_allergies: PlanAllergiesTable;
}
