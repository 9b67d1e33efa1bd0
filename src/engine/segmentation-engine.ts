import type { Logger } from 'pino';
import type { ClassInfo, Embedding, Frame, Segmentation, StagedCall } from '../types.js';
import type { InferenceClient } from '../backbone/inference-client.js';
import type { OnlineLearnerOptions, RoundReport } from '../learning/online-learner.js';
import { LearnerClient } from '../learning/learner-client.js';
import { classInfos, type HeadState } from '../learning/head-state.js';
import { saveCheckpoint } from '../learning/checkpoint.js';
import { mkdir } from 'node:fs/promises';
import { OutputUnwritableError } from '../errors.js';
import { assertUniqueName } from '../sinks/control.js';
import { dirname } from 'node:path';
import { EmbeddingCache } from './embedding-cache.js';

export interface EngineOptions {
  /** Backbone and segmentation sessions (in their worker thread). */
  readonly inference: InferenceClient;
  readonly learner: Omit<OnlineLearnerOptions, 'dim' | 'backboneName'>;
  /** Frames the learner sees before its first fit (the raw probe); default 1 batch. */
  readonly warmupFrames?: number;
  /** Adam steps of the round that ends a learning pass (default: the learner's train.steps). */
  readonly learnPassSteps?: number;
  /**
   * Run every round to completion at the frame count it falls due, before the next batch, instead
   * of in the background: which frames each head segments then depends on frame counts only, not
   * on how fast the round ran, so a seed gives the same output on every run (process). Default false.
   */
  readonly syncRounds?: boolean;
  /** Checkpoint file written after each round and on close. */
  readonly checkpoint?: string;
  /** Adds LOST object boxes (needs the backbone's keys). */
  readonly objects?: boolean;
  readonly logger?: Logger;
  /**
   * Keep the learning pass's backbone outputs, up to this many bytes, for the segmenting pass
   * that decodes the same frames next (process): those frames skip the backbone. Default: off.
   */
  readonly reuseLearnedBytes?: number;
  /** Called when a new head version is swapped in. */
  readonly onHead?: (state: HeadState, classes: readonly ClassInfo[]) => void;
  /** Called after each training round that ran (not after a failed one), with its report. */
  readonly onRound?: (report: RoundReport) => void;
}

/**
 * Backbone + online-learned head + cluster probe for batches of frames from any streams. One
 * engine serves every stream of a pipeline, so one backbone session runs all batches. A new head
 * is swapped in between batches: every segmentation of a batch carries the same head version.
 */
