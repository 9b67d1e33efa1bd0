/**
 * What the segmenter needs to turn features into classes, as one immutable, versioned record:
 * the head weights (or null before the first training round: the "raw probe" clusters the
 * backbone features directly), the unit centroids, and the class names and colours. Every
 * output carries `version`.
 */
import type { ClassInfo } from '../types.js';
import type { HeadWeights } from './stego-head.js';

export type Rgb = readonly [number, number, number];

export interface HeadState {
  /** Bumped by every training round (and by the raw probe fit); 0 = nothing fitted yet. */
  readonly version: number;
  /** The backbone the head was trained on: its features are what the head consumes. */
  readonly backbone: { readonly name: string; readonly dim: number };
  /** Code dimension D of the head (kept also while `weights` is null). */
  readonly codeDim: number;
  /** null = raw-feature probe: the centroids live in feature space (dim C). */
  readonly weights: HeadWeights | null;
  /** [k × centroidDim(state)], unit rows. */
  readonly centroids: Float32Array;
  /** Number of clusters (classes). */
  readonly k: number;
  readonly names: readonly string[];
  readonly colors: readonly Rgb[];
  /** ms since the epoch. */
  readonly createdAt: number;
  /**
   * Adam steps of training behind this head, rounds whose head was rejected included: the clock
   * of the learning-rate decay, so a resumed run goes on at the rate it stopped at. Absent = 0.
   */
  readonly trainedSteps?: number;
}

/** Dimension of the space the centroids live in: D with a head, C for the raw probe. */
export function centroidDim(state: Pick<HeadState, 'weights' | 'backbone'>): number {
  return state.weights ? state.weights.codeDim : state.backbone.dim;
}

/**
 * A palette that reads on video over blue-green water: Kelly's colours of maximum contrast
 * (minus white, black and greys) plus a few saturated extras; ids beyond it get golden-angle hues.
 */
export const CLASS_PALETTE: readonly Rgb[] = Object.freeze([
  [230, 25, 75],
  [255, 225, 25],
  [60, 180, 75],
  [0, 130, 200],
  [245, 130, 48],
  [145, 30, 180],
  [70, 240, 240],
  [240, 50, 230],
  [210, 245, 60],
  [250, 190, 212],
  [0, 128, 128],
  [220, 190, 255],
  [170, 110, 40],
  [255, 250, 200],
  [128, 0, 0],
  [170, 255, 195],
  [128, 128, 0],
  [255, 215, 180],
  [0, 0, 128],
  [255, 99, 71],
  [0, 255, 127],
  [255, 0, 255],
] as const);

function hsvToRgb(h: number, s: number, v: number): Rgb {
  const f = (n: number): number => {
    const k = (n + h * 6) % 6;
    return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

/** The colour of class `id`: fixed per id, so a class keeps its colour across head versions. */
export function classColor(id: number): Rgb {
  const p = CLASS_PALETTE[id];
  if (p) return p;
  const h = (id * 0.618033988749895) % 1;
  return hsvToRgb(h, 0.75, 0.95);
}

export function defaultClassNames(k: number): string[] {
  return Array.from({ length: k }, (_, i) => `class ${i}`);
}

export function defaultClassColors(k: number): Rgb[] {
  return Array.from({ length: k }, (_, i) => classColor(i));
}

/** The legend of a state, in the shape outputs carry. */
export function classInfos(state: HeadState): ClassInfo[] {
  return state.names.map((name, id) => ({ id, name, color: state.colors[id] ?? classColor(id) }));
}
