import { principal, type Principal } from '@cmc/auth';
import { badRequest, FHIR_JSON, forbidden, notFound, searchsetBundle } from '@cmc/fhir';
import { errorResponses, fhirResource } from '@cmc/http';
import { recordAccess, type ServiceContext } from '@cmc/service';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Subscription } from 'fhir/r4';
import { sql } from 'kysely';
import { randomUUID } from 'node:crypto';
import type { NotificationDB, SubscriptionRow } from '../db/schema';
import type { NotificationConfig } from '../config';
import type { NotificationState } from '../domain/state';
import { namesOf } from '../domain/secrets';
import { parseCriteria, parseEndpoint, parseHeaders, toFhirSubscription } from '../domain/subscription';

const both = ['system/Subscription.crud', 'system/Subscription.cruds'];
const CREATE = { allow: { scopes: ['system/Subscription.c', ...both] } } as const;
const READ = { allow: { roles: ['service-team'], scopes: ['system/Subscription.r', 'system/Subscription.rs', ...both] } } as const;
const DELETE = { allow: { scopes: ['system/Subscription.d', ...both] } } as const;

const idParams = { type: 'object', additionalProperties: false, required: ['id'], properties: { id: { type: 'string', format: 'uuid' } } } as const;

const subscriptionBody = {
  type: 'object',
  additionalProperties: false,
  required: ['resourceType', 'status', 'reason', 'criteria', 'channel'],
  properties: {
    resourceType: { const: 'Subscription' },
    status: { enum: ['requested', 'active'], description: 'Ask for requested (or active); the service answers active' },
    reason: { type: 'string', minLength: 1, maxLength: 500 },
    criteria: {
      type: 'string',
      minLength: 1,
      maxLength: 500,
      description: '`CarePlan?patient:identifier=https://fhir.nhs.uk/Id/nhs-number|<NHS number>` or `CarePlan?gp-practice=<your ODS code>`',
    },
    channel: {
      type: 'object',
      additionalProperties: false,
      required: ['type', 'endpoint'],
      properties: {
        type: { type: 'string', maxLength: 50, description: 'rest-hook only' },
        endpoint: { type: 'string', minLength: 1, maxLength: 2000, description: 'http(s) URL the notifications are POSTed to' },
        payload: { const: 'application/fhir+json', description: 'Notifications are FHIR JSON Bundles (id-only: the plan is referenced, not sent)' },
        header: { type: 'array', maxItems: 5, items: { type: 'string', maxLength: 2000 }, description: '`Name: value`, e.g. `Authorization: Bearer <secret>`, sent with every notification' },
      },
    },
  },
} as const;

interface SubscriptionInput {
  status: 'requested' | 'active';
  reason: string;
  criteria: string;
  channel: { type: string; endpoint: string; payload?: string; header?: string[] };
}

/** A patient subscription is access to that patient's plans (that one exists, and when it changes): it is recorded as such. */
const nhsOf = (row: Pick<SubscriptionRow, 'criteria_kind' | 'criteria_value'>) => (row.criteria_kind === 'patient' ? { nhsNumber: row.criteria_value } : {});

/** Rows the caller may see: its own, or every one for the service team. */
const mayRead = (p: Principal, row: SubscriptionRow) => p.role === 'service-team' || (p.kind === 'client' && row.client_id === p.subject);

