import { capabilityStatementOf, FHIR_JSON, type OpenApiDocument } from '@cmc/fhir';
import { createApp, sendOutcome } from '@cmc/http';
import replyFrom from '@fastify/reply-from';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '@cmc/logging';
import { registerDocs } from './docs';
import { serviceDocuments } from './documents';
import { authRateLimit, clientRateLimit, DEFAULT_RATE_LIMITS, registerRateLimits, type RateLimits } from './rate-limit';
import { isForwardablePath, ownerOf, type Upstream } from './routing';

export interface GatewayOptions {
  upstreams: Partial<Record<Upstream, string>>;
  timeoutMs?: number;
  bodyLimit?: number;
  /** Proxies in front of the gateway whose X-Forwarded-For is believed (default: none). */
  trustProxy?: string;
  logger?: Logger | { level?: string } | false;
  /** Per-client rate limits (default: DEFAULT_RATE_LIMITS); false for none. */
  rateLimits?: RateLimits | false;
}

async function upstreamReady(base: string): Promise<boolean> {
  try {
    const res = await fetch(new URL('/health/ready', base), { signal: AbortSignal.timeout(2000) });
    return res.ok;
  } catch {
    return false;
  }
}

export const GATEWAY_VERSION = '0.1.0';

/**
 * The gateway: one base URL. It holds no data and checks no tokens itself (each service does, deny by
 * default); it routes, passes request ids on, bounds time and body size, and turns a missing or failing
 * service into a 503 OperationOutcome rather than a hang.
 */
export async function buildGateway(opts: GatewayOptions): Promise<FastifyInstance> {
  const app = await createApp({
    service: 'gateway',
    description: 'One base URL for every client.',
    ...(opts.bodyLimit ? { bodyLimit: opts.bodyLimit } : {}),
    ...(opts.logger !== undefined ? { logger: opts.logger } : {}),
    trustProxy: opts.trustProxy ?? '',
    readiness: Object.entries(opts.upstreams).map(([name, base]) => ({ name, check: () => upstreamReady(base) })),
  });
  const limits = opts.rateLimits === undefined ? DEFAULT_RATE_LIMITS : opts.rateLimits;
  if (limits) await registerRateLimits(app);
  const timeout = opts.timeoutMs ?? 30_000;
  await app.register(replyFrom, {
    undici: { headersTimeout: timeout, bodyTimeout: timeout, connections: 128, pipelining: 1 },
    retryMethods: [],
    http2: false,
  });

  // Bodies pass through untouched: each service parses and validates its own.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const proxy = (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    if (!isForwardablePath(request.url)) {
      return sendOutcome(reply, 400, [{ code: 'invalid', diagnostics: 'the path has dot segments or encoded separators, which are not allowed' }]);
    }
    const owner = ownerOf(request.url);
    const base = owner ? opts.upstreams[owner] : undefined;
    if (!owner) return sendOutcome(reply, 404, [{ code: 'not-found', diagnostics: `no service serves ${request.method} ${request.url.split('?')[0] ?? ''}` }]);
    if (!base) return sendOutcome(reply, 503, [{ code: 'transient', diagnostics: `the ${owner} service is not available` }]);
    // The raw path, not a URL library's normalisation of it: what was checked is what is forwarded.
    // The body goes on as the bytes that came (reply-from would re-encode a JSON content type itself).
    const body = Buffer.isBuffer(request.body) ? request.body : undefined;
    const contentType = request.headers['content-type'];
    return reply.from(`${new URL(base).origin}${request.url}`, {
      ...(body && contentType ? { body, contentType } : {}),
      rewriteRequestHeaders: (req, headers) => ({
        ...headers,
        'x-request-id': String(req.id),
        // Set, not appended: the client's own X-Forwarded-For is not believed beyond the proxies the gateway
        // trusts (GATEWAY_TRUST_PROXY), and services trust only the gateway. It goes into the audit log.
        'x-forwarded-for': req.ip,
        'x-forwarded-proto': req.protocol,
        'x-forwarded-host': req.host,
      }),
      onError: (rep, { error }) => {
        const timedOut = /timeout/i.test(error.message) || (error as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT';
        request.log.warn({ upstream: owner, err: { message: error.message } }, 'upstream failed');
        void sendOutcome(rep as import('fastify').FastifyReply, timedOut ? 504 : 503, [
          { code: timedOut ? 'timeout' : 'transient', diagnostics: timedOut ? `the ${owner} service did not answer in time` : `the ${owner} service is not available` },
        ]);
      },
    });
  };

  // The services' own documents, asked for at most once a minute: one CapabilityStatement for the platform
  // from what each service's routes say they serve, and the merged OpenAPI document behind /docs.
  const documents = serviceDocuments(opts.upstreams);
  await registerDocs(app, documents, GATEWAY_VERSION);
  app.get('/fhir/R4/metadata', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    const { documents: docs, smart, missing } = await documents();
    if (missing.length > 0) request.log.warn({ missing }, 'CapabilityStatement without the routes of services that did not answer');
    const statement = capabilityStatementOf(
      docs.map((d) => d.document as OpenApiDocument),
      {
        baseUrl: `${request.protocol}://${request.host}/fhir/R4`,
        date: new Date().toISOString(),
        software: { name: 'cmc urgent care plans', version: GATEWAY_VERSION },
        ...(smart ? { smart } : {}),
      },
    );
    return reply.type(`${FHIR_JSON}; charset=utf-8`).header('cache-control', 'no-cache').send(statement);
  });

  for (const prefix of ['/fhir/R4/*', '/auth/*', '/.well-known/*', '/api/*']) {
    const rateLimit = limits ? (prefix === '/auth/*' ? authRateLimit(limits) : clientRateLimit(limits)) : undefined;
    app.route({ method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'], url: prefix, config: { public: true, ...(rateLimit ? { rateLimit } : {}) }, schema: { hide: true }, handler: proxy });
  }
  return app;
}
