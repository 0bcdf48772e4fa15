import { argon2, randomBytes, timingSafeEqual, type Argon2Parameters } from 'node:crypto';
import { promisify } from 'node:util';

const argon2Async = promisify(argon2) as (algorithm: 'argon2id', params: Argon2Parameters) => Promise<Buffer>;

/** The guide's rule: at least 10 characters, at least one upper-case and one lower-case letter. */
export function passwordProblems(password: string): string[] {
  const problems: string[] = [];
  if ([...password].length < 10) problems.push('password must be at least 10 characters');
  if ([...password].length > 256) problems.push('password must be at most 256 characters');
  if (!/\p{Lu}/u.test(password)) problems.push('password must contain an upper-case letter');
  if (!/\p{Ll}/u.test(password)) problems.push('password must contain a lower-case letter');
  return problems;
}

export interface HashCost {
  memoryKiB: number;
  passes: number;
}

/** argon2id, as a PHC string: `$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>` (base64 without padding). */
export async function hashPassword(password: string, cost: HashCost): Promise<string> {
  const nonce = randomBytes(16);
  const tag = await argon2Async('argon2id', { message: password, nonce, parallelism: 1, tagLength: 32, memory: cost.memoryKiB, passes: cost.passes });
  return `$argon2id$v=19$m=${cost.memoryKiB},t=${cost.passes},p=1$${nonce.toString('base64').replace(/=+$/, '')}$${tag.toString('base64').replace(/=+$/, '')}`;
}

const PHC = /^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** Whether the password matches the stored hash (constant-time comparison; the stored cost is used). */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const m = PHC.exec(stored);
  if (!m) return false;
  const [, mem, passes, par, salt, hash] = m as unknown as [string, string, string, string, string, string];
  const expected = Buffer.from(hash, 'base64');
  const actual = await argon2Async('argon2id', {
    message: password,
    nonce: Buffer.from(salt, 'base64'),
    parallelism: Number(par),
    tagLength: expected.length,
    memory: Number(mem),
    passes: Number(passes),
  });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

let dummy: Promise<string> | undefined;

/**
 * Spends the time of one verification against a throw-away hash: an unknown email then takes as long as a
 * wrong password, so timing does not tell which emails have accounts.
 */
export async function spendVerificationTime(cost: HashCost): Promise<void> {
  dummy ??= hashPassword(randomBytes(16).toString('hex'), cost);
  await verifyPassword('not the password', await dummy);
}
