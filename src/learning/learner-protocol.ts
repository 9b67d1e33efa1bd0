import type { OnlineLearnerOptions, RoundReport } from './online-learner.js';
import type { HeadState } from './head-state.js';

/** Messages from the pipeline (main thread) to the learner worker. */
export type LearnerRequest =
  | { readonly type: 'init'; readonly options: OnlineLearnerOptions }
  | { readonly type: 'observe'; readonly tokens: Float32Array; readonly n: number }
  | {
      readonly type: 'round';
      readonly id: number;
      readonly framesSeen: number;
      readonly steps?: number;
      /** Number the classes by share afresh instead of aligning them (OnlineLearner.runRound). */
      readonly renumber?: boolean;
      /** Most of one core the round may keep busy on average (duty-cycle.ts); 1 or omitted: no limit. */
      readonly cpuShare?: number;
      /** With `cpuShare`: the shared cell the pipeline sets to let the round run flat out (duty-cycle.ts `hurry`). */
      readonly hurry?: Int32Array;
      /** With `cpuShare`: take idle cores beyond it (duty-cycle.ts `adaptiveShare`). */
      readonly adaptive?: boolean;
    }
  | { readonly type: 'rename'; readonly classId: number; readonly name: string }
  | { readonly type: 'pause' }
  | { readonly type: 'resume' };

/** Replies from the worker. */
export type LearnerReply =
  | { readonly type: 'ready'; readonly state: HeadState }
  | { readonly type: 'round'; readonly id: number; readonly state: HeadState; readonly report: RoundReport | undefined }
  | { readonly type: 'error'; readonly id?: number; readonly message: string; readonly code?: string };
