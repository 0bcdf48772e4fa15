import type { Migration } from '@cmc/db';
import * as m20261124T01 from './2026-11-24T01-consent-projection';
import * as m20261124T02 from './2026-11-24T02-outbox-failures';
import * as m20261124T03 from './2026-11-24T03-consent-per-id';
import * as m20261201T01 from './2026-12-01T01-care-plans';
import * as m20261201T02 from './2026-12-01T02-urgent-care';

/** Every migration of the care-plan schema, by dated name. */
export const migrations: Record<string, Migration> = {
  '2026-11-24T01-consent-projection': m20261124T01,
  '2026-11-24T02-outbox-failures': m20261124T02,
  '2026-11-24T03-consent-per-id': m20261124T03,
  '2026-12-01T01-care-plans': m20261201T01,
  '2026-12-01T02-urgent-care': m20261201T02,
};
