/**
 * Base colours of the scene, per variant ('lit' has the easy scene's). Textures and lighting modulate these; the 'hard' variant
 * differs only in coral, which takes the sand's colour (and is then matched to the sand's rendered
 * mean exactly, see paint-world.ts) so that colour alone cannot tell the two apart.
 */
import type { SceneVariant } from './scene-options.js';

export type Rgb = readonly [number, number, number];

export interface FishColours {
  readonly body: Rgb;
  readonly stripe: Rgb;
}

export interface Palette {
  /** Water just under the surface (top of the world) ... */
  readonly waterTop: Rgb;
  /** ... and at the horizon, which is also the haze far objects fade into. */
  readonly waterDeep: Rgb;
  readonly sand: Rgb;
  /** Algae film and wet patches on the sand. */
  readonly sandPatch: Rgb;
  readonly rocks: readonly Rgb[];
  readonly corals: readonly Rgb[];
  readonly fish: readonly FishColours[];
  /** Shift coral so its mean rendered colour equals the sand's. */
  readonly coralMatchesSand: boolean;
}

const SAND: Rgb = [188, 172, 128];

const EASY: Palette = {
  // Deep water is the surface water in less light (same hue), so water is one colour, lit or not.
  waterTop: [56, 140, 166],
  waterDeep: [30, 76, 90],
  sand: SAND,
  sandPatch: [164, 156, 116],
  // Slate-blue basalt: greyer than water, bluer than sand, so rock is a colour of its own.
  rocks: [
    [76, 86, 110],
    [70, 80, 102],
    [82, 90, 114],
    [72, 84, 106],
  ],
  // One hue family per class: an unsupervised method finds what looks alike, so a class
  // painted in four unrelated colours would be four classes to it (and to a marine scientist).
  corals: [
    [214, 88, 136],
    [206, 82, 132],
    [222, 96, 140],
    [200, 80, 128],
  ],
  // Yellow fish with a darker band of the same hue.
  fish: [
    { body: [246, 200, 40], stripe: [196, 156, 30] },
    { body: [240, 190, 36], stripe: [190, 148, 28] },
    { body: [250, 210, 50], stripe: [200, 164, 38] },
  ],
  coralMatchesSand: false,
};

const HARD: Palette = {
  ...EASY,
  corals: [SAND],
  coralMatchesSand: true,
};

export function paletteFor(variant: SceneVariant): Palette {
  return variant === 'hard' ? HARD : EASY;
}
