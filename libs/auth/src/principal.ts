import { isValidNhsNumber } from '@cmc/fhir';

/** Roles of people (the implementation guide's rights), and of patients and proxy viewers. */
export const ROLES = ['clinician', 'administrator', 'urgent-care', 'service-team', 'patient', 'proxy'] as const;
export type Role = (typeof ROLES)[number];

/** Who is calling, as the verified token says. */
export interface Principal {
  /** `user` for people (staff, patients, proxies), `client` for systems (SMART Backend Services). */
  kind: 'user' | 'client';
  subject: string;
  role?: Role;
  /** ODS code of the caller's organisation. */
  organisation?: string;
  scopes: ReadonlySet<string>;
  /** For patients and proxies: the NHS number of the one patient they may see. */
  patient?: string;
  /** Professional registration of a clinician, e.g. `GMC:1234567`. */
  registration?: string;
  /** The token's `jti`, for audit records. */
  tokenId?: string;
  /**
   * A first-login step not yet done: `password` (a temporary password must be changed) or `aup` (the
   * acceptable use policy must be accepted). Such a token opens only the routes that finish that step.
   */
  pending?: 'password' | 'aup';
  /** The login (session) a person's token belongs to, so that identity can continue or end that one. */
  sessionId?: string;
}

/** The claims our tokens carry besides the registered ones (iss, sub, aud, exp, nbf, iat, jti). */
export interface CmcClaims {
  sub?: unknown;
  jti?: unknown;
  scope?: unknown;
  cmc_kind?: unknown;
  cmc_role?: unknown;
  cmc_org?: unknown;
  cmc_patient?: unknown;
  cmc_reg?: unknown;
  cmc_pending?: unknown;
  cmc_sid?: unknown;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

const SUBJECT = /^[\x21-\x7e]{1,200}$/;
/** ODS organisation codes: upper-case letters and digits. */
export const ODS_CODE = /^[A-Z0-9]{3,10}$/;
const REGISTRATION = /^[A-Z]{2,5}:[A-Za-z0-9]{1,20}$/;

/**
 * The principal of verified claims, or a reason they cannot make one. Every claim is checked for form, since
 * it flows into access records and queries: a well-signed token with a malformed claim is still refused.
 */
export function principalOf(claims: CmcClaims): Principal | string {
  const subject = str(claims.sub);
  if (!subject) return 'token has no subject';
  if (!SUBJECT.test(subject)) return 'token subject is malformed';
  const kind = claims.cmc_kind === 'client' ? 'client' : claims.cmc_kind === 'user' ? 'user' : undefined;
  if (!kind) return 'token does not say whether it is for a user or a client';
  const role = str(claims.cmc_role);
  const patient = str(claims.cmc_patient);
  // A system acts for its organisation through scopes; a role or a patient on its token would let it pass
  // checks meant for people.
  if (kind === 'client' && (claims.cmc_role !== undefined || claims.cmc_patient !== undefined || claims.cmc_reg !== undefined)) {
    return 'client token carries claims only people may have';
  }
  if (role !== undefined && !(ROLES as readonly string[]).includes(role)) return 'token names an unknown role';
  if (kind === 'user' && role === undefined) return 'user token has no role';
  const scope = claims.scope === undefined ? '' : str(claims.scope);
  if (scope === undefined || scope.length > 2000) return 'token scope is malformed';
  const p: Principal = { kind, subject, scopes: new Set(scope.split(' ').filter(Boolean)) };
  if (role) p.role = role as Role;
  if (claims.cmc_org !== undefined) {
    const org = str(claims.cmc_org);
    if (!org || !ODS_CODE.test(org)) return 'token organisation is not an ODS code';
    p.organisation = org;
  }
  if (patient !== undefined || claims.cmc_patient !== undefined) {
    if (!patient || !isValidNhsNumber(patient)) return 'token patient is not a valid NHS number';
    p.patient = patient;
  }
  if ((role === 'patient' || role === 'proxy') && !patient) return 'patient or proxy token names no patient';
  if (role !== 'patient' && role !== 'proxy' && patient) return 'only patient and proxy tokens name a patient';
  if (claims.cmc_reg !== undefined) {
    const reg = str(claims.cmc_reg);
    if (!reg || !REGISTRATION.test(reg)) return 'token professional registration is malformed';
    p.registration = reg;
  }
  if (claims.cmc_pending !== undefined) {
    if (kind !== 'user' || (claims.cmc_pending !== 'password' && claims.cmc_pending !== 'aup')) return 'token pending step is malformed';
    p.pending = claims.cmc_pending;
  }
  if (claims.cmc_sid !== undefined) {
    if (kind !== 'user' || typeof claims.cmc_sid !== 'string' || !/^[0-9a-f-]{36}$/.test(claims.cmc_sid)) return 'token session id is malformed';
    p.sessionId = claims.cmc_sid;
  }
  const jti = str(claims.jti);
  if (jti) p.tokenId = jti.slice(0, 200);
  return p;
}
