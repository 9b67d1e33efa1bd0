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

/** Bilinear resize of one channel, ONNX Resize's linear mode with half_pixel coordinates (edges clamped). */
function resizeBilinear(src: Float64Array, sh: number, sw: number, dh: number, dw: number): Float64Array {
  const out = new Float64Array(dh * dw);
  const at = (d: number, scale: number, n: number): [number, number, number] => {
    const x = Math.min(Math.max((d + 0.5) / scale - 0.5, 0), n - 1);
    const i = Math.floor(x);
    return [i, Math.min(i + 1, n - 1), x - i];
  };
  for (let y = 0; y < dh; y++) {
    const [y0, y1, fy] = at(y, dh / sh, sh);
    for (let x = 0; x < dw; x++) {
      const [x0, x1, fx] = at(x, dw / sw, sw);
      const top = (src[y0 * sw + x0] as number) * (1 - fx) + (src[y0 * sw + x1] as number) * fx;
      const bottom = (src[y1 * sw + x0] as number) * (1 - fx) + (src[y1 * sw + x1] as number) * fx;
      out[y * dw + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

/** Mean over a (2r+1)² window, counting only the pixels inside the image. */
function boxMean(src: Float64Array, h: number, w: number, r: number): Float64Array {
  const out = new Float64Array(h * w);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let sum = 0;
      let n = 0;
      for (let v = Math.max(0, y - r); v <= Math.min(h - 1, y + r); v++)
        for (let u = Math.max(0, x - r); u <= Math.min(w - 1, x + r); u++) {
          sum += src[v * w + u] as number;
          n++;
        }
      out[y * w + x] = sum / n;
    }
  return out;
}

/**
 * The fast guided filter written out the long way, every class scored at every pixel (He & Sun
 * 2015: fit on the 4x coarser grid, coefficients box-smoothed and bilinearly upsampled): what the
 * segmentation graph computes with its two-candidates-per-pixel shortcut. Sizes multiples of 4.
 */
function guidedReference(rgb: Uint8Array, w: number, h: number, maps: Float64Array[], gh: number, gw: number): Uint8Array {
  const s = 4;
  const lh = h / s;
  const lw = w / s;
  const r = Math.max(1, Math.round(DEFAULT_REFINE.radius / s));
  const I = [0, 1, 2].map((c) => {
    const low = new Float64Array(lh * lw);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++) {
        const q = Math.floor(y / s) * lw + Math.floor(x / s);
        low[q] = (low[q] as number) + (rgb[(y * w + x) * 3 + c] as number) / 255 / (s * s);
      }
    return low;
  });
  const n = lh * lw;
  const prod = (a: Float64Array, b: Float64Array): Float64Array => a.map((v, i) => v * (b[i] as number));
  const mI = I.map((x) => boxMean(x, lh, lw, r));
  const cov = (i: number, j: number): Float64Array =>
    boxMean(prod(I[i]!, I[j]!), lh, lw, r).map((v, q) => v - mI[i]![q]! * mI[j]![q]! + (i === j ? DEFAULT_REFINE.eps : 0));
  const [a, b, c, d, e, f] = [cov(0, 0), cov(0, 1), cov(0, 2), cov(1, 1), cov(1, 2), cov(2, 2)];
  const scores = maps.map((map) => {
    const p = resizeBilinear(map, gh, gw, lh, lw);
    const mp = boxMean(p, lh, lw, r);
    const cIp = [0, 1, 2].map((i) => boxMean(prod(I[i]!, p), lh, lw, r).map((v, q) => v - mI[i]![q]! * mp[q]!));
    const A = [0, 1, 2].map(() => new Float64Array(n));
    const B = new Float64Array(n);
    for (let q = 0; q < n; q++) {
      const m = [
        [a![q]!, b![q]!, c![q]!],
        [b![q]!, d![q]!, e![q]!],
        [c![q]!, e![q]!, f![q]!],
      ];
      const det =
        m[0]![0]! * (m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!) -
        m[0]![1]! * (m[1]![0]! * m[2]![2]! - m[1]![2]! * m[2]![0]!) +
        m[0]![2]! * (m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!);
      const inv = [
        [
          m[1]![1]! * m[2]![2]! - m[1]![2]! * m[2]![1]!,
          m[0]![2]! * m[2]![1]! - m[0]![1]! * m[2]![2]!,
          m[0]![1]! * m[1]![2]! - m[0]![2]! * m[1]![1]!,
        ],
        [
          m[1]![2]! * m[2]![0]! - m[1]![0]! * m[2]![2]!,
          m[0]![0]! * m[2]![2]! - m[0]![2]! * m[2]![0]!,
          m[0]![2]! * m[1]![0]! - m[0]![0]! * m[1]![2]!,
        ],
        [
          m[1]![0]! * m[2]![1]! - m[1]![1]! * m[2]![0]!,
          m[0]![1]! * m[2]![0]! - m[0]![0]! * m[2]![1]!,
          m[0]![0]! * m[1]![1]! - m[0]![1]! * m[1]![0]!,
        ],
      ];
      let off = mp[q]!;
      for (let i = 0; i < 3; i++) {
        let v = 0;
        for (let j = 0; j < 3; j++) v += (inv[i]![j]! / det) * cIp[j]![q]!;
        A[i]![q] = v;
        off -= v * mI[i]![q]!;
      }
      B[q] = off;
    }
    const up = [...A, B].map((x) => resizeBilinear(boxMean(x, lh, lw, r), lh, lw, h, w));
    const q = new Float64Array(w * h);
    for (let px = 0; px < w * h; px++) {
      let v = up[3]![px]!;
      for (let i = 0; i < 3; i++) v += up[i]![px]! * ((rgb[px * 3 + i] as number) / 255);
      q[px] = v;
    }
    return q;
  });
  const labels = new Uint8Array(w * h);
  for (let px = 0; px < w * h; px++) {
    let best = 0;
    for (let k = 1; k < maps.length; k++) if (scores[k]![px]! > scores[best]![px]!) best = k;
    labels[px] = best;
  }
  return labels;
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

  it('agrees with the full guided filter written out in JS (every class at every pixel), but where classes meet', async () => {
    // Four colour regions (Voronoi cells of four seeds, so three classes meet at places) and a
    // thin stripe of a fifth colour; patch features one-hot on the patch's majority region plus noise.
    const K = 5;
    const colours = [
      [20, 60, 150],
      [200, 180, 120],
      [90, 140, 60],
      [160, 70, 60],
      [240, 240, 240],
    ];
    const seeds = [
      [10, 12],
      [80, 8],
      [30, 58],
      [70, 50],
    ];
    let st = 777;
    const rand = (): number => {
      st = (st * 1103515245 + 12345) & 0x7fffffff;
      return st / 0x7fffffff;
    };
    const truth = new Uint8Array(W * H);
    const rgb = new Uint8Array(W * H * 3);
    for (let y = 0; y < H; y++)
      for (let x = 0; x < W; x++) {
        let cls = 0;
        seeds.forEach(([sx, sy], i) => {
          const [bx, by] = seeds[cls] as number[];
          if ((x - sx!) ** 2 + (y - sy!) ** 2 < (x - bx!) ** 2 + (y - by!) ** 2) cls = i;
        });
        if (Math.abs(y - 0.4 * x - 14) < 1.5) cls = 4; // a stripe 3 px wide: thinner than a patch
        truth[y * W + x] = cls;
        for (let c = 0; c < 3; c++)
          rgb[(y * W + x) * 3 + c] = Math.max(0, Math.min(255, colours[cls]![c]! + Math.round((rand() - 0.5) * 12)));
      }
    const gw = W / P;
    const gh = H / P;
    const tokens = new Float32Array(gw * gh * K);
    const maps = Array.from({ length: K }, () => new Float64Array(gw * gh));
    for (let py = 0; py < gh; py++)
      for (let px = 0; px < gw; px++) {
        const count = new Array<number>(K).fill(0);
        for (let y = 0; y < P; y++) for (let x = 0; x < P; x++) count[truth[(py * P + y) * W + px * P + x] as number]! += 1;
        const v = count.map((n) => n / (P * P) + rand() * 0.2);
        const norm = Math.hypot(...v);
        // Centroids are one-hot: the cosine similarity to class k is the unit vector's k-th entry.
        v.forEach((x, k) => {
          tokens[(py * gw + px) * K + k] = x;
          maps[k]![py * gw + px] = x / norm;
        });
      }
    const f: Frame = { streamId: 't', seq: 0, pts: 0, width: W, height: H, rgb: Buffer.alloc(0), capturedAt: 0 };
    const e: Embedding = { frame: f, gridH: gh, gridW: gw, dim: K, patchTokens: tokens, clsToken: new Float32Array(K) };
    const eye = new Float32Array(K * K);
    for (let k = 0; k < K; k++) eye[k * K + k] = 1;
    const [out] = await refined.segment([e], { weights: null, centroids: eye, k: K }, H, W, [rgb]);
    const want = guidedReference(rgb, W, H, maps, gh, gw);
    // The shortcut scores three classes per pixel: a fourth could win only where four classes meet
    // (measured: 0 of 6144 pixels differ; scoring two, 24 differed, all where three regions meet).
    const o = out as Uint8Array;
    const junction = (x: number, y: number): boolean => {
      const seen = new Set<number>();
      for (let v = Math.max(0, y - 6); v <= Math.min(H - 1, y + 6); v++)
        for (let u = Math.max(0, x - 6); u <= Math.min(W - 1, x + 6); u++) seen.add(want[v * W + u] as number);
      return seen.size >= 3;
    };
    const away: string[] = [];
    for (let i = 0; i < W * H; i++) if (o[i] !== want[i] && !junction(i % W, Math.floor(i / W))) away.push(`${i % W},${Math.floor(i / W)}`);
    expect(away).toEqual([]);
    expect(wrong(o, want)).toBeLessThanOrEqual((W * H) / 100);
    // Two classes: nothing is left out, so only float rounding could flip a pixel.
    const two = frame((y) => 29 + Math.floor(y / 3));
    const twoMaps = [0, 1].map((k) => {
      const m = new Float64Array(gw * gh);
      const t = embedding(two.truth).patchTokens;
      for (let i = 0; i < gw * gh; i++) m[i] = t[i * 2 + k]!;
      return m;
    });
    const [twoOut] = await refined.segment([embedding(two.truth)], probe, H, W, [two.rgb]);
    expect(wrong(twoOut as Uint8Array, guidedReference(two.rgb, W, H, twoMaps, gh, gw))).toBeLessThanOrEqual(2);
  });

  it('segments with one or two classes (fewer than the classes it scores per pixel)', async () => {
    const { rgb, truth } = frame((y) => 29 + Math.floor(y / 3));
    const e = embedding(truth);
    const [one] = await refined.segment([e], { weights: null, centroids: Float32Array.from([0.6, 0.8]), k: 1 }, H, W, [rgb]);
    expect([...new Set(one)]).toEqual([0]);
    const [two] = await refined.segment([e], probe, H, W, [rgb]);
    expect(new Set(two)).toEqual(new Set([0, 1]));
    expect(wrong(two as Uint8Array, truth)).toBeLessThanOrEqual(H / 8);
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
