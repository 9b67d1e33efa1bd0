import { describe, expect, it } from 'vitest';
import { Adam } from '../src/learning/adam.js';
import {
  correlationLoss,
  DEFAULT_PAIR_SHIFTS,
  DEFAULT_PAIR_WEIGHTS,
  featureCorrelation,
  pointwiseCentre,
  stegoLoss,
  type StegoBatch,
} from '../src/learning/correlation-loss.js';
import { Rng } from '../src/learning/rng.js';
import {
  cloneHead,
  HEAD_TENSORS,
  headForward,
  headForwardCached,
  headTensors,
  initHead,
  zeroHead,
  type HeadWeights,
} from '../src/learning/stego-head.js';

function randomFeats(rng: Rng, rows: number, C: number, offset = 0.3): Float32Array {
  const f = new Float32Array(rows * C);
  // A shared positive offset, like DINO features, so the correlations are not all near zero.
  for (let i = 0; i < f.length; i++) f[i] = rng.gaussian() + offset;
  return f;
}

/** A head with every tensor non-trivial (biases too), so every gradient path is exercised. */
function testHead(C: number, D: number, seed: number): HeadWeights {
  const h = initHead(C, D, seed);
  const rng = new Rng(seed + 1);
  for (const t of headTensors(h)) for (let i = 0; i < t.length; i++) t[i]! += 0.3 * rng.gaussian();
  return h;
}

const FD_EPS = 1e-3;

/**
 * True when no ReLU input and no code correlation S lies within reach of a perturbation of
 * FD_EPS: the loss is then smooth around `head` and finite differences are a fair reference.
 * `pairs` lists the [rowsA, rowsB] point sets whose code correlations enter the loss.
 */
function smoothAt(head: HeadWeights, pairs: Array<[Float32Array, Float32Array]>, P: number): boolean {
  const C = head.inDim;
  const D = head.codeDim;
  for (const [a, b] of pairs) {
    let fmax = 1;
    for (const v of a) fmax = Math.max(fmax, Math.abs(v));
    for (const v of b) fmax = Math.max(fmax, Math.abs(v));
    const ca = headForwardCached(head, a, P);
    const cb = headForwardCached(head, b, P);
    for (const h of [ca.cache.hidden, cb.cache.hidden]) for (const v of h) if (Math.abs(v) < 3 * FD_EPS * fmax) return false;
    for (const s of featureCorrelation(ca.code, P, cb.code, P, D)) if (Math.abs(s) < 0.02) return false;
  }
  return C > 0;
}

/** The first test case (by seed) at which the loss is smooth; fails the test if none in 500. */
function smoothCase<T>(
  make: (seed: number) => T,
  pairsOf: (c: T) => { head: HeadWeights; pairs: Array<[Float32Array, Float32Array]>; P: number },
): T {
  for (let seed = 1; seed <= 500; seed++) {
    const c = make(seed);
    const { head, pairs, P } = pairsOf(c);
    if (smoothAt(head, pairs, P)) return c;
  }
  throw new Error('no smooth test case found');
}

/**
 * Central finite differences of `loss` w.r.t. every weight, compared with the analytic
 * gradient tensor by tensor: relative error of the whole tensor (L2) below `tol`.
 */
function checkGradient(head: HeadWeights, loss: (h: HeadWeights, g?: HeadWeights) => number, tol = 1e-3): void {
  const grads = zeroHead(head.inDim, head.codeDim);
  loss(head, grads);
  const eps = FD_EPS;
  for (const name of HEAD_TENSORS) {
    const w = head[name];
    const g = grads[name];
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < w.length; i++) {
      const orig = w[i]!;
      w[i] = orig + eps;
      const up = loss(head);
      w[i] = orig - eps;
      const down = loss(head);
      w[i] = orig;
      // The step actually taken in float32.
      const h = Math.fround(orig + eps) - Math.fround(orig - eps);
      const fd = (up - down) / h;
      diff += (fd - g[i]!) ** 2;
      norm += fd ** 2;
    }
    expect(norm, `${name}: finite-difference gradient is zero, the check would be vacuous`).toBeGreaterThan(1e-12);
    expect(Math.sqrt(diff / norm), `relative error of d loss / d ${name}`).toBeLessThan(tol);
  }
}

