/** JSON schemas shared by route declarations, so OpenAPI shows every response. */
export const operationOutcomeSchema = {
  type: 'object',
  description: 'FHIR R4 OperationOutcome: what went wrong, one issue per problem.',
  additionalProperties: true,
  properties: {
    resourceType: { type: 'string', const: 'OperationOutcome' },
    issue: {
      type: 'array',
      items: {
        type: 'object',
        additionalProperties: true,
        properties: {
          severity: { type: 'string' },
          code: { type: 'string' },
          diagnostics: { type: 'string' },
          expression: { type: 'array', items: { type: 'string' } },
        },
      },
    },
  },
} as const;


/** Error responses every protected FHIR route can give. */
export const errorResponses = {
  400: { ...operationOutcomeSchema, description: 'Bad request: the OperationOutcome names each problem' },
  401: { ...operationOutcomeSchema, description: 'No valid bearer token' },
  403: { ...operationOutcomeSchema, description: 'Not allowed for this role, organisation or patient' },
  404: { ...operationOutcomeSchema, description: 'Not found' },
  413: { ...operationOutcomeSchema, description: 'Body too large' },
  415: { ...operationOutcomeSchema, description: 'Unsupported Content-Type' },
  422: { ...operationOutcomeSchema, description: 'Well-formed but breaks a rule' },
  500: { ...operationOutcomeSchema, description: 'Internal error; no details are given' },
} as const;

/** A FHIR resource in a response: described, not constrained (the domain builds it). */
export const fhirResource = (resourceType: string, description: string) =>
  ({
    type: 'object',
    description,
    additionalProperties: true,
    properties: { resourceType: { type: 'string', const: resourceType }, id: { type: 'string' } },
  }) as const;
