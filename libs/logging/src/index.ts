import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Keeping patient data out of logs. Bodies and event payloads are never logged. What is logged goes through
 * three filters: field names that carry patient data or credentials are redacted at any depth up to four;
 * errors are reduced to their class, code and a scrubbed message (database and parser messages quote input
 * values); URLs keep their shape with digit runs masked and query values dropped.
 */

/** Masks what could identify a patient in free text: digit runs of six or more, and quoted values. */
export function scrubText(s: string, max = 500): string {
  return s
    .replace(/\d{6,}/g, (m) => '*'.repeat(m.length))
    .replace(/"[^"]*"/g, '"…"')
    .replace(/'[^']*'/g, "'…'")
    .replace(/\(([^()]*)\)=\(([^()]*)\)/g, '($1)=(…)')
    .slice(0, max);
}

export interface SafeError {
  type: string;
  code?: string;
  message: string;
  stack?: string;
}

/** An error as it may be logged: class, code, scrubbed message, and the stack's frames (never its message). */
export function safeError(e: unknown): SafeError {
  if (!(e instanceof Error)) return { type: typeof e, message: scrubText(typeof e === 'string' ? e : 'non-error thrown') };
  const out: SafeError = { type: e.name, message: scrubText(e.message) };
  const code = (e as { code?: unknown }).code;
  if (typeof code === 'string' || typeof code === 'number') out.code = String(code);
  const frames = (e.stack ?? '').split('\n').filter((l) => l.trimStart().startsWith('at '));
  if (frames.length > 0) out.stack = frames.slice(0, 12).join('\n');
  return out;
}

/** A URL fit for logs: digit runs masked, query values replaced (search parameters carry patient data). */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  const path = maskDigits(q === -1 ? url : url.slice(0, q));
  if (q === -1) return path;
  // Names are kept, but masked too: a parameter sent without `=` (`?9434765919`) has only a name.
  const names = url
    .slice(q + 1)
    .split('&')
    .filter((p) => p.length > 0)
    .map((p) => `${maskDigits(decodeSafe(p.split('=')[0] ?? ''))}=*`);
  return `${path}?${names.join('&')}`;
}

function maskDigits(s: string): string {
  return s.replace(/\d{6,}/g, (m) => '*'.repeat(m.length));
}

function decodeSafe(s: string): string {
  try {
    return decodeURIComponent(s).replace(/[^\w:.\-_]/g, '');
  } catch {
    return '?';
  }
}

/** Field names whose values are never logged, wherever they appear. */
export const SENSITIVE_KEYS = [
  'password',
  'newPassword',
  'currentPassword',
  'token',
  'refreshToken',
  'accessToken',
  'secret',
  'nhsNumber',
  'nhs_number',
  'name',
  'given',
  'family',
  'birthDate',
  'birth_date',
  'address',
  'telecom',
  'email',
  'text',
  'note',
  'payload',
  'value',
  'detail',
  'where',
  'body',
];

/** Top-level keys whose values are URLs: logged through redactUrl. */
export const URL_KEYS = ['url', 'source', 'target', 'location', 'href'];

/** pino redaction paths: credentials in headers, and every sensitive key at depths 0 to 3. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  ...SENSITIVE_KEYS.flatMap((k) => [k, `*.${k}`, `*.*.${k}`, `*.*.*.${k}`]),
];

export interface LoggerOptions {
  service: string;
  level?: string;
  /** Where lines go (default stdout). */
  stream?: DestinationStream;
}

/** The platform's logger: pino, redacted, errors sanitised. Fastify apps and background workers share it. */
export function createLogger(opts: LoggerOptions): Logger {
  const options = {
    level: opts.level ?? 'info',
    base: { service: opts.service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      err: safeError,
      error: safeError,
      req: (req: { method: string; url: string; id: string }) => ({ method: req.method, url: redactUrl(req.url), id: req.id }),
      // URLs logged by libraries under their own keys (the gateway's proxy logs `source`, the upstream URL).
      ...Object.fromEntries(URL_KEYS.map((k) => [k, (u: unknown) => (typeof u === 'string' ? redactUrl(u) : '[redacted]')])),
    },
  };
  return opts.stream ? pino(options, opts.stream) : pino(options);
}

export type { Logger } from 'pino';
