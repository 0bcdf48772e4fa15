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

/** A perfect subtree of the Merkle tree, level >= 4 (16 leaves and up); see domain/merkle.ts. */
export interface AuditMerkleNodeTable {
  level: number;
  /** The subtree covers leaves [idx * 2^level, (idx + 1) * 2^level); pg returns bigint as a string. */
  idx: string;
  hash: Buffer;
}

/** A signed checkpoint; see domain/checkpoint.ts. */
export interface AuditCheckpointTable {
  tree_size: string;
  root_hash: Buffer;
  signed_at: Date;
  origin: string;
  key_id: string;
  signature: Buffer;
}

export interface AuditDB extends EventsTables {
  audit_log: AuditLogTable;
  audit_merkle_node: AuditMerkleNodeTable;
  audit_checkpoint: AuditCheckpointTable;
}
