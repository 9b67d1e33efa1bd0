import { describe, expect, it } from 'vitest';
import { partitionDispersion } from '../src/learning/partition-dispersion.js';

describe('partitionDispersion', () => {
  const feats = Float32Array.from([1, 0, 2, 0, 0, 1, 0, 3]); // two rows along x, two along y

  it('is 0 for a partition whose classes point one way each, and grows when classes mix', () => {
    expect(partitionDispersion(feats, 4, 2, Int32Array.from([0, 0, 1, 1]), 2)).toBeCloseTo(0, 12);
    // One class holding all four unit rows: |(2, 2)| / 4 = 1/√2 mean cosine.
    expect(partitionDispersion(feats, 4, 2, Int32Array.from([0, 0, 0, 0]), 2)).toBeCloseTo(1 - Math.SQRT1_2, 12);
    // Mixed classes are worse than either.
    const mixed = partitionDispersion(feats, 4, 2, Int32Array.from([0, 1, 0, 1]), 2);
    expect(mixed).toBeCloseTo(1 - Math.SQRT1_2, 12);
    // Scale does not matter (cosine geometry).
    expect(
      partitionDispersion(
        feats.map((v) => v * 7),
        4,
        2,
        Int32Array.from([0, 1, 0, 1]),
        2,
      ),
    ).toBeCloseTo(mixed, 12);
  });

  it('names a label outside [0, K)', () => {
    expect(() => partitionDispersion(feats, 4, 2, Int32Array.from([0, 2, 0, 1]), 2)).toThrow(/labels\[1\]/);
  });
});
