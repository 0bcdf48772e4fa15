/**
 * The service team's statistics, computed from the log itself (decision 0012 has the rules): urgent care
 * views, plans, and outcomes after death. Patients whose consent does not permit secondary use are left out
 * of every figure and counted in `excludedPatients`.
 */
import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { AuditDB } from '../db/schema';
import { LATEST_ORGANISATIONS, periodEnd, periodStart } from './log-sql';
import type { Period } from './params';

/** Interactions that show a plan's content to a reader: what "a view" means in the urgent care report. */
export const VIEW_INTERACTIONS = ['read', 'vread', 'summary', 'print'] as const;

const month = (column: RawBuilder<unknown>) => sql`to_char(${column} at time zone 'Europe/London', 'YYYY-MM')`;

/**
 * Each patient's latest consent event in the log; a patient counts only when it is a grant that permits
 * secondary use. A withdrawal, a grant that denies it, a grant without the choice (older events: the consent
 * service records "deny" when none is made) or no consent event at all leave the patient out.
 */
const PERMITTED = sql`permitted as (
  select distinct on (nhs_numbers[1]) nhs_numbers[1] as nhs,
    event_type = 'cmc.consent.granted.v1' and coalesce(event::jsonb #>> '{data,secondaryUse}', 'deny') = 'permit' as permits
  from audit_log
  where event_type in ('cmc.consent.granted.v1', 'cmc.consent.withdrawn.v1')
  order by nhs_numbers[1], seq desc
)`;

const ORG_TYPES = sql`org_types as (${LATEST_ORGANISATIONS})`;

export interface UrgentCareViewsRow {
  month: string;
  organisationType: string;
  /** A patient's record shown once to an urgent care user (read, summary or print). */
  views: number;
  /** Different patients viewed. */
  patients: number;
}

export interface UrgentCareViews {
  excludedPatients: number;
  rows: UrgentCareViewsRow[];
}

/** Views of plans by urgent care users per month (London time) by the type of the viewer's organisation. */
export async function urgentCareViews(db: Kysely<AuditDB>, period: Period): Promise<UrgentCareViews> {
  const { rows } = await sql<{ excluded: number; rows: UrgentCareViewsRow[] }>`
    with ${PERMITTED}, ${ORG_TYPES},
    views as (
      select ${month(sql`a.recorded_at`)} as month, coalesce(o.type, 'unknown') as organisation_type, p.nhs, coalesce(c.permits, false) as included
      from audit_log a
      cross join lateral unnest(a.nhs_numbers) as p(nhs)
      left join org_types o on o.ods = a.agent_organisation
      left join permitted c on c.nhs = p.nhs
      where a.event_type = 'cmc.access.recorded.v1' and a.agent_role = 'urgent-care' and a.outcome = 'allowed'
        and a.interaction in (${sql.join(VIEW_INTERACTIONS.map((i) => sql.lit(i)))})
        and a.recorded_at >= ${periodStart(period)} and a.recorded_at < ${periodEnd(period)}
    )
    select
      (select count(distinct nhs)::int from views where not included) as excluded,
      coalesce((select json_agg(json_build_object('month', month, 'organisationType', organisation_type, 'views', views, 'patients', patients) order by month, organisation_type)
        from (select month, organisation_type, count(*)::int as views, count(distinct nhs)::int as patients from views where included group by month, organisation_type) r), '[]'::json) as rows
  `.execute(db);
  return { excludedPatients: rows[0]!.excluded, rows: rows[0]!.rows };
}

export interface PlansCreatedRow {
  month: string;
  organisationType: string;
  plans: number;
}

export interface PlansReport {
  excludedPatients: number;
  created: PlansCreatedRow[];
  published: { month: string; plans: number }[];
  overdueForReview: { asOf: string; plans: number };
}

const PLAN_EVENT_TYPES = ['created', 'updated', 'submitted', 'published', 'withdrawn', 'death-recorded', 'note-added', 'change-requested'].map((t) => sql.lit(`cmc.careplan.${t}.v1`));

/**
 * Plans created per month by the type of the creator's organisation (the plan's organisation when the event
 * names no creator's), plans published per month (each plan once a month however many versions), and
 * plans published now whose review date has passed (London date).
 */
