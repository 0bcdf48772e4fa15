import { int, optionalStr, str, url, type ConfigOf } from '@cmc/config';

/** The identity service's own settings (besides those every service reads). */
export const identityConfigSpec = {
  IDENTITY_PUBLIC_URL: url({
    doc: 'The base URL clients use (the gateway): links in emails and the token endpoint clients sign their assertions for.',
    default: 'http://127.0.0.1:8080',
    protocols: ['http', 'https'],
  }),
  IDENTITY_ACCESS_TOKEN_SECONDS: int({ doc: 'Lifetime of access tokens, in seconds.', default: 600, min: 60, max: 3600 }),
  IDENTITY_REFRESH_TOKEN_HOURS: int({ doc: 'Lifetime of a login session (refresh token family), in hours.', default: 12, min: 1, max: 720 }),
  IDENTITY_KEY_ACTIVATION_SECONDS: int({
    doc: 'After a key rotation, how long the new key is published before it signs (every instance and JWKS cache must have it by then).',
    default: 120,
    min: 0,
    max: 3600,
  }),
  IDENTITY_MAX_FAILED_LOGINS: int({ doc: 'Failed logins in a row before the account is locked for a while.', default: 5, min: 3, max: 20 }),
  IDENTITY_LOCKOUT_MINUTES: int({ doc: 'How long too many failed logins lock an account.', default: 15, min: 1, max: 1440 }),
  IDENTITY_INACTIVITY_DAYS: int({ doc: 'Days without a login after which an account locks (the guide: 180).', default: 180, min: 30, max: 730 }),
  IDENTITY_AUP_VERSION: str({ doc: 'Version of the acceptable use policy people must accept; a new version asks again.', default: '2026-11' }),
  IDENTITY_ARGON2_MEMORY_KIB: int({ doc: 'argon2id memory cost per password hash, in KiB (OWASP: 19456 with 2 passes).', default: 19456, min: 8192, max: 1048576 }),
  IDENTITY_ARGON2_PASSES: int({ doc: 'argon2id time cost (passes).', default: 2, min: 1, max: 10 }),
  CMC_SERVICE_TEAM_ODS: str({ doc: 'ODS-style code of the service team\'s own organisation, created with the bootstrap admin.', default: 'CMC', pattern: /^[A-Z0-9]{3,10}$/ }),
  CMC_BOOTSTRAP_ADMIN_EMAIL: optionalStr({ doc: 'At first start, creates the first service-team admin with this email (with CMC_BOOTSTRAP_ADMIN_PASSWORD).' }),
  CMC_BOOTSTRAP_ADMIN_PASSWORD: optionalStr({ doc: 'Password of the bootstrap admin (at least 10 characters, upper- and lower-case letters).', secret: true }),
} as const;

export type IdentityConfig = ConfigOf<typeof identityConfigSpec>;
