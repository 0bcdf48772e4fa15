import { ODS_CODE, principal } from '@cmc/auth';
import { errorResponses } from '@cmc/http';
import type { ServiceContext } from '@cmc/service';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import type { NotificationDB } from '../db/schema';

const SERVICE_TEAM = { allow: { roles: ['service-team'] } } as const;
const odsParams = { type: 'object', additionalProperties: false, required: ['ods'], properties: { ods: { type: 'string', pattern: ODS_CODE.source } } } as const;
const settingsProps = {
  leadEmail: {
    anyOf: [{ type: 'string', format: 'email', maxLength: 254 }, { type: 'null' }],
    description: 'The organisation\'s CMC lead (the guide: "identify a CMC lead"): plans still awaiting approval are escalated to this address; null for none',
  },
  gpPracticeApproves: {
    type: 'boolean',
    description: 'true when the organisation has agreed with its patients\' GP practices that they approve its plans: their clinicians then hear of submissions and approval reminders',
  },
} as const;
const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['organisation', 'leadEmail', 'gpPracticeApproves', 'updatedAt'],
  properties: { organisation: { type: 'string' }, ...settingsProps, updatedAt: { type: ['string', 'null'], format: 'date-time' } },
} as const;

interface SettingsInput {
  leadEmail: string | null;
  gpPracticeApproves: boolean;
}

/** What the service team records of an organisation for notifications (decision 0016). */
export async function organisationRoutes(app: FastifyInstance, ctx: ServiceContext<NotificationDB>): Promise<void> {
  const { db } = ctx.database;

  app.get<{ Params: { ods: string } }>(
    '/api/notifications/organisations/:ods',
    {
      config: SERVICE_TEAM,
      schema: {
        tags: ['Notifications'],
        summary: 'An organisation\'s notification settings: its CMC lead, and whether its GP practices approve its plans (defaults when never set)',
        params: odsParams,
        response: { 200: settingsSchema, ...errorResponses },
      },
    },
    async (request) => {
      const row = await db.selectFrom('organisation_settings').selectAll().where('organisation', '=', request.params.ods).executeTakeFirst();
      return { organisation: request.params.ods, leadEmail: row?.lead_email ?? null, gpPracticeApproves: row?.gp_practice_approves ?? false, updatedAt: row ? new Date(row.updated_at).toISOString() : null };
    },
  );

  app.put<{ Params: { ods: string }; Body: SettingsInput }>(
    '/api/notifications/organisations/:ods',
    {
      config: SERVICE_TEAM,
      schema: {
        tags: ['Notifications'],
        summary: 'Set an organisation\'s notification settings (its CMC lead, and whether its GP practices approve its plans)',
        params: odsParams,
        body: { type: 'object', additionalProperties: false, required: ['leadEmail', 'gpPracticeApproves'], properties: settingsProps },
        response: { 200: settingsSchema, ...errorResponses },
      },
    },
    async (request) => {
      const by = principal(request).subject;
      const lead = request.body.leadEmail?.toLowerCase() ?? null;
      const row = await db
        .insertInto('organisation_settings')
        .values({ organisation: request.params.ods, lead_email: lead, gp_practice_approves: request.body.gpPracticeApproves, updated_by: by })
        .onConflict((oc) =>
          oc.column('organisation').doUpdateSet({ lead_email: lead, gp_practice_approves: request.body.gpPracticeApproves, updated_by: by, updated_at: sql<Date>`now()` }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      return { organisation: row.organisation, leadEmail: row.lead_email, gpPracticeApproves: row.gp_practice_approves, updatedAt: new Date(row.updated_at).toISOString() };
    },
  );
}