export async function plansReport(db: Kysely<AuditDB>, period: Period): Promise<PlansReport> {
  const { rows } = await sql<Omit<PlansReport, 'excludedPatients'> & { excluded: number }>`
    with ${PERMITTED}, ${ORG_TYPES},
    created as (
      select ${month(sql`a.recorded_at`)} as month, coalesce(o.type, 'unknown') as organisation_type, a.nhs_numbers[1] as nhs, coalesce(c.permits, false) as included
      from audit_log a
      left join org_types o on o.ods = coalesce(a.agent_organisation, a.event::jsonb #>> '{data,organisation}')
      left join permitted c on c.nhs = a.nhs_numbers[1]
      where a.event_type = 'cmc.careplan.created.v1' and a.recorded_at >= ${periodStart(period)} and a.recorded_at < ${periodEnd(period)}
    ),
    published as (
      select distinct ${month(sql`a.recorded_at`)} as month, a.event::jsonb #>> '{data,planId}' as plan_id, a.nhs_numbers[1] as nhs, coalesce(c.permits, false) as included
      from audit_log a
      left join permitted c on c.nhs = a.nhs_numbers[1]
      where a.event_type = 'cmc.careplan.published.v1' and a.recorded_at >= ${periodStart(period)} and a.recorded_at < ${periodEnd(period)}
    ),
    plan_events as materialized (
      select seq, event::jsonb #>> '{data,planId}' as plan_id, nhs_numbers[1] as nhs, event::jsonb #>> '{data,state}' as state, event::jsonb #>> '{data,reviewDate}' as review_date
      from audit_log where event_type in (${sql.join(PLAN_EVENT_TYPES)})
    ),
    latest as (select distinct on (plan_id) plan_id, nhs, state from plan_events order by plan_id, seq desc),
    reviews as (select distinct on (plan_id) plan_id, review_date::date as review_date from plan_events where review_date is not null order by plan_id, seq desc),
    overdue as (
      select l.nhs, coalesce(c.permits, false) as included
      from latest l join reviews r using (plan_id) left join permitted c on c.nhs = l.nhs
      where l.state = 'published' and r.review_date < (now() at time zone 'Europe/London')::date
    )
    select
      (select count(distinct nhs)::int from (select nhs, included from created union all select nhs, included from published union all select nhs, included from overdue) x where not included) as excluded,
      coalesce((select json_agg(json_build_object('month', month, 'organisationType', organisation_type, 'plans', plans) order by month, organisation_type)
        from (select month, organisation_type, count(*)::int as plans from created where included group by month, organisation_type) r), '[]'::json) as created,
      coalesce((select json_agg(json_build_object('month', month, 'plans', plans) order by month)
        from (select month, count(*)::int as plans from published where included group by month) r), '[]'::json) as published,
      json_build_object('asOf', to_char(now() at time zone 'Europe/London', 'YYYY-MM-DD'), 'plans', (select count(*)::int from overdue where included)) as "overdueForReview"
  `.execute(db);
  const { excluded, ...report } = rows[0]!;
  return { excludedPatients: excluded, ...report };
}

const PLACES = ['home', 'care-home', 'hospice', 'hospital', 'other'] as const;

export interface Share {
  patients: number;
  /** Of the figure's base, to one decimal; null when the base is 0. */
  percent: number | null;
}

export interface OutcomesReport {
  excludedPatients: number;
  /** Patients with a death recorded in the period (their latest death record). */
  deaths: number;
  /** Of them, with a place of death recorded: the base of the place-of-death shares. */
  placeOfDeathRecorded: number;
  /** Of them, who had expressed a preferred place (met first, met second or not met): the base of those shares. */
  preferredPlaceExpressed: number;
  preferredPlace: { metFirst: Share; metSecond: Share; notMet: Share };
  placeOfDeath: { hospital: Share; outsideHospital: Share; byPlace: Record<(typeof PLACES)[number], number> };
}

const share = (patients: number, base: number): Share => ({ patients, percent: base === 0 ? null : Math.round((patients * 1000) / base) / 10 });

/**
 * Of the patients whose death (date of death, London) falls in the period: whether they died in their
 * preferred place (first, second choice, not met; of those who had expressed one) and whether in hospital
 * (of those with a place recorded), as the guide's outcome figures.
 */
export async function outcomesReport(db: Kysely<AuditDB>, period: Period): Promise<OutcomesReport> {
  const { rows } = await sql<Record<string, number>>`
    with ${PERMITTED},
    deaths as (
      select distinct on (nhs_numbers[1]) nhs_numbers[1] as nhs,
        coalesce((event::jsonb #>> '{data,deathDate}')::date, (recorded_at at time zone 'Europe/London')::date) as death_date,
        event::jsonb #>> '{data,deathPlace}' as place,
        event::jsonb #>> '{data,deathOutcome}' as outcome
      from audit_log where event_type = 'cmc.careplan.death-recorded.v1'
      order by nhs_numbers[1], seq desc
    ),
    d as (
      select deaths.*, coalesce(c.permits, false) as included from deaths left join permitted c on c.nhs = deaths.nhs
      where death_date between ${period.from}::date and ${period.to}::date
    )
    select
      count(*) filter (where not included)::int as excluded,
      count(*) filter (where included)::int as deaths,
      count(place) filter (where included)::int as with_place,
      count(*) filter (where included and outcome in ('met-first', 'met-second', 'not-met'))::int as with_preference,
      count(*) filter (where included and outcome = 'met-first')::int as met_first,
      count(*) filter (where included and outcome = 'met-second')::int as met_second,
      count(*) filter (where included and outcome = 'not-met')::int as not_met,
      ${sql.join(PLACES.map((p) => sql`count(*) filter (where included and place = ${sql.lit(p)})::int as ${sql.id(p)}`))}
    from d
  `.execute(db);
  const r = rows[0]!;
  const [withPlace, withPreference, hospital] = [r.with_place!, r.with_preference!, r.hospital!];
  return {
    excludedPatients: r.excluded!,
    deaths: r.deaths!,
    placeOfDeathRecorded: withPlace,
    preferredPlaceExpressed: withPreference,
    preferredPlace: { metFirst: share(r.met_first!, withPreference), metSecond: share(r.met_second!, withPreference), notMet: share(r.not_met!, withPreference) },
    placeOfDeath: {
      hospital: share(hospital, withPlace),
      outsideHospital: share(withPlace - hospital, withPlace),
      byPlace: Object.fromEntries(PLACES.map((p) => [p, r[p]!])) as Record<(typeof PLACES)[number], number>,
    },
  };
}
