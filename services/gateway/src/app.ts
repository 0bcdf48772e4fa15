import { capabilityStatementOf, FHIR_JSON, type OpenApiDocument, type SmartConfiguration } from '@cmc/fhir';
import { createApp, sendOutcome } from '@cmc/http';
import replyFrom from '@fastify/reply-from';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '@cmc/logging';
import { isForwardablePath, ownerOf, type Upstream } from './routing';

export interface GatewayOptions {
  upstreams: Partial<Record<Upstream, string>>;
  timeoutMs?: number;
  bodyLimit?: number;
  /** Proxies in front of the gateway whose X-Forwarded-For is believed (default: none). */
  trustProxy?: string;
  logger?: Logger | { level?: string } | false;
}

async function upstreamReady(base: string): Promise<boolean> {
  try {
    const res = await fetch(new URL('/health/ready', base), { signal: AbortSignal.timeout(2000) });
    return res.ok;
  } catch {
    return false;
  }
}

/** How long the services' documents are reused for the CapabilityStatement before they are asked again. */
const DOCUMENT_TTL_MS = 60_000;
const GATEWAY_VERSION = '0.1.0';

async function fetchJson<T>(url: URL): Promise<T | undefined> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The services' OpenAPI documents and identity's SMART configuration, asked for at most once a minute; a
 * service that does not answer keeps its last document (its routes have not gone away because it restarts).
 */
function serviceDocuments(upstreams: Partial<Record<Upstream, string>>) {
  const cache = new Map<string, { value: unknown; at: number }>();
  const get = async <T>(key: string, url: URL): Promise<T | undefined> => {
    const hit = cache.get(key);
    if (hit && Date.now() - hit.at < DOCUMENT_TTL_MS) return hit.value as T;
    const value = await fetchJson<T>(url);
    if (value !== undefined) cache.set(key, { value, at: Date.now() });
    return value ?? (hit?.value as T | undefined);
  };
  return async (): Promise<{ documents: OpenApiDocument[]; smart: SmartConfiguration | undefined; missing: string[] }> => {
    const entries = Object.entries(upstreams).filter(([, base]) => base) as [Upstream, string][];
    const found = await Promise.all(entries.map(async ([name, base]) => [name, await get<OpenApiDocument>(name, new URL('/openapi.json', base))] as const));
    const smart = upstreams.identity ? await get<SmartConfiguration>('smart', new URL('/.well-known/smart-configuration', upstreams.identity)) : undefined;
    return {
      documents: found.flatMap(([, doc]) => (doc ? [doc] : [])),
      smart,
      missing: found.filter(([, doc]) => !doc).map(([name]) => name),
    };
  };
}

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

  // One CapabilityStatement for the platform, from what each service's routes say they serve.
  const documents = serviceDocuments(opts.upstreams);
  app.get('/fhir/R4/metadata', { config: { public: true }, schema: { hide: true } }, async (request, reply) => {
    const { documents: docs, smart, missing } = await documents();
    if (missing.length > 0) request.log.warn({ missing }, 'CapabilityStatement without the routes of services that did not answer');
    const statement = capabilityStatementOf(docs, {
      baseUrl: `${request.protocol}://${request.host}/fhir/R4`,
      date: new Date().toISOString(),
      software: { name: 'cmc urgent care plans', version: GATEWAY_VERSION },
      ...(smart ? { smart } : {}),
    });
    return reply.type(`${FHIR_JSON}; charset=utf-8`).header('cache-control', 'no-cache').send(statement);
  });

  for (const prefix of ['/fhir/R4/*', '/auth/*', '/.well-known/*', '/api/*']) {
    app.route({ method: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'], url: prefix, config: { public: true }, schema: { hide: true }, handler: proxy });
  }
  return app;
}
