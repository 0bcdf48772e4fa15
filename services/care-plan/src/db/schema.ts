import type { EventsTables } from '@cmc/events';

/** Care-plan's own copy of what it needs of consent, kept from cmc.consent.v1 (one row per patient). */
export interface ConsentProjectionTable {
  nhs_number: string;
  consent_id: string;
  version_id: number;
  status: 'active' | 'inactive';
  changed_at: Date;
  updated_at: Date;
}

export interface CarePlanDB extends EventsTables {
  consent_projection: ConsentProjectionTable;
}
