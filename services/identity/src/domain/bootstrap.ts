import { publish } from '@cmc/events';
import { randomUUID } from 'node:crypto';
import { SERVICE_SOURCE, type IdentityContext } from './context';
import { normaliseEmail } from './login';
import { hashPassword, passwordProblems } from './passwords';
import { newUserRow } from './accounts';

/**
 * The first service-team admin, from CMC_BOOTSTRAP_ADMIN_EMAIL and CMC_BOOTSTRAP_ADMIN_PASSWORD (as
 * Keycloak's bootstrap admin): made only while no service-team account exists, with the service team's
 * organisation. Without both settings no admin exists. A password that breaks the rules stops the start.
 */
export async function bootstrapAdmin(ctx: IdentityContext): Promise<'created' | 'exists' | 'not-configured'> {
  const email = ctx.config.CMC_BOOTSTRAP_ADMIN_EMAIL;
  const password = ctx.config.CMC_BOOTSTRAP_ADMIN_PASSWORD;
  if (!email || !password) return 'not-configured';
  const problems = passwordProblems(password);
  if (problems.length > 0) throw new Error(`CMC_BOOTSTRAP_ADMIN_PASSWORD is not acceptable: ${problems.join('; ')}`);
  const hash = await hashPassword(password, ctx.hashCost);
  return ctx.database.db.transaction().execute(async (trx) => {
    // One instance at a time decides (several may start together).
    await trx.selectFrom('signing_keys').select('kid').forUpdate().execute();
    const admin = await trx.selectFrom('users').select('id').where('role', '=', 'service-team').executeTakeFirst();
    if (admin) return 'exists';
    const today = new Date().toISOString().slice(0, 10);
    const ods = ctx.config.CMC_SERVICE_TEAM_ODS;
    let org = await trx.selectFrom('organisations').select(['id', 'ods_code']).where('ods_code', '=', ods).executeTakeFirst();
    if (!org) {
      org = await trx
        .insertInto('organisations')
        .values({ id: randomUUID(), ods_code: ods, name: 'CMC service team', type: 'service-team', isa_signed_on: today, dspt_status: 'standards-exceeded', dspt_assessed_on: today, outside_secure_network: false, updated_at: new Date() })
        .returning(['id', 'ods_code'])
        .executeTakeFirstOrThrow();
      await publish(trx, ctx.database.schema, { type: 'cmc.identity.organisation-changed.v1', source: SERVICE_SOURCE, key: ods, data: { odsCode: ods, change: 'created', organisationType: 'service-team', name: 'CMC service team' } });
    }
    const { id } = await trx
      .insertInto('users')
      .values(
        newUserRow({
          email: normaliseEmail(email),
          name: 'Bootstrap administrator',
          organisation_id: org.id,
          role: 'service-team',
          trained_on: today,
          password_hash: hash,
        }),
      )
      .returning('id')
      .executeTakeFirstOrThrow();
    await publish(trx, ctx.database.schema, { type: 'cmc.identity.user-created.v1', source: SERVICE_SOURCE, key: id, data: { userId: id, role: 'service-team', organisation: org.ods_code, createdBy: 'bootstrap', email: normaliseEmail(email) } });
    return 'created';
  });
}
