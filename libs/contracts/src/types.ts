/** The data of each event type, as TypeScript sees it (kept by hand beside the JSON schemas in schemas.ts). */
export interface ConsentGrantedData {
  consentId: string;
  versionId: string;
  nhsNumber: string;
  status: 'active';
  dateTime: string;
}

export interface ConsentWithdrawnData {
  consentId: string;
  versionId: string;
  nhsNumber: string;
  status: 'inactive';
  withdrawnAt: string;
  reason?: string;
}

export type AccessInteraction =
  | 'create' | 'read' | 'vread' | 'update' | 'search' | 'history' | 'flag' | 'summary' | 'print' | 'export' | 'report' | 'delete';

export interface AccessRecordedData {
  agent: { kind: 'user' | 'client' | 'patient' | 'anonymous'; id: string; role?: string; organisation?: string };
  interaction: AccessInteraction;
  outcome: 'allowed' | 'refused' | 'failed';
  outcomeReason?: string;
  recordedAt: string;
  entities: { resourceType: string; id?: string; versionId?: string; nhsNumber?: string }[];
  query?: string;
  source?: { service?: string; clientAddress?: string; userAgent?: string; device?: string };
  purposeOfUse?: string;
}

export interface EventDataMap {
  'cmc.consent.granted.v1': ConsentGrantedData;
  'cmc.consent.withdrawn.v1': ConsentWithdrawnData;
  'cmc.access.recorded.v1': AccessRecordedData;
}
