/**
 * Options shared by everything that renders the scene, checked before any work starts, with the
 * message template of errors.ts ("Expected ... for width but received 1.5 of type number").
 */
import { BadOptionError } from '../errors.js';

export type SceneVariant = 'easy' | 'hard' | 'lit';
/** Every variant, in the order messages list them. */
export const SCENE_VARIANTS: readonly SceneVariant[] = ['easy', 'hard', 'lit'];

export interface SceneOptions {
  /** Frame width in pixels, integer 16-8192. */
  readonly width: number;
  /** Frame height in pixels, integer 16-8192. */
  readonly height: number;
  /** Any safe integer; the same seed gives the same frames byte for byte. */
  readonly seed: number;
  /**
   * 'hard' gives coral the sand's mean colour, so only texture tells them apart; 'lit' is the easy
   * scene lit by a deep-sea ROV's lamps alone (spot, fall-off with range, vignetting, red lost with
   * range), with the same labels. Default 'easy'.
   */
  readonly variant?: SceneVariant;
  /** Frames per second of scene time: fish and camera move in seconds. Default 30. */
  readonly fps?: number;
}

export interface ResolvedSceneOptions {
  readonly width: number;
  readonly height: number;
  readonly seed: number;
  readonly variant: SceneVariant;
  readonly fps: number;
}

export const DEFAULT_SCENE_FPS = 30;
export const DEFAULT_SCENE_VARIANT: SceneVariant = 'easy';
/** Below this the layout has no room for its objects. */
export const MIN_SCENE_SIZE = 16;
export const MAX_SCENE_SIZE = 8192;
export const MAX_SCENE_FPS = 1000;

/** Checks and fills in defaults; throws BadOptionError naming the first bad option. */
export function resolveSceneOptions(options: SceneOptions): ResolvedSceneOptions {
  if (typeof options !== 'object' || options === null) throw new BadOptionError('options', 'an object', options);
  const variant = options.variant ?? DEFAULT_SCENE_VARIANT;
  if (!SCENE_VARIANTS.includes(variant)) throw new BadOptionError('variant', '"easy", "hard" or "lit"', variant);
  return Object.freeze({
    width: expectInteger('width', options.width, MIN_SCENE_SIZE, MAX_SCENE_SIZE),
    height: expectInteger('height', options.height, MIN_SCENE_SIZE, MAX_SCENE_SIZE),
    seed: expectInteger('seed', options.seed, Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    variant,
    fps: expectPositive('fps', options.fps ?? DEFAULT_SCENE_FPS, MAX_SCENE_FPS),
  });
}

export function expectInteger(option: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const expected =
      min === Number.MIN_SAFE_INTEGER
        ? 'safe integer'
        : max === Number.MAX_SAFE_INTEGER
          ? `integer >= ${min}`
          : `integer between ${min} and ${max}`;
    throw new BadOptionError(option, expected, value);
  }
  return value;
}

export function expectPositive(option: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new BadOptionError(option, `number above 0 and at most ${max}`, value);
  }
  return value;
}

export function expectBoolean(option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new BadOptionError(option, 'boolean', value);
  return value;
}
