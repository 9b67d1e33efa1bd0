import type { Logger } from 'pino';
import type { ClassInfo, Embedding, Frame, Segmentation } from '../types.js';
import type { Backbone } from '../backbone/backbone.js';
import { Segmenter } from '../operators/segmenter.js';
import { OnlineLearner, type OnlineLearnerOptions } from '../learning/online-learner.js';
import { classInfos, type HeadState } from '../learning/head-state.js';
import { saveCheckpoint } from '../learning/checkpoint.js';

export interface EngineOptions {
  readonly backbone: Backbone;
  readonly learner: Omit<OnlineLearnerOptions, 'dim' | 'backboneName'>;
  /** Frames the learner sees before its first fit (the raw probe); default 1 batch. */
  readonly warmupFrames?: number;
  /** Checkpoint file written after each round and on close. */
  readonly checkpoint?: string;
  /** Adds LOST object boxes (needs the backbone's keys). */
  readonly objects?: boolean;
  readonly logger?: Logger;
  /** Called when a new head version is swapped in. */
  readonly onHead?: (state: HeadState, classes: readonly ClassInfo[]) => void;
}

/**
 * Backbone + online-learned head + cluster probe for batches of frames from any streams. One
 * engine serves every stream of a pipeline, so one backbone session runs all batches. A new head
 * is swapped in between batches: every segmentation of a batch carries the same head version.
 */
export class SegmentationEngine {
  readonly learner: OnlineLearner;
  private framesSeen = 0;
  private classes: readonly ClassInfo[];
  private checkpointing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly options: EngineOptions,
    private readonly segmenter: Segmenter,
  ) {
    const { backbone } = options;
    this.learner = new OnlineLearner({ ...options.learner, dim: backbone.info.dim, backboneName: backbone.info.name });
    this.classes = classInfos(this.learner.state);
  }

  static async create(options: EngineOptions): Promise<SegmentationEngine> {
    return new SegmentationEngine(options, await Segmenter.create());
  }

  get head(): HeadState {
    return this.learner.state;
  }

  get classInfo(): readonly ClassInfo[] {
    return this.classes;
  }

  /** Embeds frames and feeds the learner without segmenting (a learning pass). */
  async learn(frames: readonly Frame[]): Promise<void> {
    const embeddings = await this.options.backbone.embed(frames);
    this.observe(embeddings);
    this.maybeTrain();
  }

  /** Segments one batch (frames of one working size); trains first when a round is due. */
  async process(frames: readonly Frame[]): Promise<Segmentation[]> {
    const embeddings = await this.options.backbone.embed(frames);
    this.observe(embeddings);
    this.maybeTrain();
    const head = this.learner.state;
    const first = frames[0];
    if (!first) return [];
    const labels = await this.segmenter.segment(embeddings, head, first.height, first.width);
    const classes = this.classes;
    return embeddings.map((e, i) => ({
      frame: e.frame,
      labels: labels[i] as Uint8Array,
      headVersion: head.version,
      classes,
      embedding: e,
    }));
  }

  /**
   * Ends a learning pass: fits the raw probe if the pass was shorter than the warm-up, then runs
   * one training round on everything the bank holds, so output starts with a learned head.
   */
  finishLearningPass(): void {
    if (this.learner.isFrozen || this.learner.paused || this.framesSeen === 0) return;
    if (!this.learner.ready) this.round();
    this.round();
  }

  /** Renames a class; returns the new legend. */
  rename(id: number, name: string): readonly ClassInfo[] {
    this.learner.rename(id, name);
    this.classes = classInfos(this.learner.state);
    this.options.onHead?.(this.learner.state, this.classes);
    return this.classes;
  }

  /** Writes the current head to the checkpoint file (atomic), if one is configured. */
  async snapshot(path = this.options.checkpoint): Promise<string | undefined> {
    if (!path || !this.learner.ready) return undefined;
    const state = this.learner.state;
    this.checkpointing = this.checkpointing.then(() => saveCheckpoint(path, state));
    await this.checkpointing;
    return path;
  }

  private observe(embeddings: readonly Embedding[]): void {
    if (this.learner.isFrozen) return;
    for (const e of embeddings) {
      this.learner.observe(e.patchTokens, e.gridH * e.gridW);
      this.framesSeen++;
    }
  }

  private maybeTrain(): void {
    if (this.learner.isFrozen || this.learner.paused) return;
    const warm = this.options.warmupFrames ?? 1;
    const due = this.learner.ready ? this.learner.shouldTrain(this.framesSeen) : this.framesSeen >= warm;
    if (!due) return;
    this.round();
  }

  private round(): void {
    const before = this.learner.state.version;
    const state = this.learner.runRound(this.framesSeen);
    if (state.version === before) return;
    this.classes = classInfos(state);
    const r = this.learner.lastRound;
    this.options.logger?.info(
      { headVersion: state.version, kind: r?.kind, ms: r ? Math.round(r.ms) : undefined, meanCosine: r?.meanCosine, alignScore: r?.alignScore },
      'head updated',
    );
    this.options.onHead?.(state, this.classes);
    if (this.options.checkpoint) {
      void this.snapshot().catch((err: unknown) => this.options.logger?.error({ err }, 'checkpoint failed'));
    }
  }

  async close(): Promise<void> {
    await this.checkpointing.catch(() => undefined);
    if (this.options.checkpoint && !this.learner.isFrozen) await this.snapshot();
    await this.segmenter.close();
  }
}
