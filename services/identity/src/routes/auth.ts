import { principal, type Role } from '@cmc/auth';
import { errorResponses } from '@cmc/http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { acceptInvitation, acceptPolicy, changePassword, completePasswordReset, requestPasswordReset } from '../domain/accounts';
import type { IdentityContext } from '../domain/context';
import { login, logout, refresh, type DeviceCheck } from '../domain/login';

const str = (max: number, min = 1) => ({ type: 'string', minLength: min, maxLength: max }) as const;
const closed = (required: string[], properties: Record<string, unknown>) => ({ type: 'object', additionalProperties: false, required, properties }) as const;

const tokenPair = {
  type: 'object',
  description: 'An access token (a JWT for the Authorization header) and a single-use refresh token.',
  properties: {
    access_token: { type: 'string' },
    token_type: { type: 'string' },
    expires_in: { type: 'integer' },
    refresh_token: { type: 'string' },
    pending: { type: 'string', enum: ['password', 'aup'], description: 'A first-login step still to do; until then the token opens nothing else.' },
  },
} as const;

const EVERYONE: Role[] = ['clinician', 'administrator', 'urgent-care', 'service-team', 'patient', 'proxy'];

const meta = (request: FastifyRequest) => ({ requestId: String(request.id), clientAddress: request.ip });

/** People's login: passwords, sessions, first-login steps, reset links and invitations. */
export function authRoutes(ctx: IdentityContext, checkDevice: DeviceCheck) {
  return async (app: FastifyInstance): Promise<void> => {
    app.post<{ Body: { email: string; password: string; deviceAssertion?: string } }>(
      '/auth/login',
      {
        config: { public: true },
        schema: {
          tags: ['auth'],
          summary: 'Log in with email and password (and, from an organisation outside the secure network, a device assertion)',
          security: [],
          body: closed(['email', 'password'], { email: str(254), password: str(256), deviceAssertion: str(8192) }),
          response: { 200: tokenPair, ...errorResponses },
        },
      },
      async (request) => login(ctx, request.body, meta(request), checkDevice),
    );

    app.post<{ Body: { refreshToken: string } }>(
      '/auth/refresh',
      {
        config: { public: true },
        schema: {
          tags: ['auth'],
          summary: 'Exchange a refresh token (single use) for a new pair; a reused one ends the whole login',
          security: [],
          body: closed(['refreshToken'], { refreshToken: str(200) }),
          response: { 200: tokenPair, ...errorResponses },
        },
      },
      async (request) => refresh(ctx, request.body.refreshToken, meta(request)),
    );

    app.post<{ Body: { refreshToken: string } }>(
      '/auth/logout',
      {
        config: { public: true },
        schema: { tags: ['auth'], summary: 'End the login this refresh token belongs to', security: [], body: closed(['refreshToken'], { refreshToken: str(200) }), response: { 204: { type: 'null' }, ...errorResponses } },
      },
      async (request, reply) => {
        await logout(ctx, request.body.refreshToken);
        return reply.code(204).send();
      },
    );

    app.post<{ Body: { currentPassword: string; newPassword: string } }>(
      '/auth/change-password',
      {
        config: { allow: { roles: EVERYONE }, allowPending: true },
        schema: {
          tags: ['auth'],
          summary: 'Change one\'s own password (required first for a temporary one); other sessions end',
          body: closed(['currentPassword', 'newPassword'], { currentPassword: str(256), newPassword: str(256) }),
          response: { 200: tokenPair, ...errorResponses },
        },
      },
      async (request) => changePassword(ctx, principal(request), request.body.currentPassword, request.body.newPassword, meta(request)),
    );

    app.post<{ Body: { version: string } }>(
      '/auth/accept-aup',
      {
        config: { allow: { roles: EVERYONE }, allowPending: true },
        schema: {
          tags: ['auth'],
          summary: 'Accept the acceptable use policy (its current version); the tokens returned open patient data',
          body: closed(['version'], { version: str(50) }),
          response: { 200: tokenPair, ...errorResponses },
        },
      },
      async (request) => acceptPolicy(ctx, principal(request), request.body.version, String(request.id)),
    );

    app.post<{ Body: { email: string } }>(
      '/auth/password-reset',
      {
        config: { public: true },
        schema: {
          tags: ['auth'],
          summary: 'Ask for a password reset link (sent by email; the answer is the same whether or not the email has an account)',
          security: [],
          body: closed(['email'], { email: str(254) }),
          response: { 202: { type: 'null' }, ...errorResponses },
        },
      },
      async (request, reply) => {
        // Answered before the work is done, so that the time taken says nothing about whether the email has
        // an account. The link is made (and its event written) just after; a failure is logged.
        const { email } = request.body;
        const requestId = String(request.id);
        setImmediate(() => {
          requestPasswordReset(ctx, email, requestId).catch((err: unknown) => request.log.error({ err }, 'password reset request failed'));
        });
        return reply.code(202).send();
      },
    );

    app.post<{ Body: { token: string; newPassword: string } }>(
      '/auth/password-reset/complete',
      {
        config: { public: true },
        schema: { tags: ['auth'], summary: 'Set a new password with a reset link\'s token', security: [], body: closed(['token', 'newPassword'], { token: str(200), newPassword: str(256) }), response: { 204: { type: 'null' }, ...errorResponses } },
      },
      async (request, reply) => {
        await completePasswordReset(ctx, request.body.token, request.body.newPassword);
        return reply.code(204).send();
      },
    );

    app.post<{ Body: { token: string; password: string } }>(
      '/auth/invitations/accept',
      {
        config: { public: true },
        schema: { tags: ['auth'], summary: 'Accept an invitation (patient or proxy viewer) by choosing a password', security: [], body: closed(['token', 'password'], { token: str(200), password: str(256) }), response: { 204: { type: 'null' }, ...errorResponses } },
      },
      async (request, reply) => {
        await acceptInvitation(ctx, request.body.token, request.body.password);
        return reply.code(204).send();
      },
    );
  };
}
