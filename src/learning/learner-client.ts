import { Worker } from 'node:worker_threads';
import { workerUrl } from '../internal/worker-url.js';
import { availableParallelism } from 'node:os';
import { BadOptionError, StegoError, type ErrorCode } from '../errors.js';
import type { LearnerReply, LearnerRequest } from './learner-protocol.js';
import type { OnlineLearnerOptions, RoundReport } from './online-learner.js';
import type { HeadState } from './head-state.js';
import { DEFAULT_BANK_POINTS_PER_FRAME } from './feature-bank.js';
import { DEFAULT_LEARN_CPU_SHARE, hurry, hurryCell, threadShare } from './duty-cycle.js';
import { Rng } from './rng.js';

/**
 * The pipeline's handle on the online learner, which runs in a worker thread. Frames are
 * subsampled here (the bank keeps `pointsPerFrame` patches a frame anyway) so little crosses the
 * thread boundary; a round runs in the worker while inference goes on with the current head,
 * and its result is swapped in by the caller between batches. Names, pause and freeze are
 * mirrored here so the pipeline reads them without a round trip.
 */
export class LearnerClient {
  private readonly worker: Worker;
  private current: HeadState;
  private readonly pending = new Map<
    number,
    { resolve: (s: { state: HeadState; report: RoundReport | undefined }) => void; reject: (e: Error) => void }
  >();
  private nextId = 1;
  private framesAtLastRound = 0;
  private isPaused = false;
  private inFlight: Promise<HeadState> | undefined;
  /** The running background round's hurry cell (duty-cycle.ts). */
  private hurryFlag: Int32Array | undefined;
  /** Thinning of frames offered while a round runs (see `observe`). */
  private duringRound = { offered: 0, stride: 1, keptAtStride: 0 };
  /** Renames sent while the round in flight runs: the worker applies them after it, so do we. */
  private renamesDuringRound: [number, string][] = [];
  private sent = 0;
  private thinned = 0;
  private failure: Error | undefined;
  private closed = false;
  private report: RoundReport | undefined;
  private readonly pointsPerFrame: number;
  /** Picks the patches each frame sends: seeded, so the bank is the same on every run of a seed. */
  private readonly sampler: Rng;

