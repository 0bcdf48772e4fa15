import type { Migration } from '@cmc/db';
import * as m20261124T01 from './2026-11-24T01-identity';
import * as m20261124T02 from './2026-11-24T02-one-patient-account';

/** Every migration of the identity schema, by dated name. */
export const migrations: Record<string, Migration> = {
  '2026-11-24T01-identity': m20261124T01,
  '2026-11-24T02-one-patient-account': m20261124T02,
};
