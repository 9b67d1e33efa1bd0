/**
 * A bounded bank of frames for online learning (DESIGN.md "Online learning"): per kept frame, a
 * random subset of its patch features (with their patch indices) and one global descriptor (the
 * mean-pooled patch features, L2-normalised) for nearest-neighbour pairs.
 *
 * Memory is fixed at construction: every array is preallocated for `capacityFrames` frames, so
 * the bank never grows however long the stream runs. Which frames are kept:
 * - `reservoir`: a uniform sample of every frame seen so far (Vitter's algorithm R);
 * - `window`: the last `capacityFrames` frames (a ring).
 */
import { BadOptionError } from '../errors.js';
import { sampleWithoutReplacement, type Rng } from './rng.js';

export type BankMode = 'reservoir' | 'window';

export interface FeatureBankOptions {
  /** Frames kept at most. */
  readonly capacityFrames: number;
  /** Patch features sampled per frame (fewer when a frame has fewer patches). */
  readonly pointsPerFrame: number;
  /** Feature dimension C. */
  readonly dim: number;
  /** Default 'reservoir'. */
  readonly mode?: BankMode;
}

export const DEFAULT_BANK_CAPACITY_FRAMES = 256;
export const DEFAULT_BANK_POINTS_PER_FRAME = 256;

/** Bytes a bank of these options holds (features, descriptors, patch indices, counts). */
export function featureBankBytes(opts: Omit<FeatureBankOptions, 'mode'>): number {
  const { capacityFrames: F, pointsPerFrame: M, dim: C } = opts;
  return F * M * C * 4 + F * C * 4 + F * M * 4 + F * 4 + F * 8;
}

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new BadOptionError(name, 'positive integer', v);
  return v;
}

export class FeatureBank {
  readonly capacityFrames: number;
  readonly pointsPerFrame: number;
  readonly dim: number;
  readonly mode: BankMode;
  /** [capacity × pointsPerFrame × C] sampled patch features. */
  private readonly feats: Float32Array;
  /** [capacity × C] unit descriptors. */
  private readonly descs: Float32Array;
  /** [capacity × pointsPerFrame] patch index of each stored point in its frame (row-major grid). */
  private readonly patchIdx: Uint32Array;
  /** Points stored per slot. */
  private readonly counts: Uint32Array;
  /** Stream index (0-based order of `add`) of the frame in each slot. */
  private readonly frameNo: Float64Array;
  private scratch = new Uint32Array(0);
  private filled = 0;
  private seenFrames = 0;

  constructor(opts: FeatureBankOptions) {
    this.capacityFrames = positiveInt('bank.capacityFrames', opts.capacityFrames);
    this.pointsPerFrame = positiveInt('bank.pointsPerFrame', opts.pointsPerFrame);
    this.dim = positiveInt('bank.dim', opts.dim);
    const mode = opts.mode ?? 'reservoir';
    if (mode !== 'reservoir' && mode !== 'window') throw new BadOptionError('bank.mode', '"reservoir" or "window"', mode);
    this.mode = mode;
    const F = this.capacityFrames;
    const M = this.pointsPerFrame;
    this.feats = new Float32Array(F * M * this.dim);
    this.descs = new Float32Array(F * this.dim);
    this.patchIdx = new Uint32Array(F * M);
    this.counts = new Uint32Array(F);
    this.frameNo = new Float64Array(F);
  }

  /** Frames currently stored (<= capacityFrames). */
  get size(): number {
    return this.filled;
  }

  /** Frames offered to `add` so far. */
  get seen(): number {
    return this.seenFrames;
  }

  /** Bytes held by the bank's arrays; constant for the bank's life. */
  get bytes(): number {
    return (
      this.feats.byteLength +
      this.descs.byteLength +
      this.patchIdx.byteLength +
      this.counts.byteLength +
      this.frameNo.byteLength +
      this.scratch.byteLength
    );
  }

  /**
   * Offers one frame's patch tokens [n×C]. Returns the slot it was stored in, or -1 when the
   * reservoir passed it over. The tokens are copied; the caller may reuse its buffer.
   */
  add(patchTokens: Float32Array, n: number, C: number, rng: Rng): number {
    if (C !== this.dim) throw new BadOptionError('bank.add C', `${this.dim} (the bank's dim)`, C);
    positiveInt('bank.add n', n);
    if (patchTokens.length < n * C) {
      throw new BadOptionError('bank.add patchTokens', `a Float32Array of at least ${n}×${C} values`, `length ${patchTokens.length}`);
    }
    const t = this.seenFrames++;
    let slot: number;
    if (this.mode === 'window') {
      slot = t % this.capacityFrames;
    } else if (t < this.capacityFrames) {
      slot = t;
    } else {
      const j = Math.floor(rng.next() * (t + 1));
      if (j >= this.capacityFrames) return -1;
      slot = j;
    }
    this.filled = Math.min(this.filled + 1, this.capacityFrames);
    this.store(slot, t, patchTokens, n, rng);
    return slot;
  }

