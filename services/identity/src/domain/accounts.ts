import type { Principal } from '@cmc/auth';
import type { Insertable, Selectable, Transaction } from '@cmc/db';
import { publish } from '@cmc/events';
import { OperationOutcomeError, conflict, forbidden, notFound, unauthorized, type IssueInput } from '@cmc/fhir';
import { randomUUID } from 'node:crypto';
import type { DsptStatus, IdentityDB, OrganisationType, StaffRole, UsersTable } from '../db/schema';
import { SERVICE_SOURCE, type IdentityContext } from './context';
import type { OrganisationRow } from './governance';
import { countFailedPassword, normaliseEmail, organisationOf, pendingFor, sessionDeviceProblem, type RequestMeta } from './login';
import { refusal } from './governance';
import { hashPassword, passwordProblems, verifyPassword } from './passwords';
import { issueTokens, liveSession, newSecret, revokeAllSessions, revokeFamily, revokeOtherSessions, sha256, type TokenPair } from './tokens';

/** A new account row: every column a new account starts with, and what the caller says of this one. */
export function newUserRow(
  fields: Pick<Insertable<UsersTable>, 'email' | 'name' | 'organisation_id' | 'role' | 'password_hash'> & Partial<Insertable<UsersTable>>,
): Insertable<UsersTable> {
  const now = new Date();
  return {
    id: randomUUID(),
    registration_body: null,
    registration_number: null,
    trained_on: null,
    must_change_password: false,
    aup_accepted_at: null,
    aup_version: null,
    active: true,
    deactivated_at: null,
    failed_attempts: 0,
    locked_until: null,
    locked_reason: null,
    last_login_at: null,
    activity_since: now,
    patient_nhs_number: null,
    proxy_relationship: null,
    invited_by: null,
    updated_at: now,
    ...fields,
  };
}

const passwordIssues = (password: string, expression: string): IssueInput[] =>
  passwordProblems(password).map((diagnostics) => ({ code: 'value' as const, diagnostics, expression }));

function assertPasswordOk(password: string, expression: string): void {
  const issues = passwordIssues(password, expression);
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
}

// ---------------------------------------------------------------------------------------------- organisations

export interface OrganisationInput {
  odsCode: string;
  name: string;
  type: OrganisationType;
  isaSignedOn?: string | null;
  dsptStatus: DsptStatus;
  dsptAssessedOn?: string | null;
  outsideSecureNetwork?: boolean;
}

export interface OrganisationView {
  odsCode: string;
  name: string;
  type: OrganisationType;
  isaSignedOn: string | null;
  dsptStatus: DsptStatus;
  dsptAssessedOn: string | null;
  outsideSecureNetwork: boolean;
}

export const organisationView = (o: OrganisationRow): OrganisationView => ({
  odsCode: o.ods_code,
  name: o.name,
  type: o.type,
  isaSignedOn: o.isa_signed_on,
  dsptStatus: o.dspt_status,
  dsptAssessedOn: o.dspt_assessed_on,
  outsideSecureNetwork: o.outside_secure_network,
});

function checkDates(input: { isaSignedOn?: string | null; dsptAssessedOn?: string | null }): void {
  const today = new Date().toISOString().slice(0, 10);
  const issues: IssueInput[] = [];
  if (input.isaSignedOn && input.isaSignedOn > today) issues.push({ code: 'value', diagnostics: 'isaSignedOn is in the future', expression: 'isaSignedOn' });
  if (input.dsptAssessedOn && input.dsptAssessedOn > today) issues.push({ code: 'value', diagnostics: 'dsptAssessedOn is in the future', expression: 'dsptAssessedOn' });
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
}

