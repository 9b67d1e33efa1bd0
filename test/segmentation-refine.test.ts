import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Segmenter } from '../src/backbone/segmenter.js';
import { DEFAULT_REFINE, refineFrom } from '../src/backbone/refine-options.js';
import type { Embedding, Frame } from '../src/types.js';

/**
 * The guided-filter refinement of the class maps (segmentation-graph.ts), on frames whose true
 * boundary is known to the pixel and does not fall on the 8-pixel patch grid: the plain bilinear
 * maps put the boundary where the patch grid says, the refined ones where the colours change.
 */
const P = 8;
const W = 96;
const H = 64;

let plain: Segmenter;
let refined: Segmenter;

beforeAll(async () => {
  [plain, refined] = await Promise.all([Segmenter.create(1), Segmenter.create(1, DEFAULT_REFINE)]);
});

afterAll(async () => {
  await Promise.all([plain.close(), refined.close()]);
});

/** A frame: blue left of x = edge(y), sand-yellow right of it, with a little deterministic noise. */
function frame(edge: (y: number) => number): { rgb: Uint8Array; truth: Uint8Array } {
  const rgb = new Uint8Array(W * H * 3);
  const truth = new Uint8Array(W * H);
  let s = 12345;
  const noise = (): number => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return (s % 9) - 4;
  };
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const right = x >= edge(y);
      const c = right ? [200, 180, 120] : [20, 60, 150];
      for (let k = 0; k < 3; k++) rgb[(y * W + x) * 3 + k] = (c[k] as number) + noise();
      truth[y * W + x] = right ? 1 : 0;
    }
  return { rgb, truth };
}

/**
 * Patch features as the built-in backbone gives them: a patch straddling the edge looks like one
 * side (its majority here), so the plain maps can only place the boundary between patch centres.
 */
function embedding(truth: Uint8Array): Embedding {
  const gw = W / P;
  const gh = H / P;
  const tokens = new Float32Array(gw * gh * 2);
  for (let py = 0; py < gh; py++)
    for (let px = 0; px < gw; px++) {
      let right = 0;
      for (let y = 0; y < P; y++) for (let x = 0; x < P; x++) right += truth[(py * P + y) * W + px * P + x] as number;
      const share = right * 2 > P * P ? 1 : 0;
      tokens[(py * gw + px) * 2] = 1 - share;
      tokens[(py * gw + px) * 2 + 1] = share;
    }
  const f: Frame = { streamId: 't', seq: 0, pts: 0, width: W, height: H, rgb: Buffer.alloc(0), capturedAt: 0 };
  return { frame: f, gridH: gh, gridW: gw, dim: 2, patchTokens: tokens, clsToken: new Float32Array(2) };
}

const probe = { weights: null, centroids: Float32Array.from([1, 0, 0, 1]), k: 2 };

function wrong(labels: Uint8Array, truth: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < truth.length; i++) n += labels[i] === truth[i] ? 0 : 1;
  return n;
}

describe('guided-filter refinement', () => {
  it('moves class boundaries off the patch grid onto the colour edge', async () => {
    // A slanted edge: crosses patches at every offset from 0 to 7 pixels.
    const { rgb, truth } = frame((y) => 29 + Math.floor(y / 3));
    const e = embedding(truth);
    const [before] = await plain.segment([e], probe, H, W);
    const [after] = await refined.segment([e], probe, H, W, [rgb]);
    const errBefore = wrong(before as Uint8Array, truth);
    const errAfter = wrong(after as Uint8Array, truth);
    // Bilinear maps put the boundary midway between patch centres: up to half a patch off per row.
    expect(errBefore).toBeGreaterThan(H);
    // Refined: on the edge to within a few pixels in all (measured: 95 pixels wrong before, 0 after).
    expect(errAfter).toBeLessThanOrEqual(H / 8);
  });

  it('keeps a boundary the patch grid already places right', async () => {
    const { rgb, truth } = frame(() => 40); // on a patch boundary
    const e = embedding(truth);
    const [after] = await refined.segment([e], probe, H, W, [rgb]);
    expect(wrong(after as Uint8Array, truth)).toBeLessThanOrEqual(H);
  });

  it('segments each frame of a batch with its own pixels', async () => {
    const a = frame(() => 21);
    const b = frame(() => 75);
    const out = await refined.segment([embedding(a.truth), embedding(b.truth)], probe, H, W, [a.rgb, b.rgb]);
    expect(wrong(out[0] as Uint8Array, a.truth)).toBeLessThanOrEqual(H);
    expect(wrong(out[1] as Uint8Array, b.truth)).toBeLessThanOrEqual(H);
  });

  it('works at output sizes that are not multiples of the patch or of its coarse grid', async () => {
    // The patch grid of the 96x64 frame, segmented at 93x61 (ViT-S/14 sizes are not multiples of 4).
    const { truth } = frame(() => 40);
    const e = embedding(truth);
    const w = 93;
    const h = 61;
    const rgb = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) rgb.set(x >= 39 ? [200, 180, 120] : [20, 60, 150], (y * w + x) * 3);
    const [out] = await refined.segment([e], probe, h, w, [rgb]);
    expect(out).toHaveLength(w * h);
    let off = 0;
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) off += (out as Uint8Array)[y * w + x] === (x >= 39 ? 1 : 0) ? 0 : 1;
    expect(off).toBeLessThanOrEqual(h);
  });

  it('refuses missing or mis-sized pixels with a message, not garbage', async () => {
    const { rgb, truth } = frame(() => 40);
    const e = embedding(truth);
    await expect(refined.segment([e], probe, H, W)).rejects.toThrow("refinement needs the 1 frames' pixels, got 0");
    await expect(refined.segment([e], probe, H, W, [rgb.subarray(0, 100)])).rejects.toThrow('frame 0 has 100 bytes, not 96x64 RGB');
  });

  it('checks its options: radius 0 is off, a bad radius or eps is named', () => {
    expect(refineFrom(0, 1e-5)).toBeNull();
    expect(refineFrom(8, 1e-4)).toEqual({ radius: 8, eps: 1e-4 });
    expect(() => refineFrom(-1, 1e-5, 'model.refine')).toThrow(
      'Expected a whole number of pixels, 0 for off for model.refine radius but received -1',
    );
    expect(() => refineFrom(8, 0, 'model.refine')).toThrow('Expected a number above 0 (default 1e-5) for model.refine eps but received 0');
  });
});
