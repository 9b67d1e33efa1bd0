import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { runCli, tempDir } from './helpers/cli.js';
import { SCENE_CLASS_NAMES } from '../src/scene/scene-classes.js';

/**
 * The built-in backbone under a deep-sea ROV's lamps: `demo --variant lit` renders the easy scene
 * lit by the lamps alone (a spot, fall-off with range down to a twentieth of the light at the top
 * of the view, vignetting, red lost with range) with the same ground truth, and must score about
 * what the evenly lit scene scores: the lamps' light is not a class.
 *
 * Measured (16 frames, K = 5, easy / lit): seed 1 0.850 / 0.850, seed 2 0.837 / 0.841, seed 7
 * 0.843 / 0.855. The backbone without its illumination normalisation (v2's features) scored the
 * lit scene 0.788, 0.755 and 0.631 on the same seeds (fish lost in the dark, water split into lit
 * and unlit), so the bar of 0.03 fails without it.
 *
 * K is given (the scene's five classes) so that the figures do not move with the demo's default
 * class count; the learning seed is the default.
 */
const FRAMES = '16';
const SEEDS = [1, 2, 3];
/** Two demo runs a seed, each a few seconds of CPU; generous, since the machine may be busy. */
const TEST_MS = 600_000;

interface DemoJson {
  frames: number;
  variant: string;
  sceneSeed: number;
  mIoU: number;
  pixelAccuracy: number;
  perClass: { id: number; name: string; iou: number | null; cluster: number }[];
  backbone: string;
  classes: { id: number; share: number }[];
}

async function demo(variant: 'easy' | 'lit', sceneSeed: number, k = '5'): Promise<DemoJson> {
  const dir = await tempDir();
  const r = await runCli([
    'demo',
    '--variant',
    variant,
    '--scene-seed',
    String(sceneSeed),
    '--frames',
    FRAMES,
    '--classes',
    k,
    '--json',
    '--out-dir',
    join(dir, 'demo'),
  ]);
  expect(r.code, r.stderr).toBe(0);
  // One JSON object, nothing else on stdout.
  expect(r.stdout.trim().split('\n')).toHaveLength(1);
  return JSON.parse(r.stdout) as DemoJson;
}

describe('demo --variant lit', () => {
  it(
    'prints its scores as JSON and scores the lamp-lit scene >= 0.75 mIoU, within 0.03 of the evenly lit one, on seeds 1, 2 and 3',
    async () => {
      const figures: string[] = [];
      for (const seed of SEEDS) {
        const unlit = await demo('easy', seed);
        const lit = await demo('lit', seed);
        expect(lit).toMatchObject({ frames: 16, variant: 'lit', sceneSeed: seed });
        expect(unlit).toMatchObject({ frames: 16, variant: 'easy', sceneSeed: seed });
        expect(lit.backbone).toMatch(/^builtin-filterbank/);
        expect(lit.perClass.map((c) => c.name)).toEqual([...SCENE_CLASS_NAMES]);
        expect(lit.pixelAccuracy).toBeGreaterThan(0);
        figures.push(`seed ${seed}: unlit ${unlit.mIoU.toFixed(3)}, lit ${lit.mIoU.toFixed(3)}`);
        const detail = `${figures.join('; ')}; lit per class: ${lit.perClass.map((c) => `${c.name} ${c.iou?.toFixed(2)}`).join(', ')}`;
        expect(lit.mIoU, detail).toBeGreaterThanOrEqual(0.75);
        expect(Math.abs(lit.mIoU - unlit.mIoU), detail).toBeLessThanOrEqual(0.03);
      }
    },
    TEST_MS,
  );

  it(
    'with -k auto the lamp-lit scene gets no more classes than the evenly lit one (seeds 1 and 2)',
    async () => {
      for (const seed of [1, 2]) {
        const unlit = await demo('easy', seed, 'auto');
        const lit = await demo('lit', seed, 'auto');
        expect(lit.classes.length, `seed ${seed}: lit ${lit.classes.length}, unlit ${unlit.classes.length}`).toBeLessThanOrEqual(
          unlit.classes.length,
        );
        expect(unlit.classes.length).toBeGreaterThanOrEqual(4);
      }
    },
    TEST_MS,
  );
});
