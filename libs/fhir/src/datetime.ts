const FHIR_DATE_TIME = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2}))?)?)?$/;

function daysInMonth(year: number, month: number): number {
  return new Date(Date.UTC(year, month, 0)).getUTCDate();
}

/**
 * The instant a FHIR dateTime stands for, or undefined when it is not one: partial forms (`2026`, `2026-03`,
 * `2026-03-01`) mean their first moment in UTC; a time needs a zone. Calendar dates are checked (no 31
 * February, no hour 24), unlike Date.parse, which rolls them over.
 */
export function parseFhirDateTime(value: string): Date | undefined {
  const m = FHIR_DATE_TIME.exec(value);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac, zone] = m;
  const year = Number(y);
  const month = mo ? Number(mo) : 1;
  const day = d ? Number(d) : 1;
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if (h === undefined) return new Date(Date.UTC(year, month - 1, day));
  const [hour, minute, second] = [Number(h), Number(mi), Number(s)];
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  let offsetMinutes = 0;
  if (zone && zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const [zh, zm] = zone.slice(1).split(':').map(Number) as [number, number];
    if (zh > 14 || zm > 59) return undefined;
    offsetMinutes = sign * (zh * 60 + zm);
  }
  const ms = frac ? Number(frac.slice(0, 3).padEnd(3, '0')) : 0;
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMinutes * 60_000);
}

/** The end of the period a partial FHIR dateTime names (2026 -> 2027-01-01; a full date-time -> +1 s). */
function periodEnd(value: string, start: Date): Date {
  const end = new Date(start);
  if (/^\d{4}$/.test(value)) end.setUTCFullYear(end.getUTCFullYear() + 1);
  else if (/^\d{4}-\d{2}$/.test(value)) end.setUTCMonth(end.getUTCMonth() + 1);
  else if (/^\d{4}-\d{2}-\d{2}$/.test(value)) end.setUTCDate(end.getUTCDate() + 1);
  else end.setTime(end.getTime() + 1000);
  return end;
}

/** One FHIR date search value: its prefix and the period [start, end) that its (possibly partial) date names. */
export interface DateParam {
  op: 'ge' | 'gt' | 'le' | 'lt' | 'eq';
  start: Date;
  end: Date;
}

/** Parses a date search value such as `ge2026-03` or `2026-03-01T10:00:00Z`; undefined when it is not one. */
export function parseDateParam(raw: string): DateParam | undefined {
  const m = /^(eq|ge|gt|le|lt)?(.+)$/.exec(raw);
  const start = m ? parseFhirDateTime(m[2]!) : undefined;
  if (!m || !start) return undefined;
  return { op: (m[1] ?? 'eq') as DateParam['op'], start, end: periodEnd(m[2]!, start) };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

/** Whether an id has the form of the UUIDs our servers assign (others cannot exist, so they are 404s). */
export const isUuid = (value: string): boolean => UUID.test(value);
