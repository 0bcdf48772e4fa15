/**
 * The Merkle tree over the log, as RFC 6962 / RFC 9162 section 2.1 define it, so that any implementation of
 * those RFCs can check what we publish. Leaf i (0-based) is entry seq i+1; its leaf data is the entry's chain
 * hash (32 bytes, which covers the entry's content and the hash before it).
 *
 *   leaf hash  = SHA-256(0x00 || data)        node hash = SHA-256(0x01 || left || right)
 *   MTH of 0 leaves = SHA-256("");  of n > 1: MTH(D[0:k]) and MTH(D[k:n]) joined, k the largest power of 2 < n
 *
 * Everything here is pure: the proofs are described as ranges of leaves, and the caller says how to get the
 * hash of a perfect, aligned subtree (from the stored nodes or from the leaves). Tree sizes are JavaScript
 * numbers (exact to 2^53), so shifts are done by division, never with 32-bit bit operators.
 */
import { createHash, hash } from 'node:crypto';

export const HASH_BYTES = 32;

/** MTH of the empty tree. */
export const EMPTY_ROOT: Buffer = createHash('sha256').digest();

// One-shot hashing of one small buffer is about twice as fast as a Hash object (verification makes two per entry).
export function leafHash(data: Buffer): Buffer {
  const input = Buffer.allocUnsafe(1 + data.length);
  input[0] = 0;
  data.copy(input, 1);
  return hash('sha256', input, 'buffer');
}

export function nodeHash(left: Buffer, right: Buffer): Buffer {
  const input = Buffer.allocUnsafe(1 + left.length + right.length);
  input[0] = 1;
  left.copy(input, 1);
  right.copy(input, 1 + left.length);
  return hash('sha256', input, 'buffer');
}

/** Leaves [start, end). */
export interface Range {
  start: number;
  end: number;
}

/** A perfect subtree of 2^level leaves, starting at leaf index * 2^level. */
export interface Perfect {
  level: number;
  index: number;
}

/** The largest power of two strictly below n (n > 1). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function isPowerOfTwo(n: number): boolean {
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

function levelOf(size: number): number {
  let level = 0;
  for (let s = size; s > 1; s /= 2) level++;
  return level;
}

/**
 * The perfect subtrees whose hashes make MTH of the range, left to right. Every range the RFC's recursions
 * produce starts at a multiple of the power of two at or above its size, so each piece is aligned.
 */
export function coverOf(range: Range): Perfect[] {
  const size = range.end - range.start;
  if (size <= 0) throw new RangeError(`empty range [${range.start}, ${range.end})`);
  if (isPowerOfTwo(size)) {
    const level = levelOf(size);
    if (range.start % size !== 0) throw new RangeError(`range [${range.start}, ${range.end}) is not aligned`);
    return [{ level, index: range.start / size }];
  }
  const k = splitPoint(size);
  return [...coverOf({ start: range.start, end: range.start + k }), ...coverOf({ start: range.start + k, end: range.end })];
}

/** MTH of a range from the hashes of its cover (as coverOf gives it). */
export function hashOfRange(range: Range, perfect: (p: Perfect) => Buffer): Buffer {
  const size = range.end - range.start;
  if (isPowerOfTwo(size)) return perfect({ level: levelOf(size), index: range.start / size });
  const k = splitPoint(size);
  return nodeHash(hashOfRange({ start: range.start, end: range.start + k }, perfect), hashOfRange({ start: range.start + k, end: range.end }, perfect));
}

/** RFC 9162 2.1.3.1 PATH(m, D[0:n]): the ranges whose MTHs are the inclusion proof of leaf m, in proof order. */
export function inclusionRanges(leafIndex: number, treeSize: number): Range[] {
  if (!(leafIndex >= 0 && leafIndex < treeSize)) throw new RangeError(`leaf ${leafIndex} is not in a tree of ${treeSize}`);
  const path = (m: number, start: number, n: number): Range[] => {
    if (n === 1) return [];
    const k = splitPoint(n);
    return m < k
      ? [...path(m, start, k), { start: start + k, end: start + n }]
      : [...path(m - k, start + k, n - k), { start, end: start + k }];
  };
  return path(leafIndex, 0, treeSize);
}

