import type { IssueInput } from '@cmc/fhir';
import { errorResponses } from '@cmc/http';
import { recordAccess, type ServiceContext } from '@cmc/service';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Readable } from 'node:stream';
import type { AuditDB } from '../db/schema';
import { ACCESS_COLUMNS, accessRows, type AccessFilter, type AccessRow } from '../reports/access-reports';
import { csvLine, csvTable } from '../reports/csv';
import {
  DEFAULT_PAGE_ROWS, MAX_PAGE_ROWS, MAX_ROWS_DAYS, MAX_STATISTICS_DAYS, checkNhsNumber, checkPeriod, contentTypeOf, decodeSeqCursor, encodeSeqCursor, formatOf, periodOf,
  type Period, type ReportFormat,
} from '../reports/params';
import { outcomesReport, plansReport, urgentCareViews, type OutcomesReport, type PlansReport, type UrgentCareViews } from '../reports/statistics';
import { barChartSvg, type BarGroup } from '../reports/svg';

const SERVICE_TEAM = { allow: { roles: ['service-team'] } } as const;
/** Rows read per query when a CSV is streamed. */
const STREAM_BATCH = 1000;

const date = { type: 'string', format: 'date', description: 'A calendar date (YYYY-MM-DD), London time; both ends of the period are included' } as const;
const periodParams = { from: date, to: date } as const;
const pagingParams = {
  _count: { type: 'integer', minimum: 1, maximum: MAX_PAGE_ROWS, description: `Entries per page (JSON), default ${DEFAULT_PAGE_ROWS}; a CSV streams every entry` },
  _cursor: { type: 'string', maxLength: 200, description: 'The cursor of the next page, as `next` gave it' },
} as const;
const formatParam = (formats: readonly ReportFormat[]) =>
  ({ _format: { enum: formats, description: 'The answer\'s format; else the Accept header decides (application/json, text/csv, image/svg+xml), JSON by default' } }) as const;

const periodSchema = { type: 'object', additionalProperties: false, required: ['from', 'to'], properties: periodParams } as const;
const nullableString = { type: ['string', 'null'] } as const;
const accessRowSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    seq: { type: 'string', description: 'Position of the entry in the log' },
    recordedAt: { type: 'string', format: 'date-time' },
    agentKind: nullableString,
    agentId: nullableString,
    agentRole: nullableString,
    organisation: { ...nullableString, description: 'ODS code of the agent\'s organisation' },
    organisationName: nullableString,
    organisationType: { ...nullableString, description: 'Its latest type known to the log, or unknown' },
    interaction: nullableString,
    outcome: nullableString,
    outcomeReason: nullableString,
    resourceTypes: { type: 'array', items: { type: 'string' } },
    nhsNumbers: { type: 'array', items: { type: 'string' } },
    service: nullableString,
    outsideWorkingHours: { type: 'boolean', description: 'Outside Monday to Friday 08:00-18:30 London time' },
  },
} as const;
const accessPageSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['report', 'period', 'rows', 'next'],
  properties: {
    report: { type: 'string' },
    period: periodSchema,
    rows: { type: 'array', items: accessRowSchema },
    next: { ...nullableString, description: 'The URL of the next page, or null on the last' },
  },
} as const;
const statistic = (properties: Record<string, unknown>, required: string[]) =>
  ({
    type: 'object',
    additionalProperties: false,
    required: ['report', 'period', 'excludedPatients', ...required],
    properties: {
      report: { type: 'string' },
      period: periodSchema,
      excludedPatients: { type: 'integer', description: 'Patients left out because their consent does not permit secondary use' },
      ...properties,
    },
  }) as const;