describe('pointwiseCentre', () => {
  it('subtracts each row mean and restores the group mean, as STEGO does on the batch', () => {
    const a = Float32Array.from([1, 2, 3, 4, 6, 8]);
    const b = Float32Array.from([0, 0, 0, 3, 3, 3]);
    // old mean over the group = (24 + 9) / 12 = 2.75
    pointwiseCentre([a, b], 2, 3);
    expect(Array.from(a)).toEqual([-1, 0, 1, -2, 0, 2].map((v) => v + 2.75));
    expect(Array.from(b)).toEqual([0, 0, 0, 0, 0, 0].map((v) => v + 2.75));
  });

  it('is the identity on rows that are already constant at the mean', () => {
    const a = new Float32Array(9).fill(0.5);
    pointwiseCentre([a], 3, 3);
    expect(Array.from(a)).toEqual(new Array(9).fill(0.5));
  });
});

describe('featureCorrelation', () => {
  it('is the cosine of every pair of rows', () => {
    const fa = Float32Array.from([1, 0, 3, 4]);
    const fb = Float32Array.from([2, 0, 0, -1, 1, 1]);
    const F = featureCorrelation(fa, 2, fb, 3, 2);
    const expected = [1, 0, Math.SQRT1_2, 0.6, -0.8, 7 / 5 / Math.SQRT2];
    F.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 6));
  });
});

describe('correlation loss gradient', () => {
  const C = 6;
  const D = 4;
  const P = 5;

  it('matches central finite differences for a pair of different images, every tensor', () => {
    const c = smoothCase(
      (seed) => {
        const rng = new Rng(seed);
        return { fa: randomFeats(rng, P, C), fb: randomFeats(rng, P, C), head: testHead(C, D, seed) };
      },
      (c) => ({ head: c.head, pairs: [[c.fa, c.fb]], P }),
    );
    // A small shift, so clamp(S, 0) is active on some pairs and both signs of (F - shift) occur.
    checkGradient(c.head, (h, g) => correlationLoss(h, c.fa, c.fb, P, { shift: 0.1, weight: 0.7 }, g));
  });

  it('matches finite differences for a self pair (both sides share the gradient)', () => {
    const c = smoothCase(
      (seed) => ({ fa: randomFeats(new Rng(seed), P, C), head: testHead(C, D, seed) }),
      (c) => ({ head: c.head, pairs: [[c.fa, c.fa]], P }),
    );
    checkGradient(c.head, (h, g) => correlationLoss(h, c.fa, c.fa, P, { shift: 0.18 }, g));
  });

  it('matches finite differences without pointwise centring', () => {
    const c = smoothCase(
      (seed) => {
        const rng = new Rng(seed);
        return { fa: randomFeats(rng, P, C), fb: randomFeats(rng, P, C), head: testHead(C, D, seed) };
      },
      (c) => ({ head: c.head, pairs: [[c.fa, c.fb]], P }),
    );
    checkGradient(c.head, (h, g) => correlationLoss(h, c.fa, c.fb, P, { shift: 0.3, pointwise: false }, g));
  });

  it('matches finite differences for the full minibatch objective (shared anchor codes, batch centring)', () => {
    const B = 2;
    const R = 2;
    const rows = (x: Float32Array, i: number): Float32Array => x.subarray(i * P * C, (i + 1) * P * C);
    const c = smoothCase(
      (seed) => {
        const rng = new Rng(seed);
        const batch: StegoBatch = {
          images: B,
          points: P,
          randomRounds: R,
          anchors: randomFeats(rng, B * P, C),
          knn: randomFeats(rng, B * P, C),
          random: randomFeats(rng, R * B * P, C),
        };
        return { batch, head: testHead(C, D, seed) };
      },
      ({ batch, head }) => {
        const pairs: Array<[Float32Array, Float32Array]> = [];
        for (let i = 0; i < B; i++) {
          const a = rows(batch.anchors, i);
          pairs.push([a, a], [a, rows(batch.knn, i)]);
          for (let r = 0; r < R; r++) pairs.push([a, rows(batch.random, r * B + i)]);
        }
        return { head, pairs, P };
      },
    );
    const cfg = { weights: DEFAULT_PAIR_WEIGHTS, shifts: DEFAULT_PAIR_SHIFTS, pointwise: true };
    checkGradient(c.head, (h, g) => stegoLoss(h, c.batch, cfg, g).loss);
  });

  it('the minibatch loss equals the weighted per-pair losses when each kind has one pair', () => {
    const rng = new Rng(15);
    const batch: StegoBatch = {
      images: 1,
      points: P,
      randomRounds: 1,
      anchors: randomFeats(rng, P, C),
      knn: randomFeats(rng, P, C),
      random: randomFeats(rng, P, C),
    };
    const w = DEFAULT_PAIR_WEIGHTS;
    const s = DEFAULT_PAIR_SHIFTS;
    const head = testHead(C, D, 7);
    const total = stegoLoss(head, batch, { weights: w, shifts: s, pointwise: true }).loss;
    const bySum =
      correlationLoss(head, batch.anchors, batch.anchors, P, { shift: s.self, weight: w.self }) +
      correlationLoss(head, batch.anchors, batch.knn, P, { shift: s.knn, weight: w.knn }) +
      correlationLoss(head, batch.anchors, batch.random, P, { shift: s.random, weight: w.random });
    expect(total).toBeCloseTo(bySum, 6);
  });
});

