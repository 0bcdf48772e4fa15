import type { Jwk } from '@cmc/auth';
import type { Kysely, Transaction } from '@cmc/db';
import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import type { IdentityDB } from '../db/schema';

/**
 * Signed JWT assertions that prove who sends them with a private key only they hold: a system client's
 * `client_assertion` (SMART Backend Services, private_key_jwt) and a registered device's proof at login.
 * Verified here with node:crypto, with an explicit list of asymmetric algorithms: `none` and HMAC never pass,
 * and the algorithm must fit the registered key (an RSA key for RS*, the named curve for ES*).
 */

type Db = Kysely<IdentityDB> | Transaction<IdentityDB>;

export type AssertionAlgorithm = 'RS256' | 'RS384' | 'ES256' | 'ES384';

/** Longest an assertion may live: its exp at most this far ahead (SMART Backend Services: 5 minutes). */
export const MAX_ASSERTION_SECONDS = 300;
/** Clock difference forgiven between the sender and us, on exp and nbf. */
export const LEEWAY_SECONDS = 30;

const HASH: Record<AssertionAlgorithm, string> = { RS256: 'sha256', RS384: 'sha384', ES256: 'sha256', ES384: 'sha384' };
const CURVE_OF_ALG: Partial<Record<AssertionAlgorithm, string>> = { ES256: 'prime256v1', ES384: 'secp384r1' };
const NODE_CURVE: Record<string, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' };

export type AssertionProblem = 'malformed' | 'algorithm' | 'key' | 'signature' | 'issuer' | 'audience' | 'expiry' | 'jti';

/** Why an assertion was refused; the callers turn it into their own error format (OAuth or FHIR). */
export class AssertionError extends Error {
  constructor(
    readonly problem: AssertionProblem,
    message: string,
  ) {
    super(message);
    this.name = 'AssertionError';
  }
}

export interface DecodedAssertion {
  header: Record<string, unknown> & { alg: AssertionAlgorithm; kid: string };
  /** Not to be believed before `checkSignature` passed. */
  payload: Record<string, unknown>;
  signingInput: string;
  signature: Buffer;
}

const SEGMENT = /^[A-Za-z0-9_-]+$/;
const MAX_ASSERTION_LENGTH = 8192;

