import type { Generated } from '@cmc/db';
import type { EventsTables } from '@cmc/events';
import type { Jwk } from '@cmc/auth';
import type { OrganisationType } from '@cmc/contracts';

export { ORGANISATION_TYPES, type OrganisationType } from '@cmc/contracts';

/** Data Security and Protection Toolkit attainment, lowest first. */
export const DSPT_STATUSES = ['none', 'entry-level', 'standards-met', 'standards-exceeded'] as const;
export type DsptStatus = (typeof DSPT_STATUSES)[number];

export const STAFF_ROLES = ['clinician', 'administrator', 'urgent-care', 'service-team'] as const;
export type StaffRole = (typeof STAFF_ROLES)[number];
export type UserRole = StaffRole | 'patient' | 'proxy';

export interface OrganisationsTable {
  id: string;
  ods_code: string;
  name: string;
  type: OrganisationType;
  isa_signed_on: string | null;
  dspt_status: DsptStatus;
  dspt_assessed_on: string | null;
  outside_secure_network: boolean;
  created_at: Generated<Date>;
  updated_at: Date;
}

export interface UsersTable {
  id: string;
  email: string;
  name: string;
  organisation_id: string | null;
  role: UserRole;
  registration_body: string | null;
  registration_number: string | null;
  trained_on: string | null;
  password_hash: string | null;
  must_change_password: boolean;
  aup_accepted_at: Date | null;
  aup_version: string | null;
  active: boolean;
  deactivated_at: Date | null;
  failed_attempts: number;
  locked_until: Date | null;
  locked_reason: 'inactivity' | 'failed-attempts' | null;
  last_login_at: Date | null;
  /** From when the 180 days of inactivity are counted when there was no login since: creation, unlock. */
  activity_since: Date;
  patient_nhs_number: string | null;
  proxy_relationship: string | null;
  invited_by: string | null;
  created_at: Generated<Date>;
  updated_at: Date;
}

export interface RefreshTokensTable {
  id: string;
  family_id: string;
  user_id: string;
  token_hash: string;
  issued_at: Date;
  expires_at: Date;
  used_at: Date | null;
  revoked_at: Date | null;
  device_id: string | null;
}

export interface ActionTokensTable {
  id: string;
  user_id: string;
  purpose: 'password-reset' | 'invitation';
  token_hash: string;
  expires_at: Date;
  used_at: Date | null;
  created_at: Generated<Date>;
}

export interface SigningKeysTable {
  kid: string;
  alg: string;
  private_jwk: Jwk;
  public_jwk: Jwk;
  created_at: Generated<Date>;
  retired_at: Date | null;
}

export interface ClientsTable {
  id: string;
  client_id: string;
  name: string;
  organisation_id: string;
  jwks: { keys: Jwk[] } | null;
  jwks_url: string | null;
  scopes: string[];
  active: boolean;
  created_at: Generated<Date>;
  updated_at: Date;
}

export interface AssertionJtisTable {
  issuer: string;
  jti: string;
  expires_at: Date;
}

export interface DevicesTable {
  id: string;
  organisation_id: string;
  label: string;
  public_jwk: Jwk | null;
  enrolment_code_hash: string | null;
  enrolment_expires_at: Date | null;
  enrolled_at: Date | null;
  credential_expires_at: Date | null;
  revoked_at: Date | null;
  created_at: Generated<Date>;
}

export interface IdentityDB extends EventsTables {
  organisations: OrganisationsTable;
  users: UsersTable;
  refresh_tokens: RefreshTokensTable;
  action_tokens: ActionTokensTable;
  signing_keys: SigningKeysTable;
  clients: ClientsTable;
  assertion_jtis: AssertionJtisTable;
  devices: DevicesTable;
}
