/**
 * Fixed filter kernels of the built-in backbone. Quadrature Gabor pairs give oriented texture
 * energy at two scales, differences of Gaussians give blob energy, a 3x3 Laplacian gives fine
 * grain. All kernels are zero-mean, so flat colour gives zero texture energy.
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

export function dogKernel(size: number, sigma1: number, sigma2: number): Kernel {
  const w = new Float64Array(size * size);
  const c = (size - 1) / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const r2 = (x - c) ** 2 + (y - c) ** 2;
      w[y * size + x] =
        Math.exp(-r2 / (2 * sigma1 * sigma1)) / (sigma1 * sigma1) - Math.exp(-r2 / (2 * sigma2 * sigma2)) / (sigma2 * sigma2);
    }
  }
  return { size, weights: zeroMeanUnitNorm(w) };
}

export function laplacianKernel(): Kernel {
  return { size: 3, weights: zeroMeanUnitNorm(Float64Array.from([0, 1, 0, 1, -4, 1, 0, 1, 0])) };
}

/**
 * The bank for one pyramid level, all 7x7 (the Laplacian padded) so one Conv runs it. The
 * backbone applies it at full and at half resolution, which gives the coarse scale at a quarter
 * of the cost of 11x11 kernels at full resolution.
 */
export function textureBank(): { size: number; kernels: Kernel[] } {
  const kernels: Kernel[] = [];
  for (const theta of [0, Math.PI / 4, Math.PI / 2, (3 * Math.PI) / 4]) {
    kernels.push(gaborKernel(7, 1.4, 3.5, theta, 0), gaborKernel(7, 1.4, 3.5, theta, 1));
  }
  kernels.push(dogKernel(7, 1, 2), padKernel(laplacianKernel(), 7));
  return { size: 7, kernels };
}

function padKernel(k: Kernel, size: number): Kernel {
  const w = new Float64Array(size * size);
  const off = (size - k.size) / 2;
  for (let y = 0; y < k.size; y++) for (let x = 0; x < k.size; x++) w[(y + off) * size + x + off] = k.weights[y * k.size + x] as number;
  return { size, weights: w };
}
