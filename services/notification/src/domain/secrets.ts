import type { Logger } from '@cmc/logging';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { sql, type Kysely } from 'kysely';
import type { NotificationConfig } from '../config';
import type { NotificationDB } from '../db/schema';

const VERSION = 'v1';
const b64u = (b: Buffer): string => b.toString('base64url');

/** A stored secret that cannot be opened: sealed with another key, or altered. */
export class SecretUnreadableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretUnreadableError';
  }
}

/**
 * Seals the secrets subscribers give for their hooks (the `Authorization` and other header values) with
 * AES-256-GCM, so that the database, its backups and anyone who can read its tables hold only ciphertext.
 * Each value is bound to its row by the additional authenticated data (the subscription id): a sealed value
 * copied to another subscription does not open. Sealed form: `v1.<key id>.<iv>.<tag>.<ciphertext>`, base64url;
 * the key id (the first 8 bytes of the key's SHA-256) tells a changed key from a damaged value.
 */
export class SecretBox {
  readonly keyId: string;
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new Error('the notification secret key must be 32 bytes');
    this.keyId = createHash('sha256').update(key).digest('hex').slice(0, 16);
  }

  seal(plaintext: string, aad: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    cipher.setAAD(Buffer.from(aad, 'utf8'));
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [VERSION, this.keyId, b64u(iv), b64u(cipher.getAuthTag()), b64u(ct)].join('.');
  }

  open(sealed: string, aad: string): string {
    const [version, keyId, iv, tag, ct, ...rest] = sealed.split('.');
    if (version !== VERSION || !keyId || iv === undefined || tag === undefined || ct === undefined || rest.length > 0) throw new SecretUnreadableError('the stored hook secret is not in a known form');
    if (keyId !== this.keyId) throw new SecretUnreadableError('the hook secret was sealed with another NOTIFY_SECRET_KEY');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretUnreadableError('the stored hook secret does not open with NOTIFY_SECRET_KEY (altered, or moved to another row)');
    }
  }

  /** The header lines of a subscription, sealed as one value (undefined when there are none). */
  sealHeaders(lines: readonly string[], subscriptionId: string): string | null {
    return lines.length === 0 ? null : this.seal(JSON.stringify(lines), subscriptionId);
  }

  openHeaders(sealed: string, subscriptionId: string): string[] {
    const lines: unknown = JSON.parse(this.open(sealed, subscriptionId));
    if (!Array.isArray(lines) || !lines.every((l) => typeof l === 'string')) throw new SecretUnreadableError('the stored hook secret is not a list of headers');
    return lines;
  }
}

/** A key as NOTIFY_SECRET_KEY gives it: 32 bytes in base64 (or base64url), e.g. `openssl rand -base64 32`. */
export function parseSecretKey(text: string): Buffer {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(t)) throw new Error('must be 32 bytes in base64 (openssl rand -base64 32)');
  const key = Buffer.from(t.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== 32) throw new Error(`must be 32 bytes in base64 (openssl rand -base64 32); this is ${key.length} bytes`);
  return key;
}

/**
 * The key hook secrets are sealed with: NOTIFY_SECRET_KEY, else NOTIFY_SECRET_KEY_FILE (made with a new random
 * key, readable by its owner only, when missing), else a key for this process alone, with a warning: secrets
 * sealed with it cannot be opened after a restart, and their subscriptions go to error at their next
 * notification (development only). Throws, so that the service does not start, on a key that is not 32 bytes.
 */
export function loadSecretBox(c: NotificationConfig, logger: Pick<Logger, 'warn' | 'info'>): SecretBox {
  if (c.NOTIFY_SECRET_KEY) return new SecretBox(parseSecretKey(c.NOTIFY_SECRET_KEY));
  if (c.NOTIFY_SECRET_KEY_FILE) {
    const file = c.NOTIFY_SECRET_KEY_FILE;
    if (!existsSync(file)) {
      try {
        // 'wx': never overwrite a key another instance wrote meanwhile; then read whatever is there.
        writeFileSync(file, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600, flag: 'wx' });
        logger.info({ file }, 'made a new key for hook secrets');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    try {
      return new SecretBox(parseSecretKey(readFileSync(file, 'utf8')));
    } catch (e) {
      throw new Error(`NOTIFY_SECRET_KEY_FILE ${file}: ${(e as Error).message}`, { cause: e });
    }
  }
  logger.warn('no NOTIFY_SECRET_KEY or NOTIFY_SECRET_KEY_FILE: hook secrets are sealed with a key that lives only as long as this process (development only)');
  return new SecretBox(randomBytes(32));
}

/**
 * Seals the header values of subscriptions stored before they were sealed (migration 2026-12-02T03 added the
 * column; the key is only known to the running service, so this runs at start, not in the migration). Rows
 * are locked while they are changed, so two instances starting at once do each row once. Returns how many.
 */
export async function sealLegacyHeaders(db: Kysely<NotificationDB>, box: SecretBox): Promise<number> {
  return db.transaction().execute(async (trx) => {
    const rows = await trx
      .selectFrom('subscriptions')
      .select(['id', 'headers'])
      .where('header_secret', 'is', null)
      .where(sql<boolean>`exists (select 1 from unnest(headers) h where strpos(h, ':') > 0)`)
      .forUpdate()
      .execute();
    for (const r of rows) {
      await trx
        .updateTable('subscriptions')
        .set({ headers: namesOf(r.headers), header_secret: box.sealHeaders(r.headers, r.id) })
        .where('id', '=', r.id)
        .execute();
    }
    return rows.length;
  });
}

/** The names of header lines (`Authorization: Bearer x` -> `Authorization`): all that is stored in clear. */
export const namesOf = (lines: readonly string[]): string[] => lines.map((l) => (l.includes(':') ? l.slice(0, l.indexOf(':')).trim() : l));
