export * from './outcome';
export * from './nhs-number';
export * from './bundle';
export * from './schemas';
export * from './datetime';
export * from './capability';
export const FHIR_JSON = 'application/fhir+json';
