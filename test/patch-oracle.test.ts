import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { oracleHead, patchOracleTokens } from '../src/eval/patch-oracle.js';
import { Segmenter } from '../src/backbone/segmenter.js';
import type { Embedding } from '../src/types.js';

/** The patch oracle (eval/patch-oracle.ts) that the quality test measures a head's headroom against. */
const W = 32;
const H = 16;
const P = 8;
const K = 3;

let plain: Segmenter;

beforeAll(async () => {
  plain = await Segmenter.create(1);
});

afterAll(async () => {
  await plain.close();
});

/** Class ids by a function of the pixel. */
function labels(f: (x: number, y: number) => number): Uint8Array {
  const out = new Uint8Array(W * H);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) out[y * W + x] = f(x, y);
  return out;
}

/** The class each patch's token is the one-hot of (-1 if it is not one-hot). */
function tokenClasses(tokens: Float32Array): number[] {
  const out: number[] = [];
  for (let p = 0; p < tokens.length / K; p++) {
    const row = Array.from(tokens.subarray(p * K, (p + 1) * K));
    const ones = row.filter((v) => v === 1).length;
    const zeros = row.filter((v) => v === 0).length;
    out.push(ones === 1 && zeros === K - 1 ? row.indexOf(1) : -1);
  }
  return out;
}

describe('patch oracle', () => {
  it('gives each patch the one-hot of its majority class, ties to the lower id, void not counted', () => {
    // Patch 0: 40 pixels of class 2, 24 of class 1. Patch 1: 32/32 of classes 1 and 2 (tie).
    // Patch 2: 60 void pixels and 4 of class 1. Patch 3: all class 0. Second row: all class 2.
    const truth = labels((x, y) => {
      if (y >= P) return 2;
      const px = Math.floor(x / P);
      const lx = x % P;
      if (px === 0) return lx < 5 ? 2 : 1;
      if (px === 1) return lx < 4 ? 2 : 1;
      if (px === 2) return lx === 0 && y < 4 ? 1 : 255;
      return 0;
    });
    expect(tokenClasses(patchOracleTokens(truth, W, H, P, K))).toEqual([2, 1, 1, 0, 2, 2, 2, 2]);
  });

  it('scores 1 through the plain path when the boundaries of two classes lie on the patch grid, and less when one does not', async () => {
    const run = async (truth: Uint8Array): Promise<number> => {
      const embedding: Embedding = {
        frame: { streamId: 't', seq: 0, pts: 0, width: W, height: H, rgb: Buffer.alloc(W * H * 3), capturedAt: 0 },
        gridH: H / P,
        gridW: W / P,
        dim: K,
        patchTokens: patchOracleTokens(truth, W, H, P, K),
        clsToken: new Float32Array(K),
      };
      const [out] = await plain.segment([embedding], oracleHead(K), H, W);
      let same = 0;
      for (let i = 0; i < truth.length; i++) same += out![i] === truth[i] ? 1 : 0;
      return same / truth.length;
    };
    // A checkerboard of two classes (bilinear maps give a three-class T-junction's corner pixels to the third).
    expect(await run(labels((x, y) => (Math.floor(x / 16) + Math.floor(y / 8)) % 2))).toBe(1);
    const offGrid = await run(labels((x) => (x < 13 ? 0 : 1)));
    expect(offGrid).toBeLessThan(1);
    expect(offGrid).toBeGreaterThan(0.8);
  });

  it('refuses a patch size that does not divide the frame, or a map of the wrong size', () => {
    expect(() => patchOracleTokens(new Uint8Array(W * H), W, H, 7, K)).toThrow(/patch/);
    expect(() => patchOracleTokens(new Uint8Array(10), W, H, P, K)).toThrow(/truth/);
  });
});
