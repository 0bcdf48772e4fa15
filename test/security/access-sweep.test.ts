/**
 * Issue #10, security: every route of every service, as its OpenAPI document lists it, tried with no token, an
 * expired token, a token whose signature does not match (a clinician's token edited to say service-team),
 * another organisation's clinician, a patient asking for someone else's plan, a proxy asking beyond their
 * patient, an urgent-care user trying to write, an administrator trying to publish (or do what only
 * clinicians or the service team do), and a system client without the scope the route needs.
 *
 * ACCESS below maps every route to its rule; a rule says, for each of the nine cases, whether it must be refused
 * (and against which data: another organisation's draft, or someone else's published plan) or why it does not
 * apply. A route in an OpenAPI document that the table does not know fails the first test, so a new route
 * cannot be forgotten. Every refusal must be a 401 or 403 with an OperationOutcome, must have exactly one
 * `refused` access entry in the service's outbox (matched by request id), and must reach the audit log.
 */
import { buildGateway } from '@cmc/gateway';
import { aCarePlan, aConsent, randomNhsNumber, waitFor } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';
import {
  NHS_SYSTEM,
  ORG_A,
  ORG_B,
  SERVICE_NAMES,
  accessEventsByRequest,
  call,
  inBatches,
  makeFixtures,
  startSecurityPlatform,
  withForgedPayload,
  type Claims,
  type Fixtures,
  type SecurityPlatform,
  type ServiceName,
} from './support';

const CASES = ['noToken', 'expired', 'badSignature', 'otherOrgClinician', 'otherPatient', 'proxyBeyond', 'urgentCareWrite', 'administrator', 'clientWithoutScope'] as const;
type Case = (typeof CASES)[number];
/** What the route's path and query point at when the case is tried: organisation A's draft or the published plan. */
type Target = 'draft' | 'published';
interface Refused {
  target: Target;
}
interface Rule {
  /** Cases that must be refused. */
  refused: Partial<Record<Case, Refused>>;
  /** Cases that do not apply, and why. */
  notApplicable: Partial<Record<Case, string>>;
  /** The scopes the client of `clientWithoutScope` holds: near the route's, but not one it accepts. */
  clientScopes?: string;
}

const TOKEN_CASES: Rule['refused'] = { noToken: { target: 'published' }, expired: { target: 'published' }, badSignature: { target: 'published' } };
const onDraft = { target: 'draft' } as const;
const onPublished = { target: 'published' } as const;

const rule = (refused: Rule['refused'], notApplicable: Rule['notApplicable'], clientScopes?: string): Rule => ({
  refused: { ...TOKEN_CASES, ...refused },
  notApplicable,
  ...(clientScopes ? { clientScopes } : {}),
});

