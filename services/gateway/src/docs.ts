import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ServiceDocuments } from './documents';
import { platformOpenApi, type MergedOpenApi, type OpenApiSource } from './openapi';

/**
 * Swagger UI's page loads its own scripts and styles (shipped in @fastify/swagger-ui, no CDN) and fetches the
 * document from the same origin; "Try it out" calls the gateway itself. Nothing else is allowed.
 */
const DOCS_CSP = [
  "default-src 'self'",
  "base-uri 'self'",
  "connect-src 'self'",
  "font-src 'self' data:",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "img-src 'self' data:",
  "object-src 'none'",
  "script-src 'self'",
  "script-src-attr 'none'",
  // Swagger UI (React) sets style attributes.
  "style-src 'self' 'unsafe-inline'",
].join('; ');

/**
 * `GET /docs`: Swagger UI over the platform's merged OpenAPI document, and `GET /docs/openapi.json`: that
 * document. Both are public (documentation, no data) and built at run time from the running services'
 * documents, the same cached ones GET /fhir/R4/metadata uses, so they show what the services serve now.
 */
export async function registerDocs(app: FastifyInstance, documents: () => Promise<ServiceDocuments>, version: string): Promise<void> {
  // The last document made, reused while the services' documents (cached, so the same objects) and the
  // address asked for are the same.
  let last: { key: unknown[]; document: MergedOpenApi } | undefined;
  const merged = async (request: FastifyRequest): Promise<MergedOpenApi> => {
    const { documents: docs, missing } = await documents();
    if (missing.length > 0) request.log.warn({ missing }, 'API documentation without the routes of services that did not answer');
    const serverUrl = `${request.protocol}://${request.host}`;
    const key = [serverUrl, ...missing, ...docs.flatMap((d) => [d.name, d.document])];
    if (last && last.key.length === key.length && last.key.every((k, i) => k === key[i])) return last.document;
    const { document } = platformOpenApi(app.swagger() as OpenApiSource, docs, { serverUrl, version, missing });
    last = { key, document };
    return document;
  };

  await app.register(async (scope) => {
    scope.addHook('onRequest', async (_request, reply) => {
      reply.header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer').header('cache-control', 'no-cache');
    });

    // Swagger UI's own `/docs/json` and `/docs/yaml` (what its page loads) give the merged document too:
    // it is made before the handler, which the plugin calls synchronously.
    const made = new WeakMap<FastifyRequest, MergedOpenApi>();
    await scope.register(swaggerUi, {
      routePrefix: '/docs',
      staticCSP: DOCS_CSP,
      theme: { title: 'cmc urgent care plans: API' },
      uiConfig: { deepLinking: true, docExpansion: 'none', displayRequestDuration: true },
      uiHooks: {
        preHandler: (request, _reply, done) => {
          if (!/^\/docs\/(json|yaml)$/.test(request.routeOptions.url ?? '')) return done();
          merged(request).then((document) => {
            made.set(request, document);
            done();
          }, done);
        },
      },
      transformSpecificationClone: false,
      transformSpecification: (_own, request) => made.get(request) ?? {},
    });

    scope.get('/docs/openapi.json', { config: { public: true }, schema: { hide: true } }, async (request, reply) =>
      reply.header('content-security-policy', "default-src 'none'; frame-ancestors 'none'").send(await merged(request)),
    );
  });
}
