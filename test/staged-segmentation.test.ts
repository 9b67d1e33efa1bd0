import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient } from '../src/backbone/inference-client.js';
import { SegmentationEngine } from '../src/engine/segmentation-engine.js';
import { batchesOf, sceneFrames as renderFrames } from './helpers/scene-frames.js';
import type { Frame, Segmentation } from '../src/types.js';

/**
 * The engine's staged batches: the backbone of one batch runs while the one before is segmented
 * (two worker threads), yet which head segments which batch, and so every label, is what it is
 * one batch at a time. Real inference workers (built-in backbone) and learner worker.
 */

const W = 224;
const H = 128;
const BATCH = 4;

const sceneFrames = (count: number, stream = 'clip'): Frame[] => renderFrames({ count, width: W, height: H, seed: 4, step: 3, stream });
const batches = (frames: readonly Frame[]): Frame[][] => batchesOf(frames, BATCH);

/** A learning engine whose rounds fall due every 8 frames and run before the next batch. */
function learningEngine(inference: InferenceClient): Promise<SegmentationEngine> {
  return SegmentationEngine.create({
    inference,
    learner: { k: 3, seed: 7, train: { everyFrames: 8, steps: 4 } },
    warmupFrames: BATCH,
    syncRounds: true,
  });
}

describe('staged segmentation', () => {
  let inference: InferenceClient;
  const frames = sceneFrames(24);

  beforeAll(async () => {
    inference = await InferenceClient.start('builtin');
  }, 60_000);
  afterAll(async () => {
    await inference.close();
  });

  it('gives every batch the labels and head it gets one batch at a time, with all batches called at once', async () => {
    const oneByOne = await learningEngine(inference);
    const alone: Segmentation[] = [];
    try {
      for (const b of batches(frames)) alone.push(...(await oneByOne.process(b)));
    } finally {
      await oneByOne.close();
    }
    const staged = await learningEngine(inference);
    let together: Segmentation[];
    try {
      const calls = batches(frames).map((b) => staged.stage(b));
      together = (await Promise.all(calls.map((c) => c.results))).flat();
    } finally {
      await staged.close();
    }
    // Rounds ran between batches, so a wrong head for any batch would show.
    expect(new Set(alone.map((s) => s.headVersion)).size).toBeGreaterThan(2);
    expect(together.map((s) => s.headVersion)).toEqual(alone.map((s) => s.headVersion));
    together.forEach((s, i) => expect(Buffer.compare(s.labels, (alone[i] as Segmentation).labels), `frame ${i}`).toBe(0));
  }, 120_000);

  it('fails only the batch whose backbone run failed; the batches around it are segmented', async () => {
    const engine = await learningEngine(inference);
    try {
      const [first, , third] = batches(frames);
      // 100 px is not a multiple of the built-in backbone's patch size: its run fails.
      const bad = (first as Frame[]).map((f) => ({ ...f, width: 100, height: 64, rgb: Buffer.alloc(100 * 64 * 3) }));
      const calls = [first, bad, third].map((b) => engine.stage(b as Frame[]));
      const settled = await Promise.allSettled(calls.map((x) => x.results));
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(
        await calls[1]?.taken.then(
          () => 'taken',
          () => 'failed',
        ),
      ).toBe('failed');
      expect((settled[2] as PromiseFulfilledResult<Segmentation[]>).value.map((s) => s.frame.seq)).toEqual([8, 9, 10, 11]);
    } finally {
      await engine.close();
    }
  }, 120_000);
});
