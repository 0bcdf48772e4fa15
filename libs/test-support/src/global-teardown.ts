import pg from 'pg';
import type { TestInfraState } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const state: TestInfraState | undefined = globalThis.__CMC_TEST_INFRA__;
  if (!state) return;
  if (state.adminUrl && state.database && !process.env.CMC_KEEP_TEST_DB) {
    const admin = new pg.Client({ connectionString: state.adminUrl });
    try {
      await admin.connect();
      await admin.query(`drop database if exists ${state.database} with (force)`);
    } catch (e) {
      process.stderr.write(`[test-teardown] could not drop ${state.database}: ${(e as Error).message}\n`);
    } finally {
      await admin.end().catch(() => undefined);
    }
  }
  for (const s of [...state.stops].reverse()) {
    try {
      await s.stop();
    } catch (e) {
      process.stderr.write(`[test-teardown] could not stop ${s.name}: ${(e as Error).message}\n`);
    }
  }
}
