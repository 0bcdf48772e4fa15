/**
 * Shared by the security suite (issue #10): every service of the platform started for one test file, on one
 * SQL transport and schemas of the file's own, all trusting the keys of the file's own identity service, so
 * that every token the suite uses is signed by identity's real signing key (or deliberately is not).
 */
import type { Jwk } from '@cmc/auth';
import { auditService, type AuditDB } from '@cmc/audit-service';
import { activeConsentOf, carePlanService, type CarePlanDB } from '@cmc/care-plan-service';
import { consentService, type ConsentDB } from '@cmc/consent-service';
import type { Kysely } from '@cmc/db';
import type { EventsTables, Transport } from '@cmc/events';
import { identityService, type IdentityDB } from '@cmc/identity-service';
import { notificationService, type NotificationDB } from '@cmc/notification-service';
import type { RunningService } from '@cmc/service';
import { TestIssuer, aCarePlan, aConsent, newTransport, startTestService, waitFor } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';

export const NHS_SYSTEM = 'https://fhir.nhs.uk/Id/nhs-number';
/** The organisation that writes the plans; another one; the service team's. */
export const ORG_A = 'H81001';
export const ORG_B = 'B86002';
export const SERVICE_TEAM_ORG = 'X26';

export type ServiceName = 'identity' | 'consent' | 'care-plan' | 'audit' | 'notification';
export const SERVICE_NAMES: ServiceName[] = ['identity', 'consent', 'care-plan', 'audit', 'notification'];

export interface Claims {
  sub?: string;
  kind?: 'user' | 'client';
  role?: string;
  org?: string;
  patient?: string;
  scope?: string;
  reg?: string;
}

interface KeyStoreLike {
  sign(payload: Record<string, unknown>): Promise<string>;
  publicKeys(maxAgeMs?: number): Promise<Jwk[]>;
}

/** What the suite needs of any running service, whatever its tables. */
export interface AnyService {
  app: RunningService<EventsTables>['app'];
  database: { db: unknown; schema: string };
}

export interface SecurityPlatform {
  transport: Transport;
  identity: RunningService<IdentityDB>;
  consent: RunningService<ConsentDB>;
  carePlan: RunningService<CarePlanDB>;
  audit?: RunningService<AuditDB>;
  notification: RunningService<NotificationDB>;
  /** The running service of that name (audit only when it was started). */
  service: (name: ServiceName) => AnyService;
  /** An access token signed by identity's current key; `overrides` replace (or, undefined, remove) claims. */
  mint: (claims: Claims, overrides?: Record<string, unknown>) => Promise<string>;
  close: () => Promise<void>;
}

/** Starts identity, consent, care-plan, notification (and audit, which consumes every topic, when asked). */
export async function startSecurityPlatform(opts: { audit?: boolean } = {}): Promise<SecurityPlatform> {
  const issuer = new TestIssuer();
  const transport = await newTransport('sql');
  const started: { close: () => Promise<void> }[] = [];
  try {
    const identity = await startTestService(identityService, {
      transport,
      issuer,
      env: { CMC_BOOTSTRAP_ADMIN_EMAIL: 'admin@security.test', CMC_BOOTSTRAP_ADMIN_PASSWORD: 'Bootstrap-Passw0rd', IDENTITY_ARGON2_MEMORY_KIB: '8192', IDENTITY_ARGON2_PASSES: '1' },
    });
    started.push(identity);
    const keys = (identity.state as { keys: KeyStoreLike }).keys;
    // Every other service trusts identity's published keys, as in production (there through its JWKS URL).
    const start = { jwks: { provider: () => keys.publicKeys(250) } };
    const [consent, carePlan, notification, audit] = await Promise.all([
      startTestService(consentService, { transport, issuer, start }),
      startTestService(carePlanService, { transport, issuer, start }),
      startTestService(notificationService, { transport, issuer, start, env: { NOTIFY_POLL_MS: '100' } }),
      opts.audit ? startTestService(auditService, { transport, issuer, start }) : Promise.resolve(undefined),
    ]);
    started.push(consent, carePlan, notification, ...(audit ? [audit] : []));
    const byName: Partial<Record<ServiceName, AnyService>> = { identity, consent, 'care-plan': carePlan, notification, ...(audit ? { audit } : {}) };
    const mint = async (c: Claims, overrides: Record<string, unknown> = {}): Promise<string> => {
      const now = Math.floor(Date.now() / 1000);
      const payload: Record<string, unknown> = {
        iss: issuer.issuer,
        aud: issuer.audience,
        sub: c.sub ?? `sec-${randomUUID()}`,
        iat: now,
        nbf: now,
        exp: now + 600,
        jti: randomUUID(),
        cmc_kind: c.kind ?? 'user',
        ...(c.role ? { cmc_role: c.role } : {}),
        ...(c.org ? { cmc_org: c.org } : {}),
        ...(c.patient ? { cmc_patient: c.patient } : {}),
        ...(c.scope ? { scope: c.scope } : {}),
        ...(c.reg ? { cmc_reg: c.reg } : {}),
        ...overrides,
      };
      for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
      return keys.sign(payload);
    };
    return {
      transport,
      identity,
      consent,
      carePlan,
      ...(audit ? { audit } : {}),
      notification,
      service: (name) => {
        const s = byName[name];
        if (!s) throw new Error(`${name} was not started`);
        return s;
      },
      mint,
      close: async () => {
        for (const s of started.reverse()) await s.close().catch(() => undefined);
        await transport.close();
      },
    };
  } catch (e) {
    for (const s of started.reverse()) await s.close().catch(() => undefined);
    await transport.close();
    throw e;
  }
}

