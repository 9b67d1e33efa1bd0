import { BUILTIN_DIM_FOR_CALIBRATION } from './builtin-dim.js';

/**
 * Per-channel mean and standard deviation of the built-in backbone's raw features. Placeholder
 * values (0 and 1) until calibrated by tools/calibrate-builtin.ts.
 */
export const BUILTIN_FEATURE_MEAN = new Float32Array(BUILTIN_DIM_FOR_CALIBRATION);
export const BUILTIN_FEATURE_STD = new Float32Array(BUILTIN_DIM_FOR_CALIBRATION).fill(1);