export async function createOrganisation(ctx: IdentityContext, input: OrganisationInput, requestId: string): Promise<OrganisationView> {
  checkDates(input);
  return ctx.database.db.transaction().execute(async (trx) => {
    const existing = await trx.selectFrom('organisations').select('id').where('ods_code', '=', input.odsCode).executeTakeFirst();
    if (existing) throw conflict(`organisation ${input.odsCode} is already registered`);
    const row = await trx
      .insertInto('organisations')
      .values({
        id: randomUUID(),
        ods_code: input.odsCode,
        name: input.name,
        type: input.type,
        isa_signed_on: input.isaSignedOn ?? null,
        dspt_status: input.dsptStatus,
        dspt_assessed_on: input.dsptAssessedOn ?? null,
        outside_secure_network: input.outsideSecureNetwork ?? false,
        updated_at: new Date(),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    await publish(trx, ctx.database.schema, {
      type: 'cmc.identity.organisation-changed.v1',
      source: SERVICE_SOURCE,
      key: input.odsCode,
      requestId,
      data: { odsCode: input.odsCode, change: 'created', organisationType: row.type, name: row.name },
    });
    return organisationView(row);
  });
}

export async function updateOrganisation(ctx: IdentityContext, odsCode: string, patch: Partial<Omit<OrganisationInput, 'odsCode'>>, requestId: string): Promise<OrganisationView> {
  checkDates(patch);
  return ctx.database.db.transaction().execute(async (trx) => {
    const set: Record<string, unknown> = { updated_at: new Date() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.type !== undefined) set.type = patch.type;
    if (patch.isaSignedOn !== undefined) set.isa_signed_on = patch.isaSignedOn;
    if (patch.dsptStatus !== undefined) set.dspt_status = patch.dsptStatus;
    if (patch.dsptAssessedOn !== undefined) set.dspt_assessed_on = patch.dsptAssessedOn;
    if (patch.outsideSecureNetwork !== undefined) set.outside_secure_network = patch.outsideSecureNetwork;
    const row = await trx.updateTable('organisations').set(set).where('ods_code', '=', odsCode).returningAll().executeTakeFirst();
    if (!row) throw notFound(`organisation ${odsCode} is not registered`);
    await publish(trx, ctx.database.schema, {
      type: 'cmc.identity.organisation-changed.v1',
      source: SERVICE_SOURCE,
      key: odsCode,
      requestId,
      // The current type and name whatever changed, so a consumer needs only the latest event of an organisation.
      data: { odsCode, change: 'updated', fields: Object.keys(patch), organisationType: row.type, name: row.name },
    });
    return organisationView(row);
  });
}

// ---------------------------------------------------------------------------------------------------- users

export interface StaffInput {
  email: string;
  name: string;
  organisation: string;
  role: StaffRole;
  registration?: { body: 'GMC' | 'NMC' | 'HCPC'; number: string };
  trainedOn?: string | null;
  temporaryPassword: string;
}

export interface UserView {
  id: string;
  email: string;
  name: string;
  role: string;
  organisation: string | null;
  registration: { body: string; number: string } | null;
  trainedOn: string | null;
  active: boolean;
  mustChangePassword: boolean;
  aupAcceptedAt: string | null;
  lastLoginAt: string | null;
  locked: 'inactivity' | 'failed-attempts' | null;
  patient: string | null;
}

export function userView(u: Selectable<UsersTable>, org: OrganisationRow | undefined): UserView {
  return {
    id: u.id,
    email: u.email,
    name: u.name,
    role: u.role,
    organisation: org?.ods_code ?? null,
    registration: u.registration_body && u.registration_number ? { body: u.registration_body, number: u.registration_number } : null,
    trainedOn: u.trained_on,
    active: u.active,
    mustChangePassword: u.must_change_password,
    aupAcceptedAt: u.aup_accepted_at?.toISOString() ?? null,
    lastLoginAt: u.last_login_at?.toISOString() ?? null,
    locked: u.locked_reason === 'inactivity' ? 'inactivity' : u.locked_until && u.locked_until > new Date() ? 'failed-attempts' : null,
    patient: u.patient_nhs_number?.trim() ?? null,
  };
}

/** A member of staff, created by the service team with a temporary password they must change at first login. */
export async function createStaff(ctx: IdentityContext, input: StaffInput, by: Principal, requestId: string): Promise<UserView> {
  const issues = passwordIssues(input.temporaryPassword, 'temporaryPassword');
  if (input.role === 'clinician' && !input.registration) {
    issues.push({ code: 'required', diagnostics: 'a clinician needs a professional registration (GMC, NMC or HCPC)', expression: 'registration' });
  }
  if (input.trainedOn && input.trainedOn > new Date().toISOString().slice(0, 10)) issues.push({ code: 'value', diagnostics: 'trainedOn is in the future', expression: 'trainedOn' });
  if (issues.length > 0) throw new OperationOutcomeError(400, issues);
  const hash = await hashPassword(input.temporaryPassword, ctx.hashCost);
  return ctx.database.db.transaction().execute(async (trx) => {
    const org = await trx.selectFrom('organisations').selectAll().where('ods_code', '=', input.organisation).executeTakeFirst();
    if (!org) throw new OperationOutcomeError(422, { code: 'not-found', diagnostics: `organisation ${input.organisation} is not registered`, expression: 'organisation' });
    if ((input.role === 'service-team') !== (org.type === 'service-team')) {
      throw new OperationOutcomeError(422, { code: 'business-rule', diagnostics: 'service-team accounts belong to the service team\'s organisation, and only there', expression: 'role' });
    }
    const email = normaliseEmail(input.email);
    if (await trx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst()) throw conflict('an account with this email exists');
    const row = await trx
      .insertInto('users')
      .values(
        newUserRow({
          email,
          name: input.name,
          organisation_id: org.id,
          role: input.role,
          registration_body: input.registration?.body ?? null,
          registration_number: input.registration?.number ?? null,
          trained_on: input.trainedOn ?? null,
          password_hash: hash,
          must_change_password: true,
        }),
      )
      .returningAll()
      .executeTakeFirstOrThrow();
    await publish(trx, ctx.database.schema, {
      type: 'cmc.identity.user-created.v1',
      source: SERVICE_SOURCE,
      key: row.id,
      requestId,
      data: { userId: row.id, role: row.role, organisation: org.ods_code, createdBy: by.subject, email: row.email },
    });
    return userView(row, org);
  });
}

export async function findUser(ctx: IdentityContext, id: string): Promise<UserView> {
  return ctx.database.db.transaction().execute(async (trx) => {
    const user = await trx.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
    if (!user) throw notFound(`user ${id} is not known`);
    return userView(user, await organisationOf(trx, user));
  });
}

export async function updateStaff(
  ctx: IdentityContext,
  id: string,
  patch: { name?: string; trainedOn?: string | null; registration?: { body: string; number: string } | null },
): Promise<UserView> {
  if (patch.trainedOn && patch.trainedOn > new Date().toISOString().slice(0, 10)) {
    throw new OperationOutcomeError(400, { code: 'value', diagnostics: 'trainedOn is in the future', expression: 'trainedOn' });
  }
  return ctx.database.db.transaction().execute(async (trx) => {
    const set: Record<string, unknown> = { updated_at: new Date() };
    if (patch.name !== undefined) set.name = patch.name;
    if (patch.trainedOn !== undefined) set.trained_on = patch.trainedOn;
    if (patch.registration !== undefined) {
      set.registration_body = patch.registration?.body ?? null;
      set.registration_number = patch.registration?.number ?? null;
    }
    const user = await trx.updateTable('users').set(set).where('id', '=', id).returningAll().executeTakeFirst();
    if (!user) throw notFound(`user ${id} is not known`);
    return userView(user, await organisationOf(trx, user));
  });
}

/** The person left: the account can no longer log in and every session of theirs ends at once. */
export async function deactivate(ctx: IdentityContext, id: string, by: Principal, requestId: string): Promise<UserView> {
  return ctx.database.db.transaction().execute(async (trx) => {
    const user = await trx.updateTable('users').set({ active: false, deactivated_at: new Date(), updated_at: new Date() }).where('id', '=', id).returningAll().executeTakeFirst();
    if (!user) throw notFound(`user ${id} is not known`);
    await revokeAllSessions(trx, id);
    await publish(trx, ctx.database.schema, { type: 'cmc.identity.user-deactivated.v1', source: SERVICE_SOURCE, key: id, requestId, data: { userId: id, by: by.subject } });
    return userView(user, await organisationOf(trx, user));
  });
}

/** Lifts a lock (inactivity or failed logins); the 180 days count again from now. */
export async function unlock(ctx: IdentityContext, id: string, by: Principal, requestId: string): Promise<UserView> {
  return ctx.database.db.transaction().execute(async (trx) => {
    const now = new Date();
    const user = await trx
      .updateTable('users')
      .set({ locked_reason: null, locked_until: null, failed_attempts: 0, activity_since: now, updated_at: now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirst();
    if (!user) throw notFound(`user ${id} is not known`);
    await publish(trx, ctx.database.schema, { type: 'cmc.identity.user-unlocked.v1', source: SERVICE_SOURCE, key: id, requestId, data: { userId: id, by: by.subject } });
    return userView(user, await organisationOf(trx, user));
  });
}

/** The service team sets a temporary password (the person must change it at their next login). */
export async function setTemporaryPassword(ctx: IdentityContext, id: string, password: string): Promise<void> {
  assertPasswordOk(password, 'temporaryPassword');
  const hash = await hashPassword(password, ctx.hashCost);
  await ctx.database.db.transaction().execute(async (trx) => {
    const user = await trx.updateTable('users').set({ password_hash: hash, must_change_password: true, updated_at: new Date() }).where('id', '=', id).returning('id').executeTakeFirst();
    if (!user) throw notFound(`user ${id} is not known`);
    await revokeAllSessions(trx, id);
  });
}

// ------------------------------------------------------------------------------------------ the person's own

/**
 * The session a first-login step (or a password change) continues: the live session the token belongs to,
 * with every gate still passing and, for a login made from a device, the device still valid. Returns an
 * error rather than throwing, so that what was done here (ending a session that may not go on) commits.
 */
async function continuingSession(
  trx: Transaction<IdentityDB>,
  ctx: IdentityContext,
  who: Principal,
): Promise<{ user: Selectable<UsersTable>; org: OrganisationRow | undefined; session: { id: string; expiresAt: Date; deviceId: string | null } } | Error> {
  const user = await trx.selectFrom('users').selectAll().where('id', '=', who.subject).forUpdate().executeTakeFirst();
  if (!user) return unauthorized('this account does not exist');
  const session = await liveSession(trx, user.id, who.sessionId);
  if (!session) return unauthorized('this session has ended; log in again');
  const org = await organisationOf(trx, user);
  const refused = refusal(user, org, new Date(), { inactivityDays: ctx.config.IDENTITY_INACTIVITY_DAYS });
  const problem = refused?.message ?? (await sessionDeviceProblem(trx, session.deviceId));
  if (problem) {
    await revokeFamily(trx, session.id);
    return forbidden(problem);
  }
  return { user, org, session };
}

/** New tokens in the same session: its outstanding refresh token is spent, its expiry and device kept. */
async function continueSession(trx: Transaction<IdentityDB>, ctx: IdentityContext, user: Selectable<UsersTable>, org: OrganisationRow | undefined, session: { id: string; expiresAt: Date; deviceId: string | null }): Promise<TokenPair> {
  await revokeFamily(trx, session.id);
  return issueTokens(trx, ctx.keys, ctx.tokens, user, org, pendingFor(user, ctx), session);
}

const orThrow = <T>(v: T | Error): T => {
  if (v instanceof Error) throw v;
  return v;
};

/** Changes one's own password (the first-login step for a temporary one); the person's other sessions end. */
export async function changePassword(ctx: IdentityContext, who: Principal, current: string, next: string, meta: RequestMeta): Promise<TokenPair> {
  assertPasswordOk(next, 'newPassword');
  if (current === next) throw new OperationOutcomeError(400, { code: 'value', diagnostics: 'the new password must differ from the current one', expression: 'newPassword' });
  const user = await ctx.database.db.selectFrom('users').selectAll().where('id', '=', who.subject).executeTakeFirst();
  if (!user?.password_hash || !user.active) throw unauthorized('this account cannot change its password');
  if (user.locked_until && user.locked_until > new Date()) {
    throw new OperationOutcomeError(403, { code: 'forbidden', diagnostics: `too many failed logins: this account is locked until ${user.locked_until.toISOString()}` });
  }
  if (!(await verifyPassword(current, user.password_hash))) {
    // Guessing here counts towards the same lock as guessing at login.
    await countFailedPassword(ctx, user.id, meta);
    throw new OperationOutcomeError(400, { code: 'value', diagnostics: 'the current password is wrong', expression: 'currentPassword' });
  }
  const hash = await hashPassword(next, ctx.hashCost);
  return orThrow(
    await ctx.database.db.transaction().execute(async (trx) => {
      const cont = await continuingSession(trx, ctx, who);
      if (cont instanceof Error) return cont;
      const updated = await trx.updateTable('users').set({ password_hash: hash, must_change_password: false, updated_at: new Date() }).where('id', '=', cont.user.id).returningAll().executeTakeFirstOrThrow();
      await revokeOtherSessions(trx, updated.id, cont.session.id);
      await spendResetLinks(trx, updated.id);
      return continueSession(trx, ctx, updated, cont.org, cont.session);
    }),
  );
}

/** Accepts the current acceptable use policy, while it is the step pending; the tokens returned open patient data. */
export async function acceptPolicy(ctx: IdentityContext, who: Principal, version: string, requestId: string): Promise<TokenPair> {
  if (version !== ctx.config.IDENTITY_AUP_VERSION) {
    throw new OperationOutcomeError(409, { code: 'conflict', diagnostics: `the current acceptable use policy is version ${ctx.config.IDENTITY_AUP_VERSION}`, expression: 'version' });
  }
  return orThrow(
    await ctx.database.db.transaction().execute(async (trx) => {
      const cont = await continuingSession(trx, ctx, who);
      if (cont instanceof Error) return cont;
      if (cont.user.must_change_password) return new OperationOutcomeError(403, { code: 'forbidden', diagnostics: 'change your temporary password first' });
      if (cont.user.aup_accepted_at && cont.user.aup_version === version) {
        return new OperationOutcomeError(409, { code: 'conflict', diagnostics: 'this version of the acceptable use policy is already accepted' });
      }
      const updated = await trx.updateTable('users').set({ aup_accepted_at: new Date(), aup_version: version, updated_at: new Date() }).where('id', '=', cont.user.id).returningAll().executeTakeFirstOrThrow();
      await publish(trx, ctx.database.schema, { type: 'cmc.identity.policy-accepted.v1', source: SERVICE_SOURCE, key: updated.id, requestId, data: { userId: updated.id, policyVersion: version } });
      return continueSession(trx, ctx, updated, cont.org, cont.session);
    }),
  );
}

/** Spends every reset link of the person not yet used: a newer link, a password change or a reset ends the older ones. */
async function spendResetLinks(trx: Transaction<IdentityDB>, userId: string): Promise<void> {
  await trx.updateTable('action_tokens').set({ used_at: new Date() }).where('user_id', '=', userId).where('purpose', '=', 'password-reset').where('used_at', 'is', null).execute();
}

// ------------------------------------------------------------------------------------ links sent by email

const RESET_MINUTES = 30;
const INVITATION_DAYS = 7;

/**
 * Asks for a reset link. The answer never says whether the email has an account; when it has, a single-use
 * link valid for 30 minutes goes to the notification service as an event.
 */
export async function requestPasswordReset(ctx: IdentityContext, email: string, requestId: string): Promise<void> {
  await ctx.database.db.transaction().execute(async (trx) => {
    const user = await trx.selectFrom('users').selectAll().where('email', '=', normaliseEmail(email)).executeTakeFirst();
    if (!user?.active || !user.password_hash) return;
    await spendResetLinks(trx, user.id);
    const token = newSecret('pr');
    const expiresAt = new Date(Date.now() + RESET_MINUTES * 60_000);
    await trx.insertInto('action_tokens').values({ id: randomUUID(), user_id: user.id, purpose: 'password-reset', token_hash: sha256(token), expires_at: expiresAt, used_at: null }).execute();
    await publish(trx, ctx.database.schema, {
      type: 'cmc.identity.password-reset-requested.v1',
      source: SERVICE_SOURCE,
      key: user.id,
      requestId,
      data: { userId: user.id, email: user.email, resetUrl: `${ctx.config.IDENTITY_PUBLIC_URL}/reset-password#token=${token}`, expiresAt: expiresAt.toISOString() },
    });
  });
}


/** Uses up a link's token (single use, unexpired) and returns whose it is. */
async function takeActionToken(trx: Transaction<IdentityDB>, token: string, purpose: 'password-reset' | 'invitation', what: string): Promise<string> {
  const row = await trx.selectFrom('action_tokens').selectAll().where('token_hash', '=', sha256(token)).where('purpose', '=', purpose).forUpdate().executeTakeFirst();
  if (!row || row.used_at || row.expires_at <= new Date()) {
    throw new OperationOutcomeError(400, { code: 'invalid', diagnostics: `this ${what} is not valid: it was used, has expired, or never existed`, expression: 'token' });
  }
  await trx.updateTable('action_tokens').set({ used_at: new Date() }).where('id', '=', row.id).execute();
  return row.user_id;
}

/** Sets a new password with a reset link's token: single use, unexpired; it also lifts a failed-logins lock. */
export async function completePasswordReset(ctx: IdentityContext, token: string, password: string): Promise<void> {
  assertPasswordOk(password, 'newPassword');
  const hash = await hashPassword(password, ctx.hashCost);
  await ctx.database.db.transaction().execute(async (trx) => {
    const userId = await takeActionToken(trx, token, 'password-reset', 'reset link');
    const user = await trx.selectFrom('users').select('active').where('id', '=', userId).executeTakeFirstOrThrow();
    if (!user.active) throw new OperationOutcomeError(400, { code: 'invalid', diagnostics: 'this reset link is not valid: the account has been deactivated', expression: 'token' });
    await spendResetLinks(trx, userId);
    await trx
      .updateTable('users')
      .set({ password_hash: hash, must_change_password: false, failed_attempts: 0, locked_until: null, updated_at: new Date() })
      .where('id', '=', userId)
      .execute();
    await revokeAllSessions(trx, userId);
  });
}

export interface InvitationInput {
  email: string;
  name: string;
  role: 'patient' | 'proxy';
  nhsNumber: string;
  relationship?: string;
}

/** A clinician invites a patient, or a proxy viewer of one patient; they set a password from the link. */
export async function invite(ctx: IdentityContext, input: InvitationInput, by: Principal, requestId: string): Promise<{ id: string; expiresAt: string }> {
  return ctx.database.db.transaction().execute(async (trx) => {
    const email = normaliseEmail(input.email);
    if (await trx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst()) throw conflict('an account with this email exists');
    if (input.role === 'patient') {
      const existing = await trx.selectFrom('users').select('id').where('role', '=', 'patient').where('active', '=', true).where('patient_nhs_number', '=', input.nhsNumber).executeTakeFirst();
      if (existing) throw conflict('this patient already has an account');
    }
    const now = new Date();
    const { id } = await trx
      .insertInto('users')
      .values(
        newUserRow({
          email,
          name: input.name,
          organisation_id: null,
          role: input.role,
          password_hash: null,
          patient_nhs_number: input.nhsNumber,
          proxy_relationship: input.relationship ?? null,
          invited_by: by.subject,
        }),
      )
      .returning('id')
      .executeTakeFirstOrThrow();
    const token = newSecret('inv');
    const expiresAt = new Date(now.getTime() + INVITATION_DAYS * 86_400_000);
    await trx.insertInto('action_tokens').values({ id: randomUUID(), user_id: id, purpose: 'invitation', token_hash: sha256(token), expires_at: expiresAt, used_at: null }).execute();
    await publish(trx, ctx.database.schema, { type: 'cmc.identity.user-created.v1', source: SERVICE_SOURCE, key: id, requestId, data: { userId: id, role: input.role, createdBy: by.subject, email } });
    await publish(trx, ctx.database.schema, {
      type: 'cmc.identity.invitation-created.v1',
      source: SERVICE_SOURCE,
      key: id,
      requestId,
      data: { userId: id, email, role: input.role, nhsNumber: input.nhsNumber, acceptUrl: `${ctx.config.IDENTITY_PUBLIC_URL}/accept-invitation#token=${token}`, expiresAt: expiresAt.toISOString(), invitedBy: by.subject },
    });
    return { id, expiresAt: expiresAt.toISOString() };
  });
}

/** The invitee sets their password with the invitation's token (single use, 7 days). */
export async function acceptInvitation(ctx: IdentityContext, token: string, password: string): Promise<void> {
  assertPasswordOk(password, 'password');
  const hash = await hashPassword(password, ctx.hashCost);
  await ctx.database.db.transaction().execute(async (trx) => {
    const userId = await takeActionToken(trx, token, 'invitation', 'invitation');
    await trx.updateTable('users').set({ password_hash: hash, activity_since: new Date(), updated_at: new Date() }).where('id', '=', userId).execute();
  });
}