describe('Adam', () => {
  it('reduces the correlation loss on a fixed problem', () => {
    const rng = new Rng(21);
    const C = 16;
    const D = 8;
    const P = 30;
    const fa = randomFeats(rng, P, C);
    const fb = randomFeats(rng, P, C);
    const head = initHead(C, D, 1);
    const adam = new Adam(
      headTensors(head).map((t) => t.length),
      { lr: 1e-2 },
    );
    const grads = zeroHead(C, D);
    const loss = (): number => correlationLoss(head, fa, fb, P, { shift: 0.1 }, undefined);
    const before = loss();
    for (let s = 0; s < 100; s++) {
      for (const g of headTensors(grads)) g.fill(0);
      correlationLoss(head, fa, fb, P, { shift: 0.1 }, grads);
      adam.step(headTensors(head), headTensors(grads));
    }
    const after = loss();
    expect(adam.steps).toBe(100);
    // The loss is negative; it must become at least 25% more negative.
    expect(before).toBeLessThan(0);
    expect(after).toBeLessThan(before * 1.25);
  });

  it('takes a first step of exactly lr against the gradient sign (bias correction)', () => {
    const w = [Float32Array.from([1, -2, 3])];
    const g = [Float32Array.from([0.5, -4, 0])];
    new Adam([3], { lr: 0.1 }).step(w, g);
    expect(w[0]![0]).toBeCloseTo(0.9, 6);
    expect(w[0]![1]).toBeCloseTo(-1.9, 6);
    expect(w[0]![2]).toBe(3);
  });

  it('decays the rate as lr · (T / (T + t))², counting from decayFrom, and moves the weights accordingly', () => {
    const adam = new Adam([1], { lr: 0.1, decaySteps: 100 });
    expect(adam.currentLr).toBe(0.1);
    const w = [Float32Array.from([0])];
    const g = [Float32Array.from([1])];
    adam.step(w, g);
    // The first step runs at the full rate (t = 0), exactly lr with bias correction.
    expect(w[0]![0]).toBeCloseTo(-0.1, 6);
    for (let i = 1; i < 100; i++) adam.step(w, g);
    expect(adam.totalSteps).toBe(100);
    expect(adam.currentLr).toBeCloseTo(0.1 * 0.25, 12);
    // A constant gradient makes every Adam step lr_t: the sum of the decayed rates.
    let expected = 0;
    for (let t = 0; t < 100; t++) expected -= 0.1 * (100 / (100 + t)) ** 2;
    expect(w[0]![0]).toBeCloseTo(expected, 4);

    const resumed = new Adam([1], { lr: 0.1, decaySteps: 100, decayFrom: 300 });
    expect(resumed.currentLr).toBeCloseTo(0.1 / 16, 12);
    expect(new Adam([1], { lr: 0.1 }).currentLr).toBe(0.1);
    expect(() => new Adam([1], { decaySteps: -1 })).toThrow(/lrDecaySteps/);
  });
});

describe('head', () => {
  it('keeps the similarity structure of the features at initialisation', () => {
    const rng = new Rng(31);
    const C = 64;
    const n = 40;
    const f = randomFeats(rng, n, C, 0);
    const h = initHead(C, 32, 9);
    const codes = headForward(h, f, n);
    const Fc = featureCorrelation(f, n, f, n, C);
    const Sc = featureCorrelation(codes, n, codes, n, 32);
    let num = 0;
    let da = 0;
    let db = 0;
    for (let i = 0; i < n * n; i++) {
      num += Fc[i]! * Sc[i]!;
      da += Fc[i]! ** 2;
      db += Sc[i]! ** 2;
    }
    expect(num / Math.sqrt(da * db)).toBeGreaterThan(0.8);
  });

  it('is deterministic for a seed and clones deeply', () => {
    const a = initHead(10, 4, 5);
    const b = initHead(10, 4, 5);
    expect(Array.from(a.mlp1W)).toEqual(Array.from(b.mlp1W));
    const c = cloneHead(a);
    c.linW[0] = 42;
    expect(a.linW[0]).not.toBe(42);
  });
});
