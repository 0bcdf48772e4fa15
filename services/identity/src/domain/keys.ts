import type { Jwk } from '@cmc/auth';
import type { Kysely } from '@cmc/db';
import { createSigner } from 'fast-jwt';
import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import type { IdentityDB } from '../db/schema';

const ALG = 'ES256';

/**
 * The service's signing keys, kept in its database (every instance signs with the same current key). The
 * newest key that is not retired signs; retired keys stay published for a grace period longer than any
 * token they signed, so rotation needs no downtime. The key list is read again every `refreshMs`, so an
 * instance sees a rotation done by another within that time.
 */
export class KeyStore {
  private keys: { kid: string; publicJwk: Jwk; privateJwk: Jwk; createdAt: Date; retiredAt: Date | null }[] = [];
  private loadedAt = 0;
  private readonly signers = new Map<string, (payload: Record<string, unknown>) => string>();

  constructor(
    private readonly db: Kysely<IdentityDB>,
    /** How long a retired key stays published: longer than the longest token it signed. */
    private readonly graceSeconds: number,
    private readonly refreshMs = 30_000,
  ) {}

  /** Makes the first key if there is none. Safe with several instances starting at once. */
  async init(): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.selectFrom('signing_keys').select('kid').forUpdate().execute();
      const active = await trx.selectFrom('signing_keys').select('kid').where('retired_at', 'is', null).executeTakeFirst();
      if (!active) await trx.insertInto('signing_keys').values(newKey()).execute();
    });
    await this.load();
  }

  private async load(): Promise<void> {
    const rows = await this.db
      .selectFrom('signing_keys')
      .selectAll()
      .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>', new Date(Date.now() - this.graceSeconds * 1000))]))
      .orderBy('created_at', 'desc')
      .execute();
    this.keys = rows.map((r) => ({ kid: r.kid, publicJwk: r.public_jwk, privateJwk: r.private_jwk, createdAt: r.created_at, retiredAt: r.retired_at }));
    this.loadedAt = Date.now();
  }

  private async fresh(maxAgeMs = this.refreshMs): Promise<void> {
    if (Date.now() - this.loadedAt > maxAgeMs) await this.load();
  }

  /**
   * The public keys anyone may use to verify our tokens (the JWKS). `maxAgeMs` bounds how old the list may
   * be: our own verifier asks with a small one when a token names a kid it does not know (a key another
   * instance has just rotated in).
   */
  async publicKeys(maxAgeMs?: number): Promise<Jwk[]> {
    await this.fresh(maxAgeMs);
    return this.keys.map((k) => k.publicJwk);
  }

  /** Signs claims with the current key. */
  async sign(payload: Record<string, unknown>): Promise<string> {
    await this.fresh();
    const current = this.keys.find((k) => k.retiredAt === null);
    if (!current) throw new Error('no signing key');
    let signer = this.signers.get(current.kid);
    if (!signer) {
      const pem = createPrivateKey({ key: current.privateJwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }).toString();
      signer = createSigner<Record<string, unknown>>({ key: pem, algorithm: ALG, kid: current.kid });
      this.signers.set(current.kid, signer);
    }
    return signer(payload);
  }

  /** A new key signs from now on; the others are retired (still published for the grace period). */
  async rotate(): Promise<string> {
    const key = newKey();
    await this.db.transaction().execute(async (trx) => {
      await trx.updateTable('signing_keys').set({ retired_at: new Date() }).where('retired_at', 'is', null).execute();
      await trx.insertInto('signing_keys').values(key).execute();
    });
    await this.load();
    return key.kid;
  }
}

function newKey(): { kid: string; alg: string; private_jwk: Jwk; public_jwk: Jwk; retired_at: null } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = randomUUID();
  return {
    kid,
    alg: ALG,
    private_jwk: privateKey.export({ format: 'jwk' }),
    public_jwk: { ...(publicKey.export({ format: 'jwk' }) as Jwk), kid, alg: ALG, use: 'sig' },
    retired_at: null,
  };
}
