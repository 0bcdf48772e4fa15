import type { Migration } from '@cmc/db';
import * as m20261202T01 from './2026-12-02T01-audit-log';

/** Every migration of the audit schema, by dated name. */
export const migrations: Record<string, Migration> = {
  '2026-12-02T01-audit-log': m20261202T01,
};
