import type { Jwk } from '@cmc/auth';
import { sql, type Kysely } from '@cmc/db';
import { createSigner } from 'fast-jwt';
import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import type { IdentityDB } from '../db/schema';

const ALG = 'ES256';

/**
 * The service's signing keys, kept in its database (every instance signs with the same current key).
 * Rotation without downtime: a new key is published at once but signs only after `activationSeconds`, long
 * enough for every instance and every verifying service to have it (store reload, JWKS caches); the key it
 * replaces signs until then and stays published for `graceSeconds` more, longer than any token it signed.
 * The key list is read again every `refreshMs`.
 */
export class KeyStore {
  private keys: { kid: string; publicJwk: Jwk; privateJwk: Jwk; createdAt: Date; retiredAt: Date | null }[] = [];
  private loadedAt = 0;
  private readonly signers = new Map<string, (payload: Record<string, unknown>) => string>();

  constructor(
    private readonly db: Kysely<IdentityDB>,
    /** How long a retired key stays published: longer than the longest token it signed. */
    private readonly graceSeconds: number,
    /** How long a new key is published before it signs. */
    private readonly activationSeconds: number,
    private readonly refreshMs = 30_000,
  ) {}

  /** Makes the first key if there is none. Safe with several instances starting at once (advisory lock). */
  async init(): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('cmc.identity.signing-keys'))`.execute(trx);
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

  /** The key that signs now: the newest one published for at least the activation time (or the first key). */
  private current(): (typeof this.keys)[number] | undefined {
    const now = Date.now();
    const live = this.keys.filter((k) => k.retiredAt === null || k.retiredAt.getTime() > now);
    return live.find((k) => k.createdAt.getTime() <= now - this.activationSeconds * 1000) ?? live[live.length - 1];
  }

  /** Signs claims with the current key. */
  async sign(payload: Record<string, unknown>): Promise<string> {
    await this.fresh();
    const current = this.current();
    if (!current) throw new Error('no signing key');
    let signer = this.signers.get(current.kid);
    if (!signer) {
      const pem = createPrivateKey({ key: current.privateJwk, format: 'jwk' }).export({ type: 'pkcs8', format: 'pem' }).toString();
      signer = createSigner<Record<string, unknown>>({ key: pem, algorithm: ALG, kid: current.kid });
      this.signers.set(current.kid, signer);
    }
    return signer(payload);
  }

  /**
   * Publishes a new key, which signs from `activatesAt`; the keys before it sign until then and stay
   * published for the grace period after.
   */
  async rotate(): Promise<{ kid: string; activatesAt: string }> {
    const key = newKey();
    const activatesAt = new Date(Date.now() + this.activationSeconds * 1000);
    await this.db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtext('cmc.identity.signing-keys'))`.execute(trx);
      await trx.updateTable('signing_keys').set({ retired_at: activatesAt }).where('retired_at', 'is', null).execute();
      await trx.insertInto('signing_keys').values({ ...key, created_at: new Date() }).execute();
    });
    await this.load();
    return { kid: key.kid, activatesAt: activatesAt.toISOString() };
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
