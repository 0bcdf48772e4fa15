import type { Kysely, Transaction } from '@cmc/db';
import { unauthorized } from '@cmc/fhir';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { IdentityDB } from '../db/schema';
import type { OrganisationRow, UserRow } from './governance';
import type { KeyStore } from './keys';

type Db = Kysely<IdentityDB> | Transaction<IdentityDB>;

export interface TokenSettings {
  issuer: string;
  audience: string;
  accessTokenSeconds: number;
  refreshTokenHours: number;
}

export interface TokenPair {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  /** Set while a first-login step is outstanding. */
  pending?: 'password' | 'aup';
}

export const sha256 = (value: string): string => createHash('sha256').update(value).digest('hex');

/** A secret for a link or a session: 256 random bits, with a prefix that says what it is. */
export const newSecret = (prefix: string): string => `${prefix}_${randomBytes(32).toString('base64url')}`;

/** What a person's token must still wait for: a temporary password changed, then the policy accepted. */
export function pendingStep(user: UserRow, aupVersion: string): 'password' | 'aup' | undefined {
  if (user.must_change_password) return 'password';
  if (!user.aup_accepted_at || user.aup_version !== aupVersion) return 'aup';
  return undefined;
}

/** The claims of a person's access token: who, their organisation and role, and what they are bound to. */
export function userClaims(user: UserRow, org: OrganisationRow | undefined, pending: 'password' | 'aup' | undefined, sessionId: string): Record<string, unknown> {
  const claims: Record<string, unknown> = { sub: user.id, cmc_kind: 'user', cmc_role: user.role, cmc_sid: sessionId };
  if (org) claims.cmc_org = org.ods_code;
  if (user.role === 'clinician' && user.registration_body && user.registration_number) claims.cmc_reg = `${user.registration_body}:${user.registration_number}`;
  if (user.patient_nhs_number) claims.cmc_patient = user.patient_nhs_number.trim();
  if (user.role === 'patient' || user.role === 'proxy') claims.scope = 'patient/CarePlan.r patient/AllergyIntolerance.r';
  if (pending) claims.cmc_pending = pending;
  return claims;
}

export async function signAccessToken(keys: KeyStore, settings: TokenSettings, claims: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return keys.sign({ ...claims, iss: settings.issuer, aud: settings.audience, iat: now, nbf: now, exp: now + settings.accessTokenSeconds, jti: randomUUID() });
}

/**
 * Issues an access token and a refresh token. A new login starts a family; a refresh continues its family,
 * which expires with the login (a refresh does not extend the session).
 */
export async function issueTokens(
  db: Db,
  keys: KeyStore,
  settings: TokenSettings,
  user: UserRow,
  org: OrganisationRow | undefined,
  pending: 'password' | 'aup' | undefined,
  family?: { id: string; expiresAt: Date; deviceId: string | null },
): Promise<TokenPair> {
  const refresh = newSecret('rt');
  const now = new Date();
  const familyId = family?.id ?? randomUUID();
  await db
    .insertInto('refresh_tokens')
    .values({
      id: randomUUID(),
      family_id: familyId,
      user_id: user.id,
      token_hash: sha256(refresh),
      issued_at: now,
      expires_at: family?.expiresAt ?? new Date(now.getTime() + settings.refreshTokenHours * 3_600_000),
      used_at: null,
      revoked_at: null,
      device_id: family?.deviceId ?? null,
    })
    .execute();
  const pair: TokenPair = {
    access_token: await signAccessToken(keys, settings, userClaims(user, org, pending, familyId)),
    token_type: 'Bearer',
    expires_in: settings.accessTokenSeconds,
    refresh_token: refresh,
  };
  if (pending) pair.pending = pending;
  return pair;
}

/**
 * Takes a presented refresh token for one use. A token already used means it was stolen or replayed: the
 * whole family is revoked (every session of that login ends) and the caller is refused.
 */
export async function consumeRefreshToken(db: Db, presented: string): Promise<{ userId: string; familyId: string; expiresAt: Date; deviceId: string | null }> {
  const row = await db.selectFrom('refresh_tokens').selectAll().where('token_hash', '=', sha256(presented)).forUpdate().executeTakeFirst();
  if (!row) throw unauthorized('refresh token is not valid');
  if (row.used_at) {
    await revokeFamily(db, row.family_id);
    throw unauthorized('refresh token was used before; every session of this login has been ended');
  }
  if (row.revoked_at) throw unauthorized('this session has ended');
  if (row.expires_at <= new Date()) throw unauthorized('this session has expired; log in again');
  await db.updateTable('refresh_tokens').set({ used_at: new Date() }).where('id', '=', row.id).execute();
  return { userId: row.user_id, familyId: row.family_id, expiresAt: row.expires_at, deviceId: row.device_id };
}

export async function revokeFamily(db: Db, familyId: string): Promise<void> {
  await db.updateTable('refresh_tokens').set({ revoked_at: new Date() }).where('family_id', '=', familyId).where('revoked_at', 'is', null).execute();
}

export async function revokeAllSessions(db: Db, userId: string): Promise<void> {
  await db.updateTable('refresh_tokens').set({ revoked_at: new Date() }).where('user_id', '=', userId).where('revoked_at', 'is', null).execute();
}

/**
 * The live session a person's token belongs to (not revoked, not expired), locked for the caller's
 * transaction, or undefined.
 */
export async function liveSession(db: Db, userId: string, sessionId: string | undefined): Promise<{ id: string; expiresAt: Date; deviceId: string | null } | undefined> {
  if (!sessionId) return undefined;
  const row = await db
    .selectFrom('refresh_tokens')
    .select(['family_id', 'expires_at', 'device_id'])
    .where('family_id', '=', sessionId)
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', new Date())
    .orderBy('issued_at', 'desc')
    .forUpdate()
    .executeTakeFirst();
  return row ? { id: row.family_id, expiresAt: row.expires_at, deviceId: row.device_id } : undefined;
}

/** Ends every session of the person but one (a password change keeps the session it was made in). */
export async function revokeOtherSessions(db: Db, userId: string, keep: string): Promise<void> {
  await db.updateTable('refresh_tokens').set({ revoked_at: new Date() }).where('user_id', '=', userId).where('family_id', '<>', keep).where('revoked_at', 'is', null).execute();
}
