import type { Logger } from '@cmc/logging';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { generateSigningKey, parseVerifierKey, signingKeyFromPem, type SigningKey } from './domain/checkpoint';
import type { VerifierKey } from './domain/verify';
import type { AuditConfig } from './config';

/** The checkpoint signing key and the keys checkpoints are verified with. */
export interface Keys {
  signer: SigningKey;
  /** The signer's public key first, then AUDIT_TRUSTED_KEYS. */
  verifiers: VerifierKey[];
}

/**
 * The signing key from AUDIT_SIGNING_KEY, else AUDIT_SIGNING_KEY_FILE (made with a new key when missing), else
 * a key for this process alone, with a warning. Throws (so the service does not start) on a key that is not
 * Ed25519 or a trusted key that does not parse.
 */
export function loadKeys(config: AuditConfig, logger: Pick<Logger, 'warn' | 'info'>): Keys {
  const origin = config.AUDIT_LOG_ORIGIN;
  let signer: SigningKey;
  if (config.AUDIT_SIGNING_KEY) {
    signer = signingKeyFromPem(origin, config.AUDIT_SIGNING_KEY);
  } else if (config.AUDIT_SIGNING_KEY_FILE) {
    const file = config.AUDIT_SIGNING_KEY_FILE;
    if (!existsSync(file)) {
      const fresh = generateSigningKey(origin);
      // 'wx': never overwrite a key another instance wrote meanwhile; then read whatever is there.
      try {
        writeFileSync(file, fresh.privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600, flag: 'wx' });
        logger.info({ file, keyId: fresh.keyId }, 'made a new checkpoint signing key');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    signer = signingKeyFromPem(origin, readFileSync(file, 'utf8'));
  } else {
    signer = generateSigningKey(origin);
    logger.warn(
      { keyId: signer.keyId },
      'no AUDIT_SIGNING_KEY or AUDIT_SIGNING_KEY_FILE: checkpoints are signed with a key that lives only as long as this process (development only)',
    );
  }
  const verifiers: VerifierKey[] = [
    { origin: signer.origin, keyId: signer.keyId, publicKey: signer.publicKey },
    ...config.AUDIT_TRUSTED_KEYS.map((text) => parseVerifierKey(text)),
  ];
  return { signer, verifiers };
}
