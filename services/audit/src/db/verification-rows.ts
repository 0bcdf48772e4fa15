/**
 * The log's rows as verification reads them: COPY ... TO STDOUT in PostgreSQL's binary format, so no column is
 * decoded into a JavaScript string and nothing is escaped here. PostgreSQL writes the entry's canonical form
 * (`entryText` in ../domain/chain): each column a JSON value by `to_json`, whose escaping of text is
 * JSON.stringify's (the same short escapes, other control characters as lower-case \u00XX, nothing else; a
 * PostgreSQL text cannot hold the lone surrogates where the two could differ), the times formatted as
 * toISOString does. Here the pieces are put behind the previous hash in one reused buffer: exactly what the
 * entry's hash covers, ready for one SHA-256. The hash is computed here, never by the database.
 *
 * Trust: the bytes hashed come from the database's encoding of the row, the hash they are compared with from the
 * append, which encoded in JavaScript. For every row the two encodings agree (a test appends quotes,
 * backslashes, control characters and non-ASCII text and verifies), and the database's is one-to-one, so a row
 * changed in any column gives other bytes and fails its hash; an encoding that disagreed would show as a
 * failure, never hide one.
 *
 * Why the database encodes: what it sends is then the final bytes, not strings to decode, escape and encode
 * again, which was most of verification's cost (about 18 µs an entry before; see decision 0010).
 */
import type { PoolClient } from 'pg';
import { to as copyTo } from 'pg-copy-streams';

const iso = (column: string) => `to_char(${column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
const json = (column: string) => `coalesce(to_json(${column})::text, 'null')`;

/**
 * The binary COPY columns: seq, the leaf's input (0x00 || hash, RFC 6962; the stored hash after its first
 * byte), prev_hash, and the entry's canonical form in three pieces: the text before the event's value, the
 * event's value, and the text after it (in `entryText` order, each column one JSON value). The event goes on
 * its own so that the database does not copy its largest column again to join it to the rest.
 */
const COLUMNS = [
  'seq',
  `'\\x00'::bytea || hash`,
  'prev_hash',
  `'{"agentId":' || ${json('agent_id')} || ',"agentKind":' || ${json('agent_kind')} || ',"agentOrganisation":' || ${json('agent_organisation')}` +
    ` || ',"agentRole":' || ${json('agent_role')} || ',"appendedAt":"' || ${iso('appended_at')} || '","event":'`,
  'to_json(event)',
  `',"eventId":"' || event_id::text || '","eventType":' || ${json('event_type')} || ',"interaction":' || ${json('interaction')}` +
    ` || ',"nhsNumbers":' || coalesce(array_to_json(nhs_numbers)::text, 'null') || ',"outcome":' || ${json('outcome')}` +
    ` || ',"recordedAt":"' || ${iso('recorded_at')} || '","seq":' || seq::text || ',"topic":' || ${json('topic')} || '}'`,
] as const;
const FIELD_COUNT = COLUMNS.length;

/** One row, valid only during the callback (its buffers are reused). */
export interface VerificationRow {
  seq: number;
  /** 0x00 || the stored hash: the input of the entry's leaf hash. */
  leafInput: Buffer;
  /** The stored hash. */
  hash: Buffer;
  /** The stored prev_hash. */
  prevHash: Buffer;
  /** prev_hash || the entry's canonical bytes: the input of the entry's hash. */
  hashed: Buffer;
}

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * Streams the entries with seq in (afterSeq, toSeq], in seq order, calling `onRow` for each. Runs on the
 * given client, in whatever transaction (and snapshot) it is in.
 */
export async function streamVerificationRows(client: PoolClient, afterSeq: number, toSeq: number, onRow: (row: VerificationRow) => void): Promise<void> {
  if (!Number.isSafeInteger(afterSeq) || !Number.isSafeInteger(toSeq)) throw new RangeError('seq bounds must be integers');
  // COPY takes no parameters; both bounds are integers checked above.
  const query = `copy (select ${COLUMNS.join(', ')} from audit_log where seq > ${afterSeq} and seq <= ${toSeq} order by seq) to stdout (format binary)`;
  const stream = client.query(copyTo(query));
  let scratch = Buffer.allocUnsafe(64 * 1024);
  const starts = new Int32Array(FIELD_COUNT);
  const lengths = new Int32Array(FIELD_COUNT);
  let rest: Buffer | null = null;
  let headerRead = false;
  let ended = false;

  for await (const piece of stream as AsyncIterable<Buffer>) {
    const buf: Buffer = rest ? Buffer.concat([rest, piece]) : piece;
    rest = null;
    let o = 0;
    if (!headerRead) {
      if (buf.length < 19) {
        rest = buf;
        continue;
      }
      if (!buf.subarray(0, 11).equals(SIGNATURE)) throw new Error('COPY: not PostgreSQL binary format');
      const extension = buf.readInt32BE(15);
      if (buf.length < 19 + extension) {
        rest = buf;
        continue;
      }
      o = 19 + extension;
      headerRead = true;
    }
    for (;;) {
      if (buf.length - o < 2) break;
      const fields = buf.readInt16BE(o);
      if (fields === -1) {
        ended = true;
        o += 2;
        break;
      }
      if (fields !== FIELD_COUNT) throw new Error(`COPY: a row of ${fields} fields, not ${FIELD_COUNT}`);
      let p = o + 2;
      let complete = true;
      for (let f = 0; f < FIELD_COUNT; f++) {
        if (buf.length - p < 4) {
          complete = false;
          break;
        }
        const len = buf.readInt32BE(p);
        starts[f] = p + 4;
        lengths[f] = len;
        p += 4 + (len > 0 ? len : 0);
        if (p > buf.length) {
          complete = false;
          break;
        }
      }
      if (!complete) break;

      const seq = buf.readInt32BE(starts[0]) * 4294967296 + buf.readUInt32BE(starts[0]! + 4);
      const leafInput = buf.subarray(starts[1], starts[1]! + lengths[1]!);
      const prevHash = buf.subarray(starts[2], starts[2]! + lengths[2]!);
      // A NULL piece (an event_id or time the schema says cannot be null) gives bytes that will not match: reported, not skipped.
      const size = lengths[2]! + Math.max(lengths[3]!, 0) + Math.max(lengths[4]!, 0) + Math.max(lengths[5]!, 0);
      if (scratch.length < size) scratch = Buffer.allocUnsafe(Math.max(size, scratch.length * 2));
      // prev_hash || before || event || after, contiguous: one SHA-256 call.
      scratch.set(prevHash, 0);
      let w = lengths[2]!;
      for (let f = 3; f < FIELD_COUNT; f++) {
        if (lengths[f]! > 0) {
          scratch.set(buf.subarray(starts[f], starts[f]! + lengths[f]!), w);
          w += lengths[f]!;
        }
      }
      onRow({ seq, leafInput, hash: leafInput.subarray(1), prevHash, hashed: scratch.subarray(0, w) });
      o = p;
    }
    if (o < buf.length) rest = buf.subarray(o);
  }
  if (!ended) throw new Error('COPY: the row stream ended without its trailer');
}
