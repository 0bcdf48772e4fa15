/**
 * The server side of the auth-overhead benchmark, run in a process of its own so that the load generator
 * does not share its event loop: the same handler behind an open route and a protected one.
 */
import { authPlugin, type Jwk } from '@cmc/auth';
import { createApp } from '@cmc/http';
import { createSigner } from 'fast-jwt';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

(async () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomUUID();
  const jwk: Jwk = { ...(publicKey.export({ format: 'jwk' }) as Jwk), kid, alg: 'ES256', use: 'sig' };
  const app = await createApp({ service: 'bench', logger: false });
  await app.register(authPlugin, { issuer: 'https://bench', audience: 'cmc', jwks: { keys: [jwk] } });
  const handler = async () => ({ resourceType: 'Flag', status: 'active', code: { text: 'urgent care plan' } });
  app.get('/open', { config: { public: true } }, handler);
  app.get('/protected', { config: { allow: { roles: ['urgent-care'] } } }, handler);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  const now = Math.floor(Date.now() / 1000);
  const sign = createSigner({ key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'ES256', kid });
  const token = sign({ iss: 'https://bench', aud: 'cmc', sub: 'bench-user', iat: now, exp: now + 3600, cmc_kind: 'user', cmc_role: 'urgent-care', cmc_org: 'RRU' });
  process.stdout.write(`${JSON.stringify({ url, token })}\n`);
})().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