/** FHIR Subscription (R4 rest-hook) for GP systems and other system clients. */
export async function subscriptionRoutes(app: FastifyInstance, ctx: ServiceContext<NotificationDB>): Promise<void> {
  const { database } = ctx;
  const { db } = database;
  const own = ctx.config.own as NotificationConfig;
  const { box } = ctx.state as NotificationState;
  const record = (request: FastifyRequest, interaction: 'create' | 'read' | 'search' | 'delete', rows: Pick<SubscriptionRow, 'id' | 'criteria_kind' | 'criteria_value'>[]) =>
    recordAccess(db, database.schema, 'notification', request, {
      interaction,
      outcome: 'allowed',
      entities: rows.map((r) => ({ resourceType: 'Subscription', id: r.id, ...nhsOf(r) })),
      ...(interaction === 'search' ? { query: request.url.slice(0, 2000) } : {}),
    });
  /** A refused attempt is an access too: recorded (committed) before the refusal goes back. */
  const refused = (request: FastifyRequest, interaction: 'create' | 'read' | 'delete', reason: string, entity: { id?: string; nhsNumber?: string } = {}) =>
    recordAccess(db, database.schema, 'notification', request, { interaction, outcome: 'refused', outcomeReason: reason, entities: [{ resourceType: 'Subscription', ...entity }] });

  app.post<{ Body: SubscriptionInput }>(
    '/fhir/R4/Subscription',
    {
      config: CREATE,
      schema: {
        tags: ['Subscription'],
        summary: 'Subscribe a system to changes of care plans (rest-hook), for one patient or for the patients of its GP practice',
        body: subscriptionBody,
        response: { 201: fhirResource('Subscription', 'The subscription, active'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const p = principal(request);
      const body = request.body;
      if (body.channel.type !== 'rest-hook') throw badRequest(`channel.type '${body.channel.type}' is not supported: only rest-hook`, 'Subscription.channel.type');
      const criteria = parseCriteria(body.criteria);
      const endpoint = parseEndpoint(body.channel.endpoint, own.NOTIFY_HOOK_ALLOW_PRIVATE);
      const headers = parseHeaders(body.channel.header ?? []);
      if (criteria.kind === 'gp-practice' && criteria.value !== p.organisation) {
        const reason = 'a system may subscribe to the patients of its own GP practice only';
        await refused(request, 'create', reason);
        throw forbidden(reason);
      }
      const id = randomUUID();
      const row = await db.transaction().execute(async (trx) => {
        const inserted = await trx
          .insertInto('subscriptions')
          .values({
            id,
            client_id: p.subject,
            organisation: p.organisation ?? null,
            criteria: body.criteria,
            criteria_kind: criteria.kind,
            criteria_value: criteria.value,
            endpoint,
            // The values are secrets: only the names are kept in clear, the lines sealed (bound to this row).
            headers: namesOf(headers),
            header_secret: box.sealHeaders(headers, id),
            reason: body.reason,
            status: 'active',
            error: null,
          })
          .returningAll()
          .executeTakeFirstOrThrow();
        await recordAccess(trx, database.schema, 'notification', request, { interaction: 'create', outcome: 'allowed', entities: [{ resourceType: 'Subscription', id: inserted.id, ...nhsOf(inserted) }] });
        return inserted;
      });
      return reply.code(201).type(FHIR_JSON).header('location', `/fhir/R4/Subscription/${row.id}`).send(toFhirSubscription(row));
    },
  );

  app.get<{ Params: { id: string } }>(
    '/fhir/R4/Subscription/:id',
    {
      config: READ,
      schema: { tags: ['Subscription'], summary: 'A subscription, with its status (error, and why, when its endpoint stopped taking notifications)', params: idParams, response: { 200: fhirResource('Subscription', 'The subscription'), ...errorResponses } },
    },
    async (request, reply) => {
      const p = principal(request);
      const row = await db.selectFrom('subscriptions').selectAll().where('id', '=', request.params.id).where('status', '<>', 'off').executeTakeFirst();
      if (row && !mayRead(p, row)) await refused(request, 'read', 'another client\'s subscription (answered as not known)', { id: row.id, ...nhsOf(row) });
      if (!row || !mayRead(p, row)) throw notFound(`Subscription/${request.params.id} is not known`);
      await record(request, 'read', [row]);
      return reply.type(FHIR_JSON).send(toFhirSubscription(row));
    },
  );

  app.get<{ Querystring: { status?: 'active' | 'error' } }>(
    '/fhir/R4/Subscription',
    {
      config: READ,
      schema: {
        tags: ['Subscription'],
        summary: 'The caller\'s subscriptions (every one, for the service team), newest first, up to 100',
        querystring: { type: 'object', additionalProperties: false, properties: { status: { enum: ['active', 'error'] } } },
        response: { 200: fhirResource('Bundle', 'A searchset Bundle of Subscriptions'), ...errorResponses },
      },
    },
    async (request, reply) => {
      const p = principal(request);
      let q = db.selectFrom('subscriptions').selectAll().where('status', '<>', 'off');
      if (p.role !== 'service-team') q = q.where('client_id', '=', p.subject);
      if (request.query.status) q = q.where('status', '=', request.query.status);
      const rows = await q.orderBy('created_at', 'desc').limit(100).execute();
      if (rows.length > 0) await record(request, 'search', rows);
      const origin = `${request.protocol}://${request.host}`;
      const bundle = searchsetBundle<Subscription>({ selfUrl: `${origin}${request.url}`, baseUrl: `${origin}/fhir/R4`, resources: rows.map(toFhirSubscription), total: rows.length });
      return reply.type(FHIR_JSON).send(bundle);
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/fhir/R4/Subscription/:id',
    {
      config: DELETE,
      schema: { tags: ['Subscription'], summary: 'End a subscription: nothing more is sent to its endpoint', params: idParams, response: { 204: { type: 'null', description: 'Ended' }, ...errorResponses } },
    },
    async (request, reply) => {
      const p = principal(request);
      const row = await db.transaction().execute(async (trx) => {
        const ended = await trx
          .updateTable('subscriptions')
          .set({ status: 'off', updated_at: sql<Date>`now()` })
          .where('id', '=', request.params.id)
          .where('client_id', '=', p.subject)
          .where('status', '<>', 'off')
          .returningAll()
          .executeTakeFirst();
        if (!ended) return undefined;
        await trx.updateTable('hook_deliveries').set({ status: 'failed', last_error: 'not sent: the subscription was ended' }).where('subscription_id', '=', ended.id).where('status', '=', 'pending').execute();
        await recordAccess(trx, database.schema, 'notification', request, { interaction: 'delete', outcome: 'allowed', entities: [{ resourceType: 'Subscription', id: ended.id, ...nhsOf(ended) }] });
        return ended;
      });
      if (!row) {
        // Someone else's (live) subscription: the attempt is recorded, and answered as if it did not exist.
        const others = await db.selectFrom('subscriptions').select(['id', 'criteria_kind', 'criteria_value']).where('id', '=', request.params.id).where('status', '<>', 'off').executeTakeFirst();
        if (others) await refused(request, 'delete', 'another client\'s subscription (answered as not known)', { id: others.id, ...nhsOf(others) });
        throw notFound(`Subscription/${request.params.id} is not known`);
      }
      return reply.code(204).send();
    },
  );
}
