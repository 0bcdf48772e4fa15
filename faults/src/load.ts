/**
 * The steady stream that runs while faults happen: plan edits (PUT with If-Match, by a clinician), dispatch
 * flag lookups (urgent care), and FHIR reads (a plan, a search by NHS number, a consent). Each request carries
 * an X-Request-Id `flt.<phase>.<kind>.<n>`, which the services put into the access entry (`requestid`), so
 * each answered request can be found in the audit log. Bounded: it stops when told, and each request gives up
 * after 10 s.
 */
import { randomNhsNumber } from '@cmc/test-support';
import { sleep } from './infra';

export type Kind = 'seed' | 'edit' | 'plan-read' | 'plan-search' | 'flag' | 'consent-read';

export interface Sent {
  id: string;
  phase: string;
  kind: Kind;
  status: number;
  /** 2xx with the data expected in the body. */
  answered: boolean;
  at: number;
}

export interface SeedPlan {
  id: string;
  nhs: string;
  consentId: string;
  /** The last version this harness saw, with the resource (undefined: read it again before editing). */
  version?: string;
  resource?: Record<string, unknown>;
}

export interface LoadTargets {
  carePlanUrl: string;
  consentUrl: string;
  plans: SeedPlan[];
  tokens: { editor: string; urgentCare: string; clinician: string };
  intervals: { editMs: number; flagMs: number; readMs: number };
}

const FHIR_JSON = 'application/fhir+json';

export class Load {
  phase = 'setup';
  readonly sent: Sent[] = [];
  private n = 0;
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly t: LoadTargets) {}

  /** Sends one request and records it; `ok` says whether a 2xx body holds the data asked for. */
  async request(kind: Kind, url: string, init: { method?: string; token: string; headers?: Record<string, string>; body?: unknown }, ok: (body: Record<string, unknown>) => boolean): Promise<{ status: number; body?: Record<string, unknown>; etag?: string }> {
    const id = `flt.${this.phase}.${kind}.${++this.n}`;
    const rec: Sent = { id, phase: this.phase, kind, status: 0, answered: false, at: Date.now() };
    this.sent.push(rec);
    try {
      const res = await fetch(url, {
        method: init.method ?? 'GET',
        headers: {
          'authorization': `Bearer ${init.token}`,
          'x-request-id': id,
          ...(init.body !== undefined ? { 'content-type': FHIR_JSON } : {}),
          ...init.headers,
        },
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        signal: AbortSignal.timeout(10_000),
      });
      rec.status = res.status;
      const text = await res.text();
      let body: Record<string, unknown> | undefined;
      try {
        body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        body = undefined;
      }
      rec.answered = res.status >= 200 && res.status < 300 && body !== undefined && ok(body);
      const etag = res.headers.get('etag') ?? undefined;
      return { status: res.status, ...(body ? { body } : {}), ...(etag ? { etag } : {}) };
    } catch {
      return { status: 0 };
    }
  }

  /** Reads the plan as the editor (to learn its version), then PUTs it back with If-Match: a new version. */
  async edit(plan: SeedPlan): Promise<{ outcome: 'answered' | 'refused'; requestId?: string }> {
    const base = `${this.t.carePlanUrl}/fhir/R4/CarePlan/${plan.id}`;
    if (!plan.resource || !plan.version) {
      const got = await this.request('plan-read', base, { token: this.t.tokens.editor }, (b) => b.resourceType === 'CarePlan');
      if (got.status !== 200 || !got.body) return { outcome: 'refused' };
      plan.resource = got.body;
      plan.version = String((got.body.meta as { versionId?: string } | undefined)?.versionId ?? '');
    }
    const requestId = `flt.${this.phase}.edit.${this.n + 1}`;
    const put = await this.request('edit', base, { method: 'PUT', token: this.t.tokens.editor, headers: { 'if-match': `W/"${plan.version}"` }, body: plan.resource }, (b) => b.resourceType === 'CarePlan' && b.id === plan.id);
    if (put.status === 200 && put.body) {
      plan.resource = put.body;
      plan.version = String((put.body.meta as { versionId?: string } | undefined)?.versionId ?? '');
      return { outcome: 'answered', requestId };
    }
    // Stale, refused or lost: read it again before the next edit (a lost answer may have made a version).
    plan.resource = undefined;
    plan.version = undefined;
    return { outcome: 'refused', requestId };
  }

  private loop(intervalMs: number, step: (i: number) => Promise<unknown>): Promise<void> {
    return (async () => {
      for (let i = 0; this.running; i++) {
        const began = Date.now();
        await step(i);
        await sleep(intervalMs - (Date.now() - began));
      }
    })();
  }

  start(editable: SeedPlan[]): void {
    if (this.running) return;
    this.running = true;
    const { plans, tokens, intervals, carePlanUrl, consentUrl } = this.t;
    const pick = <T>(xs: T[], i: number): T => xs[i % xs.length] as T;
    this.loops = [
      this.loop(intervals.editMs, (i) => this.edit(pick(editable, i))),
      this.loop(intervals.flagMs, (i) => {
        // One lookup in five is of a patient without a plan: still an access, answered hasPlan false.
        const nhs = i % 5 === 4 ? randomNhsNumber() : pick(plans, i).nhs;
        return this.request('flag', `${carePlanUrl}/api/flags/${nhs}`, { token: tokens.urgentCare }, (b) => typeof b.hasPlan === 'boolean');
      }),
      this.loop(intervals.readMs, (i) => {
        const plan = pick(plans, Math.floor(i / 3));
        if (i % 3 === 0) return this.request('plan-read', `${carePlanUrl}/fhir/R4/CarePlan/${plan.id}`, { token: tokens.urgentCare }, (b) => b.resourceType === 'CarePlan');
        if (i % 3 === 1) {
          const q = encodeURIComponent(`https://fhir.nhs.uk/Id/nhs-number|${plan.nhs}`);
          return this.request('plan-search', `${carePlanUrl}/fhir/R4/CarePlan?patient:identifier=${q}`, { token: tokens.urgentCare }, (b) => b.resourceType === 'Bundle' && Array.isArray(b.entry) && b.entry.length > 0);
        }
        return this.request('consent-read', `${consentUrl}/fhir/R4/Consent/${plan.consentId}`, { token: tokens.clinician }, (b) => b.resourceType === 'Consent');
      }),
    ];
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    this.loops = [];
  }
}