export class SegmentationEngine {
  private framesSeen = 0;
  private classes: readonly ClassInfo[];
  private checkpointing: Promise<void> = Promise.resolve();
  /** The head every batch uses: replaced only between batches, when a round has finished. */
  private head: HeadState;
  private nextHead: HeadState | undefined;
  private uniformWarning: string | undefined;
  private reportedRound: RoundReport | undefined;
  private readonly learned: EmbeddingCache | undefined;
  /** Settles when the last staged batch has been segmented (and has fed the learner). */
  private segmented: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly options: EngineOptions,
    readonly learner: LearnerClient,
  ) {
    this.learned = options.reuseLearnedBytes ? new EmbeddingCache(options.reuseLearnedBytes) : undefined;
    this.head = learner.state;
    this.classes = classInfos(this.head);
  }

  static async create(options: EngineOptions): Promise<SegmentationEngine> {
    const { info } = options.inference;
    // The checkpoint's folder is made now, so a path that cannot hold it fails before any work
    // rather than at the first round (or at the end of a long run).
    if (options.checkpoint) {
      const path = options.checkpoint;
      await mkdir(dirname(path), { recursive: true }).catch((err: unknown) => {
        throw new OutputUnwritableError(path, `cannot create its folder (${(err as NodeJS.ErrnoException).code ?? String(err)})`, err);
      });
    }
    const learner = await LearnerClient.start({ ...options.learner, dim: info.dim, backboneName: info.name });
    return new SegmentationEngine(options, learner);
  }

  get headState(): HeadState {
    return this.head;
  }

  get classInfo(): readonly ClassInfo[] {
    return this.classes;
  }

  /**
   * Set while the last round found the frames' features barely varying (k 'auto': one class, as
   * there is nothing to segment); for summaries. Logged as a warning when it first appears.
   */
  get warning(): string | undefined {
    return this.uniformWarning;
  }

  /** Embeds frames and feeds the learner without segmenting (a learning pass). */
  async learn(frames: readonly Frame[]): Promise<void> {
    const embeddings = await this.options.inference.embed(frames);
    this.learned?.put(embeddings);
    this.observe(embeddings);
    await this.maybeTrain();
  }

  /**
   * Runs the backbone on frames the segmenting pass will take next and keeps the outputs (while
   * the learning pass's closing round trains, the backbone would otherwise idle). Neither the
   * learner nor the head sees them now: the segmenting pass does, as if it had run the backbone.
   * False when nothing is kept (no cache, or it is full).
   */
  async prefetch(frames: readonly Frame[]): Promise<boolean> {
    if (!this.learned || frames.length === 0) return false;
    const embeddings = await this.options.inference.embed(frames);
    return this.learned.put(embeddings);
  }

  /** Frames segmented from the learning pass's backbone outputs so far (no second backbone run). */
  get reusedFrames(): number {
    return this.learned?.hits ?? 0;
  }

  /** Drops the learning pass's kept backbone outputs (the pass that could use them is over). */
  dropLearned(): void {
    this.learned?.clear();
  }

  /**
   * Segments one batch (frames of one working size) with the current head; the batch's features
   * then feed the learner, and a due round starts in the background. Before the first fit (no
   * centroids yet) the batch is embedded, the probe fitted on it, and then segmented.
   */
  process(frames: readonly Frame[]): Promise<Segmentation[]> {
    return this.stage(frames).results;
  }

  /**
   * `process` in two stages: the batch's backbone run starts at once (`taken` settles when it is
   * done), its segmentation waits until the batch before has been segmented and has fed the
   * learner. So the backbone of one batch overlaps the segmentation of the one before, while
   * which head segments which batch stays what it would be one batch at a time. Call in batch order.
   */
  stage(frames: readonly Frame[]): StagedCall<Segmentation> {
    if (frames.length === 0) {
      const none = Promise.resolve([]);
      return { taken: none, results: none };
    }
    const kept = this.learned?.take(frames);
    const embedded = kept ? Promise.resolve(kept) : this.options.inference.embed(frames);
    // Handled here, reported through `results` (which awaits it).
    embedded.catch(() => undefined);
    const before = this.segmented;
    const results = (async (): Promise<Segmentation[]> => {
      await before;
      return this.segmentEmbedded(frames, await embedded);
    })();
    this.segmented = results.catch(() => undefined);
    return { taken: embedded, results };
  }

  private async segmentEmbedded(frames: readonly Frame[], embeddings: Embedding[]): Promise<Segmentation[]> {
    this.swapHead();
    if (this.head.version === 0) {
      this.observe(embeddings);
      await this.maybeTrain();
      this.swapHead();
      if (this.head.version === 0) throw new Error('no head: the learner could not fit centroids on the first batch');
      return this.label(frames, embeddings, false);
    }
    return this.label(frames, embeddings, true);
  }

  private async label(frames: readonly Frame[], embeddings: Embedding[], learn: boolean): Promise<Segmentation[]> {
    const head = this.head;
    const classes = this.classes;
    const labels = await this.options.inference.segment(frames, head, embeddings);
    if (learn) {
      this.observe(embeddings);
      await this.maybeTrain();
    }
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
  async finishLearningPass(): Promise<void> {
    if (this.learner.isFrozen || this.learner.paused || this.framesSeen === 0) return;
    // Nothing has been segmented yet: the round numbers its classes by share afresh (canonical ids
    // for the head that output starts with), not by the probe's ids.
    if (!this.learner.ready) await this.round(true);
    await this.round(true, this.options.learnPassSteps, true);
    this.swapHead();
  }

  /** Renames a class; returns the new legend. The checkpoint (if any) is rewritten with the name, atomically. */
  rename(id: number, name: string): readonly ClassInfo[] {
    assertUniqueName(this.classes, id, name);
    this.learner.rename(id, name);
    this.head = { ...this.head, names: this.learner.state.names };
    this.classes = classInfos(this.head);
    this.options.onHead?.(this.head, this.classes);
    if (this.options.checkpoint) {
      void this.snapshot().catch((err: unknown) => this.options.logger?.error({ err }, 'checkpoint after a rename failed'));
    }
    return this.classes;
  }

  /** Writes the current head to the checkpoint file (atomic), if one is configured. */
  async snapshot(path = this.options.checkpoint): Promise<{ path: string; version: number } | undefined> {
    if (!path || this.head.version === 0) return undefined;
    const state = this.head;
    this.checkpointing = this.checkpointing
      .catch(() => undefined)
      .then(async () => {
        await mkdir(dirname(path), { recursive: true });
        await saveCheckpoint(path, state);
      });
    await this.checkpointing;
    return { path, version: state.version };
  }

  private observe(embeddings: readonly Embedding[]): void {
    if (this.learner.isFrozen) return;
    for (const e of embeddings) {
      this.learner.observe(e.patchTokens, e.gridH * e.gridW, e.dim);
      this.framesSeen++;
    }
  }

  /**
   * Starts a round when one is due. The very first fit (no head yet) is awaited, since nothing
   * can be segmented without centroids; later rounds run in the worker while batches go on
   * (or, with `syncRounds`, are awaited too).
   */
  private async maybeTrain(): Promise<void> {
    if (this.learner.isFrozen || this.learner.paused) return;
    if (!this.learner.ready) {
      if (this.framesSeen >= (this.options.warmupFrames ?? 1)) await this.round(true);
      return;
    }
    if (!this.learner.shouldTrain(this.framesSeen)) return;
    if (this.options.syncRounds) await this.round(true);
    else void this.round(false);
  }

  private async round(wait: boolean, steps?: number, renumber = false): Promise<void> {
    const before = this.learner.state.version;
    // A round nobody waits for shares the machine with inference: it keeps to its CPU share.
    const run = this.learner.runRound(this.framesSeen, steps, !wait, renumber).then(
      (state) => {
        const r = this.learner.lastRound;
        this.noteClassCount(r);
        // Two callers can join one round in the worker: report it once.
        if (r && r !== this.reportedRound) {
          this.reportedRound = r;
          this.options.onRound?.(r);
        }
        if (state.version === before) {
          if (r?.kind === 'rejected') {
            this.options.logger?.info(
              { headVersion: state.version, kind: r.kind, ms: Math.round(r.ms), dispersionRatio: r.dispersionRatio, reason: r.reason },
              'trained head turned away; the serving head stays',
            );
          }
          return;
        }
        this.nextHead = state;
        this.options.logger?.info(
          {
            headVersion: state.version,
            kind: r?.kind,
            ms: r ? Math.round(r.ms) : undefined,
            idleMs: r?.idleMs === undefined ? undefined : Math.round(r.idleMs),
            cpuShare: r?.cpuShare === undefined ? undefined : Number(r.cpuShare.toFixed(2)),
            meanCosine: r?.meanCosine,
            alignScore: r?.alignScore,
            dispersionRatio: r?.dispersionRatio,
            classes: state.k,
            featureDispersion: r?.classCount?.dispersion,
          },
          'head trained',
        );
      },
      (err: unknown) => this.options.logger?.error({ err }, 'training round failed; keeping the current head'),
    );
    if (wait) {
      await run;
      this.swapHead();
    }
  }

  private noteClassCount(r: RoundReport | undefined): void {
    const count = r?.classCount;
    if (!count) return;
    if (!count.uniform) {
      this.uniformWarning = undefined;
      return;
    }
    if (this.uniformWarning) return;
    const d = count.dispersion.toExponential(1);
    this.uniformWarning =
      count.k === 1
        ? `the frames barely vary (feature dispersion ${d}): one class, nothing to segment (empty mid-water or a flat picture?); give -k a number to force classes`
        : `the frames barely vary (feature dispersion ${d}): the ${count.k} classes split noise, not stuff (empty mid-water or a flat picture?); -k auto gives one class here`;
    this.options.logger?.warn({ dispersion: count.dispersion, classes: count.k }, this.uniformWarning);
  }

  /** Swaps a newly trained head in (between batches), then checkpoints it. */
  private swapHead(): void {
    const next = this.nextHead;
    if (!next) return;
    this.nextHead = undefined;
    this.head = { ...next, names: this.learner.state.names };
    this.classes = classInfos(this.head);
    this.options.onHead?.(this.head, this.classes);
    if (this.options.checkpoint) {
      void this.snapshot().catch((err: unknown) => this.options.logger?.error({ err }, 'checkpoint failed'));
    }
  }

  async close(): Promise<void> {
    await this.learner.close();
    this.swapHead();
    await this.checkpointing.catch(() => undefined);
    if (this.options.checkpoint && !this.learner.isFrozen) await this.snapshot();
  }
}