const PUBLIC: Rule = { refused: {}, notApplicable: Object.fromEntries(CASES.map((c) => [c, 'public route'])) };
const everyoneButTheServiceTeam = { otherOrgClinician: onPublished, otherPatient: onPublished, proxyBeyond: onPublished, urgentCareWrite: onPublished, administrator: onPublished, clientWithoutScope: onPublished };
const SERVICE_TEAM_ONLY = rule(everyoneButTheServiceTeam, {});
const OWN_ACCOUNT = rule(
  { clientWithoutScope: onPublished },
  {
    otherOrgClinician: 'any person signed in acts on their own account',
    otherPatient: 'any person signed in acts on their own account',
    proxyBeyond: 'any person signed in acts on their own account',
    urgentCareWrite: 'any person signed in acts on their own account',
    administrator: 'any person signed in acts on their own account',
  },
);
const INVITE = rule(
  { otherPatient: onPublished, proxyBeyond: onPublished, urgentCareWrite: onPublished, administrator: onPublished, clientWithoutScope: onPublished },
  { otherOrgClinician: 'a clinician of any organisation invites their patients' },
);
const READ_NA = { urgentCareWrite: 'a read: urgent care reads published plans', administrator: 'a read: administrators read plans' };
const PLAN_CREATE = rule(
  { otherPatient: onPublished, proxyBeyond: onPublished, urgentCareWrite: onPublished, clientWithoutScope: onPublished },
  { otherOrgClinician: 'any organisation may start a plan for a consenting patient', administrator: 'administrators write non-clinical sections (see mass-assignment.test.ts)' },
  'system/CarePlan.rs system/Consent.cruds',
);
const PLAN_UPDATE = rule(
  { otherOrgClinician: onDraft, otherPatient: onPublished, proxyBeyond: onPublished, urgentCareWrite: onPublished, clientWithoutScope: onPublished },
  { administrator: 'administrators of the holding organisation write non-clinical sections (see mass-assignment.test.ts)' },
  'system/CarePlan.rs system/CarePlan.r',
);
const PLAN_SUBMIT = rule(
  { otherOrgClinician: onDraft, otherPatient: onPublished, proxyBeyond: onPublished, urgentCareWrite: onDraft, clientWithoutScope: onDraft },
  { administrator: 'administrators submit their organisation\'s drafts for approval' },
  'system/CarePlan.cruds',
);
const CLINICIAN_CHANGE = rule({ otherOrgClinician: onDraft, otherPatient: onPublished, proxyBeyond: onPublished, urgentCareWrite: onPublished, administrator: onDraft, clientWithoutScope: onPublished }, {}, 'system/CarePlan.cruds');
const PLAN_READ = rule({ otherOrgClinician: onDraft, otherPatient: onPublished, proxyBeyond: onPublished, clientWithoutScope: onPublished }, READ_NA, 'system/Flag.rs system/DocumentReference.rs');
const PLAN_SEARCH = rule(
  { otherPatient: onPublished, proxyBeyond: onPublished, clientWithoutScope: onPublished },
  { otherOrgClinician: 'a search filters out what the caller may not read (another organisation\'s draft: asserted below)', ...READ_NA },
  'system/Flag.rs system/DocumentReference.rs',
);
const FLAG = rule(
  { otherPatient: onPublished, proxyBeyond: onPublished, clientWithoutScope: onPublished },
  { otherOrgClinician: 'every member of staff may ask whether a plan exists', ...READ_NA },
  'system/CarePlan.rs system/CarePlan.cruds',
);
const NOTE = rule(
  { otherOrgClinician: onDraft, otherPatient: onPublished, proxyBeyond: onPublished, administrator: onPublished, clientWithoutScope: onPublished },
  { urgentCareWrite: 'short notes on published plans are the one write urgent care may do' },
  'system/CarePlan.cruds',
);
const CHANGE_REQUEST = rule(
  { otherOrgClinician: onPublished, otherPatient: onPublished, proxyBeyond: onPublished, urgentCareWrite: onPublished, administrator: onPublished, clientWithoutScope: onPublished },
  {},
  'system/CarePlan.cruds',
);
const CONSENT_CREATE = rule(
  { otherPatient: onDraft, proxyBeyond: onDraft, urgentCareWrite: onDraft, clientWithoutScope: onDraft },
  { otherOrgClinician: 'any organisation records a patient\'s consent', administrator: 'administrators record consent' },
  'system/Consent.rs system/CarePlan.cruds',
);
const CONSENT_READ = rule(
  { otherOrgClinician: onDraft, otherPatient: onDraft, proxyBeyond: onDraft, clientWithoutScope: onDraft },
  READ_NA,
  'system/Consent.c system/CarePlan.cruds',
);
const CONSENT_SEARCH = rule(
  { otherPatient: onDraft, proxyBeyond: onDraft, clientWithoutScope: onDraft },
  { otherOrgClinician: 'a search filters out consents of other organisations (asserted below)', ...READ_NA },
  'system/Consent.c',
);
const CONSENT_WITHDRAW = rule(
  { otherOrgClinician: onDraft, otherPatient: onDraft, proxyBeyond: onDraft, urgentCareWrite: onDraft, administrator: onDraft, clientWithoutScope: onDraft },
  {},
  'system/Consent.cruds',
);
const INBOX = rule(
  { otherPatient: onPublished, proxyBeyond: onPublished, clientWithoutScope: onPublished },
  { otherOrgClinician: 'each member of staff reads their own inbox', urgentCareWrite: 'their own inbox', administrator: 'their own inbox' },
);
const SUBSCRIPTION_CREATE = rule(everyoneButTheServiceTeam, {}, 'system/Subscription.rs system/Subscription.d');
const SUBSCRIPTION_READ = rule(everyoneButTheServiceTeam, {}, 'system/Subscription.c system/Subscription.d');
const SUBSCRIPTION_DELETE = rule(everyoneButTheServiceTeam, {}, 'system/Subscription.c system/Subscription.rs');