/** RFC 9162 2.1.4.1 PROOF(m, D[0:n]): the ranges whose MTHs prove the tree of m leaves is a prefix of the tree of n. */
export function consistencyRanges(first: number, second: number): Range[] {
  if (!(first >= 0 && first <= second)) throw new RangeError(`no consistency proof from ${first} to ${second}`);
  if (first === 0 || first === second) return [];
  const sub = (m: number, start: number, n: number, whole: boolean): Range[] => {
    if (m === n) return whole ? [] : [{ start, end: start + n }];
    const k = splitPoint(n);
    return m <= k
      ? [...sub(m, start, k, whole), { start: start + k, end: start + n }]
      : [...sub(m - k, start + k, n - k, false), { start, end: start + k }];
  };
  return sub(first, 0, second, true);
}

const isHash = (b: unknown): b is Buffer => Buffer.isBuffer(b) && b.length === HASH_BYTES;
const odd = (n: number): boolean => n % 2 === 1;
const half = (n: number): number => Math.floor(n / 2);

/** RFC 9162 2.1.3.2: whether `proof` shows the leaf with this hash is leaf `leafIndex` of the tree with `root`. */
export function verifyInclusion(leaf: Buffer, leafIndex: number, treeSize: number, proof: readonly Buffer[], root: Buffer): boolean {
  if (!Number.isSafeInteger(leafIndex) || !Number.isSafeInteger(treeSize) || leafIndex < 0 || leafIndex >= treeSize) return false;
  if (!isHash(leaf) || !isHash(root) || !Array.isArray(proof) || !proof.every(isHash)) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      r = nodeHash(p, r);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 2.1.4.2: whether `proof` shows the tree of `first` leaves with `firstRoot` is a prefix of the tree of `second` with `secondRoot`. */
export function verifyConsistency(first: number, second: number, firstRoot: Buffer, secondRoot: Buffer, proof: readonly Buffer[]): boolean {
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(second) || first < 0 || first > second) return false;
  if (!isHash(firstRoot) || !isHash(secondRoot) || !Array.isArray(proof) || !proof.every(isHash)) return false;
  if (first === second) return proof.length === 0 && firstRoot.equals(secondRoot);
  if (first === 0) return proof.length === 0 && firstRoot.equals(EMPTY_ROOT);
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(first) ? [firstRoot, ...proof] : [...proof];
  let fn = first - 1;
  let sn = second - 1;
  while (odd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (odd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!odd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return fr.equals(firstRoot) && sr.equals(secondRoot) && sn === 0;
}

/**
 * The right edge of a growing tree: the hashes of the perfect subtrees that make MTH of the leaves so far,
 * largest first (one per set bit of the size). Appending is amortised O(1); the root is O(log n). What
 * verification walks the whole log with, and what the checkpointer builds new nodes with.
 */
export class Frontier {
  private readonly stack: { level: number; hash: Buffer }[] = [];
  size = 0;

  /** Starts from the stored perfect subtrees of a tree of `size` leaves (coverOf([0, size)) order). */
  static of(size: number, cover: readonly Buffer[]): Frontier {
    const f = new Frontier();
    const pieces = size === 0 ? [] : coverOf({ start: 0, end: size });
    if (pieces.length !== cover.length) throw new RangeError(`a tree of ${size} leaves has ${pieces.length} subtrees on its edge, not ${cover.length}`);
    pieces.forEach((p, i) => f.stack.push({ level: p.level, hash: cover[i]! }));
    f.size = size;
    return f;
  }

  /** Adds a leaf hash; calls `completed` for each perfect subtree (level >= 1) the leaf completes. */
  push(leaf: Buffer, completed?: (p: Perfect, hash: Buffer) => void): void {
    let node = { level: 0, hash: leaf };
    const end = this.size + 1;
    while (this.stack.length > 0 && this.stack[this.stack.length - 1]!.level === node.level) {
      const left = this.stack.pop()!;
      node = { level: node.level + 1, hash: nodeHash(left.hash, node.hash) };
      if (completed) completed({ level: node.level, index: end / 2 ** node.level - 1 }, node.hash);
    }
    this.stack.push(node);
    this.size += 1;
  }

  root(): Buffer {
    if (this.stack.length === 0) return EMPTY_ROOT;
    let r = this.stack[this.stack.length - 1]!.hash;
    for (let i = this.stack.length - 2; i >= 0; i--) r = nodeHash(this.stack[i]!.hash, r);
    return r;
  }
}
