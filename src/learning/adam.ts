/**
 * Adam (Kingma & Ba) over a fixed list of Float32Array parameters, with bias correction, as in
 * torch.optim.Adam without weight decay. Moments are float32 arrays shaped like the parameters,
 * so the optimiser can be kept across training rounds while the parameters themselves are new
 * clones each round (only the shapes must stay the same).
 */
import { BadOptionError } from '../errors.js';

export interface AdamOptions {
  /** Learning rate; default 5e-4 (STEGO's `lr`). */
  readonly lr?: number;
  /** Default 0.9. */
  readonly beta1?: number;
  /** Default 0.999. */
  readonly beta2?: number;
  /** Default 1e-8. */
  readonly eps?: number;
  /**
   * Learning-rate decay: step t (counted from `decayFrom`) runs at lr · (T / (T + t))², so the
   * whole run moves the weights about as far as T steps at the full rate would, however long it
   * goes on. 0 (the default here) keeps the rate constant, as torch.optim.Adam does.
   */
  readonly decaySteps?: number;
  /** Steps already taken before this optimiser (a resumed head): where the decay starts. Default 0. */
  readonly decayFrom?: number;
}

export const DEFAULT_LR = 5e-4;

export class Adam {
  readonly lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly decaySteps: number;
  readonly decayFrom: number;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private t = 0;

  /** @param sizes length of each parameter tensor, in the order `step` receives them. */
  constructor(sizes: readonly number[], opts: AdamOptions = {}) {
    this.lr = opts.lr ?? DEFAULT_LR;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    if (!(this.lr > 0) || !Number.isFinite(this.lr)) throw new BadOptionError('lr', 'a positive number', opts.lr);
    for (const [name, b] of [
      ['beta1', this.beta1],
      ['beta2', this.beta2],
    ] as const) {
      if (!(b >= 0 && b < 1)) throw new BadOptionError(name, 'a number in [0, 1)', b);
    }
    if (!(this.eps > 0)) throw new BadOptionError('eps', 'a positive number', opts.eps);
    this.decaySteps = opts.decaySteps ?? 0;
    this.decayFrom = opts.decayFrom ?? 0;
    if (!(this.decaySteps >= 0) || !Number.isFinite(this.decaySteps)) {
      throw new BadOptionError('lrDecaySteps', 'a non-negative number', opts.decaySteps);
    }
    if (!Number.isInteger(this.decayFrom) || this.decayFrom < 0) {
      throw new BadOptionError('decayFrom', 'a non-negative integer', opts.decayFrom);
    }
    this.m = sizes.map((s) => new Float32Array(s));
    this.v = sizes.map((s) => new Float32Array(s));
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.t;
  }

  /** Steps counted by the decay: `decayFrom` plus the steps taken. */
  get totalSteps(): number {
    return this.decayFrom + this.t;
  }

  /** The learning rate the next step runs at. */
  get currentLr(): number {
    const T = this.decaySteps;
    if (T === 0) return this.lr;
    const r = T / (T + this.totalSteps);
    return this.lr * r * r;
  }

  /** One update of `params` in place from `grads` (same order and sizes as the constructor's). */
  step(params: readonly Float32Array[], grads: readonly Float32Array[]): void {
    if (params.length !== this.m.length || grads.length !== this.m.length) {
      throw new BadOptionError('Adam.step params', `${this.m.length} tensors`, `${params.length} params, ${grads.length} grads`);
    }
    const lr = this.currentLr;
    this.t++;
    const { beta1: b1, beta2: b2, eps } = this;
    const bc1 = 1 - b1 ** this.t;
    const bc2 = 1 - b2 ** this.t;
    const stepSize = lr / bc1;
    const sqrtBc2 = Math.sqrt(bc2);
    for (let p = 0; p < params.length; p++) {
      const w = params[p]!;
      const g = grads[p]!;
      const m = this.m[p]!;
      const v = this.v[p]!;
      if (w.length !== m.length || g.length !== m.length) {
        throw new BadOptionError(`Adam.step tensor ${p}`, `length ${m.length}`, `params ${w.length}, grads ${g.length}`);
      }
      for (let i = 0; i < w.length; i++) {
        const gi = g[i]!;
        const mi = b1 * m[i]! + (1 - b1) * gi;
        const vi = b2 * v[i]! + (1 - b2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        // torch: p -= lr/bc1 · m / (sqrt(v)/sqrt(bc2) + eps)
        w[i]! -= (stepSize * mi) / (Math.sqrt(vi) / sqrtBc2 + eps);
      }
    }
  }
}
