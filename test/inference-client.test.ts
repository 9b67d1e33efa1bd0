import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient, type VersionedHead } from '../src/backbone/inference-client.js';
import { sceneFrames } from './helpers/scene-frames.js';
import type { Embedding, Frame } from '../src/types.js';

/**
 * The inference client moves a batch's packed pixels to the backbone thread and on to the
 * segmentation thread instead of copying them for each. Real workers (built-in backbone, the
 * default refinement, which reads the pixels).
 */

const W = 224;
const H = 128;

/**
 * A probe on raw features: k unit centroids picked from one frame's patch tokens, each the patch
 * least like those picked before (farthest-point), so the classes cover the scene.
 */
function probeFrom(e: Embedding, k: number, version: number): VersionedHead {
  const { dim } = e;
  const n = e.patchTokens.length / dim;
  const unit = (i: number): Float32Array => {
    const v = e.patchTokens.slice(i * dim, (i + 1) * dim);
    const norm = Math.hypot(...v) || 1;
    return v.map((x) => x / norm);
  };
  const picked = [unit(0)];
  while (picked.length < k) {
    let best = 0;
    let bestSim = Infinity;
    for (let i = 0; i < n; i++) {
      const u = unit(i);
      const sim = Math.max(...picked.map((c) => c.reduce((a, x, d) => a + x * (u[d] as number), 0)));
      if (sim < bestSim) [best, bestSim] = [i, sim];
    }
    picked.push(unit(best));
  }
  const centroids = new Float32Array(k * dim);
  picked.forEach((c, i) => centroids.set(c, i * dim));
  return { version, k, weights: null, centroids };
}

describe('inference client', () => {
  let inference: InferenceClient;
  const frames = sceneFrames({ count: 4, width: W, height: H, seed: 5, step: 7 });

  beforeAll(async () => {
    inference = await InferenceClient.start('builtin');
  }, 60_000);
  afterAll(async () => {
    await inference.close();
  });

  it("segments with each batch's own pixels, whether embed's moved copy is taken or packed anew", async () => {
    const embedded = await inference.embed(frames);
    const head = probeFrom(embedded[0] as Embedding, 4, 1);
    // The caller's frames keep their pixels: only the client's packed copy moves between threads.
    expect(frames.map((f) => f.rgb.length)).toEqual(frames.map(() => W * H * 3));
    const first = await inference.segment(frames, head, embedded);
    // The same embeddings again: the moved copy is gone, so the pixels are packed anew.
    const again = await inference.segment(frames, head, embedded);
    again.forEach((l, i) => expect(Buffer.compare(l, first[i] as Uint8Array), `frame ${i}`).toBe(0));
    // Other frames with these embeddings (a flat grey image) must be refined with their pixels,
    // not the ones embed moved: the refinement then has no colour edges to move boundaries onto.
    const flat: Frame[] = frames.map((f) => ({ ...f, rgb: Buffer.alloc(W * H * 3, 128) }));
    const embeddedAgain = await inference.embed(frames);
    const grey = await inference.segment(flat, head, embeddedAgain);
    expect(new Set(first[0]).size).toBeGreaterThan(1);
    const changed = grey.reduce((n, l, i) => n + l.reduce((m, v, p) => m + (v === (first[i] as Uint8Array)[p] ? 0 : 1), 0), 0);
    expect(changed).toBeGreaterThan(0);
    const same = await inference.segment(frames, head, await inference.embed(frames));
    same.forEach((l, i) => expect(Buffer.compare(l, first[i] as Uint8Array), `frame ${i}`).toBe(0));
    // A batch segmented after many others were embedded (its moved copy no longer kept).
    const early = await inference.embed(frames);
    for (let i = 0; i < 10; i++) await inference.embed(frames);
    const late = await inference.segment(frames, head, early);
    late.forEach((l, i) => expect(Buffer.compare(l, first[i] as Uint8Array), `frame ${i}`).toBe(0));
  }, 60_000);

  it('refuses a batch of frames of different sizes by naming the frame', async () => {
    const mixed: Frame[] = [frames[0] as Frame, { ...(frames[1] as Frame), width: 112, height: 64, rgb: Buffer.alloc(112 * 64 * 3) }];
    await expect(inference.embed(mixed)).rejects.toThrow(`frame 1 has ${112 * 64 * 3} bytes, not ${W}x${H} RGB`);
  });
});
