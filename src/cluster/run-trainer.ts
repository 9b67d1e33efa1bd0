/**
 * `stegostream trainer`: the one process that learns the head for the whole cluster. It holds the
 * trainer lease (./trainer-lease.ts: a second trainer is refused or stands by), subscribes to the
 * sampled features workers send on `<prefix>.train.features`, feeds them to the online learner (in
 * its worker thread), and publishes every new head version as checkpoint bytes to the KV bucket
 * `<PREFIX>_heads` key `head`, after confirming the lease. Workers watch that key.
 *
 * The first head: after `warmupFrames` feature frames, the raw probe is fitted and one training
 * round of `learnSteps` Adam steps runs at once (as `process` does after its learning pass); that
 * head is published. Later a
 * round runs every `trainEvery` feature frames, while features keep arriving. Versions continue
 * from the head already in the bucket (a restarted or replacement trainer resumes from it), or
 * from `--head`; with `freeze` the loaded head is published and never changed.
 */
import { hostname } from 'node:os';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { KV, Msg, NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { LearnerClient } from '../learning/learner-client.js';
import { decodeCheckpoint, encodeCheckpoint, loadCheckpoint, saveCheckpoint } from '../learning/checkpoint.js';
import { classInfos, type HeadState } from '../learning/head-state.js';
import {
  checkClassNames,
  expectedClassCount,
  learnerClassOptions,
  learnerTrainOptions,
  type LearningOptions,
} from '../learning/learning-options.js';
import { DEFAULT_PREFIX, controlSubject, serviceEventsSubject } from '../sinks/nats-subjects.js';
import { assertClassId, runControl, type ControlHandler } from '../sinks/control.js';
import { ControlError } from '../errors.js';
import { counter, gauge } from '../internal/metrics.js';
import type { Readiness } from '../service/http-server.js';
import { isStreamGone, isUnreachable, openHeadsBucket } from './cluster-connection.js';
import { featuresSubject, HEAD_KEY, headsBucketName } from './cluster-names.js';
import { decodeFeatures } from './feature-message.js';
import { acquireTrainerLease, type TrainerLease } from './trainer-lease.js';

export const DEFAULT_WARMUP_FRAMES = 32;

export interface TrainerOptions {
  readonly nc: NatsConnection;
  readonly prefix?: string;
  readonly learning: LearningOptions;
  /** Feature frames before the first head (default 32). */
  readonly warmupFrames?: number;
  readonly leaseTtlMs?: number;
  /** Wait for the lease when another trainer holds it, instead of failing. */
  readonly standby?: boolean;
  readonly name?: string;
  readonly logger: Logger;
  readonly registry?: Registry;
  readonly signal?: AbortSignal;
}

export interface RunningTrainer {
  readonly registry: Registry;
  ready(): Readiness;
  status(): { headVersion: number; featureFrames: number; rounds: number };
  /** Resolves on close; rejects when the lease is lost or publishing fails for good. */
  readonly done: Promise<void>;
  close(): Promise<void>;
}

export async function runTrainer(options: TrainerOptions): Promise<RunningTrainer> {
  const { nc, logger, learning } = options;
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  const name = options.name ?? `${hostname()}-${process.pid}`;
  const log = logger.child({ stage: 'trainer', trainer: name });
  const k = expectedClassCount(learning);

  const kv = await openHeadsBucket(nc, prefix);
  // The lease's callback may come before the trainer exists (then there is no head to re-publish).
  const late: { trainer?: Trainer } = {};
  const lease: TrainerLease = await acquireTrainerLease({
    kv,
    id: name,
    logger,
    reopen: () => openHeadsBucket(nc, prefix),
    onRetaken: (bucket) => late.trainer?.republish(bucket),
    ...(options.leaseTtlMs !== undefined ? { ttlMs: options.leaseTtlMs } : {}),
    ...(options.standby !== undefined ? { standby: options.standby } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  // A head or names that do not fit end the start: the lease goes back, so a corrected trainer gets it at once.
  const start = await startingHead(kv, `KV ${headsBucketName(prefix)}/${HEAD_KEY}`, learning, k, log).catch(async (err: unknown) => {
    await lease.release();
    throw err;
  });
  if (learning.freeze && !start.initial) {
    await lease.release();
    throw new Error('--freeze needs a head: give --head FILE (or --resume with a checkpoint)');
  }
  const trainer = new Trainer(options, { prefix, name, log, kv, lease, ...start });
  late.trainer = trainer;
  // Before the first publish: a stop that comes while it is acked (a client that waits for the
  // head and then stops the trainer) must not be lost. One that came earlier still counts.
  options.signal?.addEventListener('abort', () => void trainer.close(), { once: true });
  if (start.initial && start.initial !== start.published) {
    await trainer.publish(start.initial, learning.freeze ? 'frozen head from file' : 'head from file');
  }
  trainer.listen();
  if (options.signal?.aborted) void trainer.close();
  return trainer;
}

/** Where versions continue from: the bucket's head (and its revision), or --head / --resume. */
async function startingHead(
  kv: KV,
  where: string,
  learning: LearningOptions,
  k: number | undefined,
  log: Logger,
): Promise<{ headRevision: number | undefined; published: HeadState | undefined; initial: HeadState | undefined }> {
  let headRevision: number | undefined;
  let published: HeadState | undefined;
  const entry = await kv.get(HEAD_KEY);
  if (entry !== null && entry.operation === 'PUT') {
    headRevision = entry.revision;
    try {
      published = decodeCheckpoint(entry.value, where, k === undefined ? {} : { k });
      log.info({ headVersion: published.version }, 'resuming from the head in KV');
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'the head in KV does not fit this trainer; learning a new one');
    }
  }
  let initial = published;
  const headFile = learning.head ?? (learning.resume ? learning.checkpoint : undefined);
  if (headFile) {
    const fromFile = await loadCheckpoint(headFile, k === undefined ? {} : { k });
    // Keep versions increasing across the cluster: outputs are told apart by version.
    const version = Math.max(fromFile.version, (published?.version ?? 0) + 1);
    // --names names the loaded head's classes (the list must fit the head's count), as in process.
    if (learning.names) checkClassNames(learning.names, fromFile.k, learning.maxClasses);
    initial = { ...fromFile, version, ...(learning.names ? { names: [...learning.names] } : {}) };
    log.info({ head: headFile, version }, 'head loaded from file');
  } else if (learning.names) {
    checkClassNames(learning.names, k, learning.maxClasses);
  }
  return { headRevision, published, initial };
}

interface TrainerStart {
  readonly prefix: string;
  readonly name: string;
  readonly log: Logger;
  readonly kv: KV;
  readonly lease: TrainerLease;
  readonly headRevision: number | undefined;
  readonly published: HeadState | undefined;
  readonly initial: HeadState | undefined;
}

/** The running trainer: features in, rounds in the learner's thread, heads out to the KV bucket. */
class Trainer implements RunningTrainer {
  readonly registry: Registry;
  readonly done: Promise<void>;
  private readonly nc: NatsConnection;
  private readonly learning: LearningOptions;
  private readonly prefix: string;
  private readonly name: string;
  private readonly log: Logger;
  private kv: KV;
  private readonly lease: TrainerLease;
  private readonly warmupFrames: number;
  private readonly m: ReturnType<typeof trainerMetrics>;
  private headRevision: number | undefined;
  private published: HeadState | undefined;
  private initial: HeadState | undefined;
  private learner: LearnerClient | undefined;
  private starting: Promise<LearnerClient> | undefined;
  private featureFrames = 0;
  private rounds = 0;
  private training = false;
  private paused = false;
  private publishing: Promise<void> = Promise.resolve();
  private closing = false;
  private closingPromise: Promise<void> | undefined;
  private failure: Error | undefined;
  private resolveDone!: () => void;
  private rejectDone!: (e: unknown) => void;
  private subs: Subscription[] = [];
  private announcer: NodeJS.Timeout | undefined;

  constructor(options: TrainerOptions, start: TrainerStart) {
    this.nc = options.nc;
    this.learning = options.learning;
    this.prefix = start.prefix;
    this.name = start.name;
    this.log = start.log;
    this.kv = start.kv;
    this.lease = start.lease;
    this.headRevision = start.headRevision;
    this.published = start.published;
    this.initial = start.initial;
    this.warmupFrames = options.warmupFrames ?? DEFAULT_WARMUP_FRAMES;
    this.registry = options.registry ?? new Registry();
    this.m = trainerMetrics(this.registry);
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    this.done.catch(() => undefined);
  }

  ready(): Readiness {
    return this.closing ? { ready: false, reason: 'shutting down' } : { ready: true };
  }

  status(): { headVersion: number; featureFrames: number; rounds: number } {
    return { headVersion: this.published?.version ?? 0, featureFrames: this.featureFrames, rounds: this.rounds };
  }

  /** Subscribes to control and features, starts announcing the learning state, and watches the lease. */
  listen(): void {
    // Stopped while its first head was being published: nothing to listen for.
    if (this.closing) return;
    const { nc, prefix } = this;
    // The learning state goes out now and then (and at once on pause/resume), for viewers.
    this.announcer = setInterval(() => this.announce(), 5_000);
    this.announcer.unref();
    this.subs = [
      nc.subscribe(controlSubject(prefix, '*'), { callback: (err, msg) => (err || !msg.reply ? undefined : this.onControl(msg)) }),
      nc.subscribe(featuresSubject(prefix), {
        callback: (err, msg) => (err ? this.log.error({ err }, 'features subscription failed') : this.onFeatures(msg)),
      }),
    ];
    void this.lease.lost.then((err) => this.fail(err));
  }

  // ---- heads out ----

  /** Publishes one head after another: each write is a compare-and-set on the previous one's revision. */
  publish(state: HeadState, reason: string): Promise<void> {
    const next = this.publishing.catch(() => undefined).then(() => this.publishNow(state, reason));
    this.publishing = next.catch(() => undefined);
    return next;
  }

  private async publishNow(state: HeadState, reason: string): Promise<void> {
    const { nc, learning } = this;
    await this.lease.confirm();
    const bytes = encodeCheckpoint(state);
    const max = nc.info?.max_payload ?? Infinity;
    if (bytes.length > max) {
      throw new Error(
        `the head checkpoint (${bytes.length} bytes) is larger than the NATS server's max_payload (${max} bytes): raise max_payload in the server config (e.g. 8MB; deploy/nats.conf does)`,
      );
    }
    await this.putHead(bytes);
    this.published = state;
    this.m.head.set(state.version);
    this.log.info({ headVersion: state.version, revision: this.headRevision, bytes: bytes.length, reason }, 'head published');
    nc.publish(serviceEventsSubject(this.prefix), Buffer.from(JSON.stringify({ type: 'head-updated', version: state.version, reason })));
    if (learning.checkpoint && !learning.freeze) {
      const path = learning.checkpoint;
      await mkdir(dirname(path), { recursive: true });
      await saveCheckpoint(path, state).catch((err: unknown) => this.log.error({ err }, 'checkpoint file failed'));
    }
  }

  /**
   * Writes the head, a compare-and-set on the revision this trainer last saw: nothing else may
   * have written. Waits out an outage; a server that came back without its store gets the
   * bucket re-created and the head written anew.
   */
  private async putHead(bytes: Uint8Array): Promise<void> {
    for (;;) {
      try {
        this.headRevision =
          this.headRevision === undefined
            ? await this.kv.create(HEAD_KEY, bytes)
            : await this.kv.update(HEAD_KEY, bytes, this.headRevision);
        return;
      } catch (err) {
        if (!(await this.recoverPut(err))) throw err;
      }
    }
  }

  /**
   * After a failed head write: true to write again (the server is back, or its bucket or key was
   * lost and is taken care of), false when another writer changed the head. A server that goes
   * away again meanwhile is waited out the same way.
   */
  private async recoverPut(err: unknown): Promise<boolean> {
    try {
      if (isUnreachable(err)) {
        await new Promise((r) => setTimeout(r, 250));
        await this.lease.confirm();
        return true;
      }
      if (isStreamGone(err)) {
        this.kv = await openHeadsBucket(this.nc, this.prefix);
        this.headRevision = undefined;
        return true;
      }
      const e = await this.kv.get(HEAD_KEY);
      if (this.headRevision === undefined || (e !== null && e.operation === 'PUT')) return false;
      this.headRevision = undefined; // the key is gone with the server's store
      return true;
    } catch (again) {
      if (!isUnreachable(again) && !isStreamGone(again)) throw again;
      await new Promise((r) => setTimeout(r, 250));
      return this.recoverPut(again);
    }
  }

  /** The server lost its store (the lease was taken again): the current head goes out again for workers. */
  republish(bucket: KV): void {
    this.kv = bucket;
    this.headRevision = undefined;
    const state = this.published;
    if (state === undefined || this.closing) return;
    this.publish(state, 're-published: the server lost its store').catch((err: unknown) => this.fail(err as Error));
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    this.log.error({ err }, 'trainer stopping');
    void this.close().finally(() => this.rejectDone(err));
  }

  // ---- control ----

  private learningState(): string {
    return this.learning.freeze ? 'frozen' : this.paused ? 'paused' : 'running';
  }

  private announce(): void {
    const e = { type: 'pipeline', learning: this.learningState() };
    if (!this.nc.isClosed()) this.nc.publish(serviceEventsSubject(this.prefix), Buffer.from(JSON.stringify(e)));
  }

  /** Control on <prefix>.ctl.<verb> (request-reply), as the single-process service answers it. */
  private onControl(msg: Msg): void {
    const verb = msg.subject.slice(controlSubject(this.prefix, '').length);
    let args: unknown = {};
    try {
      if (msg.data.length > 0) args = JSON.parse(Buffer.from(msg.data).toString('utf8'));
    } catch (e) {
      const error = { code: 'E_BAD_JSON', message: `Request body is not valid JSON: ${(e as Error).message}` };
      msg.respond(Buffer.from(JSON.stringify({ ok: false, verb, error })));
      return;
    }
    void runControl(this.control, verb, args, { logger: this.log }).then((reply) => msg.respond(Buffer.from(JSON.stringify(reply))));
  }

  private readonly control: ControlHandler = {
    // Renames go out as a new revision of the head (same version, new names) that workers swap in.
    renameClass: (id, name) => {
      const current = this.learner?.state.version ? this.learner.state : this.published;
      if (current === undefined || current.version === 0)
        throw new ControlError('No head yet: the trainer has not fitted the first one. Rename once results come in.');
      assertClassId(classInfos(current), id);
      this.learner?.rename(id, name);
      const names = [...current.names];
      names[id] = name;
      const renamed = { ...current, names };
      if (this.learner === undefined) this.initial = renamed;
      this.publish(renamed, `class ${id} renamed`).catch((err: unknown) => this.fail(err as Error));
      return classInfos(renamed);
    },
    pauseLearning: () => {
      this.paused = true;
      this.learner?.pause();
      this.announce();
    },
    resumeLearning: () => {
      this.paused = false;
      this.learner?.resume();
      this.announce();
    },
    snapshotHead: async () => {
      const state = this.published;
      if (state === undefined) throw new ControlError('No head yet: nothing to snapshot.');
      const path = this.learning.checkpoint ?? '.stegostream/head.ckpt';
      await mkdir(dirname(path), { recursive: true });
      await saveCheckpoint(path, state);
      return { path, version: state.version };
    },
    status: () => ({
      role: 'trainer',
      trainer: this.name,
      headVersion: this.published?.version ?? 0,
      featureFrames: this.featureFrames,
      rounds: this.rounds,
      learning: this.learningState(),
      classes: this.published ? classInfos(this.published) : [],
    }),
  };

  // ---- features in, rounds ----

  private onFeatures(msg: Msg): void {
    if (this.learning.freeze || this.closing) return;
    let sample;
    try {
      sample = decodeFeatures(msg.data, msg.headers);
    } catch (e) {
      this.m.features.inc({ outcome: 'bad' });
      return this.log.warn({ err: (e as Error).message }, 'ignoring a bad feature message');
    }
    if (this.initial && sample.dim !== this.initial.backbone.dim) {
      this.m.features.inc({ outcome: 'wrong-dim' });
      return this.log.warn({ dim: sample.dim, headDim: this.initial.backbone.dim }, 'ignoring features of another backbone than the head');
    }
    this.starting ??= this.startLearner(sample.dim, sample.backbone).then((l) => (this.learner = l));
    void this.starting
      .then((l) => {
        l.observe(sample.tokens, sample.n, sample.dim);
        this.featureFrames++;
        this.m.features.inc({ outcome: 'used' });
        return this.maybeTrain(l);
      })
      .catch((e: unknown) => this.fail(e as Error));
  }

  private async startLearner(dim: number, backboneName: string): Promise<LearnerClient> {
    const learning = this.learning;
    const l = await LearnerClient.start({
      dim,
      backboneName,
      ...learnerClassOptions(learning),
      codeDim: learning.codeDim,
      seed: learning.seed,
      bank: { capacityFrames: learning.bankFrames },
      train: learnerTrainOptions(learning),
      ...(learning.names ? { names: learning.names } : {}),
      ...(this.initial ? { initial: this.initial } : {}),
    });
    this.log.info({ dim, backbone: backboneName, from: this.initial?.version ?? 0 }, 'learner started');
    if (this.paused) l.pause();
    return l;
  }

  /** `background`: a periodic round, which keeps to --learn-cpu (workers may share this machine). */
  private async round(l: LearnerClient, kind: string, steps?: number, background = false): Promise<HeadState> {
    const before = l.state.version;
    const state = await l.runRound(this.featureFrames, steps, background);
    this.rounds++;
    this.m.rounds.inc({ kind: l.lastRound?.kind ?? kind });
    const r = l.lastRound;
    if (state.version !== before)
      this.log.info(
        {
          headVersion: state.version,
          kind: r?.kind,
          ms: Math.round(r?.ms ?? 0),
          ...(r?.idleMs === undefined ? {} : { idleMs: Math.round(r.idleMs) }),
          ...(r?.cpuShare === undefined ? {} : { cpuShare: Number(r.cpuShare.toFixed(2)) }),
        },
        'round done',
      );
    else if (r?.kind === 'rejected')
      this.log.info({ dispersionRatio: r.dispersionRatio, reason: r.reason }, 'trained head turned away; the serving head stays');
    return state;
  }

  private async maybeTrain(l: LearnerClient): Promise<void> {
    if (this.training || this.closing || this.paused) return;
    if (!l.ready && this.featureFrames < this.warmupFrames) return;
    if (l.ready && !l.shouldTrain(this.featureFrames)) return;
    this.training = true;
    try {
      if (!l.ready) {
        await this.round(l, 'probe');
        // A long first round (--learn-steps), as after process's learning pass; short ones after.
        const state = l.ready ? await this.round(l, 'train', this.learning.learnSteps) : l.state;
        if (state.version > 0) await this.publish(state, 'first fit');
      } else {
        const state = await this.round(l, 'train', undefined, true);
        if (state.version !== this.published?.version) await this.publish(state, 'training round');
      }
    } finally {
      this.training = false;
    }
  }

  close(): Promise<void> {
    this.closingPromise ??= this.shutDown();
    return this.closingPromise;
  }

  private async shutDown(): Promise<void> {
    this.closing = true;
    for (const sub of this.subs) sub.unsubscribe();
    clearInterval(this.announcer);
    await this.publishing;
    const l = this.learner ?? (await this.starting?.catch(() => undefined));
    await l?.close();
    await this.lease.release();
    this.log.info({ headVersion: this.published?.version ?? 0, rounds: this.rounds }, 'trainer stopped');
    if (!this.failure) this.resolveDone();
  }
}

function trainerMetrics(registry: Registry) {
  return {
    head: gauge(registry, 'stegostream_trainer_head_version', 'Head version last published'),
    features: counter(registry, 'stegostream_trainer_feature_frames_total', 'Feature frames received from workers', ['outcome']),
    rounds: counter(registry, 'stegostream_trainer_rounds_total', 'Training rounds', ['kind']),
  };
}