  private store(slot: number, t: number, tokens: Float32Array, n: number, rng: Rng): void {
    const C = this.dim;
    const M = this.pointsPerFrame;
    const m = Math.min(n, M);
    // Descriptor: mean of all n patches (float64 sums), then L2-normalised.
    const mean = new Float64Array(C);
    for (let i = 0; i < n; i++) {
      const o = i * C;
      for (let c = 0; c < C; c++) mean[c]! += tokens[o + c]!;
    }
    let nrm = 0;
    for (let c = 0; c < C; c++) nrm += mean[c]! ** 2;
    const inv = nrm > 0 ? 1 / Math.sqrt(nrm) : 0;
    const dOff = slot * C;
    for (let c = 0; c < C; c++) this.descs[dOff + c] = mean[c]! * inv;

    if (this.scratch.length < n) this.scratch = new Uint32Array(n);
    const idx = this.patchIdx.subarray(slot * M, slot * M + m);
    sampleWithoutReplacement(rng, n, m, idx, this.scratch);
    const base = slot * M * C;
    for (let p = 0; p < m; p++) {
      const src = idx[p]! * C;
      this.feats.set(tokens.subarray(src, src + C), base + p * C);
    }
    this.counts[slot] = m;
    this.frameNo[slot] = t;
  }

  private checkSlot(slot: number): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.filled) {
      throw new BadOptionError('bank slot', `integer in [0, ${this.filled})`, slot);
    }
  }

  /** Points stored for a slot. */
  pointCount(slot: number): number {
    this.checkSlot(slot);
    return this.counts[slot]!;
  }

  /** View [pointCount × C] of a slot's sampled features (valid until the slot is replaced). */
  points(slot: number): Float32Array {
    this.checkSlot(slot);
    const M = this.pointsPerFrame;
    const C = this.dim;
    return this.feats.subarray(slot * M * C, (slot * M + this.counts[slot]!) * C);
  }

  /** View of a slot's patch indices (row-major in the frame's patch grid: y = i / gridW). */
  positions(slot: number): Uint32Array {
    this.checkSlot(slot);
    const M = this.pointsPerFrame;
    return this.patchIdx.subarray(slot * M, slot * M + this.counts[slot]!);
  }

  /** View [C] of a slot's unit descriptor. */
  descriptor(slot: number): Float32Array {
    this.checkSlot(slot);
    return this.descs.subarray(slot * this.dim, (slot + 1) * this.dim);
  }

  /** 0-based stream position of the frame held in a slot. */
  frameIndex(slot: number): number {
    this.checkSlot(slot);
    return this.frameNo[slot]!;
  }

  /**
   * The k stored frames most similar to slot `frameIdx` by descriptor cosine, most similar
   * first, never the frame itself (fewer when the bank holds fewer). Ties go to the lower slot.
   */
  knn(frameIdx: number, k = 7): number[] {
    this.checkSlot(frameIdx);
    if (!Number.isInteger(k) || k < 0) throw new BadOptionError('knn k', 'non-negative integer', k);
    const C = this.dim;
    const q = this.descriptor(frameIdx);
    const best: Array<{ slot: number; sim: number }> = [];
    for (let s = 0; s < this.filled; s++) {
      if (s === frameIdx) continue;
      const o = s * C;
      let sim = 0;
      for (let c = 0; c < C; c++) sim += q[c]! * this.descs[o + c]!;
      if (best.length < k) {
        best.push({ slot: s, sim });
        best.sort((a, b) => b.sim - a.sim);
      } else if (k > 0 && sim > best[k - 1]!.sim) {
        best[k - 1] = { slot: s, sim };
        best.sort((a, b) => b.sim - a.sim);
      }
    }
    return best.map((b) => b.slot);
  }

  /** Total points stored over all slots. */
  get totalPoints(): number {
    let s = 0;
    for (let i = 0; i < this.filled; i++) s += this.counts[i]!;
    return s;
  }
}
