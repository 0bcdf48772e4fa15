import { ODS_CODE } from '@cmc/auth';
import { errorResponses } from '@cmc/http';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  CLIENT_ID,
  ClientKeyCache,
  OAuthError,
  createClient,
  findClient,
  issueClientToken,
  listClients,
  updateClient,
  type ClientInput,
  type ClientPatch,
  type TokenRequest,
} from '../domain/clients';
import type { IdentityContext } from '../domain/context';

const SERVICE_TEAM = { allow: { roles: ['service-team'] as const } };
const FORM = 'application/x-www-form-urlencoded';

const jwk = {
  type: 'object',
  required: ['kty', 'kid'],
  additionalProperties: true,
  description: 'A public JSON Web Key (RSA of 2048 bits or more, or EC P-384), with its kid.',
  properties: { kty: { type: 'string', maxLength: 10 }, kid: { type: 'string', minLength: 1, maxLength: 200 }, alg: { type: 'string', maxLength: 20 }, use: { type: 'string', maxLength: 10 } },
} as const;
const jwks = { type: 'object', additionalProperties: false, required: ['keys'], properties: { keys: { type: 'array', minItems: 1, maxItems: 10, items: jwk } } } as const;
const jwksUrl = { type: 'string', format: 'uri', maxLength: 2000, description: 'Where the client publishes its public keys: https (http only for 127.0.0.1 or localhost).' } as const;
const scopes = {
  type: 'array',
  minItems: 1,
  maxItems: 50,
  uniqueItems: true,
  description: 'SMART v2 system scopes, e.g. system/Flag.rs',
  items: { type: 'string', maxLength: 100 },
} as const;
const name = { type: 'string', minLength: 1, maxLength: 200 } as const;

const clientSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    clientId: { type: 'string' },
    name: { type: 'string' },
    organisation: { type: 'string' },
    scopes: { type: 'array', items: { type: 'string' } },
    jwks: { anyOf: [{ type: 'object', additionalProperties: true, properties: { keys: { type: 'array', items: { type: 'object', additionalProperties: true } } } }, { type: 'null' }] },
    jwksUrl: { type: ['string', 'null'] },
    active: { type: 'boolean' },
    createdAt: { type: 'string', format: 'date-time' },
    updatedAt: { type: 'string', format: 'date-time' },
  },
} as const;
const clientParams = { type: 'object', required: ['clientId'], properties: { clientId: { type: 'string', pattern: CLIENT_ID.source } } } as const;

/** The service team registers system clients (SMART Backend Services) and changes them. */
function clientAdminRoutes(ctx: IdentityContext) {
  return async (app: FastifyInstance): Promise<void> => {
    app.post<{ Body: ClientInput }>(
      '/api/clients',
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['clients'],
          summary: 'Register a system client of an organisation: its public keys (or their URL) and SMART system scopes',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'organisation', 'scopes'],
            properties: { clientId: { type: 'string', pattern: CLIENT_ID.source, description: 'Generated when absent.' }, name, organisation: { type: 'string', pattern: ODS_CODE.source }, jwks, jwksUrl, scopes },
          },
          response: { 201: clientSchema, ...errorResponses },
        },
      },
      async (request, reply) => reply.code(201).send(await createClient(ctx, request.body, String(request.id))),
    );

    app.get('/api/clients', { config: SERVICE_TEAM, schema: { tags: ['clients'], summary: 'Every system client', response: { 200: { type: 'array', items: clientSchema }, ...errorResponses } } }, async () =>
      listClients(ctx),
    );

    app.get<{ Params: { clientId: string } }>(
      '/api/clients/:clientId',
      { config: SERVICE_TEAM, schema: { tags: ['clients'], summary: 'One system client', params: clientParams, response: { 200: clientSchema, ...errorResponses } } },
      async (request) => findClient(ctx, request.params.clientId),
    );

    app.patch<{ Params: { clientId: string }; Body: ClientPatch }>(
      '/api/clients/:clientId',
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['clients'],
          summary: 'Change a system client: name, scopes, keys (jwks or jwksUrl, replacing the other), or active',
          params: clientParams,
          body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name, scopes, jwks, jwksUrl, active: { type: 'boolean' } } },
          response: { 200: clientSchema, ...errorResponses },
        },
      },
      async (request) => updateClient(ctx, request.params.clientId, request.body, String(request.id)),
    );
  };
}

const oauthError = {
  type: 'object',
  description: 'An OAuth 2.0 error (RFC 6749 §5.2)',
  properties: { error: { type: 'string' }, error_description: { type: 'string' } },
} as const;

