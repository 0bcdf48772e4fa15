import { OperationOutcomeError, forbidden, unauthorized } from '@cmc/fhir';
import jwt from '@fastify/jwt';
import type { FastifyContextConfig, FastifyInstance, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { JwksKeys, type JwksSource } from './jwks';
import { principalOf, type CmcClaims, type Principal, type Role } from './principal';

/** Asymmetric algorithms only: no `none`, no HMAC (so a public key can never be used as an HMAC secret). */
export const ALLOWED_ALGORITHMS = ['RS256', 'RS384', 'ES256', 'ES384'] as const;

export interface AuthOptions {
  issuer: string;
  audience: string;
  jwks: JwksSource;
  /** Leeway for exp and nbf, in seconds (default 30). */
  clockToleranceSeconds?: number;
  /**
   * Called before a 401 or 403 of this hook is sent (with `request.principal` set when the token was good),
   * so that the service can record the refused attempt. Its failure is logged; the refusal stands.
   */
  onRefused?: (request: FastifyRequest, refusal: OperationOutcomeError) => Promise<void>;
  /** Least time between two fetches of the key set for an unknown kid (default 30 s). */
  jwksCooldownMs?: number;
}

/** Who may call a route. A route with neither `public` nor `allow` refuses everyone: deny by default. */
export interface AccessRule {
  roles?: readonly Role[];
  /** SMART scopes of which a client needs one, e.g. `system/Consent.c`. */
  scopes?: readonly string[];
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A route anyone may call without a token (health, discovery). Everything else is denied by default. */
    public?: boolean;
    allow?: AccessRule;
    /** Routes that finish a first-login step (change password, accept the policy) take pending tokens too. */
    allowPending?: boolean;
  }
  interface FastifyRequest {
    principal?: Principal;
  }
}

const JWT_ERRORS: Record<string, string> = {
  FST_JWT_NO_AUTHORIZATION_IN_HEADER: 'no bearer token: send Authorization: Bearer <access token>',
  FST_JWT_BAD_REQUEST: 'Authorization header must be of the form Bearer <token>',
  FST_JWT_AUTHORIZATION_TOKEN_EXPIRED: 'token has expired',
  FST_JWT_AUTHORIZATION_TOKEN_UNTRUSTED: 'token is not trusted',
  // @fastify/jwt's code for a token whose signature is missing (not FST_JWT_...).
  FAST_JWT_MISSING_SIGNATURE: 'token is not signed',
  // fast-jwt's own error ("The token will be active at ..."), which @fastify/jwt passes on unwrapped.
  FAST_JWT_INACTIVE: 'token is not yet valid (nbf)',
};

function describeJwtError(e: unknown): string {
  const err = e as { code?: string; message?: string };
  const known = err.code ? JWT_ERRORS[err.code] : undefined;
  if (known) return known;
  const m = err.message ?? '';
  if (/iss/i.test(m)) return 'token has the wrong issuer';
  if (/aud/i.test(m)) return 'token has the wrong audience';
  if (/algorithm/i.test(m)) return 'token algorithm is not allowed';
  if (/signature/i.test(m)) return 'token signature is invalid';
  if (/malformed|invalid/i.test(m)) return 'token is malformed';
  return 'token is invalid';
}

/** The principal of a request that passed the auth hook; throws 401 when there is none. */
export function principal(request: FastifyRequest): Principal {
  if (!request.principal) throw unauthorized('not authenticated');
  return request.principal;
}

function allowed(p: Principal, rule: AccessRule): boolean {
  if (p.kind === 'user') return !!p.role && !!rule.roles?.includes(p.role);
  return !!rule.scopes?.some((s) => p.scopes.has(s));
}

/**
 * Verifies the bearer token of every request against the issuer's published keys and checks the route's
 * access rule. Routes say `config: { public: true }` or `config: { allow: { roles, scopes } }`; a route that
 * says neither refuses everyone. Checks that depend on the data (organisation, patient) stay in the domain.
 */
