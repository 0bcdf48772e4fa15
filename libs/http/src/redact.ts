/**
 * Keeping patient data out of logs. Request bodies are never logged. URLs are, for operations' sake, but with
 * every run of digits of NHS-number length masked and every query value replaced, since search parameters
 * carry NHS numbers, names and dates of birth.
 */
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

/** pino redaction paths: credentials, and patient-identifying fields wherever an object is logged. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  '*.password',
  '*.token',
  '*.nhsNumber',
  '*.nhs_number',
  '*.name',
  '*.birthDate',
  '*.birth_date',
  '*.address',
  '*.telecom',
  '*.text',
  '*.note',
  '*.payload',
  '*.detail',
  'err.detail',
  'err.where',
];