/** `Bearer <token>` with the payload replaced and the original signature kept: a forged token. */
export function withForgedPayload(token: string, change: (claims: Record<string, unknown>) => Record<string, unknown>): string {
  const [header, payload, signature] = token.split('.');
  const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString('utf8')) as Record<string, unknown>;
  return `${header}.${Buffer.from(JSON.stringify(change(claims))).toString('base64url')}.${signature}`;
}

export interface Request {
  method: string;
  url: string;
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

/** One request to a service, in process (app.inject), with JSON or FHIR JSON as the path asks. */
export function call(svc: AnyService, r: Request) {
  const hasBody = r.body !== undefined;
  return svc.app.inject({
    method: r.method as 'GET',
    url: r.url,
    headers: {
      ...(hasBody ? { 'content-type': r.url.startsWith('/fhir') ? 'application/fhir+json' : 'application/json' } : {}),
      ...(r.token ? { authorization: `Bearer ${r.token}` } : {}),
      ...r.headers,
    },
    ...(hasBody ? { payload: JSON.stringify(r.body) } : {}),
  });
}

/** Runs `work` over `items`, `width` at a time (in-process requests: enough to overlap database round trips). */
export async function inBatches<T, R>(items: T[], width: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += width) out.push(...(await Promise.all(items.slice(i, i + width).map(work))));
  return out;
}

/** The access entries (cmc.access.recorded.v1) a service has written to its outbox, by the request that caused them. */
export async function accessEventsByRequest(svc: AnyService): Promise<Map<string, { eventId: string; outcome: string; interaction: string }[]>> {
  const rows = await (svc.database.db as Kysely<EventsTables>).selectFrom('outbox').select(['payload']).where('type', '=', 'cmc.access.recorded.v1').execute();
  const byRequest = new Map<string, { eventId: string; outcome: string; interaction: string }[]>();
  for (const row of rows) {
    const ev = JSON.parse(row.payload) as { id: string; requestid?: string; data: { outcome: string; interaction: string } };
    if (!ev.requestid) continue;
    const list = byRequest.get(ev.requestid) ?? [];
    list.push({ eventId: ev.id, outcome: ev.data.outcome, interaction: ev.data.interaction });
    byRequest.set(ev.requestid, list);
  }
  return byRequest;
}

export interface Fixtures {
  /** A draft written by organisation A, a published plan of organisation A, a patient without a plan. */
  draft: { id: string; nhs: string; allergyId: string };
  published: { id: string; nhs: string; allergyId: string };
  otherNhs: string;
  /** The consent of the draft's patient, recorded by organisation A. */
  consent: { id: string; resource: Record<string, unknown> };
  clinicianA: string;
  serviceTeam: string;
}

/**
 * The data the suites attack: consents recorded through the consent service (which reach care-plan as events),
 * a draft and a published plan of organisation A.
 */
export async function makeFixtures(p: SecurityPlatform, nhs: { draft: string; published: string; other: string }): Promise<Fixtures> {
  const clinicianA = await p.mint({ sub: 'sec-clinician-a', role: 'clinician', org: ORG_A, reg: 'GMC:1234567' });
  const serviceTeam = await p.mint({ sub: 'sec-service-team', role: 'service-team', org: SERVICE_TEAM_ORG });
  const consents = await Promise.all(
    [nhs.draft, nhs.published].map(async (n) => {
      const res = await call(p.consent, { method: 'POST', url: '/fhir/R4/Consent', token: clinicianA, body: aConsent(n) });
      if (res.statusCode !== 201) throw new Error(`consent: ${res.statusCode} ${res.body}`);
      return res.json<{ id: string } & Record<string, unknown>>();
    }),
  );
  await Promise.all([nhs.draft, nhs.published].map((n) => waitFor(() => activeConsentOf(p.carePlan.database.db, n), 20_000, 'consent projected')));
  const create = async (n: string): Promise<string> => {
    const res = await call(p.carePlan, { method: 'POST', url: '/fhir/R4/CarePlan', token: clinicianA, body: aCarePlan(n) });
    if (res.statusCode !== 201) throw new Error(`plan: ${res.statusCode} ${res.body}`);
    return res.json<{ id: string }>().id;
  };
  const [draftId, publishedId] = await Promise.all([create(nhs.draft), create(nhs.published)]);
  const published = await call(p.carePlan, { method: 'POST', url: `/fhir/R4/CarePlan/${publishedId}/$publish`, token: clinicianA, headers: { 'if-match': 'W/"1"' } });
  if (published.statusCode !== 200) throw new Error(`publish: ${published.statusCode} ${published.body}`);
  const allergyOf = async (n: string): Promise<string> => {
    const res = await call(p.carePlan, { method: 'GET', url: `/fhir/R4/AllergyIntolerance?patient:identifier=${encodeURIComponent(`${NHS_SYSTEM}|${n}`)}`, token: serviceTeam });
    const id = res.json<{ entry?: { resource: { id: string } }[] }>().entry?.[0]?.resource.id;
    if (!id) throw new Error(`no allergy for the plan: ${res.body}`);
    return id;
  };
  return {
    draft: { id: draftId, nhs: nhs.draft, allergyId: await allergyOf(nhs.draft) },
    published: { id: publishedId, nhs: nhs.published, allergyId: await allergyOf(nhs.published) },
    otherNhs: nhs.other,
    consent: { id: consents[0]!.id, resource: consents[0]! },
    clinicianA,
    serviceTeam,
  };
}
