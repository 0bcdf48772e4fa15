import { OperationOutcomeError } from '@cmc/fhir';
import rateLimit, { type FastifyRateLimitStore } from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';

export interface RateLimits {
  /** Requests a minute per client (the token's subject), or per address without a token. */
  perClientPerMinute: number;
  /** Requests a minute to /auth/ (login, token, password reset) per address: guessing passwords is slow. */
  authPerAddressPerMinute: number;
}

/** A dispatch system asking about one patient at a time peaks at a few a second; 50 a second is room to spare. */
export const DEFAULT_RATE_LIMITS: RateLimits = { perClientPerMinute: 3000, authPerAddressPerMinute: 60 };

/**
 * The caller a request counts against: the subject of its bearer token, read without checking the signature
 * (the gateway checks no tokens; each service does). A forged subject buys only 401s from the service; a
 * caller without a token counts by its address (behind GATEWAY_TRUST_PROXY's proxies, the client's).
 */
export function clientKey(request: FastifyRequest): string {
  const auth = request.headers.authorization;
  const token = typeof auth === 'string' && /^bearer /i.test(auth) ? auth.slice(7).trim() : undefined;
  const payload = token?.split('.')[1];
  if (payload) {
    try {
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { sub?: unknown };
      if (typeof claims.sub === 'string' && claims.sub.length > 0 && claims.sub.length <= 200) return `sub:${claims.sub}`;
    } catch {
      // Not a JWT: counted by address.
    }
  }
  return `ip:${request.ip}`;
}

/** Most callers counted at once; the longest unseen go first (as the plugin's own store, which keeps 5,000). */
const STORE_MAX_KEYS = 20_000;

/**
 * One count per caller for every route. The plugin gives each route a store of its own, so a client would
 * have had a bucket for /fhir/R4, another for /api and another for /.well-known: up to three times its limit
 * (issue #10's security suite found it). The keys say whose count it is (`sub:`, `ip:`, `auth:`), so one map
 * serves every route; fixed windows, as the plugin's store.
 */
class SharedStore implements FastifyRateLimitStore {
  private readonly counts = new Map<string, { current: number; windowStart: number }>();

  incr(key: string, callback: (error: Error | null, result?: { current: number; ttl: number }) => void, timeWindow: number): void {
    const now = Date.now();
    let entry = this.counts.get(key);
    if (!entry || entry.windowStart + timeWindow <= now) entry = { current: 0, windowStart: now };
    entry.current++;
    // Re-inserted, so that the map's order is least recently seen first.
    this.counts.delete(key);
    this.counts.set(key, entry);
    if (this.counts.size > STORE_MAX_KEYS) this.counts.delete(this.counts.keys().next().value as string);
    callback(null, { current: entry.current, ttl: entry.windowStart + timeWindow - now });
  }

  child(): FastifyRateLimitStore {
    return this;
  }
}

/**
 * Per-client rate limits at the gateway (@fastify/rate-limit, in memory: each gateway instance counts on its
 * own, so with N instances behind a balancer a client gets up to N times the limit; a shared store is the
 * plugin's `redis` option). Over the limit: 429 with Retry-After and an OperationOutcome. Routes opt in with
 * `config.rateLimit` (the proxied paths do); health and documents do not.
 */
export async function registerRateLimits(app: FastifyInstance): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    store: SharedStore,
    errorResponseBuilder: (_request, context) =>
      new OperationOutcomeError(429, { code: 'throttled', diagnostics: `too many requests: at most ${context.max} a minute; try again in ${Math.ceil(context.ttl / 1000)} s` }, {
        'retry-after': String(Math.ceil(context.ttl / 1000)),
      }),
  });
}

export const clientRateLimit = (limits: RateLimits) => ({ max: limits.perClientPerMinute, timeWindow: 60_000, keyGenerator: clientKey });
export const authRateLimit = (limits: RateLimits) => ({ max: limits.authPerAddressPerMinute, timeWindow: 60_000, keyGenerator: (r: FastifyRequest) => `auth:${r.ip}` });
