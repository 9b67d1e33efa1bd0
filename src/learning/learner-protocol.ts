import type { OnlineLearnerOptions, RoundReport } from './online-learner.js';
import type { HeadState } from './head-state.js';

/** Messages from the pipeline (main thread) to the learner worker. */
export type LearnerRequest =
  | { readonly type: 'init'; readonly options: OnlineLearnerOptions }
  | { readonly type: 'observe'; readonly tokens: Float32Array; readonly n: number }
  | { readonly type: 'round'; readonly id: number; readonly framesSeen: number; readonly steps?: number }
  | { readonly type: 'rename'; readonly classId: number; readonly name: string }
  | { readonly type: 'pause' }
  | { readonly type: 'resume' };

/** Replies from the worker. */
export type LearnerReply =
  | { readonly type: 'ready'; readonly state: HeadState }
  | { readonly type: 'round'; readonly id: number; readonly state: HeadState; readonly report: RoundReport | undefined }
  | { readonly type: 'error'; readonly id?: number; readonly message: string; readonly code?: string };