function jsonPart(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw new AssertionError('malformed', `the assertion's ${what} is not base64url-encoded JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AssertionError('malformed', `the assertion's ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * Splits a compact JWS and checks its header: an algorithm of `algorithms` (checked before anything else, so
 * `none` and HS256 are refused whatever follows), a key id, a signature, no critical extensions.
 */
export function decodeAssertion(token: string, algorithms: readonly AssertionAlgorithm[]): DecodedAssertion {
  if (token.length > MAX_ASSERTION_LENGTH) throw new AssertionError('malformed', 'the assertion is too long');
  const parts = token.split('.');
  if (parts.length !== 3) throw new AssertionError('malformed', 'the assertion is not a signed JWT (three base64url parts separated by dots)');
  const [h, p, s] = parts as [string, string, string];
  if (!SEGMENT.test(h) || !SEGMENT.test(p)) throw new AssertionError('malformed', 'the assertion is not a signed JWT (three base64url parts separated by dots)');
  const header = jsonPart(h, 'header');
  const payload = jsonPart(p, 'payload');
  const alg = header.alg;
  if (typeof alg !== 'string' || !(algorithms as readonly string[]).includes(alg)) {
    throw new AssertionError('algorithm', `the assertion's algorithm ${JSON.stringify(alg ?? null)} is not accepted: use ${algorithms.join(' or ')}`);
  }
  if (!s || !SEGMENT.test(s)) throw new AssertionError('signature', 'the assertion is not signed');
  if (header.crit !== undefined) throw new AssertionError('malformed', 'the assertion names critical header extensions (crit), which are not supported');
  const kid = header.kid;
  if (typeof kid !== 'string' || kid.length === 0 || kid.length > 200) throw new AssertionError('key', 'the assertion header has no key id (kid)');
  return { header: { ...header, alg: alg as AssertionAlgorithm, kid }, payload, signingInput: `${h}.${p}`, signature: Buffer.from(s, 'base64url') };
}

/** Verifies the signature with the sender's registered public key; the algorithm must fit the key. */
export function checkSignature(assertion: DecodedAssertion, key: KeyObject): void {
  const { alg, kid } = assertion.header;
  const fits = alg.startsWith('RS') ? key.asymmetricKeyType === 'rsa' : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === CURVE_OF_ALG[alg];
  if (!fits) throw new AssertionError('algorithm', `the assertion's algorithm ${alg} does not fit the registered key ${kid}`);
  let ok: boolean;
  try {
    // JWS carries ECDSA signatures as r || s (IEEE P1363), not DER; for RSA the option is ignored.
    ok = verify(HASH[alg], Buffer.from(assertion.signingInput), { key, dsaEncoding: 'ieee-p1363' }, assertion.signature);
  } catch {
    ok = false;
  }
  if (!ok) throw new AssertionError('signature', `the assertion's signature does not verify with the registered key ${kid}`);
}

/**
 * The claims every assertion must carry: iss and sub both the sender, aud the endpoint it is sent to, an exp
 * in the future but at most 5 minutes ahead, and a jti. Returns the jti and until when it must be remembered.
 */
export function checkClaims(payload: Record<string, unknown>, rules: { sender: string; audience: string; senderName: string }): { jti: string; rememberUntil: Date } {
  if (payload.iss !== rules.sender || payload.sub !== rules.sender) {
    throw new AssertionError('issuer', `the assertion's iss and sub must both be the ${rules.senderName}`);
  }
  const aud = payload.aud;
  if (!(aud === rules.audience || (Array.isArray(aud) && aud.includes(rules.audience)))) {
    throw new AssertionError('audience', `the assertion's audience (aud) must be ${rules.audience}`);
  }
  const exp = payload.exp;
  if (typeof exp !== 'number' || !Number.isFinite(exp)) throw new AssertionError('expiry', 'the assertion has no expiry time (exp)');
  const now = Date.now() / 1000;
  if (exp + LEEWAY_SECONDS <= now) throw new AssertionError('expiry', 'the assertion has expired');
  // No leeway on this side: SMART says at most five minutes.
  if (exp > now + MAX_ASSERTION_SECONDS + 1) throw new AssertionError('expiry', `the assertion's exp is more than ${MAX_ASSERTION_SECONDS / 60} minutes ahead`);
  if (payload.nbf !== undefined && (typeof payload.nbf !== 'number' || payload.nbf - LEEWAY_SECONDS > now)) {
    throw new AssertionError('expiry', 'the assertion is not valid yet (nbf)');
  }
  const jti = payload.jti;
  if (typeof jti !== 'string' || jti.length === 0 || jti.length > 200) throw new AssertionError('jti', 'the assertion has no jti (a unique id, new for every assertion)');
  return { jti, rememberUntil: new Date((exp + LEEWAY_SECONDS) * 1000) };
}

let lastSweep = 0;
const SWEEP_EVERY_MS = 60_000;

/**
 * Takes an assertion's jti for one use: false when the sender used it before and that assertion could still
 * be accepted (a replay). The primary key decides, so two requests racing with one assertion cannot both
 * win. A remembered jti whose assertion has expired may be taken again. Expired rows are deleted now and
 * then (at most once a minute per process: they are harmless, only space).
 */
export async function spendJti(db: Db, issuer: string, jti: string, rememberUntil: Date): Promise<boolean> {
  const now = new Date();
  const taken = await db
    .insertInto('assertion_jtis')
    .values({ issuer, jti, expires_at: rememberUntil })
    .onConflict((oc) => oc.columns(['issuer', 'jti']).doUpdateSet({ expires_at: rememberUntil }).where('assertion_jtis.expires_at', '<', now))
    .returning('jti')
    .executeTakeFirst();
  if (Date.now() - lastSweep > SWEEP_EVERY_MS) {
    lastSweep = Date.now();
    await db.deleteFrom('assertion_jtis').where('expires_at', '<', now).execute();
  }
  return taken !== undefined;
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/**
 * A registered public signing key: RSA of at least 2048 bits, or EC on one of `curves`; never private key
 * material, never a symmetric key. Returns the key, or what is wrong with it.
 */
export function publicSigningKey(jwk: Jwk, curves: readonly ('P-256' | 'P-384')[]): KeyObject | string {
  if (jwk.kty === 'oct') return 'is a symmetric (oct) key: only RSA and EC public keys are accepted';
  if (jwk.kty !== 'RSA' && jwk.kty !== 'EC') return `has key type ${JSON.stringify(jwk.kty ?? null)}: only RSA and EC public keys are accepted`;
  const secret = PRIVATE_MEMBERS.filter((m) => (jwk as Record<string, unknown>)[m] !== undefined);
  if (secret.length > 0) return `holds private key material (${secret.join(', ')}): register the public key only`;
  if (jwk.use !== undefined && jwk.use !== 'sig') return `is for use ${JSON.stringify(jwk.use)}, not for signatures ("sig")`;
  if (jwk.key_ops !== undefined && !(Array.isArray(jwk.key_ops) && jwk.key_ops.every((op) => op === 'verify'))) return 'has key_ops other than "verify"';
  if (jwk.kty === 'EC' && !(curves as readonly string[]).includes(jwk.crv ?? '')) return `is on curve ${JSON.stringify(jwk.crv ?? null)}: use ${curves.join(' or ')}`;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: jwk, format: 'jwk' });
  } catch {
    return `is not a valid ${jwk.kty} public key`;
  }
  if (key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) < 2048) return 'is an RSA key of fewer than 2048 bits';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve !== NODE_CURVE[jwk.crv ?? '']) return 'is not a valid EC public key';
  return key;
}

/** The public members of a key only (kty, n, e or kty, crv, x, y), whatever else the sender's JWK held. */
export const publicMembers = (key: KeyObject): Jwk => key.export({ format: 'jwk' });
