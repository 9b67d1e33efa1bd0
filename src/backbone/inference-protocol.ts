import type { BackboneInfo, BackboneOptions } from './backbone.js';
import type { HeadTensors } from './segmenter.js';
import type { RefineOptions } from './refine-options.js';

/** What the inference workers are started with: the backbone's options and the segmentation's. */
export interface InferenceOptions extends BackboneOptions {
  /** Guided-filter refinement of the class maps; omitted: DEFAULT_REFINE; null: off (plain bilinear). */
  readonly refine?: RefineOptions | null;
  /**
   * ONNX Runtime threads of the segmentation thread; default: `threads` when set, else half the
   * cores (its graph is many small operators, which gain little from more threads, and it runs
   * beside the backbone).
   */
  readonly segmentThreads?: number;
}

/**
 * The two inference threads: one runs the backbone, the other the head, probe and refinement,
 * so a batch's segmentation overlaps the next batch's backbone.
 */
export type InferenceRole = 'backbone' | 'segmentation';

export interface WireHead {
  readonly version: number;
  /** Omitted when the worker already holds this version. */
  readonly weights?: HeadTensors | null;
  readonly centroids?: Float32Array;
  readonly k: number;
}

/** Backbone outputs of a batch: in an `embedded` reply, and in a `segment` request. */
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
  | {
      readonly type: 'init';
      readonly role: InferenceRole;
      readonly spec: string;
      readonly options: InferenceOptions;
    }
  | {
      readonly type: 'embed';
      readonly id: number;
      readonly width: number;
      readonly height: number;
      /** The batch's RGB [B×height×width×3] in one buffer, moved (not cloned) and moved back in the reply. */
      readonly pixels: Uint8Array;
    }
  | {
      readonly type: 'segment';
      readonly id: number;
      /** Output size of the label maps (the frames' size). */
      readonly width: number;
      readonly height: number;
      /** The frames' RGB [B×height×width×3], only when the maps are refined (the guided filter needs the pixels). */
      readonly pixels?: Uint8Array;
      readonly head: WireHead;
      /** Only the patch tokens are needed (cls and keys stay with the caller). */
      readonly embedded: Pick<WireEmbedded, 'gridH' | 'gridW' | 'dim' | 'tokens'>;
    };

export type InferenceReply =
  | {
      readonly type: 'ready';
      /** The backbone thread's model; the segmentation thread has none. */
      readonly info?: BackboneInfo;
      /** Whether the segmentation thread refines its maps (and so needs the frames' pixels). */
      readonly refines?: boolean;
    }
  | (WireEmbedded & {
      readonly type: 'embedded';
      readonly id: number;
      /** The request's pixels, returned so that the segmentation thread can take them without a copy. */
      readonly pixels: Uint8Array;
    })
  | {
      readonly type: 'labels';
      readonly id: number;
      /** B label maps of height*width each. */
      readonly labels: Uint8Array;
    }
  | {
      readonly type: 'error';
      readonly id?: number;
      readonly message: string;
      readonly code?: string;
      readonly details?: Record<string, unknown>;
    };
