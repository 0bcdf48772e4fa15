import { principal } from '@cmc/auth';
import { badRequest, decodeCursor, encodeCursor, notFound } from '@cmc/fhir';
import { errorResponses } from '@cmc/http';
import type { ServiceContext } from '@cmc/service';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { NotificationDB } from '../db/schema';
import { STAFF_ROLES } from '../domain/notify';
import { INBOX_TEXT, NOTIFICATION_KINDS, type NotificationKind } from '../domain/rules';

const STAFF = { allow: { roles: STAFF_ROLES } } as const;
const SERVICE_TEAM = { allow: { roles: ['service-team'] } } as const;
const DEFAULT_COUNT = 20;
const MAX_COUNT = 100;

const notificationSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'kind', 'text', 'planId', 'createdAt', 'readAt'],
  properties: {
    id: { type: 'string', format: 'uuid' },
    kind: { enum: NOTIFICATION_KINDS },
    text: { type: 'string', description: 'What happened, without patient details' },
    planId: { type: ['string', 'null'], description: 'The care plan (read it at /fhir/R4/CarePlan/{planId})' },
    createdAt: { type: 'string', format: 'date-time' },
    readAt: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

const deliverySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    channel: { enum: ['email', 'rest-hook'] },
    id: { type: 'string' },
    status: { enum: ['pending', 'sent', 'failed'] },
    attempts: { type: 'integer' },
    lastError: { type: ['string', 'null'] },
    recipient: { type: 'string', description: 'email: the user id; rest-hook: the subscription id' },
    createdAt: { type: 'string', format: 'date-time' },
    nextAttemptAt: { type: ['string', 'null'], format: 'date-time' },
    sentAt: { type: ['string', 'null'], format: 'date-time' },
  },
} as const;

type Cursor = [string, string];
const isCursor = (v: unknown): v is Cursor => Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string' && !Number.isNaN(Date.parse(v[0])) && /^[0-9a-f-]{36}$/.test(v[1]);
const iso = (d: Date | null): string | null => (d ? new Date(d).toISOString() : null);

interface DeliveryRow { id: string; status: string; attempts: number; last_error: string | null; created_at: Date; next_attempt_at: Date; sent_at: Date | null }

