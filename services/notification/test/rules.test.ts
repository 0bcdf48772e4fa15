/** The rule table and the pieces that need no database. */
import { randomNhsNumber } from '@cmc/test-support';
import { redactSecrets, type PlanEventData } from '@cmc/contracts';
import { OperationOutcomeError } from '@cmc/fhir';
import { RULES, forbiddenHost, isForbiddenAddress, isHookEvent, kindOfPlanEvent, notificationBundle, parseCriteria, parseEndpoint, parseHeaders, renderEmail, retryDelayMs, sourceKey } from '../src';

const data = (over: Partial<PlanEventData> = {}): PlanEventData => ({
  planId: crypto.randomUUID(), versionId: '2', nhsNumber: randomNhsNumber(), state: 'published', organisation: 'ABC12', changedBy: 'u', changedAt: new Date().toISOString(), ...over,
});

describe('the rule table', () => {
  it('says what goes to whom, as issue #8 asks', () => {
    expect(RULES).toEqual({
      'plan-submitted': ['organisation-clinicians', 'approving-gp-practice-clinicians'],
      'plan-published': ['gp-practice-clinicians', 'author', 'organisation-clinicians'],
      'plan-updated': ['gp-practice-clinicians', 'author', 'organisation-clinicians'],
      'note-added': ['gp-practice-clinicians', 'author'],
      'change-requested': ['author', 'reviewer'],
      'plan-withdrawn': ['author', 'organisation-clinicians', 'gp-practice-clinicians'],
      'consent-withdrawn': ['author', 'organisation-clinicians', 'gp-practice-clinicians'],
      'death-recorded': ['author', 'organisation-clinicians', 'gp-practice-clinicians'],
      'review-due': ['reviewer'],
      'review-overdue': ['reviewer', 'organisation-clinicians'],
      'approval-reminder': ['organisation-clinicians', 'approving-gp-practice-clinicians'],
      'approval-escalation': ['organisation-lead'],
    });
  });

  it('maps each care plan event to its notification; a created plan or a change to a draft tells nobody', () => {
    expect(kindOfPlanEvent('cmc.careplan.created.v1', data({ state: 'draft' }))).toBeUndefined();
    expect(kindOfPlanEvent('cmc.careplan.updated.v1', data({ state: 'draft' }))).toBeUndefined();
    expect(kindOfPlanEvent('cmc.careplan.updated.v1', data())).toBe('plan-updated');
    expect(kindOfPlanEvent('cmc.careplan.submitted.v1', data({ state: 'awaiting-approval' }))).toBe('plan-submitted');
    expect(kindOfPlanEvent('cmc.careplan.published.v1', data())).toBe('plan-published');
    expect(kindOfPlanEvent('cmc.careplan.note-added.v1', data())).toBe('note-added');
    expect(kindOfPlanEvent('cmc.careplan.change-requested.v1', data())).toBe('change-requested');
    expect(kindOfPlanEvent('cmc.careplan.withdrawn.v1', data({ state: 'withdrawn' }))).toBe('plan-withdrawn');
    expect(kindOfPlanEvent('cmc.careplan.withdrawn.v1', data({ state: 'withdrawn', byConsentWithdrawal: true }))).toBe('consent-withdrawn');
    expect(kindOfPlanEvent('cmc.careplan.death-recorded.v1', data({ state: 'deceased' }))).toBe('death-recorded');
  });

  it('never tells subscribers of drafts; keys a consent withdrawal by plan so that it is told once', () => {
    expect(isHookEvent('cmc.careplan.created.v1', data({ state: 'draft' }))).toBe(false);
    expect(isHookEvent('cmc.careplan.submitted.v1', data({ state: 'awaiting-approval' }))).toBe(false);
    expect(isHookEvent('cmc.careplan.updated.v1', data({ state: 'draft' }))).toBe(false);
    expect(isHookEvent('cmc.careplan.published.v1', data())).toBe(true);
    expect(isHookEvent('cmc.careplan.death-recorded.v1', data({ state: 'deceased' }))).toBe(true);
    expect(sourceKey('consent-withdrawn', 'e1', 'p1')).toBe(sourceKey('consent-withdrawn', 'e2', 'p1'));
    expect(sourceKey('plan-published', 'e1', 'p1')).toBe('e1');
  });
});

