// Kept here so that users of @cmc/http need not know where the filters live.
export { redactUrl, REDACT_PATHS, scrubText, safeError } from '@cmc/logging';
