import type { FastifyInstance } from 'fastify';
import type { IdentityContext } from '../domain/context';

const publicRoute = { config: { public: true }, logLevel: 'warn' as const };

/** Discovery: the signing keys, and SMART's configuration at the root and at the FHIR base. */
export function wellKnownRoutes(ctx: IdentityContext) {
  return async (app: FastifyInstance): Promise<void> => {
    app.get('/.well-known/jwks.json', { ...publicRoute, schema: { tags: ['discovery'], summary: 'Public keys that verify our tokens', security: [] } }, async (_request, reply) =>
      reply.header('cache-control', 'public, max-age=60').send({ keys: await ctx.keys.publicKeys() }),
    );
    const smart = {
      issuer: ctx.tokens.issuer,
      jwks_uri: `${ctx.config.IDENTITY_PUBLIC_URL}/.well-known/jwks.json`,
      token_endpoint: `${ctx.config.IDENTITY_PUBLIC_URL}/auth/token`,
      token_endpoint_auth_methods_supported: ['private_key_jwt'],
      token_endpoint_auth_signing_alg_values_supported: ['RS384', 'ES384'],
      grant_types_supported: ['client_credentials'],
      scopes_supported: ['system/CarePlan.rs', 'system/Flag.rs', 'system/AllergyIntolerance.rs', 'system/Consent.rs', 'system/Consent.c'],
      capabilities: ['client-confidential-asymmetric', 'permission-v2'],
    };
    for (const path of ['/.well-known/smart-configuration', '/fhir/R4/.well-known/smart-configuration']) {
      app.get(path, { ...publicRoute, schema: { tags: ['discovery'], summary: 'SMART configuration (Backend Services)', security: [] } }, async () => smart);
    }
  };
}