/** A form body: each parameter at most once (RFC 6749 §3.2); unknown ones are left to the route's schema. */
function parseForm(body: string): Record<string, string> {
  const form: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(body)) {
    if (Object.hasOwn(form, key)) throw new OAuthError(400, 'invalid_request', `parameter ${key} is repeated`);
    // defineProperty, so that a parameter named __proto__ is an own (and so unknown) property, not a prototype.
    Object.defineProperty(form, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return form;
}

interface AjvLikeError {
  keyword?: string;
  instancePath?: string;
  message?: string;
  params?: { additionalProperty?: string };
}

/** Every error of the token endpoint as OAuth says: `{error, error_description}`, never an OperationOutcome. */
function oauthErrorHandler(error: FastifyError | OAuthError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const send = (status: number, code: string, description: string) =>
    reply.code(status).headers({ 'cache-control': 'no-store', pragma: 'no-cache' }).type('application/json; charset=utf-8').send({ error: code, error_description: description });
  if (error instanceof OAuthError) return send(error.status, error.error, error.message);
  const fe = error as FastifyError;
  if (fe.validation) {
    const first = (fe.validation as AjvLikeError[])[0];
    const parameter = first?.params?.additionalProperty;
    if (first?.keyword === 'additionalProperties' && parameter !== undefined) return send(400, 'invalid_request', `unknown parameter ${parameter}`);
    return send(400, 'invalid_request', `${first?.instancePath?.replace(/^\//, '') || 'the request'} ${first?.message ?? 'is invalid'}`);
  }
  if (fe.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return send(400, 'invalid_request', `the token request must be ${FORM}`);
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return send(fe.statusCode, 'invalid_request', fe.message);
  request.log.error({ err: error }, 'token request failed');
  return send(500, 'server_error', `internal error; quote request id ${String(request.id)} when reporting it`);
}

/** The token endpoint, with its own body format and error format (encapsulated: the rest keeps FHIR's). */
function tokenEndpoint(ctx: IdentityContext, keyCache: ClientKeyCache) {
  return async (app: FastifyInstance): Promise<void> => {
    app.setErrorHandler(oauthErrorHandler);
    app.addContentTypeParser(FORM, { parseAs: 'string' }, (_request, body, done) => {
      try {
        done(null, parseForm(body as string));
      } catch (e) {
        done(e as Error, undefined);
      }
    });

    app.post<{ Body: TokenRequest }>(
      '/auth/token',
      {
        config: { public: true },
        bodyLimit: 64 * 1024,
        schema: {
          tags: ['smart'],
          summary: 'SMART Backend Services: an access token for a system client (client_credentials with a signed JWT assertion)',
          security: [],
          consumes: [FORM],
          body: {
            type: 'object',
            additionalProperties: false,
            properties: {
              grant_type: { type: 'string', maxLength: 100, description: 'client_credentials' },
              client_assertion_type: { type: 'string', maxLength: 200, description: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer' },
              client_assertion: { type: 'string', maxLength: 8192, description: 'A JWT signed (RS384 or ES384) with a registered key: iss and sub the client_id, aud this endpoint, exp within 5 minutes, a new jti' },
              scope: { type: 'string', minLength: 1, maxLength: 2000, description: 'Space-separated system scopes, each registered for the client; all registered ones when absent' },
              client_id: { type: 'string', maxLength: 100, description: 'Optional; when given, the assertion\'s iss' },
            },
          },
          response: {
            200: {
              type: 'object',
              properties: { access_token: { type: 'string' }, token_type: { type: 'string' }, expires_in: { type: 'integer' }, scope: { type: 'string' } },
            },
            400: { ...oauthError, description: 'invalid_request, unsupported_grant_type, invalid_scope, or invalid_grant (the organisation fails a governance gate)' },
            401: { ...oauthError, description: 'invalid_client: the client or its assertion is not accepted' },
            413: { ...oauthError, description: 'Body too large' },
            500: { ...oauthError, description: 'Internal error; no details are given' },
          },
        },
        // JSON would parse (it is the service's default), but a token request is a form.
        preValidation: async (request) => {
          const type = (request.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
          if (type !== FORM) throw new OAuthError(400, 'invalid_request', `the token request must be ${FORM}`);
        },
      },
      async (request, reply) => {
        const token = await issueClientToken(ctx, keyCache, request.body);
        return reply.headers({ 'cache-control': 'no-store', pragma: 'no-cache' }).send(token);
      },
    );
  };
}

/** SMART Backend Services: the clients' registration (service team) and the token endpoint (public). */
export function smartRoutes(ctx: IdentityContext) {
  const keyCache = new ClientKeyCache();
  return async (app: FastifyInstance): Promise<void> => {
    await app.register(clientAdminRoutes(ctx));
    await app.register(tokenEndpoint(ctx, keyCache));
  };
}
