import { BadOptionError } from '../errors.js';

/** Edge-aware refinement of the class maps by the fast guided filter (segmentation-graph.ts). */
export interface RefineOptions {
  /** Window radius in output (working-resolution) pixels; applied in steps of REFINE_SCALE, at least one step. */
  readonly radius: number;
  /** Regulariser, in (0-1 colour units)²: larger is smoother, closer to the plain bilinear maps. */
  readonly eps: number;
}

/**
 * Defaults, measured on the generated scenes (README "Learning"): radius 8-16 px scored within
 * 0.01 mIoU of each other, 4 px 0.015 lower; eps 1e-4 0.02 lower than 1e-5, 1e-6 up to 0.008
 * higher on those noise-free frames. 1e-5 is a colour standard deviation of under one grey level:
 * any edge the eye sees is kept, and in flat regions the noise does not correlate with the maps.
 */
export const DEFAULT_REFINE: RefineOptions = { radius: 8, eps: 1e-5 };

/**
 * The filter's coefficients are fitted on a grid this many times coarser than the output (the
 * "fast" guided filter): the class maps come from an 8x8 or 16x16 patch grid, so nothing is lost,
 * and the cost is a sixteenth. 2 measured the same as 4 within 0.005 mIoU; 8 lost up to 0.03.
 */
export const REFINE_SCALE = 4;

/** Refinement from a radius (0 = off: plain bilinear maps, DESIGN.md's baseline) and an eps. */
export function refineFrom(radius: number, eps: number, what = 'refine'): RefineOptions | null {
  if (!Number.isInteger(radius) || radius < 0) throw new BadOptionError(`${what} radius`, 'a whole number of pixels, 0 for off', radius);
  if (!Number.isFinite(eps) || eps <= 0) throw new BadOptionError(`${what} eps`, 'a number above 0 (default 1e-5)', eps);
  return radius === 0 ? null : { radius, eps };
}

/**
 * Classes scored per pixel in the filter's last stage (segmentation-graph.ts labelsFromCoefficients):
 * those that come closest to winning on the coarse cells around it. 3 scored within 0.002 mIoU of
 * scoring every class on the quality test's scenes (hard and easy, k-means and learned heads);
 * 2 lost 0.015 on the hard ones and failed the half-headroom bar.
 */
export const REFINE_CANDIDATES = 3;
