import type { Migration } from '@cmc/db';
import * as m20261202T01 from './2026-12-02T01-audit-log';
import * as m20261202T02 from './2026-12-02T02-checkpoints';
import * as m20261202T03 from './2026-12-02T03-report-indexes';

/** Every migration of the audit schema, by dated name. */
export const migrations: Record<string, Migration> = {
  '2026-12-02T01-audit-log': m20261202T01,
  '2026-12-02T02-checkpoints': m20261202T02,
  '2026-12-02T03-report-indexes': m20261202T03,
};
