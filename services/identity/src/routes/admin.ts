import { ODS_CODE, principal } from '@cmc/auth';
import { isUuid, nhsNumberProblem, notFound, OperationOutcomeError } from '@cmc/fhir';
import { errorResponses } from '@cmc/http';
import type { FastifyInstance } from 'fastify';
import { DSPT_STATUSES, ORGANISATION_TYPES, STAFF_ROLES } from '../db/schema';
import {
  createOrganisation,
  createStaff,
  deactivate,
  findUser,
  invite,
  organisationView,
  setTemporaryPassword,
  unlock,
  updateOrganisation,
  updateStaff,
  userView,
  type InvitationInput,
  type OrganisationInput,
  type StaffInput,
} from '../domain/accounts';
import type { IdentityContext } from '../domain/context';

const SERVICE_TEAM = { allow: { roles: ['service-team'] as const } };
const date = { type: 'string', format: 'date' } as const;
const nullableDate = { anyOf: [date, { type: 'null' }] } as const;
const ods = { type: 'string', pattern: ODS_CODE.source } as const;
const str = (max: number) => ({ type: 'string', minLength: 1, maxLength: max }) as const;
const registration = {
  type: 'object',
  additionalProperties: false,
  required: ['body', 'number'],
  properties: { body: { enum: ['GMC', 'NMC', 'HCPC'] }, number: { type: 'string', pattern: '^[A-Za-z0-9]{1,20}$' } },
} as const;

const organisationProps = {
  name: str(200),
  type: { enum: ORGANISATION_TYPES },
  isaSignedOn: nullableDate,
  dsptStatus: { enum: DSPT_STATUSES },
  dsptAssessedOn: nullableDate,
  outsideSecureNetwork: { type: 'boolean' },
} as const;

const organisationSchema = { type: 'object', additionalProperties: true, properties: { odsCode: { type: 'string' }, ...organisationProps } } as const;
const userSchema = { type: 'object', additionalProperties: true, properties: { id: { type: 'string' }, email: { type: 'string' }, role: { type: 'string' } } } as const;
const idParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', maxLength: 64 } } } as const;
const odsParams = { type: 'object', required: ['ods'], properties: { ods } } as const;

function assertUserId(id: string): void {
  if (!isUuid(id)) throw notFound(`user ${id} is not known`);
}

