/**
 * Base colours of the scene, per variant. Textures and lighting modulate these; the 'hard' variant
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
  waterTop: [72, 168, 176],
  waterDeep: [12, 62, 92],
  sand: SAND,
  sandPatch: [164, 156, 116],
  rocks: [
    [142, 130, 114],
    [126, 122, 114],
    [150, 132, 110],
    [118, 112, 104],
  ],
  // One hue family per class: an unsupervised method finds what looks alike, so a class
  // painted in four unrelated colours would be four classes to it (and to a marine scientist).
  corals: [
    [214, 88, 136],
    [198, 74, 150],
    [226, 104, 124],
    [206, 84, 112],
  ],
  fish: [
    { body: [244, 204, 40], stripe: [36, 42, 70] },
    { body: [236, 186, 36], stripe: [246, 246, 240] },
    { body: [250, 222, 80], stripe: [24, 92, 164] },
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
