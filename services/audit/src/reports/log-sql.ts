/** SQL shared by the reports over the log. */
import { sql } from 'kysely';
import type { Period } from './params';

/** The first instant of the period (midnight in London on `from`) and the first after it (midnight after `to`). */
export const periodStart = (p: Period) => sql<Date>`(${p.from}::date::timestamp at time zone 'Europe/London')`;
export const periodEnd = (p: Period) => sql<Date>`((${p.to}::date + 1)::timestamp at time zone 'Europe/London')`;

/**
 * Each organisation's latest name and type (ods, name, type), from its latest organisation-changed event that
 * carries a type: identity sends the current type and name with every change. Events before it did are skipped.
 */
export const LATEST_ORGANISATIONS = sql`
  select distinct on (ods) ods, name, type from (
    select event::jsonb #>> '{data,odsCode}' as ods, event::jsonb #>> '{data,name}' as name, event::jsonb #>> '{data,organisationType}' as type, seq
    from audit_log where event_type = 'cmc.identity.organisation-changed.v1'
  ) o
  where type is not null
  order by ods, seq desc`;
