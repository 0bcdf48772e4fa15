import { createDatabase, migrateToLatest } from '@cmc/db';
import { loadServiceConfig } from '@cmc/service';
import { SERVICES } from './platform';

/** `pnpm migrate`: runs every service's migrations against DATABASE_URL (or each <SERVICE>_DATABASE_URL). */
(async () => {
  for (const def of SERVICES) {
    const config = loadServiceConfig(def);
    const database = createDatabase<unknown>({ url: config.databaseUrl, schema: config.schema });
    try {
      const applied = await migrateToLatest(database.db, config.schema, def.migrations);
      process.stdout.write(`${def.name}: ${applied.length ? applied.join(', ') : 'up to date'}\n`);
    } finally {
      await database.close();
    }
  }
})().catch((err: unknown) => {
  process.stderr.write(`migration failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
