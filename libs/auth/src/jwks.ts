import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';

export interface Jwk extends JsonWebKey {
  kid?: string;
  alg?: string;
  use?: string;
}

/** Where the trusted keys come from: the issuer's JWKS URL, a fixed list, or (the issuer itself) a function. */
export type JwksSource = { url: string } | { keys: Jwk[] } | { provider: () => Promise<Jwk[]> };

interface CachedKey {
  pem: string;
  alg?: string;
}

/**
 * Public keys by `kid`, from a JWKS URL (cached; fetched again when an unknown `kid` arrives, at most once
 * per cooldown, so key rotation needs no restart and a flood of bad kids cannot hammer the issuer) or from
 * keys given directly. Only asymmetric signing keys (RSA, EC) are taken.
 */
export class JwksKeys {
  private keys = new Map<string, CachedKey>();
  private lastFetch = 0;
  private inflight: Promise<void> | undefined;

  constructor(
    private readonly source: JwksSource,
    private readonly opts: { cooldownMs?: number; maxAgeMs?: number; timeoutMs?: number } = {},
  ) {
    if ('keys' in source) this.keys = JwksKeys.index(source.keys);
  }

  private static index(keys: Jwk[]): Map<string, CachedKey> {
    const out = new Map<string, CachedKey>();
    for (const jwk of keys) {
      if (!jwk.kid || (jwk.kty !== 'RSA' && jwk.kty !== 'EC')) continue;
      if (jwk.use && jwk.use !== 'sig') continue;
      if ((jwk as Record<string, unknown>).d !== undefined) continue;
      let key: KeyObject;
      try {
        key = createPublicKey({ key: jwk, format: 'jwk' });
      } catch {
        continue;
      }
      if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) continue;
      const entry: CachedKey = { pem: key.export({ type: 'spki', format: 'pem' }).toString() };
      if (jwk.alg) entry.alg = jwk.alg;
      out.set(jwk.kid, entry);
    }
    return out;
  }

  private async refresh(): Promise<void> {
    if ('keys' in this.source) return;
    // Counted from the attempt, not the success: an issuer that is down is asked once per cooldown too.
    this.lastFetch = Date.now();
    if ('provider' in this.source) {
      this.keys = JwksKeys.index(await this.source.provider());
      return;
    }
    // No redirects (the URL registered is the one trusted) and a bounded body.
    const res = await fetch(this.source.url, { signal: AbortSignal.timeout(this.opts.timeoutMs ?? 5000), redirect: 'error' });
    if (!res.ok) throw new Error(`JWKS answered ${res.status}`);
    const text = await res.text();
    if (text.length > 256 * 1024) throw new Error('JWKS is larger than 256 KiB');
    const body = JSON.parse(text) as { keys?: Jwk[] };
    if (!Array.isArray(body.keys)) throw new Error('JWKS has no keys');
    this.keys = JwksKeys.index(body.keys);
  }

  /** The PEM of the key with this kid, or undefined when the issuer does not (or no longer) publish it. */
  async get(kid: string): Promise<CachedKey | undefined> {
    const stale = Date.now() - this.lastFetch > (this.opts.maxAgeMs ?? 10 * 60 * 1000);
    const known = this.keys.get(kid);
    if (known && !stale) return known;
    if ('keys' in this.source) return known;
    // Callers arriving while a fetch is under way share it; a new fetch starts only after the cooldown.
    if (!this.inflight && (stale || Date.now() - this.lastFetch > (this.opts.cooldownMs ?? 30_000))) {
      this.inflight = this.refresh().finally(() => (this.inflight = undefined));
    }
    if (this.inflight) {
      try {
        await this.inflight;
      } catch {
        return known; // the issuer is unreachable: keep trusting what we already had
      }
    }
    return this.keys.get(kid);
  }
}
