import type { ServiceContext, ServiceDefinition } from '@cmc/service';
import { identityConfigSpec, type IdentityConfig } from './config';
import { migrations } from './db/migrations';
import type { IdentityDB } from './db/schema';
import { bootstrapAdmin } from './domain/bootstrap';
import type { IdentityContext } from './domain/context';
import { deviceCheck } from './domain/devices';
import { KeyStore } from './domain/keys';
import { adminRoutes } from './routes/admin';
import { authRoutes } from './routes/auth';
import { deviceRoutes } from './routes/devices';
import { smartRoutes } from './routes/smart';
import { wellKnownRoutes } from './routes/well-known';

const identityOf = (ctx: ServiceContext<IdentityDB>): IdentityContext => ctx.state as IdentityContext;

/** The identity service: organisations, accounts, login, tokens and the keys that sign them. */
export const identityService: ServiceDefinition<IdentityDB> = {
  name: 'identity',
  envPrefix: 'IDENTITY',
  defaultPort: 3001,
  defaultSchema: 'identity',
  description: 'Organisations, users, governance gates, login and tokens, SMART Backend Services, signing keys.',
  configSpec: identityConfigSpec,
  migrations,
  setup: async (ctx) => {
    const config = ctx.config.own as unknown as IdentityConfig;
    const keys = new KeyStore(ctx.database.db, config.IDENTITY_ACCESS_TOKEN_SECONDS + 300, config.IDENTITY_KEY_ACTIVATION_SECONDS);
    await keys.init();
    const identity: IdentityContext = {
      database: ctx.database,
      keys,
      config,
      logger: ctx.logger,
      hashCost: { memoryKiB: config.IDENTITY_ARGON2_MEMORY_KIB, passes: config.IDENTITY_ARGON2_PASSES },
      tokens: {
        issuer: ctx.config.auth.issuer,
        audience: ctx.config.auth.audience,
        accessTokenSeconds: config.IDENTITY_ACCESS_TOKEN_SECONDS,
        refreshTokenHours: config.IDENTITY_REFRESH_TOKEN_HOURS,
      },
    };
    const admin = await bootstrapAdmin(identity);
    if (admin === 'created') ctx.logger.info('bootstrap service-team admin created');
    // Identity checks tokens against its own key store, not against a URL that leads back to itself.
    return { state: identity, jwks: { provider: () => keys.publicKeys(250) } };
  },
  routes: async (app, ctx) => {
    const identity = identityOf(ctx);
    await app.register(wellKnownRoutes(identity));
    await app.register(authRoutes(identity, deviceCheck(identity)));
    await app.register(adminRoutes(identity));
    await app.register(smartRoutes(identity));
    await app.register(deviceRoutes(identity));
  },
};
