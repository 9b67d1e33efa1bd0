/**
 * Fixed filter kernels of the built-in backbone. Quadrature Gabor pairs (an even and an odd
 * kernel per orientation) give oriented texture energy that does not ripple with the phase of the
 * pattern; summed over orientations they measure how textured a region is. All kernels are
 * zero-mean, so flat colour gives zero texture energy.
 */

export interface Kernel {
  readonly size: number;
  readonly weights: Float64Array;
}

function zeroMeanUnitNorm(w: Float64Array): Float64Array {
  const mean = w.reduce((a, b) => a + b, 0) / w.length;
  let norm = 0;
  for (let i = 0; i < w.length; i++) {
    w[i] = (w[i] as number) - mean;
    norm += (w[i] as number) ** 2;
  }
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < w.length; i++) w[i] = (w[i] as number) / norm;
  return w;
}

export function gaborKernel(size: number, sigma: number, wavelength: number, theta: number, phase: 0 | 1): Kernel {
  const w = new Float64Array(size * size);
  const c = (size - 1) / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = x - c;
      const dy = y - c;
      const u = dx * Math.cos(theta) + dy * Math.sin(theta);
      const env = Math.exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
      const carrier = phase === 0 ? Math.cos((2 * Math.PI * u) / wavelength) : Math.sin((2 * Math.PI * u) / wavelength);
      w[y * size + x] = env * carrier;
    }
  }
  return { size, weights: zeroMeanUnitNorm(w) };
}

/**
 * The texture bank: quadrature Gabor pairs at four orientations, 3x3 (sigma 0.8 px, wavelength
 * 2.5 px). Small on purpose: the backbone measures texture per 4x4 quarter of a patch, and a wider
 * kernel lets an edge next to the quarter (a fish's outline, the horizon) light up a quarter of
 * smooth water as texture; with 5x5 kernels about twice as many patches along the horizon came
 * out "textured water", a class of their own under k-means. Coarser texture comes from applying
 * the same bank at half resolution.
 */
export function textureBank(): { size: number; kernels: Kernel[] } {
  const kernels: Kernel[] = [];
  for (const theta of [0, Math.PI / 4, Math.PI / 2, (3 * Math.PI) / 4]) {
    kernels.push(gaborKernel(3, 0.8, 2.5, theta, 0), gaborKernel(3, 0.8, 2.5, theta, 1));
  }
  return { size: 3, kernels };
}
