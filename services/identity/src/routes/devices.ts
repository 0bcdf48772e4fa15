import { ODS_CODE, type Jwk } from '@cmc/auth';
import { errorResponses } from '@cmc/http';
import type { FastifyInstance } from 'fastify';
import type { IdentityContext } from '../domain/context';
import { enrolDevice, listDevices, registerDevice, reissueEnrolmentCode, renewDevice, revokeDevice } from '../domain/devices';

const SERVICE_TEAM = { allow: { roles: ['service-team'] as const } };
const str = (max: number) => ({ type: 'string', minLength: 1, maxLength: max }) as const;
const closed = (required: string[], properties: Record<string, unknown>) => ({ type: 'object', additionalProperties: false, required, properties }) as const;
const nullableDateTime = { type: ['string', 'null'], format: 'date-time' } as const;

const publicJwk = {
  type: 'object',
  required: ['kty'],
  additionalProperties: true,
  description: 'The device\'s public key as a JWK: EC P-256 or P-384, or RSA of 2048 bits or more; never the private key.',
  properties: { kty: { type: 'string', maxLength: 10 } },
} as const;

const deviceSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    id: { type: 'string', format: 'uuid' },
    label: { type: 'string' },
    organisation: { type: 'string' },
    status: { type: 'string', enum: ['awaiting-enrolment', 'enrolled', 'expired', 'revoked'] },
    enrolmentExpiresAt: nullableDateTime,
    enrolledAt: nullableDateTime,
    credentialExpiresAt: nullableDateTime,
    revokedAt: nullableDateTime,
    createdAt: { type: 'string', format: 'date-time' },
  },
} as const;

const enrolmentSchema = {
  type: 'object',
  description: 'The enrolment code is a one-time secret, valid 24 hours: give it to the organisation by a safe route. It is never shown again.',
  properties: { id: { type: 'string', format: 'uuid' }, label: { type: 'string' }, enrolmentCode: { type: 'string' }, enrolmentExpiresAt: { type: 'string', format: 'date-time' } },
} as const;

const credentialSchema = {
  type: 'object',
  properties: { deviceId: { type: 'string', format: 'uuid' }, credentialExpiresAt: { type: 'string', format: 'date-time' } },
} as const;

const odsParams = { type: 'object', required: ['ods'], properties: { ods: { type: 'string', pattern: ODS_CODE.source } } } as const;
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;

/** Registered devices of organisations outside the secure network: the service team's side, and the device's. */
export function deviceRoutes(ctx: IdentityContext) {
  return async (app: FastifyInstance): Promise<void> => {
    app.post<{ Params: { ods: string }; Body: { label: string } }>(
      '/api/organisations/:ods/devices',
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['devices'],
          summary: 'Register a device of an organisation; the answer holds its one-time enrolment code (24 hours)',
          params: odsParams,
          body: closed(['label'], { label: str(100) }),
          response: { 201: enrolmentSchema, ...errorResponses },
        },
      },
      async (request, reply) => reply.code(201).send(await registerDevice(ctx, request.params.ods, request.body.label)),
    );

    app.get<{ Params: { ods: string } }>(
      '/api/organisations/:ods/devices',
      { config: SERVICE_TEAM, schema: { tags: ['devices'], summary: 'An organisation\'s devices (no secrets)', params: odsParams, response: { 200: { type: 'array', items: deviceSchema }, ...errorResponses } } },
      async (request) => listDevices(ctx, request.params.ods),
    );

    app.post<{ Params: { id: string } }>(
      '/api/devices/:id/revoke',
      { config: SERVICE_TEAM, schema: { tags: ['devices'], summary: 'Revoke a device at once: no more logins from it, and its current logins end', params: idParams, response: { 200: deviceSchema, ...errorResponses } } },
      async (request) => revokeDevice(ctx, request.params.id),
    );

    app.post<{ Params: { id: string } }>(
      '/api/devices/:id/enrolment-code',
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['devices'],
          summary: 'A new one-time enrolment code for a device that is not revoked (to enrol it again after its credential expired)',
          params: idParams,
          response: { 201: enrolmentSchema, ...errorResponses },
        },
      },
      async (request, reply) => reply.code(201).send(await reissueEnrolmentCode(ctx, request.params.id)),
    );

    app.post<{ Body: { enrolmentCode: string; publicJwk: Jwk } }>(
      '/auth/devices/enrol',
      {
        config: { public: true },
        schema: {
          tags: ['devices'],
          summary: 'Enrol a device\'s public key with its one-time enrolment code; the credential lasts 9 months',
          security: [],
          body: closed(['enrolmentCode', 'publicJwk'], { enrolmentCode: str(200), publicJwk }),
          response: { 200: credentialSchema, ...errorResponses },
        },
      },
      async (request) => enrolDevice(ctx, request.body.enrolmentCode, request.body.publicJwk),
    );

    app.post<{ Body: { deviceAssertion: string; newPublicJwk?: Jwk } }>(
      '/auth/devices/renew',
      {
        config: { public: true },
        schema: {
          tags: ['devices'],
          summary: 'Renew a device\'s credential before it expires (9 more months), with a device assertion for this endpoint; optionally a new key',
          security: [],
          body: closed(['deviceAssertion'], { deviceAssertion: str(8192), newPublicJwk: publicJwk }),
          response: { 200: credentialSchema, ...errorResponses },
        },
      },
      async (request) => renewDevice(ctx, request.body.deviceAssertion, request.body.newPublicJwk),
    );
  };
}
