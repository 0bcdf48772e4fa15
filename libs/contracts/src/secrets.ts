import type { EventType } from './schemas';

/**
 * Fields of event data that are bearer secrets for a moment (a password-reset or invitation link): whoever
 * holds one can use it. Consumers use them and never keep them; whatever keeps a copy of an event (a
 * dead-letter topic or table, a log) keeps it with these replaced by `[redacted]`.
 */
export const SECRET_FIELDS: Partial<Record<EventType, readonly string[]>> = {
  'cmc.identity.password-reset-requested.v1': ['resetUrl'],
  'cmc.identity.invitation-created.v1': ['acceptUrl'],
};

const ALL_SECRET_FIELDS = [...new Set(Object.values(SECRET_FIELDS).flat())];

/**
 * A message's text (a CloudEvent as JSON) with its secret fields redacted. The fields are redacted by name
 * whatever the event's type claims, since a message kept because it failed its contract may have a wrong
 * one. A message that is not JSON cannot be read by field: any `token=` value in it is redacted instead.
 */
export function redactSecrets(message: string): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(message);
  } catch {
    return message.replace(/(token=)[^\s"'&#<>]+/gi, '$1[redacted]');
  }
  const data = (parsed as { data?: unknown } | null)?.data;
  if (typeof data !== 'object' || data === null) return message;
  const d = data as Record<string, unknown>;
  const found = ALL_SECRET_FIELDS.filter((f) => f in d);
  if (found.length === 0) return message;
  for (const f of found) d[f] = '[redacted]';
  return JSON.stringify(parsed);
}
