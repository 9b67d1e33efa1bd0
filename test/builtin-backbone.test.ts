import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Backbone } from '../src/backbone/backbone.js';
import { BUILTIN_DIM, BUILTIN_NAME, BUILTIN_PATCH_SIZE } from '../src/backbone/builtin-backbone.js';
import { ConfusionMatrix } from '../src/eval/segmentation-metrics.js';
import { sphericalKmeans } from '../src/learning/spherical-kmeans.js';
import { Segmenter } from '../src/backbone/segmenter.js';
import { createScene } from '../src/scene/render-scene.js';
import type { Frame } from '../src/types.js';

function sceneFrames(
  width: number,
  height: number,
  seed: number,
  count: number,
  every = 8,
): { frames: Frame[]; labels: Uint8Array[]; classNames: readonly string[] } {
  const scene = createScene({ width, height, seed, variant: 'easy' });
  const frames: Frame[] = [];
  const labels: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const r = scene.render(i * every);
    frames.push({ streamId: 'scene', seq: i, pts: i / 30, width, height, rgb: r.rgb, capturedAt: 0 });
    labels.push(r.labels);
  }
  return { frames, labels, classNames: scene.classNames };
}

describe('built-in backbone', () => {
  let backbone: Backbone;
  beforeAll(async () => {
    backbone = await Backbone.load('builtin');
  });
  afterAll(async () => {
    await backbone.close();
  });

  it('loads through Backbone.load and names itself', () => {
    expect(backbone.info).toMatchObject({
      source: 'builtin',
      name: BUILTIN_NAME,
      patchSize: BUILTIN_PATCH_SIZE,
      dim: BUILTIN_DIM,
      inputHeight: 0,
      inputWidth: 0,
      hasKeys: true,
    });
  });

  for (const [width, height] of [
    [448, 256],
    [120, 72],
  ] as const) {
    it(`gives the contract's shapes for a 2-frame batch at ${width}x${height}`, async () => {
      const { frames } = sceneFrames(width, height, 4, 2);
      const out = await backbone.embed(frames);
      const n = (width / 8) * (height / 8);
      expect(out).toHaveLength(2);
      out.forEach((e, i) => {
        expect(e.frame).toBe(frames[i]);
        expect([e.gridH, e.gridW, e.dim]).toEqual([height / 8, width / 8, BUILTIN_DIM]);
        expect(e.patchTokens).toHaveLength(n * BUILTIN_DIM);
        expect(e.clsToken).toHaveLength(BUILTIN_DIM);
        expect(e.keys).toHaveLength(n * BUILTIN_DIM);
        expect(e.patchTokens.every(Number.isFinite)).toBe(true);
        expect(e.keys!.every(Number.isFinite)).toBe(true);
      });
      // Two different frames give different tokens.
      const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      expect(bytes(out[0]!.patchTokens).equals(bytes(out[1]!.patchTokens))).toBe(false);
    });
  }

  it('keeps a constant channel in the tokens and leaves it out of the keys', async () => {
    const [e] = await backbone.embed(sceneFrames(448, 256, 2, 1).frames);
    const last = (a: Float32Array, p: number): number => a[p * BUILTIN_DIM + BUILTIN_DIM - 1]!;
    const n = e!.gridH * e!.gridW;
    const first = last(e!.patchTokens, 0);
    expect(first).toBeGreaterThan(1);
    for (let p = 0; p < n; p++) {
      expect(last(e!.patchTokens, p)).toBe(first);
      expect(last(e!.keys!, p)).toBe(0);
    }
  });

  it('is deterministic: the same frames give the same bytes, in any batch and from a fresh load', async () => {
    const { frames } = sceneFrames(448, 256, 7, 3);
    const a = await backbone.embed(frames);
    const b = await backbone.embed(frames);
    const other = await Backbone.load('builtin');
    const alone = await other.embed([frames[1]!]);
    await other.close();
    for (let i = 0; i < 3; i++) {
      expect(Array.from(b[i]!.patchTokens)).toEqual(Array.from(a[i]!.patchTokens));
      expect(Array.from(b[i]!.clsToken)).toEqual(Array.from(a[i]!.clsToken));
    }
    const close = alone[0]!.patchTokens.every((v, j) => Math.abs(v - a[1]!.patchTokens[j]!) < 1e-4);
    expect(close).toBe(true);
  });

  it('lets plain spherical k-means (K = 5) find the easy scene classes: mIoU >= 0.6 on seeds 1-3', async () => {
    const W = 448;
    const H = 256;
    const FRAMES = 12;
    const K = 5;
    const segmenter = await Segmenter.create();
    try {
      for (const seed of [1, 2, 3]) {
        const { frames, labels, classNames } = sceneFrames(W, H, seed, FRAMES);
        const embeddings = [];
        for (let i = 0; i < FRAMES; i += 4) embeddings.push(...(await backbone.embed(frames.slice(i, i + 4))));
        const n = embeddings[0]!.gridH * embeddings[0]!.gridW;
        const data = new Float32Array(FRAMES * n * BUILTIN_DIM);
        embeddings.forEach((e, i) => data.set(e.patchTokens, i * n * BUILTIN_DIM));
        const km = sphericalKmeans(data, FRAMES * n, BUILTIN_DIM, K, { seed: 1, restarts: 2 });
        const cm = new ConfusionMatrix(K, classNames.length);
        for (let i = 0; i < FRAMES; i += 4) {
          const predicted = await segmenter.segment(embeddings.slice(i, i + 4), { weights: null, centroids: km.centroids, k: K }, H, W);
          predicted.forEach((p, j) => cm.add(p, labels[i + j]!));
        }
        const score = cm.score(classNames);
        const detail = score.perClass.map((c) => `${c.name} ${c.iou.toFixed(2)}`).join(', ');
        expect(score.mIoU, `seed ${seed}: ${detail}`).toBeGreaterThanOrEqual(0.6);
      }
    } finally {
      await segmenter.close();
    }
  });
});
