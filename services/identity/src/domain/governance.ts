import type { Selectable } from '@cmc/db';
import type { OrganisationsTable, UsersTable } from '../db/schema';

export type UserRow = Selectable<UsersTable>;
export type OrganisationRow = Selectable<OrganisationsTable>;

export interface GatePolicy {
  inactivityDays: number;
}

/** A gate that refuses a login: its machine-readable name and the words the person sees. */
export interface Refusal {
  gate: string;
  message: string;
  /** The account must be locked now (the 180 days ran out at this login). */
  lockForInactivity?: boolean;
}

const DAY = 86_400_000;

function daysBetween(from: Date, to: Date): number {
  return (to.getTime() - from.getTime()) / DAY;
}

/**
 * The governance pathway of the implementation guide, checked at every login and every refresh: the
 * organisation has signed the information sharing agreement and holds Standards Met (or better) on an
 * assessment under 12 months old; the person is trained; the account is active, not locked, and used within
 * the last 180 days. Returns the first gate that refuses, or undefined.
 */
export function refusal(user: UserRow, org: OrganisationRow | undefined, now: Date, policy: GatePolicy): Refusal | undefined {
  if (!user.active) return { gate: 'deactivated', message: 'this account has been deactivated' };
  if (user.locked_reason === 'inactivity') {
    return { gate: 'inactive', message: `this account was locked after ${policy.inactivityDays} days without a login; ask the service team to unlock it` };
  }
  if (user.locked_until && user.locked_until > now) {
    return { gate: 'locked', message: `too many failed logins: this account is locked until ${user.locked_until.toISOString()}` };
  }
  const lastActive = user.last_login_at && user.last_login_at > user.activity_since ? user.last_login_at : user.activity_since;
  if (daysBetween(lastActive, now) > policy.inactivityDays) {
    return {
      gate: 'inactive',
      message: `this account was locked after ${policy.inactivityDays} days without a login; ask the service team to unlock it`,
      lockForInactivity: true,
    };
  }
  if (user.role === 'patient' || user.role === 'proxy') return undefined;
  if (!org) return { gate: 'organisation', message: 'this account belongs to no organisation' };
  const organisational = organisationRefusal(org, now);
  if (organisational) return organisational;
  if (!user.trained_on) return { gate: 'training', message: 'this account\'s holder has not completed CMC training' };
  return undefined;
}

/**
 * The organisation's part of the governance pathway: the information sharing agreement is signed and the
 * toolkit status is Standards Met (or better) on an assessment under 12 months old. People's logins check it
 * through `refusal`; a system client's token request checks it for the client's organisation.
 */
export function organisationRefusal(org: OrganisationRow, now: Date): Refusal | undefined {
  if (!org.isa_signed_on) return { gate: 'isa', message: `${org.name} has not signed the CMC information sharing agreement` };
  if (org.dspt_status !== 'standards-met' && org.dspt_status !== 'standards-exceeded') {
    return { gate: 'dspt', message: `${org.name} does not hold Standards Met on the Data Security and Protection Toolkit` };
  }
  if (!org.dspt_assessed_on || daysBetween(new Date(`${org.dspt_assessed_on}T00:00:00Z`), now) > 366) {
    return { gate: 'dspt-expired', message: `${org.name}'s Data Security and Protection Toolkit assessment is over 12 months old` };
  }
  return undefined;
}
