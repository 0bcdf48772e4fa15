/** Invitation and password reset emails: sent from the handler, once, and their links never stored. */
import type { Transport } from '@cmc/events';
import type { RunningService } from '@cmc/service';
import { dlqTopic, TOPICS } from '@cmc/contracts';
import { TestIssuer, collect, newTransport, randomNhsNumber, startTestService, waitFor, waitForMessages } from '@cmc/test-support';
import { sql } from 'kysely';
import { randomUUID } from 'node:crypto';
import { notificationService, type NotificationDB } from '../src';
import { event, fastEnv, send, startSmtp } from './support';

const resetRequested = (email: string, resetUrl: string) =>
  event({ type: 'cmc.identity.password-reset-requested.v1', source: '/cmc/identity', key: randomUUID(), data: { userId: randomUUID(), email, resetUrl, expiresAt: '2027-01-01T12:30:00Z' } });

const invitationCreated = (email: string, acceptUrl: string, nhsNumber: string) =>
  event({
    type: 'cmc.identity.invitation-created.v1',
    source: '/cmc/identity',
    key: randomUUID(),
    data: { userId: randomUUID(), email, role: 'patient', nhsNumber, acceptUrl, expiresAt: '2027-01-08T09:00:00Z', invitedBy: randomUUID() },
  });

/** Every text (and JSON) value of every table of the service's schema that contains `needle`, as `table.column`. */
async function whereStored(svc: RunningService<NotificationDB>, needle: string): Promise<string[]> {
  const { rows: columns } = await sql<{ table_name: string; column_name: string }>`
    select table_name, column_name from information_schema.columns
    where table_schema = ${svc.config.schema} and data_type in ('text', 'character varying', 'json', 'jsonb', 'ARRAY')`.execute(svc.database.db);
  expect(columns.length).toBeGreaterThan(10);
  const found: string[] = [];
  for (const c of columns) {
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from ${sql.table(c.table_name)} where ${sql.ref(c.column_name)}::text like ${`%${needle}%`}`.execute(svc.database.db);
    if (rows[0]!.n > 0) found.push(`${c.table_name}.${c.column_name}`);
  }
  return found;
}

describe('identity emails', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let svc: RunningService<NotificationDB>;

  beforeAll(async () => {
    smtp = await startSmtp();
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: fastEnv(smtp.url) });
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
    await smtp?.close();
  });

  it('when a password reset is requested, then the email arrives with the link once, even if the event comes again, and the link is stored nowhere', async () => {
    const secret = `reset-${randomUUID()}`;
    const link = `https://cmc.example.test/reset?token=${secret}`;
    const address = `someone-${randomUUID().slice(0, 8)}@example.test`;
    const e = resetRequested(address, link);
    await send(transport, e);
    await waitFor(async () => smtp.mails.some((m) => m.to.includes(address)), 20_000, 'the reset email');
    const mail = smtp.mails.find((m) => m.to.includes(address))!;
    expect(mail.raw).toContain('Subject: Reset your Coordinate My Care password');
    expect(mail.raw.replace(/=\r?\n/g, '')).toContain(secret);
    expect(mail.raw).toContain('2027-01-01 12:30 UTC');

    // Delivered again: a duplicate, nothing sent.
    const duplicates = svc.consumers[0]!.stats.duplicates;
    await send(transport, e);
    await waitFor(async () => svc.consumers[0]!.stats.duplicates > duplicates, 20_000, 'the redelivery');
    const other = `other-${randomUUID().slice(0, 8)}@example.test`;
    await send(transport, resetRequested(other, `https://cmc.example.test/reset?token=${randomUUID()}`));
    await waitFor(async () => smtp.mails.some((m) => m.to.includes(other)), 20_000, 'the next email');
    expect(smtp.mails.filter((m) => m.to.includes(address))).toHaveLength(1);

    const row = await svc.database.db.selectFrom('identity_emails').selectAll().where('event_id', '=', e.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ kind: 'password-reset', status: 'sent' });
    expect(await whereStored(svc, secret)).toEqual([]);
    expect(await whereStored(svc, address)).toEqual([]);
  });

  it('when an invitation is created, then the email carries the link and its expiry and no NHS number', async () => {
    const secret = `invite-${randomUUID()}`;
    const address = `patient-${randomUUID().slice(0, 8)}@example.test`;
    const nhsNumber = randomNhsNumber();
    await send(transport, invitationCreated(address, `https://cmc.example.test/accept/${secret}`, nhsNumber));
    await waitFor(async () => smtp.mails.some((m) => m.to.includes(address)), 20_000, 'the invitation');
    const raw = smtp.mails.find((m) => m.to.includes(address))!.raw.replace(/=\r?\n/g, '');
    expect(raw).toContain('Subject: Your Coordinate My Care invitation');
    expect(raw).toContain(secret);
    expect(raw).toContain('2027-01-08 09:00 UTC');
    expect(raw).not.toContain(nhsNumber);
    expect(await whereStored(svc, secret)).toEqual([]);
  });
});

