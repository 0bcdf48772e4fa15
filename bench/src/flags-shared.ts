/** What the two processes of the flag-lookup benchmark (flags.ts, flags-server.ts) share. */
import { sql } from '@cmc/db';

/** Nine-digit prefixes of the flag benchmark start here (9xx: the range set aside for testing). */
const FIRST_PREFIX = 900_000_000;

/**
 * A query for `count` valid NHS numbers (modulus 11, as in randomNhsNumber), in order: those of the prefixes
 * FIRST_PREFIX + 2k (`seeded`, the patients with a flag) or FIRST_PREFIX + 2k + 1 (not seeded: lookups that
 * find no flag), skipping each prefix that has no check digit (about one in eleven). One column, nhs_number.
 */
export function validNhsNumbers(count: number, which: 'seeded' | 'unseeded') {
  const first = FIRST_PREFIX + (which === 'seeded' ? 0 : 1);
  const candidates = Math.ceil(count * 1.25) + 100;
  const digit = (i: number) => sql.raw(`(p / ${10 ** (8 - i)} % 10) * ${10 - i}`);
  const sum = sql.join(Array.from({ length: 9 }, (_, i) => digit(i)), sql` + `);
  return sql<{ nhs_number: string }>`
    select p::text || c::text as nhs_number
    from generate_series(0, ${candidates}::bigint) as k
    cross join lateral (select ${first}::bigint + 2 * k as p) as prefix
    cross join lateral (select (11 - (${sum}) % 11) % 11 as c) as check_digit
    where c <> 10
    order by k
    limit ${count}`;
}

/** The flag server's answer to `mem`, in MB. */
export interface Memory {
  peakRssMb: number;
  rssMb: number;
  heapTotalMb: number;
  heapUsedMb: number;
  youngGenerationMb: number;
}

/** The flag server's first line: where its three apps listen, and what it seeded. */
export interface Ready {
  url: string;
  bareUrl: string;
  perCommitUrl: string;
  schema: string;
  patients: number;
  seedSeconds: number;
  poolMax: number;
  tokens: { urgentCare: string };
}

/** The flag server's answer to `stats`: the service's access log (commits, entries) and outbox relay, since start. */
export interface Stats {
  batches: number;
  entries: number;
  relayBatches: number;
  relaySent: number;
}
