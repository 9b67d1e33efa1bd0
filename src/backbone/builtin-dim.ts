/** 2 x (3 colour means + 3 colour log-variances + 2 scales x 10 texture energies). Kept here to avoid an import cycle. */
export const BUILTIN_DIM_FOR_CALIBRATION = 52;
