import swagger from '@fastify/swagger';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { randomUUID } from 'node:crypto';
import { createLogger, type Logger } from '@cmc/logging';
import type { DestinationStream } from 'pino';
import { errorHandler, sendOutcome } from './errors';
import { redactUrl } from './redact';

export interface ReadinessCheck {
  name: string;
  check: () => Promise<boolean>;
}

export interface AppOptions {
  /** Service name, shown in logs, OpenAPI and health answers. */
  service: string;
  version?: string;
  description?: string;
  /** Largest request body in bytes (default 1 MiB). */
  bodyLimit?: number;
  /** The logger (from @cmc/logging), or options to make one, or false for no logs (tests). */
  logger?: Logger | { level?: string; stream?: DestinationStream } | false;
  /** What /health/ready checks, e.g. the database and the event transport. */
  readiness?: ReadinessCheck[];
  /** Ceiling on the time a request may take before the server answers 503 (default 30 s). */
  requestTimeoutMs?: number;
  /**
   * Which proxies' X-Forwarded-* headers to believe (proxy-addr syntax: `loopback`, or comma-separated CIDRs).
   * Default `loopback`: the gateway on the same host. Client addresses go into the audit log, so trust no more.
   */
  trustProxy?: string;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** `loopback,10.0.0.0/8` -> the list proxy-addr takes; empty trusts no proxy at all. */
function trustList(value: string): string[] | false {
  const list = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  return list.length > 0 ? list : false;
}

/** Body validation: strict. No type coercion, no silent removal of unknown properties, every error reported. */
const bodyAjv = new Ajv({ allErrors: true, coerceTypes: false, removeAdditional: false, useDefaults: false, strict: false });
/** Path and query validation: strings coerced to the declared types, as URLs only carry strings. */
const paramAjv = new Ajv({ allErrors: true, coerceTypes: 'array', removeAdditional: false, useDefaults: true, strict: false });
addFormats(bodyAjv);
addFormats(paramAjv);

/**
 * The Fastify instance every service starts from: redacted pino logs, request ids, one error model, body
 * limits, FHIR JSON parsing, health endpoints and OpenAPI. It never listens; `server.ts` does that.
 */
export async function createApp(opts: AppOptions): Promise<FastifyInstance> {
  const logger: Logger | undefined =
    opts.logger === false
      ? undefined
      : opts.logger && 'child' in opts.logger
        ? opts.logger
        : createLogger({ service: opts.service, ...(opts.logger?.level ? { level: opts.logger.level } : {}), ...(opts.logger?.stream ? { stream: opts.logger.stream } : {}) });
  const app = Fastify({
    // The cast keeps the instance typed FastifyInstance<..., FastifyBaseLogger>, as every caller expects.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    ...(logger ? { loggerInstance: logger as FastifyBaseLogger } : { logger: false }),
    bodyLimit: opts.bodyLimit ?? 1024 * 1024,
    requestTimeout: opts.requestTimeoutMs ?? 30_000,
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    return503OnClosing: true,
    trustProxy: trustList(opts.trustProxy ?? 'loopback'),
    routerOptions: { maxParamLength: 200, ignoreTrailingSlash: true },
  });

  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv : paramAjv).compile(schema));
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((request, reply) =>
    sendOutcome(reply, 404, [{ code: 'not-found', diagnostics: `no route for ${request.method} ${redactUrl(request.url.split('?')[0] ?? '')}` }]),
  );

  // JSON only: FHIR's media type and plain JSON, parsed with prototype-poisoning protection; anything else
  // (Fastify would otherwise take text/plain) is a 415.
  app.removeContentTypeParser('text/plain');
  app.removeContentTypeParser('application/json');
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser(['application/json', 'application/fhir+json', 'application/json+fhir'], { parseAs: 'string' }, (request, body, done) => {
    // PostgreSQL cannot store NUL in text, and no field of ours has a use for it: refused before it gets there.
    if (typeof body === 'string' && /\\u0000/i.test(body)) {
      done(Object.assign(new Error('request body contains a NUL character (\\u0000), which no field accepts'), { statusCode: 400, code: 'CMC_NUL_IN_BODY' }), undefined);
      return;
    }
    void parseJson(request, body as string, done);
  });

  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    done();
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: `cmc ${opts.service}`, version: opts.version ?? '0.1.0', description: opts.description ?? '' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  });

  // The service's own OpenAPI document, for the gateway (its CapabilityStatement and merged document) and
  // anyone building a client: a description of the routes, nothing more.
  app.get('/openapi.json', { schema: { hide: true }, config: { public: true }, logLevel: 'warn' }, () => app.swagger());

  const healthSchema = {
    tags: ['health'],
    security: [],
    response: {
      200: { type: 'object', additionalProperties: true, properties: { status: { type: 'string' }, service: { type: 'string' } } },
      503: { type: 'object', additionalProperties: true, properties: { status: { type: 'string' }, service: { type: 'string' } } },
    },
  };
  app.get('/health/live', { schema: { ...healthSchema, summary: 'The process is alive' }, config: { public: true }, logLevel: 'warn' }, () => ({
    status: 'ok',
    service: opts.service,
  }));
  app.get('/health/ready', { schema: { ...healthSchema, summary: 'Ready to serve: database and event transport reachable' }, config: { public: true }, logLevel: 'warn' }, async (_req, reply) => {
    const results = await Promise.all(
      (opts.readiness ?? []).map(async (c) => {
        const ok = await Promise.race([
          c.check().catch(() => false),
          new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 3000).unref()),
        ]);
        return [c.name, ok ? 'up' : 'down'] as const;
      }),
    );
    const checks = Object.fromEntries(results);
    const ok = results.every(([, s]) => s === 'up');
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'unavailable', service: opts.service, checks });
  });

  return app;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** A route anyone may call without a token (health, discovery). Everything else is denied by default. */
    public?: boolean;
  }
}