const monthly = (properties: Record<string, unknown>) => ({ type: 'array', items: { type: 'object', additionalProperties: false, properties: { month: { type: 'string', description: 'YYYY-MM, London time' }, ...properties } } }) as const;
const count = { type: 'integer' } as const;
const shareSchema = { type: 'object', additionalProperties: false, properties: { patients: count, percent: { type: ['number', 'null'] } } } as const;
const viewsSchema = statistic({ rows: monthly({ organisationType: { type: 'string' }, views: count, patients: count }), totals: monthly({ views: count }) }, ['rows', 'totals']);
const plansSchema = statistic(
  {
    created: monthly({ organisationType: { type: 'string' }, plans: count }),
    published: monthly({ plans: count }),
    overdueForReview: { type: 'object', additionalProperties: false, properties: { asOf: { type: 'string', format: 'date' }, plans: count } },
  },
  ['created', 'published', 'overdueForReview'],
);
const outcomesSchema = statistic(
  {
    deaths: count,
    placeOfDeathRecorded: count,
    preferredPlaceExpressed: count,
    preferredPlace: { type: 'object', additionalProperties: false, properties: { metFirst: shareSchema, metSecond: shareSchema, notMet: shareSchema } },
    placeOfDeath: {
      type: 'object',
      additionalProperties: false,
      properties: {
        hospital: shareSchema,
        outsideHospital: shareSchema,
        byPlace: { type: 'object', additionalProperties: false, properties: { home: count, 'care-home': count, hospice: count, hospital: count, other: count } },
      },
    },
  },
  ['deaths', 'placeOfDeathRecorded', 'preferredPlaceExpressed', 'preferredPlace', 'placeOfDeath'],
);

const text = { schema: { type: 'string' } } as const;
const answers = (json: object, formats: readonly ReportFormat[], description: string) => ({
  200: {
    description,
    content: {
      'application/json': { schema: json },
      'text/csv': text,
      ...(formats.includes('svg') ? { 'image/svg+xml': text } : {}),
    },
  },
  ...errorResponses,
});

interface PeriodQuery {
  from: string;
  to: string;
  _format?: ReportFormat;
}
interface PagedQuery extends PeriodQuery {
  _count?: number;
  _cursor?: string;
}

