/**
 * JSON schemas of the FHIR R4 datatypes our request bodies use. Closed (no unknown elements) so that a typo
 * in a client's resource is an error rather than silently dropped data.
 */
export const codingSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    system: { type: 'string', format: 'uri', maxLength: 500 },
    version: { type: 'string', maxLength: 100 },
    code: { type: 'string', minLength: 1, maxLength: 200, pattern: '^[^\\s]+(\\s[^\\s]+)*$' },
    display: { type: 'string', maxLength: 1000 },
    userSelected: { type: 'boolean' },
  },
} as const;

export const codeableConceptSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  properties: {
    coding: { type: 'array', minItems: 1, maxItems: 20, items: codingSchema },
    text: { type: 'string', maxLength: 2000 },
  },
} as const;

export const identifierSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['system', 'value'],
  properties: {
    use: { enum: ['usual', 'official', 'temp', 'secondary', 'old'] },
    system: { type: 'string', format: 'uri', maxLength: 500 },
    value: { type: 'string', minLength: 1, maxLength: 200 },
  },
} as const;

/** FHIR dateTime: a year, year-month, date, or date-time with a time zone. */
export const dateTimeSchema = {
  type: 'string',
  pattern: '^([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]{1,9})?(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?$',
} as const;

/** `meta` as clients may send it; servers set versionId and lastUpdated themselves. */
export const metaSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    versionId: { type: 'string', maxLength: 64 },
    lastUpdated: { type: 'string', maxLength: 64 },
    profile: { type: 'array', maxItems: 10, items: { type: 'string', format: 'uri' } },
    tag: { type: 'array', maxItems: 20, items: codingSchema },
    security: { type: 'array', maxItems: 20, items: codingSchema },
  },
} as const;

export const idSchema = { type: 'string', pattern: '^[A-Za-z0-9\\-.]{1,64}$' } as const;
