import type { Jwk } from '@cmc/auth';
import { nhsCheckDigit } from '@cmc/fhir';
import { createSigner } from 'fast-jwt';
import { generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { createLogger, type Logger } from '@cmc/logging';

/** The database of this test run (made by the global setup). */
export function testDatabaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the tests through jest (its global setup sets it)');
  return url;
}

export function testKafkaBrokers(): string[] {
  const b = process.env.TEST_KAFKA_BROKERS;
  if (!b) throw new Error('TEST_KAFKA_BROKERS is not set: run the tests through jest (its global setup sets it)');
  return b.split(',');
}

/** A name no other test uses: lower-case, fit for a schema, topic prefix or consumer group. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

/** A random valid NHS number (modulus 11), different in every call for all practical purposes. */
export function randomNhsNumber(): string {
  for (;;) {
    // 9xx numbers are the range set aside for testing; real patients never have them.
    const nine = `9${String(randomBytes(4).readUInt32BE() % 100_000_000).padStart(8, '0')}`;
    const check = nhsCheckDigit(nine);
    if (check !== undefined) return `${nine}${check}`;
  }
}

/** A logger that writes nothing (tests), or warnings and above to stderr with CMC_TEST_LOGS=1. */
export function testLogger(): Logger {
  return createLogger({ service: 'test', level: process.env.CMC_TEST_LOGS ? 'debug' : 'silent' });
}

/** Polls until `check` returns a value other than undefined/false, or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined | false>, timeoutMs = 15_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface TokenClaims {
  sub?: string;
  role?: string;
  org?: string;
  patient?: string;
  scope?: string;
  kind?: 'user' | 'client';
  [extra: string]: unknown;
}

/**
 * An issuer of test tokens with a key pair generated at test time (no key is ever committed): its JWKS is
 * given to services as their trusted keys.
 */
export class TestIssuer {
  readonly issuer = 'https://identity.test.cmc';
  readonly audience = 'cmc';
  readonly kid = randomUUID();
  readonly privateKey: KeyObject;
  readonly publicJwk: Jwk;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = privateKey;
    this.publicJwk = { ...(publicKey.export({ format: 'jwk' }) as Jwk), kid: this.kid, alg: 'ES256', use: 'sig' };
  }

  get jwks(): { keys: Jwk[] } {
    return { keys: [this.publicJwk] };
  }

  /** A signed access token; `overrides` may change or remove (undefined) any registered claim. */
  token(claims: TokenClaims = {}, overrides: Record<string, unknown> = {}): string {
    const { sub, role, org, patient, scope, kind, ...extra } = claims;
    const now = Math.floor(Date.now() / 1000);
    const payload: Record<string, unknown> = {
      iss: this.issuer,
      aud: this.audience,
      sub: sub ?? `user-${randomUUID()}`,
      iat: now,
      exp: now + 300,
      jti: randomUUID(),
      cmc_kind: kind ?? 'user',
      ...(role ? { cmc_role: role } : {}),
      ...(org ? { cmc_org: org } : {}),
      ...(patient ? { cmc_patient: patient } : {}),
      ...(scope ? { scope } : {}),
      ...extra,
      ...overrides,
    };
    for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
    const pem = this.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const sign = createSigner({ key: pem, algorithm: 'ES256', kid: this.kid });
    return sign(payload);
  }

  /** `Authorization` header value for a user of this role and organisation. */
  bearer(claims: TokenClaims = {}): string {
    return `Bearer ${this.token(claims)}`;
  }
}

export * from './events';
export * from './services';
export * from './builders';
