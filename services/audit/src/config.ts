import { int, list, optionalStr, str, type ConfigOf } from '@cmc/config';

/** The audit service's own settings (besides those every service reads). */
export const auditConfigSpec = {
  AUDIT_LOG_ORIGIN: str({
    doc: 'Name of the log in its signed checkpoints (the first line, and the signing key\'s name); one per installation.',
    default: 'cmc.audit.log',
    pattern: /^[A-Za-z0-9._/:-]{1,100}$/,
  }),
  AUDIT_SIGNING_KEY: optionalStr({ doc: 'Ed25519 private key (PKCS#8 PEM) that signs checkpoints. Keep it outside the database.', secret: true }),
  AUDIT_SIGNING_KEY_FILE: optionalStr({
    doc: 'File holding the checkpoint signing key (PKCS#8 PEM), when AUDIT_SIGNING_KEY is not set; created (mode 0600) with a new key if missing. With neither, each start makes a key that lives only as long as the process (development only: earlier checkpoints then no longer verify).',
  }),
  AUDIT_TRUSTED_KEYS: list({
    doc: 'Verifier keys (`<name>+<key id>+<base64 key>`, as /api/audit/checkpoints/key gives) of earlier signing keys, so checkpoints signed before a key rotation still verify.',
    default: [],
  }),
  AUDIT_CHECKPOINT_ENTRIES: int({ doc: 'Sign a checkpoint once this many entries are new...', default: 1000, min: 1, max: 1_000_000 }),
  AUDIT_CHECKPOINT_SECONDS: int({ doc: '...or once the newest checkpoint is this old and anything is new.', default: 10, min: 1, max: 86_400 }),
} as const;

export type AuditConfig = ConfigOf<typeof auditConfigSpec>;
