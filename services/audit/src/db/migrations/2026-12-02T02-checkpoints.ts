import { sql, type Kysely } from 'kysely';

// Frozen: never edit a migration that has run; add a new one.
export async function up(db: Kysely<unknown>): Promise<void> {
  // The Merkle tree's perfect subtrees of 16 leaves and more (level >= 4), written by the checkpointer as the
  // tree grows; lower levels are recomputed from the entries' hashes when a proof needs them (at most 15 per
  // edge). A cache for proofs: verification recomputes the tree from the entries and never trusts these rows.
  await sql`create table audit_merkle_node (
    level smallint not null check (level >= 4 and level < 64),
    idx bigint not null check (idx >= 0),
    hash bytea not null check (octet_length(hash) = 32),
    primary key (level, idx)
  )`.execute(db);
  await sql`create table audit_checkpoint (
    tree_size bigint primary key check (tree_size >= 1),
    root_hash bytea not null check (octet_length(root_hash) = 32),
    signed_at timestamptz not null,
    origin text not null,
    key_id text not null check (key_id ~ '^[0-9a-f]{8}$'),
    signature bytea not null check (octet_length(signature) = 64)
  )`.execute(db);
  for (const table of ['audit_merkle_node', 'audit_checkpoint']) {
    await sql`create trigger ${sql.id(`${table}_no_update_delete`)} before update or delete on ${sql.table(table)}
      for each row execute function audit_log_refuse_change()`.execute(db);
    await sql`create trigger ${sql.id(`${table}_no_truncate`)} before truncate on ${sql.table(table)}
      for each statement execute function audit_log_refuse_change()`.execute(db);
    await sql`revoke all on ${sql.table(table)} from public`.execute(db);
    await sql`grant select, insert on ${sql.table(table)} to cmc_audit_writer`.execute(db);
  }
}

export async function down(): Promise<void> {
  throw new Error('the audit log is never dropped by a migration');
}
