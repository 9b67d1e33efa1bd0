import { createScene } from '../../src/scene/render-scene.js';
import type { Frame } from '../../src/types.js';

/** `count` frames of an easy generated scene (seed `seed`), `step` scene frames apart, as one stream. */
export function sceneFrames(options: {
  count: number;
  width: number;
  height: number;
  seed: number;
  step: number;
  stream?: string;
}): Frame[] {
  const { count, width, height, seed, step, stream = 'clip' } = options;
  const scene = createScene({ width, height, seed, variant: 'easy' });
  return Array.from({ length: count }, (_, i) => ({
    streamId: stream,
    seq: i,
    pts: i,
    width,
    height,
    rgb: scene.render(i * step).rgb,
    capturedAt: 0,
  }));
}

/** `frames` cut into batches of `size` (the last may be shorter). */
export function batchesOf<T>(frames: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < frames.length; i += size) out.push(frames.slice(i, i + size));
  return out;
}
