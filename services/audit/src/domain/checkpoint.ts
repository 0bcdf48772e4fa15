/**
 * Signed checkpoints ("signed tree heads"): the log's size and Merkle root at a moment, signed with Ed25519.
 * The text is a C2SP tlog-checkpoint and the signature a C2SP signed note, so tools built for transparency
 * logs (Go's golang.org/x/mod/sumdb/note, for one) can check them with the verifier key we publish:
 *
 *   <origin>\n<tree size>\n<base64 root hash>\ntime <ISO 8601 UTC>\n
 *   \n
 *   — <origin> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>\n
 *
 * The key id is the first 4 bytes of SHA-256(<origin> "\n" 0x01 <32-byte public key>), as signed notes define.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';

const ED25519_ALG = 0x01;
/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface Checkpoint {
  origin: string;
  treeSize: number;
  rootHash: Buffer;
  /** When it was signed (to the millisecond); part of what is signed. */
  time: Date;
}

export interface SignedCheckpoint extends Checkpoint {
  /** 4 bytes, hex. */
  keyId: string;
  signature: Buffer;
}

/** The signed text of a checkpoint. */
export function checkpointBody(c: Checkpoint): string {
  return `${c.origin}\n${c.treeSize}\n${c.rootHash.toString('base64')}\ntime ${c.time.toISOString()}\n`;
}

/** The whole signed note: body, blank line, signature line. */
export function signedNote(c: SignedCheckpoint): string {
  const sig = Buffer.concat([Buffer.from(c.keyId, 'hex'), c.signature]).toString('base64');
  return `${checkpointBody(c)}\n\u2014 ${c.origin} ${sig}\n`;
}

export function rawPublicKey(key: KeyObject): Buffer {
  const der = key.export({ format: 'der', type: 'spki' });
  return der.subarray(der.length - 32);
}

export function publicKeyFromRaw(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new RangeError('an Ed25519 public key is 32 bytes');
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function keyIdOf(origin: string, publicKey: KeyObject): string {
  return createHash('sha256')
    .update(Buffer.from(`${origin}\n`, 'utf8'))
    .update(Buffer.from([ED25519_ALG]))
    .update(rawPublicKey(publicKey))
    .digest()
    .subarray(0, 4)
    .toString('hex');
}

/** The verifier key in the signed-note form `<name>+<hex key id>+<base64(0x01 || public key)>`. */
export function verifierKey(origin: string, publicKey: KeyObject): string {
  return `${origin}+${keyIdOf(origin, publicKey)}+${Buffer.concat([Buffer.from([ED25519_ALG]), rawPublicKey(publicKey)]).toString('base64')}`;
}

/** Parses a verifier key string back to its name and public key; throws on anything malformed. */
export function parseVerifierKey(text: string): { origin: string; keyId: string; publicKey: KeyObject } {
  const m = /^([^+\s]+)\+([0-9a-f]{8})\+([A-Za-z0-9+/=]+)$/.exec(text.trim());
  if (!m) throw new Error('a verifier key is <name>+<8 hex digits>+<base64 key>');
  const bytes = Buffer.from(m[3]!, 'base64');
  if (bytes.length !== 33 || bytes[0] !== ED25519_ALG) throw new Error('the verifier key is not an Ed25519 key');
  const publicKey = publicKeyFromRaw(bytes.subarray(1));
  if (keyIdOf(m[1]!, publicKey) !== m[2]) throw new Error('the verifier key id does not match its name and key');
  return { origin: m[1]!, keyId: m[2], publicKey };
}

/** The key checkpoints are signed with. */
export interface SigningKey {
  origin: string;
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** A signing key from a PKCS#8 PEM Ed25519 private key. */
export function signingKeyFromPem(origin: string, pem: string): SigningKey {
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`the audit signing key must be Ed25519, not ${privateKey.asymmetricKeyType}`);
  const publicKey = createPublicKey(privateKey);
  return { origin, keyId: keyIdOf(origin, publicKey), privateKey, publicKey };
}

/** A fresh key (tests, and a development start without a configured key). */
export function generateSigningKey(origin: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { origin, keyId: keyIdOf(origin, publicKey), privateKey, publicKey };
}

export function signCheckpoint(key: SigningKey, c: Omit<Checkpoint, 'origin'>): SignedCheckpoint {
  const checkpoint: Checkpoint = { ...c, origin: key.origin };
  return { ...checkpoint, keyId: key.keyId, signature: sign(null, Buffer.from(checkpointBody(checkpoint), 'utf8'), key.privateKey) };
}

/** Whether the checkpoint was signed by this key (same origin and key id, and a good signature). */
export function checkpointSignedBy(c: SignedCheckpoint, key: { origin: string; keyId: string; publicKey: KeyObject }): boolean {
  if (c.origin !== key.origin || c.keyId !== key.keyId || c.signature.length !== 64) return false;
  return verify(null, Buffer.from(checkpointBody(c), 'utf8'), key.publicKey, c.signature);
}