describe('without SMTP, and last logins', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let svc: RunningService<NotificationDB>;

  beforeAll(async () => {
    transport = await newTransport('sql');
    svc = await startTestService(notificationService, { transport, issuer, env: fastEnv() });
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
  });

  it('when no SMTP server is configured, then the event is recorded as not sent, not retried nor dead-lettered', async () => {
    const secret = `reset-${randomUUID()}`;
    const e = resetRequested(`someone-${randomUUID().slice(0, 8)}@example.test`, `https://cmc.example.test/reset?token=${secret}`);
    await send(transport, e);
    await waitFor(async () => !!(await svc.database.db.selectFrom('identity_emails').select('status').where('event_id', '=', e.id).executeTakeFirst()), 20_000, 'the row');
    const row = await svc.database.db.selectFrom('identity_emails').selectAll().where('event_id', '=', e.id).executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'not-sent: no SMTP configured', sent_at: null });
    expect(svc.consumers[0]!.stats).toMatchObject({ deadLettered: 0, retries: 0 });
    expect(await whereStored(svc, secret)).toEqual([]);
  });

  it('when login-succeeded events come, in any order, then the recipient keeps the latest login time', async () => {
    const userId = randomUUID();
    const login = (time: string) => event({ type: 'cmc.identity.login-succeeded.v1', source: '/cmc/identity', key: userId, time: new Date(time), data: { userId, role: 'clinician', organisation: 'XY123' } });
    const before = svc.consumers[0]!.stats.processed;
    await send(transport, login('2027-03-01T08:00:00Z'), login('2027-02-01T08:00:00Z'));
    const row = await waitFor(async () => {
      if (svc.consumers[0]!.stats.processed < before + 2) return undefined;
      return svc.database.db.selectFrom('recipients').select('last_login_at').where('user_id', '=', userId).executeTakeFirst();
    }, 20_000, 'the logins');
    expect(row.last_login_at!.toISOString()).toBe('2027-03-01T08:00:00.000Z');
  });
});

describe('an identity email the SMTP server refuses every time, over Kafka', () => {
  const issuer = new TestIssuer();
  let transport: Transport;
  let smtp: Awaited<ReturnType<typeof startSmtp>>;
  let svc: RunningService<NotificationDB>;

  beforeAll(async () => {
    smtp = await startSmtp();
    smtp.refuse.on = true;
    transport = await newTransport('kafka');
    svc = await startTestService(notificationService, { transport, issuer, env: fastEnv(smtp.url) });
  });
  afterAll(async () => {
    await svc?.close();
    await transport?.close();
    await smtp?.close();
  });

  it('when the event is dead-lettered, then neither the dead_letters table nor the dead-letter topic keeps its link', async () => {
    const dlq = await collect(transport, dlqTopic(TOPICS.identity));
    try {
      const resetSecret = `reset-${randomUUID()}`;
      const inviteSecret = `invite-${randomUUID()}`;
      const reset = resetRequested(`someone-${randomUUID().slice(0, 8)}@example.test`, `https://cmc.example.test/reset-password#token=${resetSecret}`);
      const invitation = invitationCreated(`patient-${randomUUID().slice(0, 8)}@example.test`, `https://cmc.example.test/accept-invitation#token=${inviteSecret}`, randomNhsNumber());
      await send(transport, reset, invitation);
      const dead = await waitFor(async () => {
        const rows = await svc.database.db.selectFrom('dead_letters').select(['event_id', 'payload', 'reason']).where('event_id', 'in', [reset.id, invitation.id]).execute();
        return rows.length === 2 ? rows : undefined;
      }, 60_000, 'both events dead-lettered');
      for (const row of dead) {
        expect(row.reason).toMatch(/SMTP: .*451/);
        expect(row.payload).toContain('[redacted]');
      }
      expect(JSON.parse(dead.find((r) => r.event_id === reset.id)!.payload)).toMatchObject({ id: reset.id, data: { resetUrl: '[redacted]', userId: reset.data.userId } });
      expect(JSON.parse(dead.find((r) => r.event_id === invitation.id)!.payload)).toMatchObject({ id: invitation.id, data: { acceptUrl: '[redacted]' } });
      for (const secret of [resetSecret, inviteSecret]) expect(await whereStored(svc, secret)).toEqual([]);

      const onTopic = await waitForMessages(dlq.messages, 2, (m) => m.value.includes(reset.id) || m.value.includes(invitation.id), 60_000);
      for (const m of onTopic) {
        expect(m.value).not.toContain(resetSecret);
        expect(m.value).not.toContain(inviteSecret);
        expect(m.value).toContain('[redacted]');
      }
      expect(smtp.mails).toHaveLength(0);
    } finally {
      await dlq.stop();
    }
  });
});
