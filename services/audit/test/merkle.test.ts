/** The Merkle tree against RFC 6962's published test vectors, and every proof of every small tree. */
import { createHash } from 'node:crypto';
import {
  consistencyRanges,
  coverOf,
  EMPTY_ROOT,
  Frontier,
  hashOfRange,
  inclusionRanges,
  leafHash,
  nodeHash,
  splitPoint,
  verifyConsistency,
  verifyInclusion,
  type Perfect,
  type Range,
} from '../src/domain/merkle';

const hex = (b: Buffer): string => b.toString('hex');
const unhex = (s: string): Buffer => Buffer.from(s, 'hex');

// The Certificate Transparency reference tree (RFC 6962's implementation's tests): leaf data and the tree
// heads of sizes 1 to 8, and proofs from it.
const CT_DATA = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const CT_ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const CT_LEAVES = CT_DATA.map(leafHash);

/** MTH exactly as RFC 6962 section 2.1 writes it, over an array: the reference the stored tree is held to. */
function mth(leaves: readonly Buffer[]): Buffer {
  if (leaves.length === 0) return EMPTY_ROOT;
  if (leaves.length === 1) return leaves[0]!;
  const k = splitPoint(leaves.length);
  return nodeHash(mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}

/** Proof hashes for ranges, computed the way the service does: from perfect subtrees. */
function hashesOf(leaves: readonly Buffer[], ranges: Range[]): Buffer[] {
  const perfect = (p: Perfect): Buffer => mth(leaves.slice(p.index * 2 ** p.level, (p.index + 1) * 2 ** p.level));
  return ranges.map((r) => hashOfRange(r, perfect));
}

const frontierRoot = (leaves: readonly Buffer[]): Buffer => {
  const f = new Frontier();
  for (const l of leaves) f.push(l);
  return f.root();
};

describe('Merkle tree (RFC 6962 / 9162)', () => {
  it('when built from the reference leaves, then every tree head of size 0 to 8 is the published one', () => {
    expect(hex(frontierRoot([]))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    for (let n = 1; n <= 8; n++) expect(hex(frontierRoot(CT_LEAVES.slice(0, n)))).toBe(CT_ROOTS[n - 1]);
  });

  it('when proofs are asked of the reference tree, then they are the published ones, and they verify', () => {
    const inclusion = [
      { index: 0, size: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
      { index: 5, size: 8, proof: ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
    ];
    for (const v of inclusion) {
      expect(hashesOf(CT_LEAVES, inclusionRanges(v.index, v.size)).map(hex)).toEqual(v.proof);
      expect(verifyInclusion(CT_LEAVES[v.index]!, v.index, v.size, v.proof.map(unhex), unhex(CT_ROOTS[v.size - 1]!))).toBe(true);
    }
    const consistency = [
      { first: 2, second: 8, proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
      { first: 6, second: 8, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
    ];
    for (const v of consistency) {
      expect(hashesOf(CT_LEAVES, consistencyRanges(v.first, v.second)).map(hex)).toEqual(v.proof);
      expect(verifyConsistency(v.first, v.second, unhex(CT_ROOTS[v.first - 1]!), unhex(CT_ROOTS[v.second - 1]!), v.proof.map(unhex))).toBe(true);
    }
  });

  const N = 70;
  const leaves = Array.from({ length: N }, (_, i) => leafHash(createHash('sha256').update(`entry ${i}`).digest()));
  const roots = Array.from({ length: N + 1 }, (_, n) => mth(leaves.slice(0, n)));

  it('when the tree grows leaf by leaf, then the frontier root equals MTH at every size, and a frontier restored from the edge carries on the same', () => {
    const f = new Frontier();
    for (let n = 1; n <= N; n++) {
      f.push(leaves[n - 1]!);
      expect(f.root().equals(roots[n]!)).toBe(true);
    }
    for (const size of [1, 15, 16, 17, 33, 64]) {
      const edge = coverOf({ start: 0, end: size }).map((p) => mth(leaves.slice(p.index * 2 ** p.level, (p.index + 1) * 2 ** p.level)));
      const restored = Frontier.of(size, edge);
      for (let n = size; n < N; n++) restored.push(leaves[n]!);
      expect(restored.root().equals(roots[N]!)).toBe(true);
    }
  });

  it('when the frontier completes a subtree, then it names it by level and index with the subtree hash', () => {
    const seen: string[] = [];
    const f = new Frontier();
    for (const l of leaves.slice(0, 32)) f.push(l, (p, h) => seen.push(`${p.level}:${p.index}:${h.equals(mth(leaves.slice(p.index * 2 ** p.level, (p.index + 1) * 2 ** p.level)))}`));
    expect(seen).toHaveLength(31);
    expect(seen).toContain('5:0:true');
    expect(seen).toContain('4:1:true');
    expect(seen.every((s) => s.endsWith(':true'))).toBe(true);
  });

  it('when every leaf of every tree up to 70 is proved, then each inclusion proof verifies and is at most log2(n) hashes long', () => {
    for (let n = 1; n <= N; n++) {
      for (let i = 0; i < n; i++) {
        const proof = hashesOf(leaves, inclusionRanges(i, n));
        expect(proof.length).toBeLessThanOrEqual(Math.ceil(Math.log2(n)));
        expect(verifyInclusion(leaves[i]!, i, n, proof, roots[n]!)).toBe(true);
      }
    }
  });

  it('when every pair of tree sizes up to 70 is proved consistent, then each proof verifies', () => {
    for (let second = 1; second <= N; second++) {
      for (let first = 0; first <= second; first++) {
        expect(verifyConsistency(first, second, roots[first]!, roots[second]!, hashesOf(leaves, consistencyRanges(first, second)))).toBe(true);
      }
    }
  });

  it('when a proof, a leaf, an index or a root is wrong, then verification says no', () => {
    const flip = (b: Buffer): Buffer => {
      const c = Buffer.from(b);
      c[0] = c[0]! ^ 1;
      return c;
    };
    for (const [i, n] of [[0, 1], [3, 8], [5, 7], [20, 37], [68, 69]] as const) {
      const proof = hashesOf(leaves, inclusionRanges(i, n));
      expect(verifyInclusion(flip(leaves[i]!), i, n, proof, roots[n]!)).toBe(false);
      expect(verifyInclusion(leaves[i]!, i, n, proof, flip(roots[n]!))).toBe(false);
      expect(verifyInclusion(leaves[i]!, i, n, [...proof, leaves[0]!], roots[n]!)).toBe(false);
      if (proof.length > 0) {
        expect(verifyInclusion(leaves[i]!, i, n, [flip(proof[0]!), ...proof.slice(1)], roots[n]!)).toBe(false);
        expect(verifyInclusion(leaves[i]!, i, n, proof.slice(0, -1), roots[n]!)).toBe(false);
      }
      if (i + 1 < n) expect(verifyInclusion(leaves[i]!, i + 1, n, proof, roots[n]!)).toBe(false);
    }
    for (const [m, n] of [[1, 2], [3, 8], [6, 8], [13, 40], [33, 70]] as const) {
      const proof = hashesOf(leaves, consistencyRanges(m, n));
      expect(verifyConsistency(m, n, flip(roots[m]!), roots[n]!, proof)).toBe(false);
      expect(verifyConsistency(m, n, roots[m]!, flip(roots[n]!), proof)).toBe(false);
      expect(verifyConsistency(m, n, roots[m]!, roots[n]!, [flip(proof[0]!), ...proof.slice(1)])).toBe(false);
      expect(verifyConsistency(m, n, roots[m]!, roots[n]!, proof.slice(0, -1))).toBe(false);
      expect(verifyConsistency(m, n, roots[m]!, roots[n]!, [...proof, leaves[0]!])).toBe(false);
      expect(verifyConsistency(n, m, roots[n]!, roots[m]!, proof)).toBe(false);
    }
    expect(verifyConsistency(0, 5, EMPTY_ROOT, roots[5]!, [])).toBe(true);
    expect(verifyConsistency(0, 5, roots[1]!, roots[5]!, [])).toBe(false);
    expect(verifyConsistency(5, 5, roots[5]!, roots[5]!, [])).toBe(true);
    expect(verifyConsistency(5, 5, roots[5]!, roots[6]!, [])).toBe(false);
    expect(verifyInclusion(Buffer.alloc(31), 0, 1, [], roots[1]!)).toBe(false);
  });

  it('when a tree is far bigger than a number of 32 bits, then sizes and indices still work (no 32-bit shifts)', () => {
    const n = 2 ** 40 + 12_345;
    const ranges = inclusionRanges(n - 1, n);
    expect(ranges.length).toBeLessThanOrEqual(41);
    expect(ranges.every((r) => r.end <= n && r.start >= 0)).toBe(true);
    expect(coverOf({ start: 0, end: n }).map((p) => p.level)).toEqual([40, 13, 12, 5, 4, 3, 0]);
  });
});
