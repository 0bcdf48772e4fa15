import { randomUUID } from 'node:crypto';
import { forbidden, unauthorized, OperationOutcomeError } from '@cmc/fhir';
import { publish } from '@cmc/events';
import type { Transaction } from '@cmc/db';
import type { IdentityDB } from '../db/schema';
import { SERVICE_SOURCE, type IdentityContext } from './context';
import { refusal, type OrganisationRow, type UserRow } from './governance';
import { spendVerificationTime, verifyPassword } from './passwords';
import { consumeRefreshToken, issueTokens, pendingStep, revokeFamily, sha256, type TokenPair } from './tokens';

export interface RequestMeta {
  requestId: string;
  clientAddress: string;
}

/** Verifies a device's proof for a login from an organisation outside the secure network; returns the device id. */
export type DeviceCheck = (trx: Transaction<IdentityDB>, org: OrganisationRow, assertion: string | undefined) => Promise<string>;

const normaliseEmail = (email: string): string => email.trim().toLowerCase();

async function organisationOf(trx: Transaction<IdentityDB>, user: UserRow): Promise<OrganisationRow | undefined> {
  if (!user.organisation_id) return undefined;
  return trx.selectFrom('organisations').selectAll().where('id', '=', user.organisation_id).executeTakeFirst();
}

function pendingFor(user: UserRow, ctx: IdentityContext): 'password' | 'aup' | undefined {
  const step = pendingStep(user, ctx.config.IDENTITY_AUP_VERSION);
  // The acceptable use policy is for staff; patients and proxies read their own plan only.
  if (step === 'aup' && (user.role === 'patient' || user.role === 'proxy')) return undefined;
  return step;
}

/** The login-failed event (in the caller's transaction, when there is one). */
async function loginFailed(ctx: IdentityContext, meta: RequestMeta, reason: string, userId?: string, trx?: Transaction<IdentityDB>): Promise<void> {
  await publish(trx ?? ctx.database.db, ctx.database.schema, {
    type: 'cmc.identity.login-failed.v1',
    source: SERVICE_SOURCE,
    key: userId ?? meta.requestId,
    requestId: meta.requestId,
    data: { reason, clientAddress: meta.clientAddress.slice(0, 100), ...(userId ? { userId } : {}) },
  });
}

/**
 * A person's login: the password, then every governance gate, then (for organisations outside the secure
 * network) the device. A wrong password counts towards a temporary lock; every refusal is an event.
 */
export async function login(
  ctx: IdentityContext,
  input: { email: string; password: string; deviceAssertion?: string },
  meta: RequestMeta,
  checkDevice: DeviceCheck,
): Promise<TokenPair> {
  const { db } = ctx.database;
  const user = await db.selectFrom('users').selectAll().where('email', '=', normaliseEmail(input.email)).executeTakeFirst();
  if (!user?.password_hash) {
    await spendVerificationTime(ctx.hashCost);
    await loginFailed(ctx, meta, 'unknown-email');
    throw unauthorized('email or password is wrong');
  }
  // While locked after failed logins, no password is even tried: the answer is the same for the right one
  // and a wrong one (so guessing cannot go on during the lock), and the lock is not extended.
  if (user.locked_until && user.locked_until > new Date()) {
    await spendVerificationTime(ctx.hashCost);
    await loginFailed(ctx, meta, 'locked', user.id);
    throw new OperationOutcomeError(403, { code: 'forbidden', diagnostics: `too many failed logins: this account is locked until ${user.locked_until.toISOString()}` });
  }
  if (!(await verifyPassword(input.password, user.password_hash))) {
    await countFailedPassword(ctx, user.id, meta);
    throw unauthorized('email or password is wrong');
  }

  return db.transaction().execute(async (trx) => {
    const org = await organisationOf(trx, user);
    const refused = refusal(user, org, new Date(), { inactivityDays: ctx.config.IDENTITY_INACTIVITY_DAYS });
    if (refused) {
      if (refused.lockForInactivity) {
        await trx.updateTable('users').set({ locked_reason: 'inactivity', updated_at: new Date() }).where('id', '=', user.id).execute();
        await publish(trx, ctx.database.schema, {
          type: 'cmc.identity.user-locked.v1',
          source: SERVICE_SOURCE,
          key: user.id,
          requestId: meta.requestId,
          data: { userId: user.id, reason: 'inactivity' },
        });
      }
      await loginFailed(ctx, meta, refused.gate, user.id, trx);
      // The refusal is the answer, but the lock and the events above must stay: commit, then refuse.
      return refused;
    }
    let deviceId: string | undefined;
    if (org?.outside_secure_network) {
      try {
        deviceId = await checkDevice(trx, org, input.deviceAssertion);
      } catch (e) {
        if (!(e instanceof OperationOutcomeError)) throw e;
        // A device refusal is a failed login like any other: the event commits, then the refusal is sent.
        await loginFailed(ctx, meta, 'device', user.id, trx);
        return { gate: 'device', message: e.message, status: e.status } as const;
      }
    }
    await trx
      .updateTable('users')
      .set({ failed_attempts: 0, locked_until: null, last_login_at: new Date(), updated_at: new Date() })
      .where('id', '=', user.id)
      .execute();
    await publish(trx, ctx.database.schema, {
      type: 'cmc.identity.login-succeeded.v1',
      source: SERVICE_SOURCE,
      key: user.id,
      requestId: meta.requestId,
      data: {
        userId: user.id,
        role: user.role,
        clientAddress: meta.clientAddress.slice(0, 100),
        ...(org ? { organisation: org.ods_code } : {}),
        ...(deviceId ? { deviceId } : {}),
      },
    });
    return issueTokens(trx, ctx.keys, ctx.tokens, user, org, pendingFor(user, ctx), deviceId ? { id: randomUUID(), expiresAt: new Date(Date.now() + ctx.tokens.refreshTokenHours * 3_600_000), deviceId } : undefined);
  }).then((result) => {
    if ('gate' in result) throw new OperationOutcomeError('status' in result ? result.status : 403, { code: 'forbidden', diagnostics: result.message });
    return result;
  });
}

