import type { Generated } from '@cmc/db';
import type { EventsTables } from '@cmc/events';
import type { Consent } from 'fhir/r4';

export interface ConsentsTable {
  id: string;
  version_id: number;
  nhs_number: string;
  status: string;
  date_time: Date;
  resource: Consent;
  recorded_by: string;
  recorded_by_org: string | null;
  created_at: Generated<Date>;
  updated_at: Date;
}

export interface ConsentVersionsTable {
  id: string;
  version_id: number;
  resource: Consent;
  recorded_by: string;
  recorded_at: Date;
}

export interface ConsentDB extends EventsTables {
  consents: ConsentsTable;
  consent_versions: ConsentVersionsTable;
}
