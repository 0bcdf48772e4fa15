import type { Jwk } from '@cmc/auth';
import type { Kysely, Selectable, Transaction } from '@cmc/db';
import { OperationOutcomeError, conflict, forbidden, isUuid, notFound } from '@cmc/fhir';
import { createPublicKey, randomUUID } from 'node:crypto';
import type { DevicesTable, IdentityDB } from '../db/schema';
import { AssertionError, checkClaims, checkSignature, decodeAssertion, publicMembers, publicSigningKey, spendJti, type AssertionAlgorithm } from './assertions';
import type { IdentityContext } from './context';
import type { DeviceCheck } from './login';
import { newSecret, sha256 } from './tokens';

/**
 * Registered devices: the guide's secure licence for organisations outside the NHS secure network. The
 * service team registers a device and gives the organisation a one-time enrolment code; the device makes a
 * key pair, enrols its public key with the code, and from then on proves itself at every login with a short
 * JWT signed by that key. The credential lasts 9 months from enrolment, and renewing it (with a proof from
 * the device, before it expires) starts another 9 months.
 */

type Db = Kysely<IdentityDB> | Transaction<IdentityDB>;
type DeviceRow = Selectable<DevicesTable>;

export const DEVICE_ALGORITHMS: readonly AssertionAlgorithm[] = ['ES256', 'ES384', 'RS256', 'RS384'];
const ENROLMENT_HOURS = 24;
const CREDENTIAL_MONTHS = 9;

/** The same day `months` later (or the month's last day, when it is shorter), in UTC. */
export function addMonths(from: Date, months: number): Date {
  const d = new Date(from);
  const day = d.getUTCDate();
  d.setUTCDate(1);
  d.setUTCMonth(d.getUTCMonth() + months);
  const lastDay = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 0)).getUTCDate();
  d.setUTCDate(Math.min(day, lastDay));
  return d;
}

export type DeviceStatus = 'awaiting-enrolment' | 'enrolled' | 'expired' | 'revoked';

export interface DeviceView {
  id: string;
  label: string;
  organisation: string;
  status: DeviceStatus;
  /** Until when an outstanding enrolment code can be used (null when none is outstanding). */
  enrolmentExpiresAt: string | null;
  enrolledAt: string | null;
  credentialExpiresAt: string | null;
  revokedAt: string | null;
  createdAt: string;
}

export interface EnrolmentCode {
  id: string;
  label: string;
  /** A one-time secret: shown once, stored only as its hash. */
  enrolmentCode: string;
  enrolmentExpiresAt: string;
}

export interface DeviceCredential {
  deviceId: string;
  credentialExpiresAt: string;
}

function statusOf(d: DeviceRow, now: Date): DeviceStatus {
  if (d.revoked_at) return 'revoked';
  if (!d.public_jwk || !d.credential_expires_at) return 'awaiting-enrolment';
  return d.credential_expires_at <= now ? 'expired' : 'enrolled';
}

const deviceView = (d: DeviceRow, ods: string, now = new Date()): DeviceView => ({
  id: d.id,
  label: d.label,
  organisation: ods,
  status: statusOf(d, now),
  enrolmentExpiresAt: d.enrolment_code_hash ? (d.enrolment_expires_at?.toISOString() ?? null) : null,
  enrolledAt: d.enrolled_at?.toISOString() ?? null,
  credentialExpiresAt: d.credential_expires_at?.toISOString() ?? null,
  revokedAt: d.revoked_at?.toISOString() ?? null,
  createdAt: d.created_at.toISOString(),
});

function newEnrolment(): { code: string; hash: string; expiresAt: Date } {
  const code = newSecret('enrol');
  return { code, hash: sha256(code), expiresAt: new Date(Date.now() + ENROLMENT_HOURS * 3_600_000) };
}

async function organisationId(db: Db, ods: string): Promise<string> {
  const org = await db.selectFrom('organisations').select('id').where('ods_code', '=', ods).executeTakeFirst();
  if (!org) throw notFound(`organisation ${ods} is not registered`);
  return org.id;
}

// ------------------------------------------------------------------------------------------ service team

