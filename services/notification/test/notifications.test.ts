/** From events to the inbox and to email: who hears of what, once, with nothing clinical in the mail. */
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { TOPICS } from '@cmc/contracts';
import { TestIssuer, collect, newTransport, startTestService, waitFor, waitForMessages } from '@cmc/test-support';
import type { OperationOutcome } from 'fhir/r4';
import { notificationService, type NotificationDB } from '../src';
import { APlan, aUser, event, fastEnv, send, startSmtp, uniqueOds, userCreated, userDeactivated, type TestUser } from './support';

interface InboxItem { id: string; kind: string; text: string; planId: string | null; createdAt: string; readAt: string | null }
interface Inbox { notifications: InboxItem[]; next: string | null }

describe('notifications from care plan events', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let svc: RunningService<NotificationDB>;

  const orgA = uniqueOds();
  const gp = uniqueOds();
  const other = uniqueOds();
  const author = aUser('clinician', orgA);
  const colleague = aUser('clinician', orgA);
  const adminA = aUser('administrator', orgA);
  const gpClinician = aUser('clinician', gp);
  const gpLeaver = aUser('clinician', gp);
  const elsewhere = aUser('clinician', other);
  const crew = aUser('urgent-care', other);
  const everyone = [author, colleague, adminA, gpClinician, gpLeaver, elsewhere, crew];

  beforeAll(async () => {
    smtp = await startSmtp();
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: fastEnv(smtp.url) });
    await send(transport, ...everyone.map(userCreated), userDeactivated(gpLeaver));
    await waitFor(async () => {
      const rows = await svc.database.db.selectFrom('recipients').select(['user_id', 'active']).where('user_id', 'in', everyone.map((u) => u.userId)).execute();
      return rows.length === everyone.length && rows.some((r) => r.user_id === gpLeaver.userId && !r.active);
    }, 20_000, 'the users');
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
    await smtp?.close();
  });

  const bearer = (u: TestUser) => issuer.bearer({ sub: u.userId, role: u.role, org: u.organisation });
  const inbox = async (u: TestUser, query = ''): Promise<Inbox> => {
    const res = await svc.app.inject({ method: 'GET', url: `/api/notifications${query}`, headers: { authorization: bearer(u) } });
    expect(res.statusCode).toBe(200);
    return res.json<Inbox>();
  };
  const kindsFor = async (u: TestUser, planId: string) => (await inbox(u, '?_count=100')).notifications.filter((n) => n.planId === planId).map((n) => n.kind);
  /** Waits until the notification reached those it should, then checks that nobody else got it. */
  const expectHeardBy = async (planId: string, kind: string, told: TestUser[]) => {
    await waitFor(async () => {
      for (const u of told) if (!(await kindsFor(u, planId)).includes(kind)) return false;
      return true;
    }, 20_000, `${kind} in the inboxes`);
    for (const u of everyone.filter((x) => !told.includes(x))) expect(await kindsFor(u, planId)).not.toContain(kind);
  };

  it('when a plan is submitted for approval, then the clinicians of its organisation hear of it (not the administrator who submitted, not other organisations)', async () => {
    const plan = new APlan(orgA, author.userId, gp);
    await send(transport, plan.event('cmc.careplan.created.v1'), plan.event('cmc.careplan.submitted.v1', { changedBy: adminA.userId }));
    await expectHeardBy(plan.planId, 'plan-submitted', [author, colleague]);
  });

  it('when a plan is published, then its GP practice\'s clinicians, its author and its organisation\'s clinicians hear of it, but not the publisher, a deactivated user, or anyone else', async () => {
    const plan = new APlan(orgA, author.userId, gp);
    await send(transport, plan.event('cmc.careplan.created.v1'), plan.event('cmc.careplan.published.v1', { changedBy: colleague.userId }));
    await expectHeardBy(plan.planId, 'plan-published', [gpClinician, author]);
    await send(transport, plan.event('cmc.careplan.updated.v1', { changedBy: author.userId }));
    await expectHeardBy(plan.planId, 'plan-updated', [gpClinician, colleague]);
  });

  it('when urgent care adds a note, then the GP practice and the author hear of it; a change request goes to the author and the reviewing clinician', async () => {
    const plan = new APlan(orgA, author.userId, gp);
    await send(transport, plan.event('cmc.careplan.created.v1'), plan.event('cmc.careplan.published.v1', { changedBy: colleague.userId }));
    await send(transport, plan.event('cmc.careplan.note-added.v1', { changedBy: crew.userId, changedByOrganisation: other, noteId: crypto.randomUUID(), admission: false }));
    await expectHeardBy(plan.planId, 'note-added', [gpClinician, author]);
    await send(transport, plan.event('cmc.careplan.change-requested.v1', { changedBy: crypto.randomUUID(), changeRequestId: crypto.randomUUID() }));
    await expectHeardBy(plan.planId, 'change-requested', [author, colleague]);
  });

  it('when consent is withdrawn, then the care team hears of it once, though both consent and care-plan announce it; a death likewise', async () => {
    const plan = new APlan(orgA, author.userId, gp);
    await send(transport, plan.event('cmc.careplan.created.v1'), plan.event('cmc.careplan.published.v1', { changedBy: colleague.userId }));
    await waitFor(async () => (await svc.database.db.selectFrom('plans').select('state').where('plan_id', '=', plan.planId).executeTakeFirst())?.state === 'published', 20_000, 'the plan');
    await send(
      transport,
      event({ type: 'cmc.consent.withdrawn.v1', source: '/cmc/consent', key: plan.nhsNumber, data: { consentId: crypto.randomUUID(), versionId: '2', nhsNumber: plan.nhsNumber, status: 'inactive', withdrawnAt: new Date().toISOString() } }),
      plan.event('cmc.careplan.withdrawn.v1', { changedBy: 'system', byConsentWithdrawal: true }),
    );
    await expectHeardBy(plan.planId, 'consent-withdrawn', [author, colleague, gpClinician]);
    await waitFor(async () => (await svc.database.db.selectFrom('processed_events').select('event_id').where('event_type', '=', 'cmc.careplan.withdrawn.v1').execute()).length > 0, 20_000, 'both events');
    expect((await kindsFor(author, plan.planId)).filter((k) => k === 'consent-withdrawn')).toHaveLength(1);

    const died = new APlan(orgA, author.userId, gp);
    await send(transport, died.event('cmc.careplan.created.v1'), died.event('cmc.careplan.death-recorded.v1', { changedBy: gpClinician.userId, deathDate: '2026-12-01', deathPlace: 'home', deathOutcome: 'met-first' }));
    await expectHeardBy(died.planId, 'death-recorded', [author, colleague]);
  });

  it('when a change reaches people with an address, then each gets one email saying only that something changed and where to sign in', async () => {
    const plan = new APlan(orgA, author.userId, gp);
    const published = plan.event('cmc.careplan.published.v1', { changedBy: colleague.userId });
    await send(transport, plan.event('cmc.careplan.created.v1'), published);
    await waitFor(async () => {
      const rows = await svc.database.db.selectFrom('email_deliveries').select('status').where('source', '=', published.id).execute();
      return rows.length === 2 && rows.every((r) => r.status === 'sent');
    }, 20_000, 'the emails');
    const { id: gpMailId } = await svc.database.db.selectFrom('email_deliveries').select('id').where('source', '=', published.id).where('recipient', '=', gpClinician.userId).executeTakeFirstOrThrow();
    // Quoted-printable: soft line breaks undone.
    const mail = smtp.mails.find((m) => m.raw.includes(`<email-${gpMailId}@notification.cmc>`))!.raw.replace(/=\r?\n/g, '');
    expect(smtp.mails.find((m) => m.raw.includes(`<email-${gpMailId}@notification.cmc>`))!.to).toEqual([gpClinician.email]);
    expect(mail).toContain('Subject: A care plan you follow has changed');
    expect(mail).toContain('https://cmc.example.test/');
    expect(mail).not.toContain(plan.nhsNumber);
    expect(mail).not.toContain(plan.planId);
    expect(mail).toMatch(/Message-ID: <email-\d+@notification\.cmc>/i);

    // The same event again (a redelivery): nothing more is sent.
    const duplicatesBefore = svc.consumers[0]!.stats.duplicates;
    await send(transport, published);
    await waitFor(async () => svc.consumers[0]!.stats.duplicates > duplicatesBefore, 20_000, 'the redelivery');
    const sent = await svc.database.db.selectFrom('email_deliveries').select(['status', 'attempts']).where('source', '=', published.id).execute();
    expect(sent).toHaveLength(2);
    expect(sent.every((s) => s.status === 'sent' && s.attempts === 1)).toBe(true);
    // Give the sender time to (wrongly) send again, then count this event's emails by their Message-ID.
    await new Promise((r) => setTimeout(r, 300));
    const ids = (await svc.database.db.selectFrom('email_deliveries').select(['id', 'address']).where('source', '=', published.id).execute());
    expect(ids.map((i) => i.address).sort()).toEqual([author.email, gpClinician.email].sort());
    for (const { id } of ids) expect(smtp.mails.filter((m) => m.raw.includes(`<email-${id}@notification.cmc>`))).toHaveLength(1);
  });

  it('when the SMTP server refuses for a while, then the email is tried again with backoff and arrives once, its attempts recorded', async () => {
    const plan = new APlan(orgA, author.userId, gp);
    const published = plan.event('cmc.careplan.published.v1', { changedBy: colleague.userId });
    smtp.refuse.on = true;
    try {
      await send(transport, published);
      await waitFor(async () => {
        const row = await svc.database.db.selectFrom('email_deliveries').select(['attempts', 'last_error']).where('source', '=', published.id).where('recipient', '=', gpClinician.userId).executeTakeFirst();
        return row && row.attempts >= 2 ? row : undefined;
      }, 20_000, 'failed attempts');
    } finally {
      smtp.refuse.on = false;
    }
    const row = await waitFor(async () => {
      const r = await svc.database.db.selectFrom('email_deliveries').selectAll().where('source', '=', published.id).where('recipient', '=', gpClinician.userId).executeTakeFirstOrThrow();
      return r.status === 'sent' ? r : undefined;
    }, 20_000, 'the email after the refusals');
    expect(row.attempts).toBeGreaterThanOrEqual(3);
    expect(row.last_error).toBeNull();
    expect(smtp.mails.filter((m) => m.raw.includes(`<email-${row.id}@notification.cmc>`))).toHaveLength(1);
  });

  it('when a user reads the inbox, then newest first, paged, filtered to unread; only its owner can mark one read', async () => {
    const plans = [new APlan(orgA, author.userId, gp), new APlan(orgA, author.userId, gp), new APlan(orgA, author.userId, gp)];
    for (const p of plans) await send(transport, p.event('cmc.careplan.published.v1', { changedBy: colleague.userId }));
    await waitFor(async () => {
      const ids = (await inbox(gpClinician, '?_count=100')).notifications.map((n) => n.planId);
      return plans.every((p) => ids.includes(p.planId));
    }, 20_000, 'three notifications');
    const all = (await inbox(gpClinician, '?_count=100')).notifications;
    const times = all.map((n) => n.createdAt);
    expect([...times].sort().reverse()).toEqual(times);

    const first = await inbox(gpClinician, '?_count=2');
    expect(first.notifications).toHaveLength(2);
    expect(first.next).toContain('_cursor=');
    const nextUrl = new URL(first.next!);
    const second = await inbox(gpClinician, `?${nextUrl.searchParams.toString()}`);
    expect(second.notifications[0]!.id).toBe(all[2]!.id);

    const target = all[0]!;
    const byOther = await svc.app.inject({ method: 'POST', url: `/api/notifications/${target.id}/read`, headers: { authorization: bearer(author) } });
    expect(byOther.statusCode).toBe(404);
    expect(byOther.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    const read = await svc.app.inject({ method: 'POST', url: `/api/notifications/${target.id}/read`, headers: { authorization: bearer(gpClinician) } });
    expect(read.statusCode).toBe(200);
    expect(read.json<InboxItem>().readAt).not.toBeNull();
    const unread = (await inbox(gpClinician, '?unread=true&_count=100')).notifications.map((n) => n.id);
    expect(unread).not.toContain(target.id);
    expect(unread).toContain(all[1]!.id);
  });

  it('when a patient, a system, nobody or a bad query asks for an inbox, then 403, 403, 401 and 400 with an OperationOutcome', async () => {
    const patient = await svc.app.inject({ method: 'GET', url: '/api/notifications', headers: { authorization: issuer.bearer({ role: 'patient', patient: '9434765919' }) } });
    expect(patient.statusCode).toBe(403);
    const system = await svc.app.inject({ method: 'GET', url: '/api/notifications', headers: { authorization: `Bearer ${issuer.token({ kind: 'client', org: gp, scope: 'system/Subscription.crud' })}` } });
    expect(system.statusCode).toBe(403);
    expect((await svc.app.inject({ method: 'GET', url: '/api/notifications' })).statusCode).toBe(401);
    for (const url of ['/api/notifications?colour=red', '/api/notifications?_count=0', '/api/notifications?_cursor=nonsense']) {
      const res = await svc.app.inject({ method: 'GET', url, headers: { authorization: bearer(author) } });
      expect(res.statusCode).toBe(400);
      expect(res.json<OperationOutcome>().resourceType).toBe('OperationOutcome');
    }
    const badId = await svc.app.inject({ method: 'POST', url: '/api/notifications/not-a-uuid/read', headers: { authorization: bearer(author) } });
    expect(badId.statusCode).toBe(400);
  });
});

