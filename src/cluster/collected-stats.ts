import type { FrameStats } from '../types.js';

/** A result as the collector hands it on: a frame's stats, who segmented it, and its mask when asked for. */
export interface CollectedStats {
  readonly stats: FrameStats;
  /** Header `worker` of the result message: which worker segmented the frame. */
  readonly worker: string;
  /** The label PNG, when the ingest asked for masks. */
  readonly mask?: Uint8Array;
}
