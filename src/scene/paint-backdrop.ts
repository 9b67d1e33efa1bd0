/**
 * The static backdrop of the world: the water column (blue-green, darker with depth, with slow
 * murk) and the sandy seafloor below the wavy horizon (perspective ripples, algae patches, fine
 * grain, haze towards the horizon).
 */
import { clamp01, coverage, paintPixel, smoothstep, type Canvas } from './canvas.js';
import { groundDepth, hazeAt, type WorldGeometry } from './layout.js';
import { fbm, valueNoise } from './noise.js';
import type { Palette } from './palette.js';
import { hash2, subSeed } from './prng.js';
import { SceneClass } from './scene-classes.js';

/** Sand ripples per unit of ground distance (1 = the distance the bottom of the world is at). */
const RIPPLES_PER_DEPTH = 11;
/** Ripples finer than this many pixels alias into noise, so they fade out before that. */
const MIN_RIPPLE_PX = 2.5;

export function paintBackdrop(c: Canvas, g: WorldGeometry, palette: Palette, seed: number): void {
  const murk = valueNoise(subSeed(seed, 10));
  const warp = valueNoise(subSeed(seed, 11));
  const patches = valueNoise(subSeed(seed, 12));
  const grainNoise = valueNoise(subSeed(seed, 13));
  const grainSeed = subSeed(seed, 14);
  const { width: W, height: Hw, unit: u, viewHeight: H } = g;
  const groundSpan = Hw - g.horizonTop;
  const [tr, tg, tb] = palette.waterTop;
  const [dr, dg, db] = palette.waterDeep;
  const [sr, sg, sb] = palette.sand;
  const [pr, pg, pb] = palette.sandPatch;

  for (let y = 0; y < Hw; y++) {
    const py = y + 0.5;
    const k = Math.pow(clamp01(py / g.horizonMean), 0.85);
    const wr = tr + (dr - tr) * k;
    const wg = tg + (dg - tg) * k;
    const wb = tb + (db - tb) * k;
    const depth = groundDepth(g, py);
    const z = 1 / depth;
    const haze = hazeAt(depth);
    const ripplePx = (depth * depth * groundSpan) / RIPPLES_PER_DEPTH;
    // Low ripples: sand stays smooth next to rock and coral at every distance.
    const rippleAmp = 0.06 * smoothstep(MIN_RIPPLE_PX, MIN_RIPPLE_PX * 3, ripplePx);

    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      const m = 0.93 + 0.14 * fbm(murk, x / (0.22 * H), y / (0.1 * H), 2);
      paintPixel(c, i, wr * m, wg * m, wb * m, 1, SceneClass.water);

      const below = py - g.horizon[x]!;
      if (below <= -0.5) continue;
      // Ground coordinates: across (scaled by distance) and along the view, so texture shrinks
      // towards the horizon like a real floor seen at a grazing angle.
      const gx = ((x + 0.5 - W / 2) / H) * z;
      const wob = fbm(warp, gx * 1.3, z * 0.45, 2);
      const phase = 2 * Math.PI * (z * RIPPLES_PER_DEPTH + wob * 3.2);
      // Asymmetric profile: gentle stoss slope, steep lee, as current-formed ripples have.
      const ripple = Math.sin(phase) + 0.35 * Math.sin(2 * phase);
      const patch = fbm(patches, gx * 1.6, z * 0.7, 3);
      const grain = u <= 1.5 ? hash2(x, y, grainSeed) : grainNoise(x / u, y / u);
      const shade = (1 + rippleAmp * ripple) * (1 + 0.1 * (grain - 0.5)) * (0.93 + 0.14 * patch);
      const wet = 0.55 * smoothstep(0.56, 0.72, patch);
      let r = (sr + (pr - sr) * wet) * shade;
      let gg = (sg + (pg - sg) * wet) * shade;
      let b = (sb + (pb - sb) * wet) * shade;
      r += (dr - r) * haze;
      gg += (dg - gg) * haze;
      b += (db - b) * haze;
      paintPixel(c, i, r, gg, b, coverage(below), SceneClass.sand);
    }
  }
}
