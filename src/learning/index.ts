/** Public API of the online STEGO learning core: values, then types. */
export { Adam, DEFAULT_LR } from './adam.js';
export { alignByAssignments, alignCentroids } from './align-classes.js';
export { CHECKPOINT_FORMAT, CHECKPOINT_MAGIC, decodeCheckpoint, encodeCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
export { assignCodes, classifyFeatures, stateCodes } from './cluster-probe.js';
export {
  codePairLoss,
  correlationLoss,
  DEFAULT_PAIR_SHIFTS,
  DEFAULT_PAIR_WEIGHTS,
  featureCorrelation,
  pointwiseCentre,
  stegoLoss,
} from './correlation-loss.js';
export { DEFAULT_BANK_CAPACITY_FRAMES, DEFAULT_BANK_POINTS_PER_FRAME, FeatureBank, featureBankBytes } from './feature-bank.js';
export { CLASS_PALETTE, centroidDim, classColor, classInfos, defaultClassColors, defaultClassNames } from './head-state.js';
export { hungarianMatch } from './hungarian-match.js';
export { principalBasis } from './principal-basis.js';
export { DEFAULT_FIT_MAX_POINTS, OnlineLearner } from './online-learner.js';
export { Rng } from './rng.js';
export { DEFAULT_KMEANS_ITERS, sphericalKmeans } from './spherical-kmeans.js';
export {
  cloneHead,
  DEFAULT_CODE_DIM,
  HEAD_TENSORS,
  headBackward,
  headForward,
  headForwardCached,
  headShapes,
  headTensors,
  initHead,
  zeroHead,
} from './stego-head.js';
export { DEFAULT_BATCH_IMAGES, DEFAULT_KNN_K, DEFAULT_POINTS_PER_IMAGE, DEFAULT_TRAIN_STEPS, trainRound } from './train-round.js';

export type { AdamOptions } from './adam.js';
export type { Alignment, CentroidAlignment } from './align-classes.js';
export type { CheckpointExpectations } from './checkpoint.js';
export type { CodePairLoss, PairKinds, PairLossOptions, StegoBatch, StegoLossConfig, StegoLossResult } from './correlation-loss.js';
export type { BankMode, FeatureBankOptions } from './feature-bank.js';
export type { HeadState, Rgb } from './head-state.js';
export type { OnlineLearnerOptions, RoundReport } from './online-learner.js';
export type { SphericalKmeansOptions, SphericalKmeansResult } from './spherical-kmeans.js';
export type { HeadCache, HeadTensorName, HeadWeights } from './stego-head.js';
export type { TrainRoundOptions, TrainRoundStats } from './train-round.js';