/** Registers a device of an organisation and makes its enrolment code (valid 24 hours, single use). */
export async function registerDevice(ctx: IdentityContext, ods: string, label: string): Promise<EnrolmentCode> {
  return ctx.database.db.transaction().execute(async (trx) => {
    const orgId = await organisationId(trx, ods);
    const enrolment = newEnrolment();
    const row = await trx
      .insertInto('devices')
      .values({
        id: randomUUID(),
        organisation_id: orgId,
        label,
        public_jwk: null,
        enrolment_code_hash: enrolment.hash,
        enrolment_expires_at: enrolment.expiresAt,
        enrolled_at: null,
        credential_expires_at: null,
        revoked_at: null,
      })
      .onConflict((oc) => oc.columns(['organisation_id', 'label']).doNothing())
      .returning(['id', 'label'])
      .executeTakeFirst();
    if (!row) throw conflict(`organisation ${ods} already has a device labelled '${label}'`);
    return { id: row.id, label: row.label, enrolmentCode: enrolment.code, enrolmentExpiresAt: enrolment.expiresAt.toISOString() };
  });
}

/**
 * A new enrolment code for a device that is not revoked: to enrol it again after its credential expired, or
 * when the first code was lost. Enrolling with it replaces the device's key.
 */
export async function reissueEnrolmentCode(ctx: IdentityContext, id: string): Promise<EnrolmentCode> {
  if (!isUuid(id)) throw notFound(`device ${id} is not registered`);
  const enrolment = newEnrolment();
  const row = await ctx.database.db
    .updateTable('devices')
    .set({ enrolment_code_hash: enrolment.hash, enrolment_expires_at: enrolment.expiresAt })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returning(['id', 'label'])
    .executeTakeFirst();
  if (!row) {
    const exists = await ctx.database.db.selectFrom('devices').select('id').where('id', '=', id).executeTakeFirst();
    throw exists ? conflict(`device ${id} has been revoked: register a new device instead`) : notFound(`device ${id} is not registered`);
  }
  return { id: row.id, label: row.label, enrolmentCode: enrolment.code, enrolmentExpiresAt: enrolment.expiresAt.toISOString() };
}

export async function listDevices(ctx: IdentityContext, ods: string): Promise<DeviceView[]> {
  const { db } = ctx.database;
  const orgId = await organisationId(db, ods);
  const rows = await db.selectFrom('devices').selectAll().where('organisation_id', '=', orgId).orderBy('label').limit(1000).execute();
  return rows.map((r) => deviceView(r, ods));
}

/** Revokes a device at once: it can no longer log anyone in, and the logins made from it end. */
export async function revokeDevice(ctx: IdentityContext, id: string): Promise<DeviceView> {
  if (!isUuid(id)) throw notFound(`device ${id} is not registered`);
  return ctx.database.db.transaction().execute(async (trx) => {
    const row = await trx
      .updateTable('devices')
      .set((eb) => ({ revoked_at: eb.fn.coalesce('revoked_at', eb.val(new Date())), enrolment_code_hash: null, enrolment_expires_at: null }))
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw notFound(`device ${id} is not registered`);
    // Every token of a login carries the device it was made from, so this ends those logins whole.
    await trx.updateTable('refresh_tokens').set({ revoked_at: new Date() }).where('device_id', '=', id).where('revoked_at', 'is', null).execute();
    const org = await trx.selectFrom('organisations').select('ods_code').where('id', '=', row.organisation_id).executeTakeFirstOrThrow();
    return deviceView(row, org.ods_code);
  });
}

// ------------------------------------------------------------------------------------------ the device

function checkedPublicKey(jwk: Jwk, expression: string): Jwk {
  const key = publicSigningKey(jwk, ['P-256', 'P-384']);
  if (typeof key === 'string') throw new OperationOutcomeError(400, { code: 'value', diagnostics: `${expression} ${key}`, expression });
  return publicMembers(key);
}

