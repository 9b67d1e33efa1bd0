/**
 * How the ROV's lamps light the view: a gain per pixel and colour channel, fixed to the camera
 * (the lamps move with it), multiplied into every frame by frame-light.ts. Colour only: labels
 * never depend on it.
 */

/** Per-channel gains, width * height each, row-major in view pixels. */
export interface LampGains {
  readonly r: Float32Array;
  readonly g: Float32Array;
  readonly b: Float32Array;
  /** Sunlight from the surface (caustics, shafts) is there (1) or not (0: the deep sea). */
  readonly sunlight: 0 | 1;
}

/**
 * The 'easy' and 'hard' scenes' lamps: an off-centre radial falloff, aimed a little below the
 * middle of the view. Gentle (0.8-1.06) and colourless, so that near and far sand still look like
 * one material. One table shared by the three channels.
 */
export function gentleLamp(W: number, H: number): LampGains {
  const gain = new Float32Array(W * H);
  for (let y = 0; y < H; y++) {
    const dy = (y + 0.5 - 0.6 * H) / (0.75 * H);
    for (let x = 0; x < W; x++) {
      const dx = (x + 0.5 - 0.5 * W) / (0.62 * W);
      gain[y * W + x] = Math.max(0.8, 1.06 - 0.22 * (dx * dx + dy * dy));
    }
  }
  return { r: gain, g: gain, b: gain, sunlight: 1 };
}

/** Gain of the spot before range fall-off and vignetting (0.8 at its centre after them). */
const SPOT_PEAK = 1.15;
/** Light outside the spot, as a fraction of the peak (the lamp's spill and the water's scatter). */
const SPOT_FLOOR = 0.15;
/** Radius of the spot (1/e of its excess over the floor), in view heights. */
const SPOT_RADIUS = 0.4;
/** Inverse-square fall-off with range: gain / (1 + this * range^2), range 0 (bottom row) to 1 (top row). */
const RANGE_FALLOFF = 3;
/**
 * Vignetting by the cos^4 law: 1 / (1 + (rho / this)^2)^2, rho the distance from the view's
 * centre in half-diagonals: the corners get 0.74 of the centre's light. At 2 (0.64) the top
 * corners' water was down to 1-4 levels of 255, where rounding alone shifts its hue enough to
 * make a class of it.
 */
const VIGNETTE_FOCAL = 2.5;
/**
 * Attenuation per unit of range, per channel (exp(-this * range)): water takes red first, then
 * green, so far things turn blue-green. Moderate: at the top of the view red is down to 0.55 of
 * what it is at the bottom, green to 0.82, blue to 0.89.
 */
const ATTENUATION: readonly [number, number, number] = [0.6, 0.2, 0.12];

/**
 * The 'lit' scene's lamps: a deep-sea ROV's, the only light there is (no caustics, no sun
 * shafts; marine snow still shines in the lamps). A spot aimed below the middle of the view,
 * spilling off to a floor; falling off with the square of range (range grows
 * from the bottom of the view to the top); the lens's vignetting; and the water's colour
 * attenuation over the range, red first. From the spot's centre (gain 0.8) to the top of the view
 * the light drops to a fifteenth, to a thirtieth in the top corners, and turns blue-green: the
 * water up there is down to 2-10 levels of 255, as beyond a real ROV's lamps.
 */
export function rovLamp(W: number, H: number): LampGains {
  const r = new Float32Array(W * H);
  const g = new Float32Array(W * H);
  const b = new Float32Array(W * H);
  const halfDiagonal = Math.hypot(W, H) / 2;
  for (let y = 0; y < H; y++) {
    const range = 1 - (y + 0.5) / H;
    const falloff = 1 / (1 + RANGE_FALLOFF * range * range);
    const tr = Math.exp(-ATTENUATION[0] * range);
    const tg = Math.exp(-ATTENUATION[1] * range);
    const tb = Math.exp(-ATTENUATION[2] * range);
    const sy = (y + 0.5 - 0.62 * H) / (SPOT_RADIUS * H);
    const vy = y + 0.5 - H / 2;
    for (let x = 0; x < W; x++) {
      const sx = (x + 0.5 - 0.5 * W) / (SPOT_RADIUS * H * 1.4);
      const spot = SPOT_FLOOR + (1 - SPOT_FLOOR) * Math.exp(-(sx * sx + sy * sy));
      const rho = Math.hypot(x + 0.5 - W / 2, vy) / halfDiagonal / VIGNETTE_FOCAL;
      const vignette = 1 / (1 + rho * rho) ** 2;
      const gain = SPOT_PEAK * spot * falloff * vignette;
      const i = y * W + x;
      r[i] = gain * tr;
      g[i] = gain * tg;
      b[i] = gain * tb;
    }
  }
  return { r, g, b, sunlight: 0 };
}
