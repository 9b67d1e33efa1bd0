import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InferenceClient } from '../src/backbone/inference-client.js';
import { SegmentationEngine } from '../src/engine/segmentation-engine.js';
import { batchesOf, sceneFrames as renderFrames } from './helpers/scene-frames.js';
import type { Frame } from '../src/types.js';

/**
 * The learning pass's backbone outputs are kept for the segmenting pass that decodes the same
 * frames next (process): those frames skip the backbone, and segment exactly as they would have
 * after a second backbone run. Real inference worker (built-in backbone) and learner worker.
 */

const W = 224;
const H = 128;
const BATCH = 4;

const sceneFrames = (count: number, stream = 'clip'): Frame[] => renderFrames({ count, width: W, height: H, seed: 3, step: 4, stream });
const batches = (frames: readonly Frame[]): Frame[][] => batchesOf(frames, BATCH);

/** A learning pass over the first `learn` frames, then every frame segmented; labels and reuse count. */
async function run(
  inference: InferenceClient,
  frames: readonly Frame[],
  learn: number,
  reuseLearnedBytes: number | undefined,
  second: readonly Frame[] = frames,
  prefetch = 0,
): Promise<{ labels: Uint8Array[]; reused: number }> {
  const engine = await SegmentationEngine.create({
    inference,
    learner: { k: 3, seed: 5, train: { everyFrames: 1000, steps: 5 } },
    warmupFrames: learn,
    learnPassSteps: 5,
    syncRounds: true,
    ...(reuseLearnedBytes === undefined ? {} : { reuseLearnedBytes }),
  });
  try {
    for (const b of batches(frames.slice(0, learn))) await engine.learn(b);
    // As the learning pass does while its closing round trains: the next batches' backbone outputs.
    const closing = engine.finishLearningPass();
    for (const b of batches(frames.slice(learn, learn + prefetch))) expect(await engine.prefetch(b)).toBe(true);
    await closing;
    const labels: Uint8Array[] = [];
    for (const b of batches(second)) for (const s of await engine.process(b)) labels.push(s.labels);
    return { labels, reused: engine.reusedFrames };
  } finally {
    await engine.close();
  }
}

describe('segmenting from the learning pass’s backbone outputs', () => {
  let inference: InferenceClient;
  const frames = sceneFrames(16);

  beforeAll(async () => {
    inference = await InferenceClient.start('builtin');
  }, 60_000);
  afterAll(async () => {
    await inference.close();
  });

  it('skips the backbone for the learned frames and gives the labels a second backbone run gives', async () => {
    const fresh = await run(inference, frames, 8, undefined);
    const reused = await run(inference, frames, 8, 64 * 1024 * 1024);
    expect(fresh.reused).toBe(0);
    expect(reused.reused).toBe(8);
    expect(reused.labels).toHaveLength(16);
    for (let i = 0; i < 16; i++) expect(Buffer.compare(reused.labels[i]!, fresh.labels[i]!), `frame ${i}`).toBe(0);
  }, 120_000);

  it('segments frames prefetched during the closing round as if the backbone ran then', async () => {
    const fresh = await run(inference, frames, 8, undefined);
    const prefetched = await run(inference, frames, 8, 64 * 1024 * 1024, frames, 8);
    expect(prefetched.reused).toBe(16);
    for (let i = 0; i < 16; i++) expect(Buffer.compare(prefetched.labels[i]!, fresh.labels[i]!), `frame ${i}`).toBe(0);
  }, 120_000);

  it('runs the backbone again for a frame whose pixels differ, and keeps no more than its byte cap', async () => {
    // Same stream and sequence numbers, but frame 5 decoded differently: its batch is not reused.
    const changed = frames.map((f) => (f.seq === 5 ? { ...f, rgb: Buffer.from(f.rgb.map((v) => 255 - v)) } : f));
    const r = await run(inference, frames, 8, 64 * 1024 * 1024, changed);
    expect(r.reused).toBe(4);
    // Room for 5 frames' outputs: one batch of 4 kept.
    const { patchSize: p, dim, hasKeys } = inference.info;
    const perFrame = ((W / p) * (H / p) * dim * (hasKeys ? 2 : 1) + dim) * 4;
    const capped = await run(inference, frames, 8, perFrame * 5);
    expect(capped.reused).toBe(4);
  }, 120_000);
});
