/**
 * Per-channel mean and standard deviation of the built-in backbone's raw features (in the order of
 * BUILTIN_FEATURE_NAMES), measured by scripts/calibrate-builtin.mjs over generated scenes (easy and
 * hard, 3 seeds, 2 frames each) and real ROV footage (MBARI Ventana dive 4361, 3 clips, 3 frames
 * each), so that no channel dominates cosine similarity by its scale. Re-run the script after any
 * change to the features and paste its output here.
 */
export const BUILTIN_FEATURE_MEAN = Float32Array.from([-0.15761, 0.030269, 0.19516, -1.5124, 0.21432]);
export const BUILTIN_FEATURE_STD = Float32Array.from([0.30713, 0.36933, 0.24586, 1.1923, 0.26901]);