/** Every route of every service, by `METHOD path` as OpenAPI writes it. */
const ACCESS: Record<string, Rule> = {
  // every service, and the gateway
  'GET /health/live': PUBLIC,
  'GET /health/ready': PUBLIC,
  // identity
  'GET /.well-known/jwks.json': PUBLIC,
  'GET /.well-known/smart-configuration': PUBLIC,
  'GET /fhir/R4/.well-known/smart-configuration': PUBLIC,
  'POST /auth/login': PUBLIC,
  'POST /auth/refresh': PUBLIC,
  'POST /auth/logout': PUBLIC,
  'POST /auth/password-reset': PUBLIC,
  'POST /auth/password-reset/complete': PUBLIC,
  'POST /auth/invitations/accept': PUBLIC,
  'POST /auth/token': PUBLIC,
  'POST /auth/devices/enrol': PUBLIC,
  'POST /auth/devices/renew': PUBLIC,
  'POST /auth/change-password': OWN_ACCOUNT,
  'POST /auth/accept-aup': OWN_ACCOUNT,
  'POST /api/organisations': SERVICE_TEAM_ONLY,
  'GET /api/organisations': SERVICE_TEAM_ONLY,
  'GET /api/organisations/{ods}': SERVICE_TEAM_ONLY,
  'PATCH /api/organisations/{ods}': SERVICE_TEAM_ONLY,
  'POST /api/users': SERVICE_TEAM_ONLY,
  'GET /api/users': SERVICE_TEAM_ONLY,
  'GET /api/users/{id}': SERVICE_TEAM_ONLY,
  'PATCH /api/users/{id}': SERVICE_TEAM_ONLY,
  'POST /api/users/{id}/deactivate': SERVICE_TEAM_ONLY,
  'POST /api/users/{id}/unlock': SERVICE_TEAM_ONLY,
  'POST /api/users/{id}/password': SERVICE_TEAM_ONLY,
  'POST /api/invitations': INVITE,
  'POST /api/admin/keys/rotate': SERVICE_TEAM_ONLY,
  'POST /api/clients': SERVICE_TEAM_ONLY,
  'GET /api/clients': SERVICE_TEAM_ONLY,
  'GET /api/clients/{clientId}': SERVICE_TEAM_ONLY,
  'PATCH /api/clients/{clientId}': SERVICE_TEAM_ONLY,
  'POST /api/organisations/{ods}/devices': SERVICE_TEAM_ONLY,
  'GET /api/organisations/{ods}/devices': SERVICE_TEAM_ONLY,
  'POST /api/devices/{id}/revoke': SERVICE_TEAM_ONLY,
  'POST /api/devices/{id}/enrolment-code': SERVICE_TEAM_ONLY,
  // consent
  'POST /fhir/R4/Consent': CONSENT_CREATE,
  'GET /fhir/R4/Consent': CONSENT_SEARCH,
  'GET /fhir/R4/Consent/{id}': CONSENT_READ,
  'PUT /fhir/R4/Consent/{id}': CONSENT_WITHDRAW,
  'GET /fhir/R4/Consent/{id}/_history/{vid}': CONSENT_READ,
  'GET /fhir/R4/Consent/{id}/_history': CONSENT_READ,
  // care-plan
  'POST /fhir/R4/CarePlan': PLAN_CREATE,
  'GET /fhir/R4/CarePlan': PLAN_SEARCH,
  'PUT /fhir/R4/CarePlan/{id}': PLAN_UPDATE,
  'GET /fhir/R4/CarePlan/{id}': PLAN_READ,
  'POST /fhir/R4/CarePlan/{id}/$submit': PLAN_SUBMIT,
  'POST /fhir/R4/CarePlan/{id}/$publish': CLINICIAN_CHANGE,
  'POST /fhir/R4/CarePlan/{id}/$withdraw': CLINICIAN_CHANGE,
  'GET /fhir/R4/CarePlan/{id}/_history/{vid}': PLAN_READ,
  'GET /fhir/R4/CarePlan/{id}/_history': PLAN_READ,
  'GET /fhir/R4/AllergyIntolerance/{id}': PLAN_READ,
  'GET /fhir/R4/AllergyIntolerance': PLAN_SEARCH,
  'GET /api/flags/{nhsNumber}': FLAG,
  'POST /api/flags/$lookup': FLAG,
  'GET /fhir/R4/DocumentReference': FLAG,
  'GET /fhir/R4/DocumentReference/{id}': FLAG,
  'GET /fhir/R4/Flag/{id}': FLAG,
  'GET /fhir/R4/Flag': FLAG,
  'GET /api/care-plans/{id}/print': PLAN_READ,
  'GET /api/care-plans/{id}/summary': PLAN_READ,
  'GET /fhir/R4/CarePlan/{id}/$summary': PLAN_READ,
  'POST /api/care-plans/{id}/notes': NOTE,
  'POST /api/care-plans/{id}/death': CLINICIAN_CHANGE,
  'POST /api/care-plans/{id}/change-requests': CHANGE_REQUEST,
  // audit
  'GET /api/audit/verify': SERVICE_TEAM_ONLY,
  'GET /api/audit/reports/patient-access': SERVICE_TEAM_ONLY,
  'GET /api/audit/reports/agent-access': SERVICE_TEAM_ONLY,
  'GET /api/audit/reports/urgent-care-views': SERVICE_TEAM_ONLY,
  'GET /api/audit/reports/plans': SERVICE_TEAM_ONLY,
  'GET /api/audit/reports/outcomes': SERVICE_TEAM_ONLY,
  'GET /api/audit/checkpoints/key': PUBLIC,
  'GET /api/audit/checkpoints/latest': PUBLIC,
  'GET /api/audit/checkpoints/{treeSize}': PUBLIC,
  'GET /api/audit/proofs/consistency': PUBLIC,
  'GET /api/audit/proofs/inclusion': SERVICE_TEAM_ONLY,
  'GET /fhir/R4/AuditEvent/{id}': SERVICE_TEAM_ONLY,
  'GET /fhir/R4/AuditEvent': SERVICE_TEAM_ONLY,
  // notification
  'GET /api/notifications': INBOX,
  'POST /api/notifications/{id}/read': INBOX,
  'GET /api/notifications/deliveries': SERVICE_TEAM_ONLY,
  'GET /api/notifications/organisations/{ods}': SERVICE_TEAM_ONLY,
  'PUT /api/notifications/organisations/{ods}': SERVICE_TEAM_ONLY,
  'POST /fhir/R4/Subscription': SUBSCRIPTION_CREATE,
  'GET /fhir/R4/Subscription': SUBSCRIPTION_READ,
  'GET /fhir/R4/Subscription/{id}': SUBSCRIPTION_READ,
  'DELETE /fhir/R4/Subscription/{id}': SUBSCRIPTION_DELETE,
};

