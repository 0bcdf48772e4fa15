import { str, url } from '@cmc/config';

/** How services verify tokens: the identity service's JWKS, issuer and audience. */
export const authConfigSpec = {
  AUTH_JWKS_URL: url({
    doc: 'Where the identity service publishes its signing keys (JWKS).',
    default: 'http://127.0.0.1:8080/.well-known/jwks.json',
    protocols: ['http', 'https'],
  }),
  AUTH_ISSUER: str({ doc: 'The `iss` every access token must carry.', default: 'http://127.0.0.1:8080' }),
  AUTH_AUDIENCE: str({ doc: 'The `aud` every access token must carry.', default: 'cmc' }),
} as const;
