/**
 * Per-entry reports of the access log: who accessed a patient's record, and what a user or an organisation
 * accessed. Read in seq order a batch at a time (keyset), so a page or a CSV stream never holds more than one.
 * These are audit reports, not statistics: every entry is shown, whatever the patient's consent to secondary use.
 */
import { sql, type Kysely } from 'kysely';
import type { AuditDB } from '../db/schema';
import { LATEST_ORGANISATIONS, periodEnd, periodStart } from './log-sql';
import type { Period } from './params';

/** Working hours: Monday to Friday, 08:00 to 18:30 London time (bank holidays are not known here). */
export const inWorkingHours = sql<boolean>`(extract(isodow from recorded_at at time zone 'Europe/London') between 1 and 5
  and (recorded_at at time zone 'Europe/London')::time >= time '08:00' and (recorded_at at time zone 'Europe/London')::time < time '18:30')`;

export interface AccessFilter {
  period: Period;
  nhsNumber?: string;
  agent?: string;
  organisation?: string;
  outcome?: 'allowed' | 'refused' | 'failed';
  outsideWorkingHours?: boolean;
}

export interface AccessRow {
  seq: string;
  recordedAt: string;
  agentKind: string | null;
  agentId: string | null;
  agentRole: string | null;
  organisation: string | null;
  organisationName: string | null;
  organisationType: string | null;
  interaction: string | null;
  outcome: string | null;
  outcomeReason: string | null;
  resourceTypes: string[];
  nhsNumbers: string[];
  service: string | null;
  outsideWorkingHours: boolean;
}

export const ACCESS_COLUMNS = [
  'seq', 'recordedAt', 'agentKind', 'agentId', 'agentRole', 'organisation', 'organisationName', 'organisationType',
  'interaction', 'outcome', 'outcomeReason', 'resourceTypes', 'nhsNumbers', 'service', 'outsideWorkingHours',
] as const satisfies readonly (keyof AccessRow)[];

/** The next `limit` access entries after seq `after` that match, in seq order. */
export async function accessRows(db: Kysely<AuditDB>, filter: AccessFilter, after: string, limit: number): Promise<AccessRow[]> {
  const { period } = filter;
  const entries = await db
    .selectFrom('audit_log')
    .select([
      'seq',
      'recorded_at',
      'agent_kind',
      'agent_id',
      'agent_role',
      'agent_organisation',
      'interaction',
      'outcome',
      'nhs_numbers',
      sql<string | null>`event::jsonb #>> '{data,outcomeReason}'`.as('outcome_reason'),
      sql<string | null>`event::jsonb #>> '{data,source,service}'`.as('service'),
      sql<string[]>`array(select distinct e ->> 'resourceType' from jsonb_array_elements(event::jsonb #> '{data,entities}') e order by 1)`.as('resource_types'),
      sql<boolean>`not ${inWorkingHours}`.as('outside_working_hours'),
    ])
    .where('event_type', '=', 'cmc.access.recorded.v1')
    .where('recorded_at', '>=', periodStart(period))
    .where('recorded_at', '<', periodEnd(period))
    .where('seq', '>', after)
    .$if(filter.nhsNumber !== undefined, (q) => q.where(sql<boolean>`nhs_numbers @> array[${filter.nhsNumber}]::text[]`))
    .$if(filter.agent !== undefined, (q) => q.where('agent_id', '=', filter.agent!))
    .$if(filter.organisation !== undefined, (q) => q.where('agent_organisation', '=', filter.organisation!))
    .$if(filter.outcome !== undefined, (q) => q.where('outcome', '=', filter.outcome!))
    .$if(filter.outsideWorkingHours !== undefined, (q) => q.where(filter.outsideWorkingHours ? sql<boolean>`not ${inWorkingHours}` : inWorkingHours))
    .orderBy('seq')
    .limit(limit)
    .execute();
  const organisations = await organisationsOf(db, [...new Set(entries.flatMap((e) => (e.agent_organisation ? [e.agent_organisation] : [])))]);
  return entries.map((e) => {
    const org = e.agent_organisation ? organisations.get(e.agent_organisation) : undefined;
    return {
      seq: String(e.seq),
      recordedAt: e.recorded_at.toISOString(),
      agentKind: e.agent_kind,
      agentId: e.agent_id,
      agentRole: e.agent_role,
      organisation: e.agent_organisation,
      organisationName: org?.name ?? null,
      organisationType: e.agent_organisation ? (org?.type ?? 'unknown') : null,
      interaction: e.interaction,
      outcome: e.outcome,
      outcomeReason: e.outcome_reason,
      resourceTypes: e.resource_types,
      nhsNumbers: e.nhs_numbers,
      service: e.service,
      outsideWorkingHours: e.outside_working_hours,
    };
  });
}

/** The latest name and type the log knows for each of these organisations (ODS codes). */
async function organisationsOf(db: Kysely<AuditDB>, odsCodes: string[]): Promise<Map<string, { name: string | null; type: string | null }>> {
  if (odsCodes.length === 0) return new Map();
  const { rows } = await sql<{ ods: string; name: string | null; type: string | null }>`
    select ods, name, type from (${LATEST_ORGANISATIONS}) o where ods = any(${odsCodes}::text[])
  `.execute(db);
  return new Map(rows.map((r) => [r.ods, { name: r.name, type: r.type }]));
}