interface OpenApi {
  paths: Record<string, Record<string, { security?: unknown[] }>>;
}
interface Route {
  service: ServiceName | 'gateway';
  method: string;
  path: string;
  key: string;
  declaredPublic: boolean;
}
const routesOf = (service: Route['service'], doc: OpenApi): Route[] =>
  Object.entries(doc.paths).flatMap(([p, ops]) =>
    Object.entries(ops).map(([m, op]) => ({ service, method: m.toUpperCase(), path: p, key: `${m.toUpperCase()} ${p}`, declaredPublic: Array.isArray(op.security) && op.security.length === 0 })),
  );

describe('the access sweep: every route, every way in that must be refused', () => {
  let platform: SecurityPlatform;
  let fx: Fixtures;
  let routes: Route[];
  /** Tokens per case (the client's per scope set). */
  const tokens = new Map<string, string>();
  const sent: { route: Route; kase: Case; requestId: string; status: number }[] = [];

  beforeAll(async () => {
    platform = await startSecurityPlatform({ audit: true });
    fx = await makeFixtures(platform, { draft: randomNhsNumber(), published: randomNhsNumber(), other: randomNhsNumber() });
    // The routes, as each running service publishes them (what the gateway merges), and the gateway's own.
    routes = [];
    for (const name of SERVICE_NAMES) routes.push(...routesOf(name, (await call(platform.service(name), { method: 'GET', url: '/openapi.json' })).json<OpenApi>()));
    const gateway = await buildGateway({ upstreams: {}, logger: false, rateLimits: false });
    routes.push(...routesOf('gateway', (await gateway.inject({ method: 'GET', url: '/openapi.json' })).json<OpenApi>()));
    await gateway.close();

    const person = (c: Claims) => platform.mint(c);
    const now = Math.floor(Date.now() / 1000);
    const serviceTeam = { sub: 'sec-st', role: 'service-team', org: 'X26' };
    const entries: [string, Promise<string>][] = [
      // the strongest principal, expired an hour ago (beyond any clock leeway)
      ['expired', platform.mint(serviceTeam, { iat: now - 7200, nbf: now - 7200, exp: now - 3600 })],
      // an administrator's token that says service-team, its signature that of the original
      ['badSignature', platform.mint({ sub: 'sec-admin-forger', role: 'administrator', org: ORG_A }).then((t) => withForgedPayload(t, (c) => ({ ...c, cmc_role: 'service-team' })))],
      ['otherOrgClinician', person({ sub: 'sec-clinician-b', role: 'clinician', org: ORG_B, reg: 'GMC:7654321' })],
      ['otherPatient', person({ sub: 'sec-patient', role: 'patient', patient: fx.otherNhs, scope: 'patient/CarePlan.r patient/AllergyIntolerance.r' })],
      ['proxyBeyond', person({ sub: 'sec-proxy', role: 'proxy', patient: fx.otherNhs, scope: 'patient/CarePlan.r patient/AllergyIntolerance.r' })],
      ['urgentCareWrite', person({ sub: 'sec-urgent', role: 'urgent-care', org: 'RRU' })],
      ['administrator', person({ sub: 'sec-admin-a', role: 'administrator', org: ORG_A })],
    ];
    for (const [k, v] of entries) tokens.set(k, await v);
  });

  afterAll(async () => {
    await platform?.close();
  });

  it('when a route appears in an OpenAPI document, then the sweep has a rule for it (and no rule is for a route that is gone)', () => {
    const keys = new Set(routes.map((r) => r.key));
    expect(routes.length).toBeGreaterThan(80);
    expect([...keys].filter((k) => !ACCESS[k])).toEqual([]);
    expect(Object.keys(ACCESS).filter((k) => !keys.has(k))).toEqual([]);
    // Each rule decides every case: refused, or not applicable with a reason.
    for (const [key, r] of Object.entries(ACCESS)) {
      expect({ key, undecided: CASES.filter((c) => !r.refused[c] && !r.notApplicable[c]) }).toEqual({ key, undecided: [] });
      expect({ key, both: CASES.filter((c) => r.refused[c] && r.notApplicable[c]) }).toEqual({ key, both: [] });
    }
    // What OpenAPI declares open is public in the table too.
    expect(routes.filter((r) => r.declaredPublic && ACCESS[r.key] !== PUBLIC).map((r) => r.key)).toEqual([]);
  });

  /** The URL of a route for a case: its path parameters and required search parameters point at the target. */
  const urlFor = (route: Route, target: Target): string => {
    const plan = target === 'draft' ? fx.draft : fx.published;
    const p = route.path
      .replace('/AllergyIntolerance/{id}', `/AllergyIntolerance/${plan.allergyId}`)
      .replace('/Consent/{id}', `/Consent/${fx.consent.id}`)
      .replace(/^\/fhir\/R4\/(Flag|DocumentReference)\/\{id\}/, `/fhir/R4/$1/${fx.published.id}`)
      .replace(/^(\/fhir\/R4\/CarePlan|\/api\/care-plans)\/\{id\}/, `$1/${plan.id}`)
      .replace('{vid}', '1')
      .replace('{nhsNumber}', plan.nhs)
      .replace('{ods}', ORG_A)
      .replace('{clientId}', 'sec-client')
      .replace('{treeSize}', '1')
      .replace('{id}', randomUUID());
    const identifier = (n: string) => encodeURIComponent(`${NHS_SYSTEM}|${n}`);
    if (route.method !== 'GET') return p;
    if (['/fhir/R4/CarePlan', '/fhir/R4/AllergyIntolerance', '/fhir/R4/Flag'].includes(p)) return `${p}?patient:identifier=${identifier(plan.nhs)}`;
    if (p === '/fhir/R4/DocumentReference') return `${p}?subject:identifier=${identifier(plan.nhs)}`;
    if (p === '/fhir/R4/Consent') return `${p}?patient:identifier=${identifier(fx.draft.nhs)}`;
    return p;
  };

  /** A body that passes the route's validation, so that a refusal made with the data (not the token) is reached. */
  const bodyFor = (route: Route, target: Target): unknown => {
    const plan = target === 'draft' ? fx.draft : fx.published;
    const today = new Date().toISOString().slice(0, 10);
    switch (route.key) {
      case 'POST /fhir/R4/CarePlan':
        // only the sections a patient may write, about someone else
        return aPatientDraft(plan.nhs);
      case 'PUT /fhir/R4/CarePlan/{id}':
        return { ...aPatientDraft(plan.nhs), id: plan.id };
      case 'POST /fhir/R4/CarePlan/{id}/$withdraw':
        return { resourceType: 'Parameters', parameter: [{ name: 'reason', valueString: 'security sweep' }] };
      case 'POST /api/care-plans/{id}/notes':
      case 'POST /api/care-plans/{id}/change-requests':
        return { text: 'security sweep' };
      case 'POST /api/care-plans/{id}/death':
        return { date: today, place: 'home' };
      case 'POST /api/flags/$lookup':
        return { nhsNumbers: [plan.nhs] };
      case 'POST /fhir/R4/Consent':
        return aConsent(fx.otherNhs);
      case 'PUT /fhir/R4/Consent/{id}':
        return { ...fx.consent.resource, status: 'inactive', extension: [{ url: 'https://fhir.cmc.example/StructureDefinition/consent-withdrawal-reason', valueString: 'security sweep' }] };
      case 'POST /fhir/R4/Subscription':
        return { resourceType: 'Subscription', status: 'requested', reason: 'sweep', criteria: `CarePlan?patient:identifier=${NHS_SYSTEM}|${plan.nhs}`, channel: { type: 'rest-hook', endpoint: 'https://gp.example/hook', payload: 'application/fhir+json' } };
      case 'POST /api/invitations':
        return { role: 'patient', nhsNumber: fx.otherNhs, email: 'someone@example.org', name: 'Some One' };
      default:
        return route.method === 'GET' || route.method === 'DELETE' ? undefined : {};
    }
  };

  const tokenFor = async (kase: Case, r: Rule): Promise<string | undefined> => {
    if (kase === 'noToken') return undefined;
    if (kase === 'clientWithoutScope') {
      const scope = r.clientScopes ?? 'system/Patient.rs';
      const key = `client ${scope}`;
      if (!tokens.has(key)) tokens.set(key, await platform.mint({ sub: 'sec-client', kind: 'client', org: ORG_A, scope }));
      return tokens.get(key);
    }
    return tokens.get(kase);
  };

  const sweep = async (service: ServiceName) => {
    const mine = routes.filter((r) => r.service === service);
    const attempts = mine.flatMap((route) => CASES.filter((c) => ACCESS[route.key]!.refused[c]).map((kase) => ({ route, kase, refused: ACCESS[route.key]!.refused[kase]! })));
    const problems: string[] = [];
    await inBatches(attempts, 16, async ({ route, kase, refused }) => {
      const requestId = `sec-${kase}-${randomUUID()}`;
      const token = await tokenFor(kase, ACCESS[route.key]!);
      const res = await call(platform.service(service), {
        method: route.method,
        url: urlFor(route, refused.target),
        ...(token ? { token } : {}),
        body: bodyFor(route, refused.target),
        headers: { 'x-request-id': requestId, 'if-match': refused.target === 'draft' ? 'W/"1"' : 'W/"2"' },
      });
      const expected = kase === 'noToken' || kase === 'expired' || kase === 'badSignature' ? 401 : 403;
      const outcome = (() => {
        try {
          return res.json<{ resourceType?: string; issue?: unknown[] }>();
        } catch {
          return {};
        }
      })();
      if (res.statusCode !== expected || outcome.resourceType !== 'OperationOutcome' || !outcome.issue?.length) {
        problems.push(`${route.key} as ${kase}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      }
      sent.push({ route, kase, requestId, status: res.statusCode });
    });
    expect(problems).toEqual([]);
    // Every refusal has exactly one access entry, `refused`, committed before the answer went back.
    const recorded = await accessEventsByRequest(platform.service(service));
    const unrecorded = sent
      .filter((s) => s.route.service === service)
      .filter((s) => {
        const entries = recorded.get(s.requestId) ?? [];
        return entries.length !== 1 || entries[0]!.outcome !== 'refused';
      })
      .map((s) => `${s.route.key} as ${s.kase}: ${JSON.stringify(recorded.get(s.requestId) ?? [])}`);
    expect(unrecorded).toEqual([]);
    return attempts.length;
  };

  it.each(['identity', 'consent', 'care-plan', 'audit', 'notification'] as ServiceName[])('when the %s service is called by each of the nine, then each applicable case is refused with an OperationOutcome and recorded as refused', async (service) => {
    expect(await sweep(service)).toBeGreaterThan(0);
  });

  it('when public routes are called without a token, then they answer (no 401 or 403, no 5xx)', async () => {
    const open = routes.filter((r) => ACCESS[r.key] === PUBLIC && r.service !== 'gateway');
    const problems: string[] = [];
    await inBatches(open, 16, async (route) => {
      const res = await call(platform.service(route.service as ServiceName), { method: route.method, url: urlFor(route, 'published'), body: route.method === 'GET' ? undefined : {} });
      if (res.statusCode === 401 || res.statusCode === 403 || res.statusCode >= 500) problems.push(`${route.key}: ${res.statusCode}`);
    });
    expect(problems).toEqual([]);
    expect(open.length).toBeGreaterThanOrEqual(20);
  });

  it('when the refusals were made, then nothing changed: the draft, the published plan and the consent are as they were', async () => {
    const plans = await platform.carePlan.database.db.selectFrom('care_plans').select(['id', 'state', 'version_id']).where('id', 'in', [fx.draft.id, fx.published.id]).execute();
    expect(Object.fromEntries(plans.map((p) => [p.id, [p.state, Number(p.version_id)]]))).toEqual({ [fx.draft.id]: ['draft', 1], [fx.published.id]: ['published', 2] });
    const consent = await platform.consent.database.db.selectFrom('consents').select(['status', 'version_id']).where('id', '=', fx.consent.id).executeTakeFirstOrThrow();
    expect([consent.status, Number(consent.version_id)]).toEqual(['active', 1]);
  });

  it('when another organisation\'s clinician searches for the patient of a draft, then the answer holds nothing of it', async () => {
    const token = tokens.get('otherOrgClinician')!;
    const identifier = encodeURIComponent(`${NHS_SYSTEM}|${fx.draft.nhs}`);
    for (const url of [`/fhir/R4/CarePlan?patient:identifier=${identifier}`, `/fhir/R4/AllergyIntolerance?patient:identifier=${identifier}`]) {
      const res = await call(platform.carePlan, { method: 'GET', url, token });
      expect({ url, status: res.statusCode, entries: res.json<{ entry?: unknown[] }>().entry ?? [] }).toEqual({ url, status: 200, entries: [] });
    }
    const consents = await call(platform.consent, { method: 'GET', url: `/fhir/R4/Consent?patient:identifier=${identifier}`, token });
    expect({ status: consents.statusCode, entries: consents.json<{ entry?: unknown[] }>().entry ?? [] }).toEqual({ status: 200, entries: [] });
  });

  it('when the sweep is over, then every refusal is in the audit log', async () => {
    expect(sent.length).toBeGreaterThan(400);
    const wanted = new Set<string>();
    for (const name of SERVICE_NAMES) {
      const recorded = await accessEventsByRequest(platform.service(name));
      for (const s of sent.filter((x) => x.route.service === name)) for (const e of recorded.get(s.requestId) ?? []) wanted.add(e.eventId);
    }
    expect(wanted.size).toBe(sent.length);
    const audit = platform.audit!.database.db;
    const missing = await waitFor(
      async () => {
        const found = new Set<string>();
        const ids = [...wanted];
        for (let i = 0; i < ids.length; i += 500) {
          const rows = await audit.selectFrom('audit_log').select(['event_id', 'outcome']).where('event_id', 'in', ids.slice(i, i + 500)).execute();
          for (const r of rows) if (r.outcome === 'refused') found.add(r.event_id);
        }
        const left = ids.filter((id) => !found.has(id));
        return left.length === 0 ? left : undefined;
      },
      30_000,
      'every refusal in the audit log',
    );
    expect(missing).toEqual([]);
  });
});

/** A draft with only what a patient may write (their details and wishes). */
function aPatientDraft(nhs: string): Record<string, unknown> {
  return aCarePlan(nhs, { omit: ['background', 'resuscitation', 'recommendations', 'medication', 'allergies', 'emergencyPlan', 'alerts', 'approval'] });
}
