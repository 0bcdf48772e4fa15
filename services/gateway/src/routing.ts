/** The services behind the gateway. */
export const UPSTREAMS = ['identity', 'consent', 'care-plan', 'audit', 'notification'] as const;
export type Upstream = (typeof UPSTREAMS)[number];

/** Which service owns each FHIR resource type. */
export const FHIR_OWNERS: Record<string, Upstream> = {
  Consent: 'consent',
  CarePlan: 'care-plan',
  AllergyIntolerance: 'care-plan',
  Flag: 'care-plan',
  DocumentReference: 'care-plan',
  AuditEvent: 'audit',
  Subscription: 'notification',
};

/** Which service owns each `/api/<first segment>` path. */
export const API_OWNERS: Record<string, Upstream> = {
  admin: 'identity',
  users: 'identity',
  organisations: 'identity',
  clients: 'identity',
  devices: 'identity',
  invitations: 'identity',
  'care-plans': 'care-plan',
  flags: 'care-plan',
  audit: 'audit',
  reports: 'audit',
  notifications: 'notification',
};

/**
 * The service that owns a path, or undefined. `/fhir/R4/<Type>...` by resource type; `/auth/...` and
 * `/.well-known/...` to identity; `/api/<segment>/...` by its first segment.
 */
export function ownerOf(path: string): Upstream | undefined {
  const segments = path.split('?')[0]!.split('/').filter((s) => s.length > 0);
  const [first, second, third] = segments;
  if (first === 'fhir' && second === 'R4' && third) {
    if (third === '.well-known') return 'identity';
    return FHIR_OWNERS[third];
  }
  if (first === 'auth' || first === '.well-known') return 'identity';
  if (first === 'api' && second) return API_OWNERS[second];
  return undefined;
}

/**
 * Whether a request path may be forwarded as it is. Dot segments and encoded dots, slashes or backslashes
 * are refused: a URL library or a server behind us might resolve `/fhir/R4/Consent/../../internal` to a path
 * that no routing rule here allowed.
 */
export function isForwardablePath(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  if (!path.startsWith('/') || path.includes('\\')) return false;
  if (/%(2e|2f|5c|00)/i.test(path)) return false;
  return !path.split('/').some((segment) => segment === '.' || segment === '..');
}
