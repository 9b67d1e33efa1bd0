import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { Backbone } from '../backbone/backbone.js';
import { LearnerClient } from '../learning/learner-client.js';
import { createScene } from '../scene/render-scene.js';
import type { Embedding, Frame } from '../types.js';
import { benchLog } from './bench-log.js';
import { median } from './median.js';

const W = 448;
const H = 256;
const FRAMES = 24;
const STEPS = 10;
const REPEATS = 3;
/** With every core busy a paced round at nice 10 takes about 25 s on 2 cores: one run of each. */
const BUSY_REPEATS = 1;

const log = benchLog('bench-learning');

async function sceneEmbeddings(): Promise<Embedding[]> {
  const backbone = await Backbone.load('builtin');
  try {
    const scene = createScene({ width: W, height: H, seed: 1, variant: 'hard' });
    const frames: Frame[] = [];
    for (let i = 0; i < FRAMES; i++) {
      frames.push({ streamId: 'bench', seq: i, pts: i, width: W, height: H, rgb: scene.render(i * 5).rgb, capturedAt: 0 });
    }
    const out: Embedding[] = [];
    for (let i = 0; i < FRAMES; i += 4) out.push(...(await backbone.embed(frames.slice(i, i + 4))));
    return out;
  } finally {
    await backbone.close();
  }
}

/** Wall time of one background round (after the probe and the first head, which run flat out), ms. */
async function roundMs(embeddings: readonly Embedding[], cpuShare: number, adaptiveCpu: boolean): Promise<number> {
  const learner = await LearnerClient.start({
    dim: embeddings[0]?.dim ?? 0,
    k: 5,
    seed: 1,
    train: { everyFrames: 1, steps: STEPS, cpuShare, adaptiveCpu },
  });
  try {
    for (const e of embeddings) learner.observe(e.patchTokens.slice(), e.gridH * e.gridW, e.dim);
    await learner.runRound(FRAMES);
    await learner.runRound(FRAMES, 60);
    const t0 = performance.now();
    await learner.runRound(2 * FRAMES, STEPS, true);
    return performance.now() - t0;
  } finally {
    await learner.close();
  }
}

/** Threads that keep every core busy until terminated (a pipeline saturating the machine). */
function saturate(): Worker[] {
  return Array.from({ length: availableParallelism() }, () => new Worker('let x = 0; for (;;) x += Math.sqrt(x + 1);', { eval: true }));
}

/**
 * `npm run bench -- learning`: the wall time of a 10-step background round at the default CPU
 * share, fixed against adaptive (duty-cycle.ts), on an idle machine and on one whose every core
 * is kept busy; and flat out (`--learn-cpu 1`) for scale. Ratios of medians of 3 runs each on
 * the idle machine, of one run each on the busy one.
 */
export async function benchLearning(): Promise<Record<string, unknown>> {
  const embeddings = await sceneEmbeddings();
  const idle = { fixed: [] as number[], adaptive: [] as number[], flat: [] as number[] };
  log('background rounds on an idle machine: fixed share, adaptive, flat out');
  for (let r = 0; r < REPEATS; r++) {
    idle.fixed.push(await roundMs(embeddings, 0.1, false));
    idle.adaptive.push(await roundMs(embeddings, 0.1, true));
    idle.flat.push(await roundMs(embeddings, 1, false));
  }
  log('background rounds with every core busy: fixed share, adaptive');
  const busy = { fixed: [] as number[], adaptive: [] as number[] };
  const spinners = saturate();
  try {
    for (let r = 0; r < BUSY_REPEATS; r++) {
      busy.fixed.push(await roundMs(embeddings, 0.1, false));
      busy.adaptive.push(await roundMs(embeddings, 0.1, true));
    }
  } finally {
    await Promise.all(spinners.map((w) => w.terminate()));
  }
  const ms = (xs: number[]): number => Math.round(median(xs));
  const ratio = (a: number[], b: number[]): number => Math.round((median(a) / median(b)) * 1000) / 1000;
  return {
    round: `${STEPS} Adam steps and a k-means fit, built-in backbone features of a ${W}x${H} hard scene, --learn-cpu 0.1`,
    msMedian: {
      idleFixed: ms(idle.fixed),
      idleAdaptive: ms(idle.adaptive),
      idleFlatOut: ms(idle.flat),
      busyFixed: ms(busy.fixed),
      busyAdaptive: ms(busy.adaptive),
    },
    ratios: {
      'idle machine: adaptive / fixed round time': ratio(idle.adaptive, idle.fixed),
      'idle machine: flat out / fixed round time': ratio(idle.flat, idle.fixed),
      'busy machine: adaptive / fixed round time': ratio(busy.adaptive, busy.fixed),
    },
  };
}