describe('subscription input', () => {
  const rejects = (f: () => unknown) => expect(f).toThrow(OperationOutcomeError);

  it('reads the two supported criteria, and refuses the rest', () => {
    const nhs = randomNhsNumber();
    expect(parseCriteria(`CarePlan?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|${nhs}`)).toEqual({ kind: 'patient', value: nhs });
    expect(parseCriteria(`CarePlan?patient:identifier=https%3A%2F%2Ffhir.nhs.uk%2FId%2Fnhs-number%7C${nhs}`)).toEqual({ kind: 'patient', value: nhs });
    expect(parseCriteria('CarePlan?gp-practice=Y12345')).toEqual({ kind: 'gp-practice', value: 'Y12345' });
    for (const c of ['CarePlan', 'CarePlan?', 'Patient?gp-practice=Y12345', 'CarePlan?gp-practice=y1', 'CarePlan?_gp-practice=Y12345', `CarePlan?patient=${nhs}`, 'CarePlan?gp-practice=Y12345?x=1']) rejects(() => parseCriteria(c));
  });

  it('takes http(s) endpoints and Name: value headers only', () => {
    expect(parseEndpoint('https://gp.example/hook')).toBe('https://gp.example/hook');
    for (const e of ['ftp://gp.example/', 'javascript:alert(1)', 'file:///etc/passwd', '/relative', 'https://a:b@gp.example/']) rejects(() => parseEndpoint(e));
    expect(parseHeaders(['Authorization:   Bearer x', 'X-Secret: s'])).toEqual(['Authorization: Bearer x', 'X-Secret: s']);
    for (const h of [['no colon'], [': empty name'], ['X-Empty:'], ['Content-Type: text/plain'], ['X-Bad: a\nb'], Array.from({ length: 6 }, (_, i) => `X-${i}: v`)]) rejects(() => parseHeaders(h));
  });
});

describe('what is sent', () => {
  it('an email names no patient and no plan, only where to sign in', () => {
    for (const kind of Object.keys(RULES)) {
      const { subject, text } = renderEmail(kind, 'https://cmc.example/');
      expect(subject).toMatch(/^A care plan (you follow has changed|is due for review|is waiting for approval)$/);
      expect(text).toContain('Sign in to see it: https://cmc.example/');
      expect(text).not.toMatch(/\d{10}|[0-9a-f]{8}-/);
    }
  });

  it('a hook notification is a history Bundle whose SubscriptionStatus names the plan by reference only', () => {
    const bundle = notificationBundle({ subscription_id: 's-1', event_number: '7', plan_id: 'p-1', created_at: new Date('2026-12-02T10:00:00Z') });
    expect(bundle).toMatchObject({ resourceType: 'Bundle', type: 'history', entry: [{ resource: { resourceType: 'Parameters' } }] });
    expect(JSON.stringify(bundle)).toContain('"focus","valueReference":{"reference":"CarePlan/p-1"}');
    expect(JSON.stringify(bundle)).toContain('"events-since-subscription-start","valueString":"7"');
  });

  it('waits longer after each failure, with jitter, never beyond the cap', () => {
    for (let attempt = 1; attempt <= 40; attempt++) {
      const ceiling = Math.min(60_000, 100 * 2 ** (attempt - 1));
      const d = retryDelayMs(attempt, 100, 60_000);
      expect(d).toBeGreaterThanOrEqual(ceiling / 2);
      expect(d).toBeLessThanOrEqual(ceiling);
    }
  });
});

describe('what is kept of a failed event, and which hook addresses are refused', () => {
  it('redacts bearer links from a dead letter, whatever its type says, and token= values from what is not JSON', () => {
    const event = { specversion: '1.0', id: crypto.randomUUID(), type: 'cmc.identity.password-reset-requested.v1', data: { userId: 'u', resetUrl: 'https://x.test/r#token=abc', expiresAt: 'later' } };
    expect(JSON.parse(redactSecrets(JSON.stringify(event)))).toEqual({ ...event, data: { ...event.data, resetUrl: '[redacted]' } });
    const mistyped = { ...event, type: 'cmc.identity.invitation-created.v9', data: { acceptUrl: 'https://x.test/a#token=the-invitation-secret' } };
    expect(redactSecrets(JSON.stringify(mistyped))).not.toContain('the-invitation-secret');
    const plain = JSON.stringify({ ...event, type: 'cmc.careplan.published.v1', data: { planId: 'p' } });
    expect(redactSecrets(plain)).toBe(plain);
    expect(redactSecrets('{not json https://x.test/a#token=ghi&x=1')).toBe('{not json https://x.test/a#token=[redacted]&x=1');
  });

  it('refuses loopback, private, link-local, multicast and unspecified addresses, v4 and v6, and takes public ones', () => {
    for (const a of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.0.1', '169.254.169.254', '100.64.1.1', '0.0.0.0', '224.0.0.251', '255.255.255.255', '::', '::1', 'fc00::1', 'fdff::1', 'fe80::1', 'ff02::1', '::ffff:10.0.0.1', '::ffff:7f00:1', '64:ff9b::7f00:1', '64:ff9b::192.168.0.1', 'not-an-address']) {
      expect({ a, forbidden: isForbiddenAddress(a) }).toEqual({ a, forbidden: true });
    }
    for (const a of ['8.8.8.8', '172.32.0.1', '192.169.0.1', '203.0.113.7', '2001:db8::1', '2a00:1450::1', '64:ff9b::808:808', '::ffff:8.8.8.8']) {
      expect({ a, forbidden: isForbiddenAddress(a) }).toEqual({ a, forbidden: false });
    }
    expect(forbiddenHost('localhost')).toMatch(/local machine/);
    expect(forbiddenHost('LOCALHOST.')).toMatch(/local machine/);
    expect(forbiddenHost('[::1]')).toMatch(/loopback/);
    expect(forbiddenHost('gp-system.example')).toBeUndefined();
  });
});