/**
 * A new token pair for a refresh token, in the same login (family). The gates are checked again: an
 * organisation that lost its toolkit status, or a person deactivated, gets no new access token.
 */
export async function refresh(ctx: IdentityContext, presented: string, meta: RequestMeta): Promise<TokenPair> {
  const outcome = await ctx.database.db.transaction().execute(async (trx) => {
    const session = await consumeRefreshToken(trx, presented).catch((e: unknown) => e as Error);
    if (session instanceof Error) return session;
    const user = await trx.selectFrom('users').selectAll().where('id', '=', session.userId).executeTakeFirstOrThrow();
    const org = await organisationOf(trx, user);
    const refused = refusal(user, org, new Date(), { inactivityDays: ctx.config.IDENTITY_INACTIVITY_DAYS });
    if (refused) {
      await revokeFamily(trx, session.familyId);
      await loginFailed(ctx, meta, `refresh:${refused.gate}`, user.id, trx);
      return forbidden(refused.message);
    }
    const deviceProblem = await sessionDeviceProblem(trx, session.deviceId);
    if (deviceProblem) {
      await revokeFamily(trx, session.familyId);
      return forbidden(deviceProblem);
    }
    return issueTokens(trx, ctx.keys, ctx.tokens, user, org, pendingFor(user, ctx), { id: session.familyId, expiresAt: session.expiresAt, deviceId: session.deviceId });
  });
  // Errors are returned from the transaction so that what it did (marking a reused family revoked) commits.
  if (outcome instanceof Error) throw outcome;
  return outcome;
}

/**
 * Counts a wrong password towards the temporary lock (in the database, so that failures arriving at once are
 * all counted), with its login-failed event, and locks the account when the count is reached.
 */
export async function countFailedPassword(ctx: IdentityContext, userId: string, meta: RequestMeta): Promise<void> {
  await ctx.database.db.transaction().execute(async (trx) => {
    const until = new Date(Date.now() + ctx.config.IDENTITY_LOCKOUT_MINUTES * 60_000);
    const counted = await trx
      .updateTable('users')
      .set((eb) => ({ failed_attempts: eb('failed_attempts', '+', 1), updated_at: new Date() }))
      .where('id', '=', userId)
      .returning(['failed_attempts', 'locked_until'])
      .executeTakeFirstOrThrow();
    await loginFailed(ctx, meta, 'wrong-password', userId, trx);
    const alreadyLocked = counted.locked_until !== null && counted.locked_until > new Date();
    if (counted.failed_attempts >= ctx.config.IDENTITY_MAX_FAILED_LOGINS && !alreadyLocked) {
      await trx.updateTable('users').set({ locked_until: until, failed_attempts: 0 }).where('id', '=', userId).execute();
      await publish(trx, ctx.database.schema, {
        type: 'cmc.identity.user-locked.v1',
        source: SERVICE_SOURCE,
        key: userId,
        requestId: meta.requestId,
        data: { userId, reason: 'failed-attempts', until: until.toISOString() },
      });
    }
  });
}

/** Why a session made from a device may not go on (the device revoked or its credential expired), if it may not. */
export async function sessionDeviceProblem(trx: Transaction<IdentityDB>, deviceId: string | null): Promise<string | undefined> {
  if (!deviceId) return undefined;
  const device = await trx.selectFrom('devices').select(['revoked_at', 'credential_expires_at']).where('id', '=', deviceId).executeTakeFirst();
  if (!device || device.revoked_at || !device.credential_expires_at || device.credential_expires_at <= new Date()) {
    return 'the device this login was made from is no longer registered, or its credential has expired';
  }
  return undefined;
}

/** Ends the login the refresh token belongs to. Unknown tokens are ignored (nothing to end, nothing to tell). */
export async function logout(ctx: IdentityContext, presented: string): Promise<void> {
  const row = await ctx.database.db.selectFrom('refresh_tokens').select('family_id').where('token_hash', '=', sha256(presented)).executeTakeFirst();
  if (row) await revokeFamily(ctx.database.db, row.family_id);
}

export { pendingFor, organisationOf, normaliseEmail };