/** The service team's reports over the audit log: access reports (paged JSON, streamed CSV) and statistics. */
export async function reportRoutes(app: FastifyInstance, ctx: ServiceContext<AuditDB>): Promise<void> {
  const { database } = ctx;

  /** A report is an access: recorded (committed) before its data is sent, naming the patients it shows. */
  const record = (request: FastifyRequest, nhsNumbers: readonly string[]) =>
    recordAccess(database.db, database.schema, 'audit', request, {
      interaction: 'report',
      outcome: 'allowed',
      entities: nhsNumbers.length === 0 ? [{ resourceType: 'AuditEvent' }] : nhsNumbers.map((nhsNumber) => ({ resourceType: 'AuditEvent', nhsNumber })),
      query: `GET ${request.url}`,
    });

  const patientsOf = (rows: AccessRow[]) => [...new Set(rows.flatMap((r) => r.nhsNumbers))].sort();

  /** One page as JSON, or every matching entry as a CSV streamed a batch at a time; each batch recorded before it is sent. */
  async function sendAccessReport(request: FastifyRequest<{ Querystring: PagedQuery }>, reply: FastifyReply, report: string, filter: AccessFilter, after: string, show: (rows: AccessRow[]) => AccessRow[]) {
    const q = request.query;
    const format = formatOf(q._format, request.headers.accept, ['json', 'csv']);
    const limit = format === 'json' ? (q._count ?? DEFAULT_PAGE_ROWS) : STREAM_BATCH;
    const first = show(await accessRows(database.db, filter, after, limit));
    await record(request, filter.nhsNumber ? [filter.nhsNumber] : patientsOf(first));
    reply.header('cache-control', 'no-store').type(contentTypeOf(format));
    if (format === 'json') {
      const last = first.length === limit ? first[first.length - 1] : undefined;
      let next: string | null = null;
      if (last) {
        const url = new URL(request.url, 'http://report');
        url.searchParams.set('_cursor', encodeSeqCursor(last.seq));
        next = `${url.pathname}${url.search}`;
      }
      return { report, period: filter.period, rows: first, next };
    }
    async function* lines(): AsyncGenerator<string> {
      yield csvLine(ACCESS_COLUMNS);
      let batch = first;
      for (;;) {
        for (const row of batch) yield csvLine(ACCESS_COLUMNS.map((c) => row[c]));
        if (batch.length < STREAM_BATCH) return;
        batch = show(await accessRows(database.db, filter, batch[batch.length - 1]!.seq, STREAM_BATCH));
        if (batch.length > 0) await record(request, filter.nhsNumber ? [filter.nhsNumber] : patientsOf(batch));
      }
    }
    reply.header('content-disposition', `attachment; filename="${report}-${filter.period.from}-${filter.period.to}.csv"`);
    return reply.send(Readable.from(lines()));
  }

  app.get<{ Querystring: PagedQuery & { nhsNumber: string } }>(
    '/api/audit/reports/patient-access',
    {
      config: SERVICE_TEAM,
      schema: {
        tags: ['Audit reports'],
        summary: 'Who accessed this patient\'s record: when, from which organisation, what they did, and whether they were refused',
        description: `Every access entry naming the patient, in log order; at most ${MAX_ROWS_DAYS} days. JSON is paged (follow \`next\`); CSV streams every entry. An audit report: not filtered by consent to secondary use. Itself an access, recorded before the answer.`,
        querystring: { type: 'object', additionalProperties: false, required: ['nhsNumber', 'from', 'to'], properties: { nhsNumber: { type: 'string', maxLength: 10, description: 'The patient\'s NHS number' }, ...periodParams, ...pagingParams, ...formatParam(['json', 'csv']) } },
        response: answers(accessPageSchema, ['json', 'csv'], 'The entries, as JSON (a page) or CSV'),
      },
    },
    async (request, reply) => {
      const q = request.query;
      const issues: IssueInput[] = [];
      checkNhsNumber(q.nhsNumber, issues);
      const after = decodeSeqCursor(q._cursor, issues);
      const period = checkPeriod(q.from, q.to, MAX_ROWS_DAYS, issues);
      // Only this patient's NHS number is shown: a search that returned others is not a report about them.
      return sendAccessReport(request, reply, 'patient-access', { period, nhsNumber: q.nhsNumber }, after, (rows) => rows.map((r) => ({ ...r, nhsNumbers: [q.nhsNumber] })));
    },
  );

  app.get<{ Querystring: PagedQuery & { agent?: string; organisation?: string; outcome?: AccessFilter['outcome']; outsideWorkingHours?: boolean } }>(
    '/api/audit/reports/agent-access',
    {
      config: SERVICE_TEAM,
      schema: {
        tags: ['Audit reports'],
        summary: 'What a user (or system client) or an organisation accessed in a period; optionally only refused attempts, or only accesses outside working hours',
        description: `Give agent or organisation, not both; at most ${MAX_ROWS_DAYS} days. Working hours are Monday to Friday 08:00-18:30 London time. JSON is paged (follow \`next\`); CSV streams every entry. Itself an access naming the patients it shows, recorded before each page or batch is sent.`,
        querystring: {
          type: 'object',
          additionalProperties: false,
          required: ['from', 'to'],
          properties: {
            agent: { type: 'string', minLength: 1, maxLength: 200, description: 'The user\'s or client\'s id' },
            organisation: { type: 'string', pattern: '^[A-Z0-9]{3,10}$', description: 'An ODS code' },
            outcome: { enum: ['allowed', 'refused', 'failed'] },
            outsideWorkingHours: { type: 'boolean', description: 'true: only outside working hours; false: only within' },
            ...periodParams,
            ...pagingParams,
            ...formatParam(['json', 'csv']),
          },
        },
        response: answers(accessPageSchema, ['json', 'csv'], 'The entries, as JSON (a page) or CSV'),
      },
    },
    async (request, reply) => {
      const q = request.query;
      const issues: IssueInput[] = [];
      if ((q.agent === undefined) === (q.organisation === undefined)) issues.push({ code: 'required', diagnostics: 'give either agent or organisation (one of them)' });
      const after = decodeSeqCursor(q._cursor, issues);
      const period = checkPeriod(q.from, q.to, MAX_ROWS_DAYS, issues);
      const filter: AccessFilter = {
        period,
        ...(q.agent !== undefined ? { agent: q.agent } : {}),
        ...(q.organisation !== undefined ? { organisation: q.organisation } : {}),
        ...(q.outcome !== undefined ? { outcome: q.outcome } : {}),
        ...(q.outsideWorkingHours !== undefined ? { outsideWorkingHours: q.outsideWorkingHours } : {}),
      };
      return sendAccessReport(request, reply, 'agent-access', filter, after, (rows) => rows);
    },
  );

  /** A statistic: computed, recorded as an access, then sent in the format asked for. */
  function statisticRoute<Result extends { excludedPatients: number }>(spec: {
    path: string;
    summary: string;
    description: string;
    schema: object;
    compute: (period: Period) => Promise<Result>;
    json: (r: Result) => object;
    csv: (r: Result, period: Period) => string;
    svg: (r: Result, period: Period) => string;
  }) {
    const report = spec.path.slice(spec.path.lastIndexOf('/') + 1);
    const formats = ['json', 'csv', 'svg'] as const;
    app.get<{ Querystring: PeriodQuery }>(
      spec.path,
      {
        config: SERVICE_TEAM,
        schema: {
          tags: ['Audit reports'],
          summary: spec.summary,
          description: `${spec.description} At most ${MAX_STATISTICS_DAYS} days. Patients whose consent does not permit secondary use are left out and counted in excludedPatients. Itself an access, recorded before the answer.`,
          querystring: { type: 'object', additionalProperties: false, required: ['from', 'to'], properties: { ...periodParams, ...formatParam(formats) } },
          response: answers(spec.schema, formats, 'The report as JSON, CSV or an SVG chart'),
        },
      },
      async (request, reply) => {
        const period = periodOf(request.query, MAX_STATISTICS_DAYS);
        const format = formatOf(request.query._format, request.headers.accept, formats);
        const result = await spec.compute(period);
        await record(request, []);
        reply.header('cache-control', 'no-store').type(contentTypeOf(format));
        if (format === 'csv') reply.header('content-disposition', `attachment; filename="${report}-${period.from}-${period.to}.csv"`);
        if (format === 'json') return { report, period, ...spec.json(result) };
        return format === 'csv' ? spec.csv(result, period) : spec.svg(result, period);
      },
    );
  }

  const left = (r: { excludedPatients: number }) => `${r.excludedPatients} patient(s) left out: no consent to secondary use`;
  const stacked = <Row extends { month: string; organisationType: string }>(rows: Row[], value: (r: Row) => number): BarGroup[] => {
    const months = [...new Set(rows.map((r) => r.month))];
    return months.map((m) => ({ label: m, segments: rows.filter((r) => r.month === m).map((r) => ({ label: r.organisationType, value: value(r) })) }));
  };
  /** Statistics as CSV in long form: measure, period (a month, a date or the report's period), organisation type, count. */
  const longCsv = (rows: { measure: string; period: string; organisationType?: string; count: number }[]) => csvTable(['measure', 'period', 'organisationType', 'count'], rows);
  const whole = (p: Period) => `${p.from}/${p.to}`;

  statisticRoute<UrgentCareViews>({
    path: '/api/audit/reports/urgent-care-views',
    summary: 'Urgent care views of plans per month, by the type of the viewer\'s organisation (the guide\'s "5,049 views by urgent care in December (2,867 LAS)")',
    description: 'A view is one patient\'s record shown (read, summary or print) to a user in the urgent-care role, allowed; months are London time.',
    schema: viewsSchema,
    compute: (period) => urgentCareViews(database.db, period),
    json: (r) => ({ excludedPatients: r.excludedPatients, rows: r.rows, totals: monthTotals(r.rows) }),
    csv: (r, period) =>
      longCsv([
        ...r.rows.flatMap((row) => [
          { measure: 'views', period: row.month, organisationType: row.organisationType, count: row.views },
          { measure: 'patients', period: row.month, organisationType: row.organisationType, count: row.patients },
        ]),
        { measure: 'excluded-patients', period: whole(period), count: r.excludedPatients },
      ]),
    svg: (r, period) => barChartSvg({ title: `Urgent care views per month by organisation type, ${period.from} to ${period.to} (${left(r)})`, groups: stacked(r.rows, (row) => row.views) }),
  });

  statisticRoute<PlansReport>({
    path: '/api/audit/reports/plans',
    summary: 'Plans created per month by the type of the creator\'s organisation, plans published per month, and published plans overdue for review today',
    description: 'A plan published several times in a month counts once that month; overdue means published now with its review date before today (London).',
    schema: plansSchema,
    compute: (period) => plansReport(database.db, period),
    json: (r) => r,
    csv: (r, period) =>
      longCsv([
        ...r.created.map((row) => ({ measure: 'created', period: row.month, organisationType: row.organisationType, count: row.plans })),
        ...r.published.map((row) => ({ measure: 'published', period: row.month, count: row.plans })),
        { measure: 'overdue-for-review', period: r.overdueForReview.asOf, count: r.overdueForReview.plans },
        { measure: 'excluded-patients', period: whole(period), count: r.excludedPatients },
      ]),
    svg: (r, period) => barChartSvg({ title: `Plans created per month by organisation type, ${period.from} to ${period.to} (${left(r)})`, groups: stacked(r.created, (row) => row.plans) }),
  });

  const outcomeShares = (r: OutcomesReport): [string, string, { patients: number; percent: number | null }][] => [
    ['met-first', 'Met PPD1', r.preferredPlace.metFirst],
    ['met-second', 'Met PPD2', r.preferredPlace.metSecond],
    ['not-met', 'Not met PPD', r.preferredPlace.notMet],
    ['died-in-hospital', 'Died in hospital', r.placeOfDeath.hospital],
    ['died-outside-hospital', 'Died outside hospital', r.placeOfDeath.outsideHospital],
  ];

  statisticRoute<OutcomesReport>({
    path: '/api/audit/reports/outcomes',
    summary: 'Of patients who died in the period: the share who died in their preferred place (first choice, second, not met) and the share who died in hospital',
    description: 'Preferred-place shares are of the patients who had expressed a preference; hospital shares of those with a place of death recorded. The period is of dates of death.',
    schema: outcomesSchema,
    compute: (period) => outcomesReport(database.db, period),
    json: (r) => r,
    csv: (r) =>
      csvTable(['measure', 'patients', 'percent'], [
        { measure: 'deaths', patients: r.deaths, percent: null },
        { measure: 'place-of-death-recorded', patients: r.placeOfDeathRecorded, percent: null },
        { measure: 'preferred-place-expressed', patients: r.preferredPlaceExpressed, percent: null },
        ...outcomeShares(r).map(([measure, , s]) => ({ measure, ...s })),
        ...Object.entries(r.placeOfDeath.byPlace).map(([place, patients]) => ({ measure: `died-at-${place}`, patients, percent: null })),
        { measure: 'excluded-patients', patients: r.excludedPatients, percent: null },
      ]),
    svg: (r, period) =>
      barChartSvg({
        title: `Preferred place of death met (of ${r.preferredPlaceExpressed}) and place of death (of ${r.placeOfDeathRecorded}), ${period.from} to ${period.to} (${left(r)})`,
        unit: '%',
        groups: outcomeShares(r).map(([, label, s]) => ({ label, segments: [{ label, value: s.percent ?? 0 }] })),
      }),
  });
}

function monthTotals(rows: { month: string; views: number }[]): { month: string; views: number }[] {
  const totals = new Map<string, number>();
  for (const r of rows) totals.set(r.month, (totals.get(r.month) ?? 0) + r.views);
  return [...totals].map(([month, views]) => ({ month, views }));
}
