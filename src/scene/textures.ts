/**
 * What rocks and corals share: noise fields (one per seed, each object reading its own offset
 * into them rather than allocating its own), the light direction, and the contact shadow every
 * object casts on the sand it stands on.
 */
import type { Canvas } from './canvas.js';
import { valueNoise, type Noise2 } from './noise.js';
import { subSeed } from './prng.js';
import { SceneClass } from './scene-classes.js';

export interface Textures {
  readonly coarse: Noise2;
  readonly detail: Noise2;
  readonly seed: number;
}

export function createTextures(seed: number): Textures {
  return { coarse: valueNoise(subSeed(seed, 20)), detail: valueNoise(subSeed(seed, 21)), seed: subSeed(seed, 22) };
}

/** Light from above and a little left, towards the viewer (x right, y down, z out of the screen). */
const LX = -0.35;
const LY = -0.75;
const LZ = 0.56;
const LN = Math.hypot(LX, LY, LZ);

/** Lambert term for a (not necessarily unit) normal. */
export function diffuse(nx: number, ny: number, nz: number): number {
  const d = (nx * LX + ny * LY + nz * LZ) / (LN * Math.hypot(nx, ny, nz));
  return d > 0 ? d : 0;
}

/**
 * Darkens the sand in an ellipse around an object's foot (ambient occlusion), weaker when the
 * object is far and hazy. Only sand pixels change, and only their colour.
 */
export function contactShadow(c: Canvas, cx: number, cy: number, rx: number, ry: number, strength: number): void {
  const x0 = Math.max(0, Math.floor(cx - rx));
  const x1 = Math.min(c.width - 1, Math.ceil(cx + rx));
  const y0 = Math.max(0, Math.floor(cy - ry));
  const y1 = Math.min(c.height - 1, Math.ceil(cy + ry));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const i = y * c.width + x;
      if (c.labels[i] !== SceneClass.sand) continue;
      const ex = (x + 0.5 - cx) / rx;
      const ey = (y + 0.5 - cy) / ry;
      const e = ex * ex + ey * ey;
      if (e >= 1) continue;
      const k = 1 - strength * (1 - e) * (1 - e);
      const o = i * 3;
      c.rgb[o] = c.rgb[o]! * k;
      c.rgb[o + 1] = c.rgb[o + 1]! * k;
      c.rgb[o + 2] = c.rgb[o + 2]! * k;
    }
  }
}