describe('an email that cannot be delivered', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let svc: RunningService<NotificationDB>;
  let announcements: Awaited<ReturnType<typeof collect>>;

  beforeAll(async () => {
    transport = await newTransport('sql');
    announcements = await collect(transport, TOPICS.notification);
    // Nothing listens on port 9 (discard) here: every attempt is refused.
    svc = await startTestService(notificationService, { transport, issuer, env: { ...fastEnv('smtp://127.0.0.1:9'), NOTIFY_EMAIL_MAX_ATTEMPTS: '3', NOTIFY_SMTP_TIMEOUT_MS: '500' } });
  });
  afterAll(async () => {
    await announcements?.stop();
    await svc?.close();
    await transport?.close();
  });

  it('when every attempt fails, then it is marked failed with the last error after the bounded attempts, and the service team sees it', async () => {
    const org = uniqueOds();
    const clinician = aUser('clinician', org);
    await send(transport, userCreated(clinician));
    await waitFor(async () => svc.database.db.selectFrom('recipients').select('user_id').where('user_id', '=', clinician.userId).executeTakeFirst(), 20_000, 'the user');
    const plan = new APlan(org, crypto.randomUUID());
    await send(transport, plan.event('cmc.careplan.submitted.v1'));
    const row = await waitFor(async () => {
      const r = await svc.database.db.selectFrom('email_deliveries').selectAll().where('recipient', '=', clinician.userId).executeTakeFirst();
      return r?.status === 'failed' ? r : undefined;
    }, 20_000, 'the failed email');
    expect(row.attempts).toBe(3);
    expect(row.last_error).toMatch(/ECONNREFUSED|ESOCKET|ECONNECTION/);

    const seen = await svc.app.inject({ method: 'GET', url: '/api/notifications/deliveries?status=failed&channel=email', headers: { authorization: issuer.bearer({ role: 'service-team', org: 'X26' }) } });
    expect(seen.statusCode).toBe(200);
    expect(seen.json<{ deliveries: { recipient: string; status: string; attempts: number; lastError: string }[] }>().deliveries).toEqual(
      expect.arrayContaining([expect.objectContaining({ recipient: clinician.userId, status: 'failed', attempts: 3, lastError: row.last_error })]),
    );
    const clinicianAsks = await svc.app.inject({ method: 'GET', url: '/api/notifications/deliveries', headers: { authorization: issuer.bearer({ sub: clinician.userId, role: 'clinician', org }) } });
    expect(clinicianAsks.statusCode).toBe(403);

    // Announced on cmc.notification.v1, written to the outbox with the status and relayed: no address, no patient.
    const outbox = await svc.database.db.selectFrom('outbox').select(['type', 'payload']).where('key', '=', `email-${row.id}`).execute();
    expect(outbox.map((o) => o.type)).toEqual(['cmc.notification.delivery-failed.v1']);
    const onTopic = await waitForMessages(announcements.messages, 1, (m) => m.key === `email-${row.id}`);
    const announced = JSON.parse(onTopic[0]!.value) as { type: string; data: Record<string, unknown> };
    expect(announced).toMatchObject({ type: 'cmc.notification.delivery-failed.v1', data: { deliveryId: String(row.id), channel: 'email', recipient: clinician.userId, kind: 'plan-submitted', attempts: 3, reason: row.last_error } });
    expect(onTopic[0]!.value).not.toContain(clinician.email);
    expect(onTopic[0]!.value).not.toContain(plan.nhsNumber);
  });
});
