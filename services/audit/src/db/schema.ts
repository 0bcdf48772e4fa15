import type { EventsTables } from '@cmc/events';

/** One entry of the log. Written once, never changed (see the migration's trigger and role). */
export interface AuditLogTable {
  /** Gapless position, from 1; pg returns bigint as a string. */
  seq: string;
  event_id: string;
  event_type: string;
  topic: string;
  recorded_at: Date;
  appended_at: Date;
  agent_kind: string | null;
  agent_id: string | null;
  agent_role: string | null;
  agent_organisation: string | null;
  interaction: string | null;
  outcome: string | null;
  nhs_numbers: string[];
  /** The event in canonical JSON (see domain/chain.ts): the exact text the hash covers. */
  event: string;
  prev_hash: Buffer;
  hash: Buffer;
}

export interface AuditDB extends EventsTables {
  audit_log: AuditLogTable;
}
