import type { BackboneInfo, BackboneOptions } from './backbone.js';
import type { HeadTensors } from './segmenter.js';
import type { RefineOptions } from './refine-options.js';

/** What the inference worker is started with: the backbone's options and the segmentation's. */
export interface InferenceOptions extends BackboneOptions {
  /** Guided-filter refinement of the class maps; omitted: DEFAULT_REFINE; null: off (plain bilinear). */
  readonly refine?: RefineOptions | null;
}

export interface WireFrame {
  readonly width: number;
  readonly height: number;
  readonly rgb: Uint8Array;
}

export interface WireHead {
  readonly version: number;
  /** Omitted when the worker already holds this version. */
  readonly weights?: HeadTensors | null;
  readonly centroids?: Float32Array;
  readonly k: number;
}

/** Backbone outputs of a batch: in a reply, and in a request when computed before (the worker then skips the backbone). */
export interface WireEmbedded {
  readonly gridH: number;
  readonly gridW: number;
  readonly dim: number;
  /** [B×N×C], [B×C] and, when the model has them, [B×N×C]. */
  readonly tokens: Float32Array;
  readonly cls: Float32Array;
  readonly keys?: Float32Array;
}

export type InferenceRequest =
  | { readonly type: 'init'; readonly spec: string; readonly options: InferenceOptions }
  | {
      readonly type: 'infer';
      readonly id: number;
      readonly frames: readonly WireFrame[];
      readonly head?: WireHead;
      readonly embedded?: WireEmbedded;
    };

export type InferenceReply =
  | { readonly type: 'ready'; readonly info: BackboneInfo }
  | (WireEmbedded & {
      readonly type: 'result';
      readonly id: number;
      /** B label maps of height*width each, when a head was given. */
      readonly labels?: Uint8Array;
      /** Time inside ONNX Runtime, ms: backbone and segmentation. */
      readonly backboneMs: number;
      readonly segmentMs: number;
    })
  | {
      readonly type: 'error';
      readonly id?: number;
      readonly message: string;
      readonly code?: string;
      readonly details?: Record<string, unknown>;
    };