/** Enrols a device's public key with its one-time code: the credential runs for 9 months from now. */
export async function enrolDevice(ctx: IdentityContext, enrolmentCode: string, publicJwk: Jwk): Promise<DeviceCredential> {
  const key = checkedPublicKey(publicJwk, 'publicJwk');
  return ctx.database.db.transaction().execute(async (trx) => {
    const now = new Date();
    const row = await trx.selectFrom('devices').selectAll().where('enrolment_code_hash', '=', sha256(enrolmentCode)).forUpdate().executeTakeFirst();
    if (!row || row.revoked_at || !row.enrolment_expires_at || row.enrolment_expires_at <= now) {
      throw new OperationOutcomeError(400, { code: 'invalid', diagnostics: 'this enrolment code is not valid: it was used, has expired, or never existed', expression: 'enrolmentCode' });
    }
    const expires = addMonths(now, CREDENTIAL_MONTHS);
    await trx
      .updateTable('devices')
      .set({ public_jwk: key, enrolled_at: now, credential_expires_at: expires, enrolment_code_hash: null, enrolment_expires_at: null })
      .where('id', '=', row.id)
      .execute();
    return { deviceId: row.id, credentialExpiresAt: expires.toISOString() };
  });
}

const refused = (why: string) => forbidden(`device assertion refused: ${why}`);

/**
 * The device that signed an assertion for `audience`, once its signature and claims are good and its jti
 * is new; refusals are 403s that say why. Whether the device may still be used is for the caller to say.
 */
async function provenDevice(db: Db, assertion: string, audience: string): Promise<{ device: DeviceRow; spend: () => Promise<void> }> {
  try {
    const decoded = decodeAssertion(assertion, DEVICE_ALGORITHMS);
    const id = decoded.header.kid;
    const device = isUuid(id) ? await db.selectFrom('devices').selectAll().where('id', '=', id).forUpdate().executeTakeFirst() : undefined;
    if (!device) throw refused('the device is not registered (the assertion\'s kid must be the device id)');
    if (!device.public_jwk) throw refused(device.revoked_at ? 'this device has been revoked' : 'the device has not been enrolled yet');
    checkSignature(decoded, createPublicKey({ key: device.public_jwk, format: 'jwk' }));
    const { jti, rememberUntil } = checkClaims(decoded.payload, { sender: device.id, audience, senderName: 'device id' });
    return {
      device,
      spend: async () => {
        if (!(await spendJti(db, `device:${device.id}`, jti, rememberUntil))) throw refused('it was used before: make a new one, with a new jti, for every request');
      },
    };
  } catch (e) {
    if (e instanceof AssertionError) throw refused(e.message);
    throw e;
  }
}

function assertUsable(device: DeviceRow, now: Date): void {
  if (device.revoked_at) throw forbidden('this device has been revoked');
  if (!device.credential_expires_at || device.credential_expires_at <= now) {
    throw forbidden(
      `this device's credential expired on ${device.credential_expires_at?.toISOString().slice(0, 10) ?? '(unknown)'}: it can no longer be renewed and must be enrolled again with a new code from the service team (renew before expiry to avoid this)`,
    );
  }
}

/** Extends an unexpired device credential by 9 months from now, optionally with a new key. */
export async function renewDevice(ctx: IdentityContext, deviceAssertion: string, newPublicJwk?: Jwk): Promise<DeviceCredential> {
  const key = newPublicJwk ? checkedPublicKey(newPublicJwk, 'newPublicJwk') : undefined;
  return ctx.database.db.transaction().execute(async (trx) => {
    const now = new Date();
    const { device, spend } = await provenDevice(trx, deviceAssertion, `${ctx.config.IDENTITY_PUBLIC_URL}/auth/devices/renew`);
    assertUsable(device, now);
    await spend();
    const expires = addMonths(now, CREDENTIAL_MONTHS);
    await trx
      .updateTable('devices')
      .set({ credential_expires_at: expires, ...(key ? { public_jwk: key } : {}) })
      .where('id', '=', device.id)
      .execute();
    return { deviceId: device.id, credentialExpiresAt: expires.toISOString() };
  });
}

/**
 * The login's device check for organisations outside the secure network: the person's login must carry an
 * assertion for `/auth/login` from an enrolled, unrevoked, unexpired device of their own organisation.
 */
export function deviceCheck(ctx: IdentityContext): DeviceCheck {
  const audience = `${ctx.config.IDENTITY_PUBLIC_URL}/auth/login`;
  return async (trx, org, assertion) => {
    if (!assertion) throw forbidden(`${org.name} is outside the secure network: a login must come from a registered device (send deviceAssertion)`);
    const { device, spend } = await provenDevice(trx, assertion, audience);
    if (device.organisation_id !== org.id) throw forbidden(`this device is registered to another organisation, not ${org.name}`);
    assertUsable(device, new Date());
    await spend();
    return device.id;
  };
}
