import type { Database } from '@cmc/db';
import type { Logger } from '@cmc/logging';
import type { IdentityConfig } from '../config';
import type { IdentityDB } from '../db/schema';
import type { KeyStore } from './keys';
import type { HashCost } from './passwords';
import type { TokenSettings } from './tokens';

/** What the identity use cases need: the database, the keys, and the settings. */
export interface IdentityContext {
  database: Database<IdentityDB>;
  keys: KeyStore;
  tokens: TokenSettings;
  config: IdentityConfig;
  hashCost: HashCost;
  logger: Logger;
}

export const SERVICE_SOURCE = '/cmc/identity';
