import { BadOptionError } from '../errors.js';

/** Default working width in pixels: a multiple of 8, 14 and 16, so every DINO patch size fits. */
export const DEFAULT_WORKING_WIDTH = 448;

/**
 * The resolution frames are decoded at: `width` (default 448) and the input's aspect ratio, both
 * rounded to a multiple of the backbone's patch size so the patch grid covers the image exactly.
 */
export function workingSize(
  input: { width: number; height: number },
  patchSize: number,
  requested: { width?: number | undefined; height?: number | undefined } = {},
): { width: number; height: number } {
  const round = (v: number): number => Math.max(patchSize, Math.round(v / patchSize) * patchSize);
  for (const [name, v] of [
    ['width', requested.width],
    ['height', requested.height],
  ] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < patchSize || v % patchSize !== 0)) {
      throw new BadOptionError(`--${name}`, `a positive multiple of the patch size ${patchSize}`, v);
    }
  }
  if (requested.width !== undefined && requested.height !== undefined) {
    return { width: requested.width, height: requested.height };
  }
  const aspect = input.height / input.width;
  if (requested.height !== undefined) return { width: round(requested.height / aspect), height: requested.height };
  const width = requested.width ?? round(Math.min(DEFAULT_WORKING_WIDTH, input.width));
  return { width, height: round(width * aspect) };
}