  private constructor(
    worker: Worker,
    initial: HeadState,
    private readonly options: OnlineLearnerOptions,
  ) {
    this.worker = worker;
    this.current = initial;
    this.pointsPerFrame = options.bank?.pointsPerFrame ?? DEFAULT_BANK_POINTS_PER_FRAME;
    // Not the worker's stream (a separate generator, so thread timing cannot interleave them).
    this.sampler = new Rng((options.seed ^ SAMPLER_SEED_SALT) >>> 0);
    worker.on('message', (msg: LearnerReply) => this.onReply(msg));
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => {
      if (!this.closed) this.fail(new Error(`learner worker exited with code ${code}`));
    });
  }

  /** Starts the worker and builds the learner there; option errors are thrown here. */
  static async start(options: OnlineLearnerOptions): Promise<LearnerClient> {
    const worker = new Worker(workerUrl(import.meta.url, 'learner-worker.js', 'learning'));
    worker.unref();
    const initial = await new Promise<HeadState>((resolve, reject) => {
      const onMsg = (msg: LearnerReply): void => {
        worker.off('message', onMsg);
        if (msg.type === 'ready') resolve(msg.state);
        else if (msg.type === 'error') reject(rebuildError(msg));
      };
      worker.on('message', onMsg);
      worker.once('error', reject);
      post(worker, { type: 'init', options });
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return new LearnerClient(worker, initial, options);
  }

  get state(): HeadState {
    return this.current;
  }

  get ready(): boolean {
    return this.current.version > 0;
  }

  get paused(): boolean {
    return this.isPaused;
  }

  get isFrozen(): boolean {
    return this.options.freeze ?? false;
  }

  get training(): boolean {
    return this.inFlight !== undefined;
  }

  get lastRound(): RoundReport | undefined {
    return this.report;
  }

  /** Frames sent to the bank so far, and frames left out while rounds ran (see `observe`). */
  get observed(): { readonly sent: number; readonly thinned: number } {
    return { sent: this.sent, thinned: this.thinned };
  }

  /**
   * Sends a random subset of one frame's patch tokens [n×C] to the bank. While a round runs the
   * worker cannot take them (it is training, or paused by its CPU share), so they would queue up
   * in its message port: 0.4 MB a frame with a 384-dim DINO backbone, for a round that may last
   * half a minute. So frames offered during a round are thinned geometrically: every one of the
   * first `THIN_GROUP`, then every 2nd for the next `THIN_GROUP` kept, every 4th, ... (about
   * 16·log2(frames/16) of them, spread over the whole round); all of them again once it ends.
   */
  observe(tokens: Float32Array, n: number, dim: number): void {
    if (this.isFrozen || this.closed) return;
    if (this.inFlight) {
      const t = this.duringRound;
      const i = t.offered++;
      if (i % t.stride !== 0) {
        this.thinned++;
        return;
      }
      if (++t.keptAtStride === THIN_GROUP) {
        t.stride *= 2;
        t.keptAtStride = 0;
      }
    }
    this.sent++;
    const m = Math.min(n, this.pointsPerFrame);
    const out = new Float32Array(m * dim);
    // Partial Fisher-Yates over indices: m distinct patches, uniformly.
    const idx = new Uint32Array(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    for (let i = 0; i < m; i++) {
      const j = i + this.sampler.int(n - i);
      const t = idx[i] as number;
      idx[i] = idx[j] as number;
      idx[j] = t;
      const src = (idx[i] as number) * dim;
      out.set(tokens.subarray(src, src + dim), i * dim);
    }
    this.worker.postMessage({ type: 'observe', tokens: out, n: m } satisfies LearnerRequest, [out.buffer]);
  }

  /** Whether a round is due: every `train.everyFrames` frames, not paused, frozen or already running. */
  shouldTrain(framesSeen: number): boolean {
    if (this.isFrozen || this.isPaused || this.inFlight || this.closed) return false;
    return framesSeen - this.framesAtLastRound >= this.options.train.everyFrames;
  }

  /**
   * Starts a round in the worker (or joins the one running). The caller swaps the returned state
   * in when it resolves; `state` is updated at the same time. A `background` round (one the
   * caller does not wait for: inference goes on meanwhile) keeps to `train.cpuShare` of the
   * machine, or takes more of its core while the rest leaves cores idle (`train.adaptiveCpu`);
   * the others run flat out.
   */
  runRound(framesSeen: number, steps?: number, background = false, renumber = false): Promise<HeadState> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.inFlight) {
      // Joining a round means waiting for it: no point holding it back any more.
      if (!background) this.hurry();
      return this.inFlight;
    }
    this.framesAtLastRound = framesSeen;
    this.duringRound = { offered: 0, stride: 1, keptAtStride: 0 };
    this.renamesDuringRound = [];
    const id = this.nextId++;
    this.inFlight = new Promise<{ state: HeadState; report: RoundReport | undefined }>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const cpuShare = background ? threadShare(this.options.train.cpuShare ?? DEFAULT_LEARN_CPU_SHARE, availableParallelism()) : 1;
      this.hurryFlag = cpuShare < 1 ? hurryCell() : undefined;
      post(this.worker, {
        type: 'round',
        id,
        framesSeen,
        ...(steps !== undefined ? { steps } : {}),
        ...(renumber ? { renumber } : {}),
        ...(this.hurryFlag ? { cpuShare, hurry: this.hurryFlag, adaptive: this.options.train.adaptiveCpu ?? true } : {}),
      });
    })
      .then(({ state, report }) => {
        this.report = report;
        // The reply has the names the worker had when the round began, carried to the new ids
        // (k 'auto' may add or merge classes); renames sent since then are applied after it,
        // here as in the worker (one whose id a merge removed is dropped there too).
        const names = [...state.names];
        for (const [classId, name] of this.renamesDuringRound) if (classId < state.k) names[classId] = name;
        this.renamesDuringRound = [];
        this.current = { ...state, names };
        return this.current;
      })
      .finally(() => {
        this.inFlight = undefined;
        this.hurryFlag = undefined;
      });
    return this.inFlight;
  }

  /** Lets the background round in flight (if any) finish flat out: someone is waiting for it now. */
  hurry(): void {
    if (this.hurryFlag) hurry(this.hurryFlag);
  }

  rename(classId: number, name: string): void {
    if (!Number.isInteger(classId) || classId < 0 || classId >= this.current.k) {
      throw new BadOptionError('class id', `integer in [0, ${this.current.k})`, classId);
    }
    if (typeof name !== 'string' || name.trim() === '' || name.length > 64) {
      throw new BadOptionError('class name', 'a non-empty string of at most 64 characters', name);
    }
    const names = [...this.current.names];
    names[classId] = name;
    this.current = { ...this.current, names };
    if (this.inFlight) this.renamesDuringRound.push([classId, name]);
    post(this.worker, { type: 'rename', classId, name });
  }

  pause(): void {
    this.isPaused = true;
    post(this.worker, { type: 'pause' });
  }

  resume(): void {
    this.isPaused = false;
    post(this.worker, { type: 'resume' });
  }

  /** Waits for a round in flight, then stops the worker. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.hurry();
    await this.inFlight?.catch(() => undefined);
    this.closed = true;
    await this.worker.terminate();
  }

  private onReply(msg: LearnerReply): void {
    if (msg.type === 'round') {
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      p?.resolve({ state: msg.state, report: msg.report });
    } else if (msg.type === 'error') {
      const err = rebuildError(msg);
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        p?.reject(err);
      } else {
        this.fail(err);
      }
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}

/** Mixed into the seed of the patch sampler so it does not replay the learner's own stream. */
const SAMPLER_SEED_SALT = 0x5eed_0b5e;

/** Frames kept at each stride while a round runs (`observe`). */
const THIN_GROUP = 16;

function post(worker: Worker, msg: LearnerRequest): void {
  worker.postMessage(msg);
}

/** Errors cross the thread boundary as plain data; give coded ones their class back. */
function rebuildError(msg: { message: string; code?: string }): Error {
  return msg.code ? new StegoError(msg.code as ErrorCode, msg.message) : new Error(msg.message);
}
