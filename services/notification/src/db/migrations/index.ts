import type { Migration } from '@cmc/db';
import * as m20261202T01 from './2026-12-02T01-notification';
import * as m20261202T02 from './2026-12-02T02-identity-emails';
import * as m20261202T03 from './2026-12-02T03-approval-and-hook-secrets';

/** Every migration of the notification schema, by dated name. */
export const migrations: Record<string, Migration> = {
  '2026-12-02T01-notification': m20261202T01,
  '2026-12-02T02-identity-emails': m20261202T02,
  '2026-12-02T03-approval-and-hook-secrets': m20261202T03,
};
