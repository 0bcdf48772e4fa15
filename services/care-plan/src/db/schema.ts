import type { EventsTables } from '@cmc/events';

/** Care-plan's own copy of what it needs of consent, kept from cmc.consent.v1 (one row per consent). */
export interface ConsentProjectionTable {
  consent_id: string;
  nhs_number: string;
  version_id: number;
  status: 'active' | 'inactive';
  changed_at: Date;
  updated_at: Date;
}

export interface CarePlanDB extends EventsTables {
  consent_projection: ConsentProjectionTable;
}