/** The in-app inbox of people (staff), and what could not be delivered, for the service team. */
export async function inboxRoutes(app: FastifyInstance, ctx: ServiceContext<NotificationDB>): Promise<void> {
  const { db } = ctx.database;

  app.get<{ Querystring: { unread?: boolean; _count?: number; _cursor?: string } }>(
    '/api/notifications',
    {
      config: STAFF,
      schema: {
        tags: ['Notifications'],
        summary: 'The current user\'s notifications, newest first',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            unread: { type: 'boolean', description: 'true: only those not yet read' },
            _count: { type: 'integer', minimum: 1, maximum: MAX_COUNT, description: `Per page, default ${DEFAULT_COUNT}` },
            _cursor: { type: 'string', maxLength: 200, description: 'The cursor of the next page, as `next` gave it' },
          },
        },
        response: {
          200: {
            type: 'object',
            additionalProperties: false,
            required: ['notifications', 'next'],
            properties: { notifications: { type: 'array', items: notificationSchema }, next: { type: ['string', 'null'], description: 'The URL of the next page, or null' } },
          },
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const me = principal(request).subject;
      const count = request.query._count ?? DEFAULT_COUNT;
      const cursor = request.query._cursor === undefined ? undefined : decodeCursor(request.query._cursor, isCursor);
      if (request.query._cursor !== undefined && !cursor) throw badRequest('the cursor is not valid (ask for the first page again)', '_cursor');
      let q = db.selectFrom('notifications').selectAll().where('user_id', '=', me);
      if (request.query.unread) q = q.where('read_at', 'is', null);
      if (cursor) q = q.where(sql<boolean>`(created_at, id) < (${cursor[0]}::timestamptz, ${cursor[1]}::uuid)`);
      const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(count + 1).execute();
      const page = rows.slice(0, count);
      let next: string | null = null;
      if (rows.length > count) {
        const last = page[page.length - 1]!;
        const u = new URL(`${request.protocol}://${request.host}${request.url}`);
        u.searchParams.set('_cursor', encodeCursor([new Date(last.created_at).toISOString(), last.id]));
        next = u.toString();
      }
      return {
        notifications: page.map((n) => ({
          id: n.id,
          kind: n.kind,
          text: INBOX_TEXT[n.kind as NotificationKind] ?? 'A care plan changed',
          planId: n.plan_id,
          createdAt: new Date(n.created_at).toISOString(),
          readAt: iso(n.read_at),
        })),
        next,
      };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/api/notifications/:id/read',
    {
      config: STAFF,
      schema: {
        tags: ['Notifications'],
        summary: 'Mark one of the current user\'s notifications as read (another\'s is 404)',
        params: { type: 'object', additionalProperties: false, required: ['id'], properties: { id: { type: 'string', format: 'uuid' } } },
        response: { 200: notificationSchema, ...errorResponses },
      },
    },
    async (request) => {
      const me = principal(request).subject;
      const row = await db
        .updateTable('notifications')
        .set({ read_at: sql<Date>`coalesce(read_at, now())` })
        .where('id', '=', request.params.id)
        .where('user_id', '=', me)
        .returningAll()
        .executeTakeFirst();
      if (!row) throw notFound(`notification ${request.params.id} is not known`);
      return { id: row.id, kind: row.kind, text: INBOX_TEXT[row.kind as NotificationKind] ?? 'A care plan changed', planId: row.plan_id, createdAt: new Date(row.created_at).toISOString(), readAt: iso(row.read_at) };
    },
  );

  app.get<{ Querystring: { status?: 'pending' | 'sent' | 'failed'; channel?: 'email' | 'rest-hook'; _count?: number } }>(
    '/api/notifications/deliveries',
    {
      config: SERVICE_TEAM,
      schema: {
        tags: ['Notifications'],
        summary: 'Emails and hook notifications, newest first, with their status and last error (the service team\'s view of what did not arrive)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            status: { enum: ['pending', 'sent', 'failed'] },
            channel: { enum: ['email', 'rest-hook'] },
            _count: { type: 'integer', minimum: 1, maximum: MAX_COUNT, description: `At most, per channel; default ${DEFAULT_COUNT}` },
          },
        },
        response: { 200: { type: 'object', additionalProperties: false, required: ['deliveries'], properties: { deliveries: { type: 'array', items: deliverySchema } } }, ...errorResponses },
      },
    },
    async (request) => {
      const { status, channel } = request.query;
      const count = request.query._count ?? DEFAULT_COUNT;
      const out: Record<string, unknown>[] = [];
      const view = (ch: 'email' | 'rest-hook', d: DeliveryRow, recipient: string) => ({
        channel: ch, id: String(d.id), status: d.status, attempts: d.attempts, lastError: d.last_error, recipient,
        createdAt: new Date(d.created_at).toISOString(), nextAttemptAt: d.status === 'pending' ? iso(d.next_attempt_at) : null, sentAt: iso(d.sent_at),
      });
      if (channel !== 'rest-hook') {
        const rows = await db.selectFrom('email_deliveries').selectAll().$if(!!status, (q) => q.where('status', '=', status!)).orderBy('id', 'desc').limit(count).execute();
        out.push(...rows.map((d) => view('email', d, d.recipient)));
      }
      if (channel !== 'email') {
        const rows = await db.selectFrom('hook_deliveries').selectAll().$if(!!status, (q) => q.where('status', '=', status!)).orderBy('id', 'desc').limit(count).execute();
        out.push(...rows.map((d) => view('rest-hook', d, d.subscription_id)));
      }
      return { deliveries: out };
    },
  );
}
