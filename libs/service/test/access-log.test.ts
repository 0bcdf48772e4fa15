import { createDatabase, sql, type Database, type Kysely } from '@cmc/db';
import type { EventsTables } from '@cmc/events';
import { AccessLog } from '@cmc/service';
import { eventsTestDatabase, migrateEventTables, randomNhsNumber, testDatabaseUrl, uniqueName } from '@cmc/test-support';
import Fastify, { type FastifyInstance } from 'fastify';

// The access log's group commit, against the real database: many reads share a commit, yet none is answered
// before its own entry is durable, and a failed write fails every request whose entry was in it.

/** A route that serves "patient data" only after its access entry is recorded. */
function appWith(access: AccessLog<EventsTables>): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get<{ Params: { nhs: string } }>('/read/:nhs', async (request) => {
    await access.record(request, { interaction: 'read', outcome: 'allowed', entities: [{ resourceType: 'CarePlan', nhsNumber: request.params.nhs }] });
    return { requestId: String(request.id), data: 'the plan' };
  });
  return app;
}

describe('the access log (group commit)', () => {
  let database: Database<EventsTables>;

  beforeAll(async () => {
    database = await eventsTestDatabase<EventsTables>('accesslog');
  });
  // Schemas are left to the run's database, dropped as a whole at the end: dropping one while another test file
  // migrates breaks that migration (Kysely's migrator introspects every schema of the database by name).
  afterAll(async () => {
    await database.close();
  });

  it('when 300 reads arrive at once, then their entries share far fewer commits, and each entry is committed before its answer', async () => {
    const access = new AccessLog(database.db, database.schema, 'test');
    const app = appWith(access);
    // Another connection: it sees only what is committed.
    const observer = createDatabase<EventsTables>({ url: testDatabaseUrl(), schema: database.schema, poolMax: 4 });
    try {
      const nhs = Array.from({ length: 300 }, () => randomNhsNumber());
      const notYetCommitted: string[] = [];
      await Promise.all(
        nhs.map(async (n) => {
          const res = await app.inject({ method: 'GET', url: `/read/${n}` });
          expect(res.statusCode).toBe(200);
          const { requestId } = res.json<{ requestId: string }>();
          const row = await observer.db.selectFrom('outbox').select('event_id').where('key', '=', n).where(sql<boolean>`payload::jsonb->>'requestid' = ${requestId}`).executeTakeFirst();
          if (!row) notYetCommitted.push(n);
        }),
      );
      expect(notYetCommitted).toEqual([]);
      const written = await observer.db.selectFrom('outbox').select(sql<number>`count(*)::int`.as('n')).where('type', '=', 'cmc.access.recorded.v1').executeTakeFirstOrThrow();
      expect(written.n).toBe(300);
      expect(access.stats.entries).toBe(300);
      // Natural batching: the first entry goes alone, those arriving meanwhile go together.
      expect(access.stats.batches).toBeLessThan(100);
      process.stderr.write(`[access-log] 300 concurrent reads: ${access.stats.batches} commits\n`);
    } finally {
      await observer.close();
      await app.close();
    }
  });

  it('when the write fails, then every request in that batch fails and none is answered with data; once it can write again, reads are answered', async () => {
    const broken = createDatabase<EventsTables>({ url: testDatabaseUrl(), schema: uniqueName('accesslog_missing') });
    // Its schema holds no outbox: every write fails.
    const access = new AccessLog(broken.db, broken.schema, 'test');
    const app = appWith(access);
    try {
      const responses = await Promise.all(Array.from({ length: 40 }, () => app.inject({ method: 'GET', url: `/read/${randomNhsNumber()}` })));
      expect(responses.map((r) => r.statusCode)).toEqual(responses.map(() => 500));
      expect(responses.filter((r) => r.body.includes('the plan'))).toEqual([]);
      expect(access.stats.entries).toBe(0);

      await migrateEventTables(broken.db as Kysely<unknown>, broken.schema);
      const after = await app.inject({ method: 'GET', url: `/read/${randomNhsNumber()}` });
      expect(after.statusCode).toBe(200);
      expect(access.stats.entries).toBe(1);
    } finally {
      await app.close();
      await broken.close();
    }
  });
});
