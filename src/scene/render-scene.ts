/**
 * Procedural underwater scene with exact ground truth: the demo input and the test data with
 * known answers for the whole product.
 */
import { BadOptionError } from '../errors.js';
import { wrapCanvas } from './canvas.js';
import { drawFish } from './draw-fish.js';
import { createFrameLight } from './frame-light.js';
import { gentleLamp, rovLamp } from './lamp-light.js';
import { cameraOffset, planLayout } from './layout.js';
import { paintWorld } from './paint-world.js';
import { paletteFor } from './palette.js';
import { SCENE_CLASS_NAMES } from './scene-classes.js';
import { resolveSceneOptions, type SceneOptions } from './scene-options.js';

export type { SceneOptions, SceneVariant } from './scene-options.js';

export interface SceneFrame {
  readonly width: number;
  readonly height: number;
  /** HWC uint8 RGB, width * height * 3 bytes. */
  readonly rgb: Buffer;
  /** width * height class ids (see SCENE_CLASSES): the class that painted each pixel. */
  readonly labels: Uint8Array;
}

export interface Scene {
  /** Class names, index = the ids in `labels`. */
  readonly classNames: readonly string[];
  /** Frame `frameIndex` (integer >= 0) at time frameIndex / fps; same index, same bytes. */
  render(frameIndex: number): SceneFrame;
}

/**
 * Builds the scene for a seed: a ROV's view of a seafloor with water, sand, rocks, corals and fish,
 * the camera panning slowly, fish swimming, caustics and marine snow moving. Everything follows
 * from `seed`, so frames and labels are reproducible byte for byte.
 *
 * The static world (textures, shapes, labels) is painted here, once; `render` copies a window of it
 * and animates fish and light on top, so frames are cheap (a few ms at 448x256) while the
 * construction takes longer (about 0.1 s of CPU at 448x256, 1-2 s at 1920x1080).
 *
 * Throws BadOptionError for a bad option (sizes are integers 16-8192, fps in (0, 1000]).
 *
 * @example
 * const scene = createScene({ width: 448, height: 256, seed: 7, variant: 'hard' });
 * const { rgb, labels } = scene.render(0);
 */
export function createScene(options: SceneOptions): Scene {
  const o = resolveSceneOptions(options);
  const palette = paletteFor(o.variant);
  const layout = planLayout(o, palette);
  const g = layout.geometry;
  const world = paintWorld(layout, palette, o.seed);
  const lamp = o.variant === 'lit' ? rovLamp(o.width, o.height) : gentleLamp(o.width, o.height);
  const light = createFrameLight(g, layout.snow, o.seed, lamp);
  const W = o.width;
  const H = o.height;

  return Object.freeze({
    classNames: SCENE_CLASS_NAMES,
    render(frameIndex: number): SceneFrame {
      if (!Number.isInteger(frameIndex) || frameIndex < 0) throw new BadOptionError('frameIndex', 'integer >= 0', frameIndex);
      const t = frameIndex / o.fps;
      const { ox, oy } = cameraOffset(g, t);
      const rgb = Buffer.allocUnsafe(W * H * 3);
      const labels = new Uint8Array(W * H);
      for (let y = 0; y < H; y++) {
        const from = (y + oy) * g.width + ox;
        world.bytes.copy(rgb, y * W * 3, from * 3, (from + W) * 3);
        labels.set(world.labels.subarray(from, from + W), y * W);
      }
      const view = wrapCanvas(W, H, rgb, labels);
      for (const fish of layout.fish) drawFish(view, fish, t, ox, oy, g.width);
      light.apply(view, t, ox, oy);
      return Object.freeze({ width: W, height: H, rgb, labels });
    },
  });
}
