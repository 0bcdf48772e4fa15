/** The account lock warning: once per user and last login, from login-succeeded, through email_deliveries. */
import { createDatabase, migrateToLatest, type Database, type Kysely } from '@cmc/db';
import { testDatabaseUrl, uniqueName } from '@cmc/test-support';
import { randomUUID } from 'node:crypto';
import { renderEmail, runLockWarnings, type NotificationDB } from '../src';
import { upsertRecipient } from '../src/db/projections';
import { migrations } from '../src/db/migrations';

const DAY = 86_400_000;
const now = new Date('2027-06-15T10:00:00Z');
const daysAgo = (d: number, from = now) => new Date(from.getTime() - d * DAY).toISOString();
const settings = { inactivityDays: 180, warningDays: 14 };

describe('runLockWarnings', () => {
  let database: Database<NotificationDB>;

  beforeAll(async () => {
    database = createDatabase<NotificationDB>({ url: testDatabaseUrl(), schema: uniqueName('notification'), poolMax: 4 });
    await migrateToLatest(database.db as Kysely<unknown>, database.schema, migrations);
  });
  afterAll(async () => {
    await database?.close();
  });

  const aUserWhoLoggedIn = async (lastLogin: string): Promise<string> => {
    const userId = randomUUID();
    await upsertRecipient(database.db, { userId, role: 'clinician', organisation: 'X1', email: `u-${userId.slice(0, 8)}@example.test` });
    await upsertRecipient(database.db, { userId, role: 'clinician', lastLoginAt: lastLogin });
    return userId;
  };
  const warningsOf = async (userId: string) =>
    database.db.selectFrom('email_deliveries').select(['kind', 'source', 'address', 'status']).where('recipient', '=', userId).execute();

  it('when a user last logged in 170 days ago, then one warning; at 100 days, none; a second run sends nothing more', async () => {
    const stale = await aUserWhoLoggedIn(daysAgo(170));
    const recent = await aUserWhoLoggedIn(daysAgo(100));
    const locked = await aUserWhoLoggedIn(daysAgo(181));
    await runLockWarnings(database.db, { ...settings, now });
    await runLockWarnings(database.db, { ...settings, now: new Date(now.getTime() + DAY) });
    const warnings = await warningsOf(stale);
    expect(warnings.map((w) => [w.kind, w.status])).toEqual([['account-lock-warning', 'pending']]);
    expect(warnings[0]!.source).toMatch(new RegExp(`^account-lock-warning:${stale}:\\d{4}-\\d{2}-\\d{2}$`));
    expect(await warningsOf(recent)).toEqual([]);
    expect(await warningsOf(locked)).toEqual([]);
  });

  it('when the user logs in again and is later inactive again, then a new warning; an older login event changes nothing', async () => {
    const userId = await aUserWhoLoggedIn(daysAgo(170));
    await runLockWarnings(database.db, { ...settings, now });
    await upsertRecipient(database.db, { userId, role: 'clinician', lastLoginAt: daysAgo(1) });
    // A late, older login event does not move the last login back.
    await upsertRecipient(database.db, { userId, role: 'clinician', lastLoginAt: daysAgo(200) });
    await runLockWarnings(database.db, { ...settings, now });
    expect(await warningsOf(userId)).toHaveLength(1);
    await runLockWarnings(database.db, { ...settings, now: new Date(now.getTime() + 169 * DAY) });
    expect(await warningsOf(userId)).toHaveLength(2);
  });

  it('when a user is inactive (deactivated) or has no address, then no warning', async () => {
    const userId = await aUserWhoLoggedIn(daysAgo(172));
    await database.db.updateTable('recipients').set({ active: false }).where('user_id', '=', userId).execute();
    const noEmail = randomUUID();
    await upsertRecipient(database.db, { userId: noEmail, role: 'patient', lastLoginAt: daysAgo(172) });
    await runLockWarnings(database.db, { ...settings, now });
    expect(await warningsOf(userId)).toEqual([]);
    expect(await warningsOf(noEmail)).toEqual([]);
  });

  it('the email says to sign in within the days left, and nothing else', () => {
    const { subject, text } = renderEmail('account-lock-warning', 'https://cmc.example.test/', { daysLeft: 10 });
    expect(subject).toBe('Your Coordinate My Care account will be locked soon');
    expect(text).toContain('Sign in within 10 days to keep your account: https://cmc.example.test/');
  });
});