/** The service team's administration of organisations and accounts, and clinicians' invitations. */
export function adminRoutes(ctx: IdentityContext) {
  return async (app: FastifyInstance): Promise<void> => {
    const { db } = ctx.database;

    app.post<{ Body: OrganisationInput }>(
      '/api/organisations',
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['organisations'],
          summary: 'Register an organisation with its governance details',
          body: { type: 'object', additionalProperties: false, required: ['odsCode', 'name', 'type', 'dsptStatus'], properties: { odsCode: ods, ...organisationProps } },
          response: { 201: organisationSchema, ...errorResponses },
        },
      },
      async (request, reply) => reply.code(201).send(await createOrganisation(ctx, request.body, String(request.id))),
    );

    app.get('/api/organisations', { config: SERVICE_TEAM, schema: { tags: ['organisations'], summary: 'Every organisation', response: { 200: { type: 'array', items: organisationSchema }, ...errorResponses } } }, async () =>
      (await db.selectFrom('organisations').selectAll().orderBy('ods_code').execute()).map(organisationView),
    );

    app.get<{ Params: { ods: string } }>(
      '/api/organisations/:ods',
      { config: SERVICE_TEAM, schema: { tags: ['organisations'], summary: 'One organisation', params: odsParams, response: { 200: organisationSchema, ...errorResponses } } },
      async (request) => {
        const row = await db.selectFrom('organisations').selectAll().where('ods_code', '=', request.params.ods).executeTakeFirst();
        if (!row) throw notFound(`organisation ${request.params.ods} is not registered`);
        return organisationView(row);
      },
    );

    app.patch<{ Params: { ods: string }; Body: Partial<Omit<OrganisationInput, 'odsCode'>> }>(
      '/api/organisations/:ods',
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['organisations'],
          summary: 'Change an organisation\'s details (e.g. a signed agreement, a new toolkit assessment)',
          params: odsParams,
          body: { type: 'object', additionalProperties: false, minProperties: 1, properties: organisationProps },
          response: { 200: organisationSchema, ...errorResponses },
        },
      },
      async (request) => updateOrganisation(ctx, request.params.ods, request.body, String(request.id)),
    );

    app.post<{ Body: StaffInput }>(
      '/api/users',
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['users'],
          summary: 'Create a member of staff with a temporary password (to be changed at first login)',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['email', 'name', 'organisation', 'role', 'temporaryPassword'],
            properties: { email: { type: 'string', format: 'email', maxLength: 254 }, name: str(200), organisation: ods, role: { enum: STAFF_ROLES }, registration, trainedOn: nullableDate, temporaryPassword: str(256) },
          },
          response: { 201: userSchema, ...errorResponses },
        },
      },
      async (request, reply) => reply.code(201).send(await createStaff(ctx, request.body, principal(request), String(request.id))),
    );

    app.get<{ Querystring: { organisation?: string } }>(
      '/api/users',
      {
        config: SERVICE_TEAM,
        schema: { tags: ['users'], summary: 'Accounts, optionally of one organisation', querystring: { type: 'object', additionalProperties: false, properties: { organisation: ods } }, response: { 200: { type: 'array', items: userSchema }, ...errorResponses } },
      },
      async (request) => {
        let q = db.selectFrom('users').leftJoin('organisations', 'organisations.id', 'users.organisation_id').selectAll('users').select('organisations.ods_code as org_ods');
        if (request.query.organisation) q = q.where('organisations.ods_code', '=', request.query.organisation);
        const rows = await q.orderBy('users.email').limit(1000).execute();
        return rows.map((r) => ({ ...userView(r, undefined), organisation: r.org_ods }));
      },
    );

    app.get<{ Params: { id: string } }>('/api/users/:id', { config: SERVICE_TEAM, schema: { tags: ['users'], summary: 'One account', params: idParams, response: { 200: userSchema, ...errorResponses } } }, async (request) => {
      assertUserId(request.params.id);
      return findUser(ctx, request.params.id);
    });

    app.patch<{ Params: { id: string }; Body: { name?: string; trainedOn?: string | null; registration?: { body: string; number: string } | null } }>(
      '/api/users/:id',
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['users'],
          summary: 'Record training, correct a name or a registration',
          params: idParams,
          body: { type: 'object', additionalProperties: false, minProperties: 1, properties: { name: str(200), trainedOn: nullableDate, registration: { anyOf: [registration, { type: 'null' }] } } },
          response: { 200: userSchema, ...errorResponses },
        },
      },
      async (request) => {
        assertUserId(request.params.id);
        return updateStaff(ctx, request.params.id, request.body);
      },
    );

    const action = (path: string, summary: string, run: (id: string, request: import('fastify').FastifyRequest) => Promise<unknown>) =>
      app.post<{ Params: { id: string } }>(path, { config: SERVICE_TEAM, schema: { tags: ['users'], summary, params: idParams, response: { 200: userSchema, ...errorResponses } } }, async (request) => {
        assertUserId(request.params.id);
        return run(request.params.id, request);
      });
    action('/api/users/:id/deactivate', 'Deactivate an account at once (the person left); every session ends', (id, r) => deactivate(ctx, id, principal(r), String(r.id)));
    action('/api/users/:id/unlock', 'Unlock an account locked for inactivity or failed logins', (id, r) => unlock(ctx, id, principal(r), String(r.id)));

    app.post<{ Params: { id: string }; Body: { temporaryPassword: string } }>(
      '/api/users/:id/password',
      {
        config: SERVICE_TEAM,
        schema: { tags: ['users'], summary: 'Set a temporary password (sessions end; it must be changed at next login)', params: idParams, body: { type: 'object', additionalProperties: false, required: ['temporaryPassword'], properties: { temporaryPassword: str(256) } }, response: { 204: { type: 'null' }, ...errorResponses } },
      },
      async (request, reply) => {
        assertUserId(request.params.id);
        await setTemporaryPassword(ctx, request.params.id, request.body.temporaryPassword);
        return reply.code(204).send();
      },
    );

    app.post<{ Body: InvitationInput }>(
      '/api/invitations',
      {
        config: { allow: { roles: ['clinician'] } },
        schema: {
          tags: ['users'],
          summary: 'Invite a patient, or a proxy viewer of one patient, to see the plan (a link is emailed)',
          body: {
            type: 'object',
            additionalProperties: false,
            required: ['email', 'name', 'role', 'nhsNumber'],
            properties: { email: { type: 'string', format: 'email', maxLength: 254 }, name: str(200), role: { enum: ['patient', 'proxy'] }, nhsNumber: { type: 'string', maxLength: 20 }, relationship: str(100) },
          },
          response: { 201: { type: 'object', properties: { id: { type: 'string' }, expiresAt: { type: 'string' } } }, ...errorResponses },
        },
      },
      async (request, reply) => {
        const problem = nhsNumberProblem(request.body.nhsNumber);
        const issues = problem ? [{ code: 'value' as const, diagnostics: problem, expression: 'nhsNumber' }] : [];
        if (request.body.role === 'proxy' && !request.body.relationship) issues.push({ code: 'value', diagnostics: 'a proxy viewer needs their relationship to the patient', expression: 'relationship' });
        if (issues.length > 0) throw new OperationOutcomeError(400, issues);
        return reply.code(201).send(await invite(ctx, request.body, principal(request), String(request.id)));
      },
    );

    app.post(
      '/api/admin/keys/rotate',
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['keys'],
          summary: 'Publish a new signing key, which signs from activatesAt; old keys stay published until their tokens expired',
          response: { 200: { type: 'object', properties: { kid: { type: 'string' }, activatesAt: { type: 'string' } } }, ...errorResponses },
        },
      },
      async () => ctx.keys.rotate(),
    );
  };
}
