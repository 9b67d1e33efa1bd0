/**
 * Per-channel mean and standard deviation of the built-in backbone's raw features (in the order of
 * BUILTIN_FEATURE_NAMES), measured by scripts/calibrate-builtin.mjs over generated scenes (easy and
 * hard, 3 seeds, 2 frames each) and real ROV footage (MBARI Ventana dive 4361, 3 clips, 3 frames
 * each), so that no channel dominates cosine similarity by its scale. Re-run the script after any
 * change to the features and paste its output here.
 */
export const BUILTIN_FEATURE_MEAN = Float32Array.from([-0.17579, 0.038126, 0.22783, -1.3307, 0.25413]);
export const BUILTIN_FEATURE_STD = Float32Array.from([0.34072, 0.38786, 0.28204, 1.1801, 0.30648]);
