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
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v.length > 0 ? v : undefined);

/** The principal of verified claims, or a reason they cannot make one. */
export function principalOf(claims: CmcClaims): Principal | string {
  const subject = str(claims.sub);
  if (!subject) return 'token has no subject';
  const kind = claims.cmc_kind === 'client' ? 'client' : claims.cmc_kind === 'user' ? 'user' : undefined;
  if (!kind) return 'token does not say whether it is for a user or a client';
  const role = str(claims.cmc_role);
  if (role !== undefined && !(ROLES as readonly string[]).includes(role)) return 'token names an unknown role';
  if (kind === 'user' && role === undefined) return 'user token has no role';
  const p: Principal = { kind, subject, scopes: new Set((str(claims.scope) ?? '').split(' ').filter(Boolean)) };
  if (role) p.role = role as Role;
  const org = str(claims.cmc_org);
  if (org) p.organisation = org;
  const patient = str(claims.cmc_patient);
  if (patient) p.patient = patient;
  if ((role === 'patient' || role === 'proxy') && !patient) return 'patient or proxy token names no patient';
  const reg = str(claims.cmc_reg);
  if (reg) p.registration = reg;
  const jti = str(claims.jti);
  if (jti) p.tokenId = jti;
  return p;
}
