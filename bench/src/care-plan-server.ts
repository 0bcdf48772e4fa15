/**
 * The server side of the care-plan benchmark, run in a process of its own so that the load generator does not
 * share its event loop: the care-plan service on DATABASE_URL, in a schema of this run's own, over the SQL
 * transport, trusting a key pair made at start. It grants consent to BENCH_PATIENTS patients through real
 * cmc.consent.granted.v1 events and waits for the projection, then prints one line of JSON (url, tokens, NHS
 * numbers). Afterwards it answers lines on stdin: `count` prints the access records in the outbox by
 * interaction and outcome (e.g. `{"read allowed": 1234}`); `close` stops the service, drops the run's schemas and exits.
 */
import { activeConsentOf } from '@cmc/care-plan-service';
import { makeEvent } from '@cmc/contracts';
import { createDatabase, sql } from '@cmc/db';
import { toMessage } from '@cmc/events';
import { TestIssuer, randomNhsNumber, waitFor } from '@cmc/test-support';
import { startBenchCarePlan } from './server-process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';

const TOKEN_LIFETIME_S = 4 * 3600;

(async () => {
  const databaseUrl = process.env.DATABASE_URL;
  if (!databaseUrl) throw new Error('DATABASE_URL is not set (e.g. postgres://postgres@127.0.0.1:5432/postgres)');
  const patients = Number(process.env.BENCH_PATIENTS ?? 200);
  const schema = `careplan_bench_${randomBytes(4).toString('hex')}`;
  const busSchema = `bus_${schema}`;
  const issuer = new TestIssuer();
  const token = (claims: { role: string; org: string }) => issuer.token(claims, { exp: Math.floor(Date.now() / 1000) + TOKEN_LIFETIME_S });

  const { svc, transport } = await startBenchCarePlan(databaseUrl, schema, busSchema, issuer);
  const url = await svc.listen();

  // Consent, as the consent service would announce it: one event per patient, then wait for the projection.
  const nhsNumbers = Array.from({ length: patients }, () => randomNhsNumber());
  const consentIds = new Map(nhsNumbers.map((nhs) => [nhs, randomUUID()]));
  const messages = nhsNumbers.map((nhsNumber) => {
    const consentId = consentIds.get(nhsNumber) ?? '';
    const ev = makeEvent({
      type: 'cmc.consent.granted.v1',
      source: '/cmc/consent',
      key: nhsNumber,
      data: { consentId, versionId: '1', nhsNumber, status: 'active', dateTime: new Date(Date.now() - 60_000).toISOString(), secondaryUse: 'permit', basisCode: '882921000000109' },
    });
    return toMessage({ event_id: ev.id, topic: 'cmc.consent.v1', key: nhsNumber, type: ev.type, payload: JSON.stringify(ev) });
  });
  await transport.publish(messages);
  for (const nhs of nhsNumbers) {
    await waitFor(async () => (await activeConsentOf(svc.database.db, nhs))?.consent_id === consentIds.get(nhs) || undefined, 60_000, `consent of ${nhs} projected`);
  }

  const write = (value: unknown) => process.stdout.write(`${JSON.stringify(value)}\n`);
  write({
    url,
    schema,
    nhsNumbers,
    tokens: { urgentCare: token({ role: 'urgent-care', org: 'RRU' }), clinician: token({ role: 'clinician', org: 'A11111' }) },
  });

  const close = async () => {
    await svc.close();
    await transport.close();
    const admin = createDatabase<unknown>({ url: databaseUrl, schema: 'public', poolMax: 1, applicationName: 'cmc-bench' });
    try {
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(admin.db);
      await sql`drop schema if exists ${sql.id(busSchema)} cascade`.execute(admin.db);
    } finally {
      await admin.close();
    }
  };

  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'count') {
      const { rows } = await sql<{ kind: string; n: string }>`
        select (payload::jsonb -> 'data' ->> 'interaction') || ' ' || (payload::jsonb -> 'data' ->> 'outcome') as kind, count(*) as n
        from outbox where type = 'cmc.access.recorded.v1' group by 1`.execute(svc.database.db);
      write(Object.fromEntries(rows.map((r) => [r.kind, Number(r.n)])));
    } else if (line === 'close') {
      await close();
      write({ closed: true });
      process.exit(0);
    }
  }
  await close();
})().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
