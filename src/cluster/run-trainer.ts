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
import type { NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { LearnerClient } from '../learning/learner-client.js';
import { decodeCheckpoint, encodeCheckpoint, loadCheckpoint, saveCheckpoint } from '../learning/checkpoint.js';
import { classInfos, type HeadState } from '../learning/head-state.js';
import { expectedClassCount, learnerClassOptions, learnerTrainOptions, type LearningOptions } from '../learning/learning-options.js';
import { DEFAULT_PREFIX, controlSubject, serviceEventsSubject } from '../sinks/nats-subjects.js';
import { assertClassId, runControl, type ControlHandler } from '../sinks/control.js';
import { ControlError } from '../errors.js';
import { counter, gauge } from '../internal/metrics.js';
import type { Readiness } from '../service/http-server.js';
import { openHeadsBucket } from './cluster-connection.js';
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
  const warmupFrames = options.warmupFrames ?? DEFAULT_WARMUP_FRAMES;
  const k = expectedClassCount(learning);
  const registry = options.registry ?? new Registry();
  const mHead = gauge(registry, 'stegostream_trainer_head_version', 'Head version last published');
  const mFeatures = counter(registry, 'stegostream_trainer_feature_frames_total', 'Feature frames received from workers', ['outcome']);
  const mRounds = counter(registry, 'stegostream_trainer_rounds_total', 'Training rounds', ['kind']);

  const kv = await openHeadsBucket(nc, prefix);
  const where = `KV ${headsBucketName(prefix)}/${HEAD_KEY}`;
  const lease: TrainerLease = await acquireTrainerLease({
    kv,
    id: name,
    logger,
    ...(options.leaseTtlMs !== undefined ? { ttlMs: options.leaseTtlMs } : {}),
    ...(options.standby !== undefined ? { standby: options.standby } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });

  // Where versions continue from: the bucket's head, or --head / --resume.
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
    initial = { ...fromFile, version };
    log.info({ head: headFile, version }, 'head loaded from file');
  }
  if (learning.freeze && !initial) {
    await lease.release();
    throw new Error('--freeze needs a head: give --head FILE (or --resume with a checkpoint)');
  }

  let learner: LearnerClient | undefined;
  let starting: Promise<LearnerClient> | undefined;
  let featureFrames = 0;
  let rounds = 0;
  let training = false;
  let publishing: Promise<void> = Promise.resolve();
  let closing = false;
  let failure: Error | undefined;
  let resolveDone!: () => void;
  let rejectDone!: (e: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  done.catch(() => undefined);

  /** Publishes one head after another: each write is a compare-and-set on the previous one's revision. */
  function publish(state: HeadState, reason: string): Promise<void> {
    const next = publishing.catch(() => undefined).then(() => publishNow(state, reason));
    publishing = next.catch(() => undefined);
    return next;
  }

  async function publishNow(state: HeadState, reason: string): Promise<void> {
    await lease.confirm();
    const bytes = encodeCheckpoint(state);
    const max = nc.info?.max_payload ?? Infinity;
    if (bytes.length > max) {
      throw new Error(
        `the head checkpoint (${bytes.length} bytes) is larger than the NATS server's max_payload (${max} bytes): raise max_payload in the server config (e.g. 8MB; deploy/nats.conf does)`,
      );
    }
    // Compare-and-set on the revision this trainer last saw: nothing else may have written.
    headRevision = headRevision === undefined ? await kv.create(HEAD_KEY, bytes) : await kv.update(HEAD_KEY, bytes, headRevision);
    published = state;
    mHead.set(state.version);
    log.info({ headVersion: state.version, revision: headRevision, bytes: bytes.length, reason }, 'head published');
    nc.publish(serviceEventsSubject(prefix), Buffer.from(JSON.stringify({ type: 'head-updated', version: state.version, reason })));
    if (learning.checkpoint && !learning.freeze) {
      const path = learning.checkpoint;
      await mkdir(dirname(path), { recursive: true });
      await saveCheckpoint(path, state).catch((err: unknown) => log.error({ err }, 'checkpoint file failed'));
    }
  }

  function fail(err: Error): void {
    if (failure) return;
    failure = err;
    log.error({ err }, 'trainer stopping');
    void close().finally(() => rejectDone(err));
  }

  if (initial && initial !== published) await publish(initial, learning.freeze ? 'frozen head from file' : 'head from file');

  // Control on <prefix>.ctl.<verb> (request-reply), as the single-process service answers it:
  // renames go out as a new revision of the head (same version, new names) that workers swap in.
  let paused = false;
  const control: ControlHandler = {
    renameClass(id, name) {
      const current = learner?.state.version ? learner.state : published;
      if (current === undefined || current.version === 0)
        throw new ControlError('No head yet: the trainer has not fitted the first one. Rename once results come in.');
      assertClassId(classInfos(current), id);
      learner?.rename(id, name);
      const names = [...current.names];
      names[id] = name;
      const renamed = { ...current, names };
      if (learner === undefined) initial = renamed;
      publish(renamed, `class ${id} renamed`).catch((err: unknown) => fail(err as Error));
      return classInfos(renamed);
    },
    pauseLearning() {
      paused = true;
      learner?.pause();
      announce();
    },
    resumeLearning() {
      paused = false;
      learner?.resume();
      announce();
    },
    async snapshotHead() {
      const state = published;
      if (state === undefined) throw new ControlError('No head yet: nothing to snapshot.');
      const path = learning.checkpoint ?? '.stegostream/head.ckpt';
      await mkdir(dirname(path), { recursive: true });
      await saveCheckpoint(path, state);
      return { path, version: state.version };
    },
    status: () => ({
      role: 'trainer',
      trainer: name,
      headVersion: published?.version ?? 0,
      featureFrames,
      rounds,
      learning: learning.freeze ? 'frozen' : paused ? 'paused' : 'running',
      classes: published ? classInfos(published) : [],
    }),
  };
  // The learning state goes out now and then (and at once on pause/resume), for viewers.
  const announce = (): void => {
    const e = { type: 'pipeline', learning: learning.freeze ? 'frozen' : paused ? 'paused' : 'running' };
    if (!nc.isClosed()) nc.publish(serviceEventsSubject(prefix), Buffer.from(JSON.stringify(e)));
  };
  const announcer = setInterval(announce, 5_000);
  announcer.unref();
  const ctl: Subscription = nc.subscribe(controlSubject(prefix, '*'), {
    callback: (err, msg) => {
      if (err || !msg.reply) return;
      const verb = msg.subject.slice(controlSubject(prefix, '').length);
      let args: unknown = {};
      try {
        if (msg.data.length > 0) args = JSON.parse(Buffer.from(msg.data).toString('utf8'));
      } catch (e) {
        msg.respond(
          Buffer.from(
            JSON.stringify({
              ok: false,
              verb,
              error: { code: 'E_BAD_JSON', message: `Request body is not valid JSON: ${(e as Error).message}` },
            }),
          ),
        );
        return;
      }
      void runControl(control, verb, args, { logger: log }).then((reply) => msg.respond(Buffer.from(JSON.stringify(reply))));
    },
  });

  async function startLearner(dim: number, backboneName: string): Promise<LearnerClient> {
    const l = await LearnerClient.start({
      dim,
      backboneName,
      ...learnerClassOptions(learning),
      codeDim: learning.codeDim,
      seed: learning.seed,
      bank: { capacityFrames: learning.bankFrames },
      train: learnerTrainOptions(learning),
      ...(learning.names ? { names: learning.names } : {}),
      ...(initial ? { initial } : {}),
    });
    log.info({ dim, backbone: backboneName, from: initial?.version ?? 0 }, 'learner started');
    if (paused) l.pause();
    return l;
  }

  /** `background`: a periodic round, which keeps to --learn-cpu (workers may share this machine). */
  async function round(l: LearnerClient, kind: string, steps?: number, background = false): Promise<HeadState> {
    const before = l.state.version;
    const state = await l.runRound(featureFrames, steps, background);
    rounds++;
    mRounds.inc({ kind: l.lastRound?.kind ?? kind });
    const r = l.lastRound;
    if (state.version !== before)
      log.info(
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
      log.info({ dispersionRatio: r.dispersionRatio, reason: r.reason }, 'trained head turned away; the serving head stays');
    return state;
  }

  async function maybeTrain(l: LearnerClient): Promise<void> {
    if (training || closing || paused) return;
    if (!l.ready) {
      if (featureFrames < warmupFrames) return;
      training = true;
      try {
        await round(l, 'probe');
        // A long first round (--learn-steps), as after process's learning pass; short ones after.
        const state = l.ready ? await round(l, 'train', learning.learnSteps) : l.state;
        if (state.version > 0) await publish(state, 'first fit');
      } finally {
        training = false;
      }
      return;
    }
    if (!l.shouldTrain(featureFrames)) return;
    training = true;
    try {
      const state = await round(l, 'train', undefined, true);
      if (state.version !== published?.version) await publish(state, 'training round');
    } finally {
      training = false;
    }
  }

  const sub: Subscription = nc.subscribe(featuresSubject(prefix), {
    callback: (err, msg) => {
      if (err) return log.error({ err }, 'features subscription failed');
      if (learning.freeze || closing) return;
      let sample;
      try {
        sample = decodeFeatures(msg.data, msg.headers);
      } catch (e) {
        mFeatures.inc({ outcome: 'bad' });
        return log.warn({ err: (e as Error).message }, 'ignoring a bad feature message');
      }
      if (initial && sample.dim !== initial.backbone.dim) {
        mFeatures.inc({ outcome: 'wrong-dim' });
        return log.warn({ dim: sample.dim, headDim: initial.backbone.dim }, 'ignoring features of another backbone than the head');
      }
      starting ??= startLearner(sample.dim, sample.backbone).then((l) => (learner = l));
      void starting
        .then((l) => {
          l.observe(sample.tokens, sample.n, sample.dim);
          featureFrames++;
          mFeatures.inc({ outcome: 'used' });
          return maybeTrain(l);
        })
        .catch((e: unknown) => fail(e as Error));
    },
  });

  void lease.lost.then((err) => fail(err));

  let closingPromise: Promise<void> | undefined;
  function close(): Promise<void> {
    closingPromise ??= (async () => {
      closing = true;
      sub.unsubscribe();
      ctl.unsubscribe();
      clearInterval(announcer);
      await publishing;
      const l = learner ?? (await starting?.catch(() => undefined));
      await l?.close();
      await lease.release();
      log.info({ headVersion: published?.version ?? 0, rounds }, 'trainer stopped');
      if (!failure) resolveDone();
    })();
    return closingPromise;
  }
  options.signal?.addEventListener('abort', () => void close(), { once: true });

  return {
    registry,
    ready: (): Readiness => (closing ? { ready: false, reason: 'shutting down' } : { ready: true }),
    status: () => ({ headVersion: published?.version ?? 0, featureFrames, rounds }),
    done,
    close,
  };
}