export const authPlugin = fp(
  async (app: FastifyInstance, opts: AuthOptions) => {
    const keys = new JwksKeys(opts.jwks, opts.jwksCooldownMs !== undefined ? { cooldownMs: opts.jwksCooldownMs } : {});
    await app.register(jwt, {
      decode: { complete: true },
      secret: {
        public: async (_request: FastifyRequest, token: { header: { kid?: string; alg?: string } }) => {
          const { kid, alg } = token.header;
          if (!alg || !(ALLOWED_ALGORITHMS as readonly string[]).includes(alg)) throw unauthorized('token algorithm is not allowed');
          if (!kid) throw unauthorized('token has no key id (kid)');
          const key = await keys.get(kid);
          if (!key) throw unauthorized('token is signed with an unknown key id');
          if (key.alg && key.alg !== alg) throw unauthorized('token algorithm does not match its key');
          return key.pem;
        },
      },
      verify: {
        algorithms: [...ALLOWED_ALGORITHMS],
        allowedIss: opts.issuer,
        allowedAud: opts.audience,
        clockTolerance: (opts.clockToleranceSeconds ?? 30) * 1000,
        requiredClaims: ['exp', 'sub', 'iss', 'aud'],
      },
    } as Parameters<typeof jwt>[1]);

    // Declared up front so that every request object keeps one shape (V8 stays on its fast path).
    app.decorateRequest('principal', undefined);

    app.addHook('onRequest', async (request) => {
      // routeOptions builds a new object at each access: read it once.
      const { config, url } = request.routeOptions;
      if (config.public) return;
      try {
        await authenticate(request, config);
      } catch (refusal) {
        // Refused attempts are recorded too (for routes that exist; a made-up path is not an access).
        if (refusal instanceof OperationOutcomeError && opts.onRefused && url) {
          try {
            await opts.onRefused(request, refusal);
          } catch (e) {
            request.log.error({ err: e }, 'could not record a refused access');
          }
        }
        throw refusal;
      }
    });

    /**
     * Principals of tokens already verified, by the whole token string. A client sends the same token with
     * every request for its lifetime, and an ES256 check costs more than a simple route: the result is kept
     * until the token expires, and at most a minute (so a key withdrawn from the JWKS stops working within a
     * minute). Bounded in size; the oldest entries go first. Only successes are kept.
     */
    const verified = new Map<string, { principal: Principal; until: number }>();
    const VERIFIED_MAX = 10_000;

    async function verify(request: FastifyRequest): Promise<Principal> {
      const header = request.headers.authorization;
      const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : undefined;
      const now = Date.now();
      const hit = token ? verified.get(token) : undefined;
      if (hit && hit.until > now) return hit.principal;
      let claims: CmcClaims & { exp?: unknown };
      try {
        claims = await request.jwtVerify<CmcClaims & { exp?: unknown }>();
      } catch (e) {
        if (e instanceof OperationOutcomeError) throw e;
        throw unauthorized(describeJwtError(e));
      }
      const p = principalOf(claims);
      if (typeof p === 'string') throw unauthorized(p);
      if (token && typeof claims.exp === 'number') {
        if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value as string);
        verified.set(token, { principal: p, until: Math.min(claims.exp * 1000, now + 60_000) });
      }
      return p;
    }

    async function authenticate(request: FastifyRequest, config: FastifyContextConfig): Promise<void> {
      const p = await verify(request);
      request.principal = p;
      if (p.pending && !config.allowPending) {
        throw forbidden(p.pending === 'password' ? 'change your temporary password first (POST /auth/change-password)' : 'accept the acceptable use policy first (POST /auth/accept-aup)');
      }
      const rule = config.allow;
      if (!rule) throw forbidden('this operation is not open to any caller');
      if (!allowed(p, rule)) {
        throw forbidden(p.kind === 'user' ? `role '${p.role ?? 'none'}' may not do this` : 'client lacks a scope this operation needs');
      }
    }
  },
  { name: 'cmc-auth', fastify: '5.x' },
);
